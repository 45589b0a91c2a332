"""PowerShell output read for the state it shows (task H27): a cmdlet that printed no row, the
counts of Measure-Object, Measure-VMReplication rows whose state overflows its column, and the
integration services' status text. End to end through `hvrescue triage` on the incident folders
of ``tests/fixtures/field_psstate`` (sources in its README), then the readers on small texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.logs.collect_text import facts_from_text
from tests.helpers import JAPANESE, triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_psstate"

OURS = {
    "vm.orphaned-checkpoint-chain",
    "vm.replication-resync-required",
    "vm.integration-services-outdated",
}
CASES = [
    ("orphan-chain-en", "vm.orphaned-checkpoint-chain", "hvrescue merge", "en"),
    ("orphan-chain-en", "vm.orphaned-checkpoint-chain", "Set-VMHardDiskDrive", "ja"),
    ("orphan-chain-ja", "vm.orphaned-checkpoint-chain", "hvrescue chain", "ja"),
    ("replica-resync-en", "vm.replication-resync-required", "-Resynchronize", "en"),
    ("replica-resync-ja", "vm.replication-resync-required", "Resume-VMReplication", "ja"),
    ("replica-health-text-ja", "vm.replication-resync-required", "-Resynchronize", "ja"),
    ("ic-protocol-mismatch-en", "vm.integration-services-outdated", "Format-List Name", "en"),
    ("ic-protocol-mismatch-en", "vm.integration-services-outdated", "Get-Service vmic", "ja"),
    ("ic-vss-no-contact-en", "vm.backup-integration-unavailable", "vmicvss", "en"),
]


@pytest.mark.parametrize(
    ("case", "expected", "command", "lang"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES]
)
def test_incident_is_diagnosed_by_its_own_rule(
    case: str, expected: str, command: str, lang: str, tmp_path: Path
) -> None:
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    top = data["diagnoses"][0]
    assert data["verdict"]["state"] == "problems"
    if expected in OURS:  # field_storage.yaml's rule starts by turning the service on
        assert top["steps"][0]["precondition"] == "none" and top["avoid"]
    if lang == "ja":
        assert JAPANESE.search(top["summary"]) and all(JAPANESE.search(a) for a in top["avoid"])
    else:
        assert not JAPANESE.search(top["title"] + top["summary"])


def test_the_orphaned_chain_names_the_vm_and_each_attached_avhdx(tmp_path: Path) -> None:
    data = triage_incident(
        FIXTURES / "orphan-chain-en", tmp_path, "vm.orphaned-checkpoint-chain", None, "en"
    )
    top = data["diagnoses"][0]
    assert "APP-SQL07" in top["title"]
    commands = "\n".join(s["command"] for s in top["steps"])
    # One merge per attached .avhdx, each on the copy, never on the original folder.
    for leaf in ("APP-SQL07-OS_4D1C8E2A", "APP-SQL07-DATA_8A2F6C10"):
        assert f'hvrescue merge "<folder on a volume with room>\\{leaf}' in commands
    merges = [s for s in top["steps"] if "hvrescue merge" in s["command"]]
    assert len(merges) == 2 and all(s["precondition"] == "on-a-copy" for s in merges)
    assert any("Do not delete any .avhdx" in a for a in top["avoid"])


def test_the_replica_rule_leads_the_generic_replication_one(tmp_path: Path) -> None:
    data = triage_incident(
        FIXTURES / "replica-resync-en", tmp_path, "vm.replication-resync-required", None, "en"
    )
    found = [d["id"] for d in data["diagnoses"]]
    assert found.index("vm.replication-resync-required") < found.index("vm.replication-failed")
    assert "ERP-DB2" in data["diagnoses"][0]["title"]


@pytest.mark.parametrize(
    "case",
    [
        "orphan-checkpoint-listed-near-miss",
        "no-checkpoint-base-disk-near-miss",
        "replica-normal-near-miss",
        "ic-ok-near-miss",
    ],
)
def test_healthy_states_raise_nothing(case: str, tmp_path: Path) -> None:
    triage_incident(FIXTURES / case, tmp_path, None, None, "en", healthy=True)


# ------------------------------------------------------------------ the readers


def facts(text: str, kind: str) -> list[dict[str, Any]]:
    return [f.attributes for f in facts_from_text(text, "paste.txt") if f.kind == kind]


def test_an_empty_get_vmsnapshot_is_a_fact_only_between_prompts() -> None:
    ran = "PS C:\\> Get-VMSnapshot -VMName 'SRV A'\nPS C:\\>\n"
    [fact] = facts(ran, "ps_no_output")
    assert fact["cmdlet"] == "get-vmsnapshot" and fact["vm_name"] == "SRV A"
    assert fact["filtered"] is False
    # The last line of a paste: whether it printed anything is unknown.
    assert facts("PS C:\\> Get-VMSnapshot -VMName SRV01\n", "ps_no_output") == []
    # Output follows: not empty.
    listed = (
        "PS C:\\> Get-VMSnapshot -VMName SRV01\n\nVMName Name SnapshotType\n------ ---- "
        "------------\nSRV01  a    Standard\n\nPS C:\\>\n"
    )
    assert facts(listed, "ps_no_output") == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("Get-VM SRV01 | Get-VMCheckpoint", ("get-vmsnapshot", "SRV01", False)),
        (
            "Get-VMSnapshot -VMName SRV01 | Format-Table -AutoSize",
            ("get-vmsnapshot", "SRV01", False),
        ),
        ("Get-VMSnapshot -VMName SRV01 -SnapshotType Recovery", ("get-vmsnapshot", "SRV01", True)),
        ("Get-VMSnapshot -VMName SRV01 | ? Name -like 'Veeam*'", ("get-vmsnapshot", "SRV01", True)),
        ("Get-VMReplication -VMName SRV01", ("get-vmreplication", "SRV01", False)),
        ("Get-VMSnapshot -VMName SRV01 | Remove-VMSnapshot", None),
        ("Get-VMSnapshot -VMName SRV01 > C:\\temp\\cp.txt", None),
        ("$cp = Get-VMSnapshot -VMName SRV01", None),
        ("Get-Service vmms", None),
    ],
)
def test_which_empty_outputs_mean_none(command: str, expected: tuple[Any, ...] | None) -> None:
    found = facts(f"PS C:\\> {command}\n\nPS C:\\> exit\n", "ps_no_output")
    if expected is None:
        assert found == []
    else:
        [fact] = found
        assert (fact["cmdlet"], fact["vm_name"], fact["filtered"]) == expected


def test_measure_object_over_a_listing_gives_count_and_bytes() -> None:
    text = (
        "PS C:\\> dir 'E:\\VM Store\\X' -Filter *.AVHDX | Measure-Object -Property Length -Sum\n\n"
        "Count    : 7\nAverage  :\nSum      : 1,073,741,824\nMaximum  :\nMinimum  :\n"
        "Property : Length\n\nPS C:\\>\n"
    )
    [fact] = facts(text, "file_summary")
    assert fact["path"] == "E:\\VM Store\\X" and fact["extension"] == ".avhdx"
    assert fact["count"] == 7 and fact["total_bytes"] == 1073741824
    # A count of another property is no size.
    other = text.replace("-Property Length -Sum", "").replace("Property : Length", "Property :")
    [counted] = facts(other, "file_summary")
    assert counted["count"] == 7 and counted["total_bytes"] is None


def test_hard_drives_expanded_from_get_vm_are_disks_not_vms() -> None:
    text = (FIXTURES / "orphan-chain-en" / "host.txt").read_text(encoding="utf-8")
    disks = facts(text, "vm_disk")
    assert [d["controller_location"] for d in disks] == [0, 1]
    assert all(d["path"].endswith(".avhdx") for d in disks)
    assert facts(text, "vm") == []


def test_an_overflowing_replication_state_is_read_by_the_order_of_values() -> None:
    text = (FIXTURES / "replica-resync-ja" / "primary.txt").read_text(encoding="utf-8")
    rows = {f["name"]: f for f in facts(text, "vm_replication")}
    assert set(rows) == {"KAIKEI1", "HANBAI2"}
    assert rows["HANBAI2"]["state"] == "WaitingForStartResynchronize"
    assert rows["HANBAI2"]["health"] == "Critical"
    assert rows["HANBAI2"]["last_replication_time"] == "2026/11/21 3:05:44"
    assert rows["KAIKEI1"]["health"] == "Normal"


def test_a_cut_secondary_status_is_kept_as_printed() -> None:
    text = (FIXTURES / "ic-protocol-mismatch-en" / "host.txt").read_text(encoding="utf-8")
    vss = next(f for f in facts(text, "integration_service") if f["name"] == "VSS")
    assert vss["secondary_status"] == "The protocol version of the co..."
    assert vss["truncated_fields"] == ["SecondaryStatusDescription"]
