"""Held-out probe 4 (task H24): incidents of the kinds triage did not recognise, written anew
in ``tests/fixtures/field_probe4`` (the probe itself stays held out) and read end to end by
``hvrescue triage``: the messages of ``signatures_probe4.yaml`` become facts, the rules of
``field_probe4.yaml`` lead over the generic ones, and near misses stay with their own rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import JAPANESE, triage_incident

HERE = Path(__file__).parent / "fixtures" / "field_probe4"

COLLISION = "backup.vhd-disk-signature-collision"
DISABLED = "vm.checkpoints-disabled"
CORRUPT = "vdisk.file-corrupt-on-open"
DUPLICATE = "backup.vss-volume-added-twice"
MAPPED = "vm.files-locked-user-mapped"
RESTORE = "backup.wsb-restore-incorrect-function"
VHDS = "backup.vhds-guest-cluster-owner"
BACKUP_EXEC = "backup.backupexec-recovery-checkpoint"
SWITCH = "vm.migration-failed.switch-missing"
OURS = {COLLISION, DISABLED, CORRUPT, DUPLICATE, MAPPED, RESTORE, VHDS, BACKUP_EXEC, SWITCH}

# folder, rule that leads, a step command fragment, a code its evidence holds (or None), the
# generic rule the paste also raises that must come after it (or None)
CASES: list[tuple[str, str, str, str | None, str | None]] = [
    ("vhd-signature-collision-eventviewer-en", COLLISION, "Get-Disk", None, None),
    ("checkpoints-disabled-ps-error-en", DISABLED, "Set-VM", None, "vm.checkpoint-failed"),
    ("vhdx-corrupt-mount-ps-error-en", CORRUPT, "hvrescue repair", "0x80070570", None),
    ("vhdx-corrupt-mount-ja", CORRUPT, "hvrescue check --deep", "0x80070570", None),
    ("vss-duplicate-volume-alphavss-en", DUPLICATE, "Get-VMHardDiskDrive", "0x8004230d", None),
    ("user-mapped-start-dialog-en", MAPPED, "Add-MpPreference", "0x800704c8", None),
    ("user-mapped-start-vm-ja", MAPPED, "Add-MpPreference", "0x800704c8", None),
    ("backupexec-recovery-checkpoint-en", BACKUP_EXEC, "Hyper-V-VMMS-Admin", None, None),
    (
        "migration-switch-missing-move-vm-en",
        SWITCH,
        "New-VMSwitch",
        None,
        "cluster.live-migration-failed",
    ),
    (
        "system-image-restore-0x80070001-en",
        RESTORE,
        "Measure-Object -Property Length",
        "0x80070001",
        None,
    ),
    (
        "vhds-active-active-32770-en",
        VHDS,
        "Get-ClusterResource",
        None,
        "backup.checkpoint-failed-32768",
    ),
]


def _ids(case: tuple[str, str, str, str | None, str | None]) -> str:
    return case[0]


def _codes(evidence: list[dict]) -> set[str]:
    out: set[str] = set()
    for e in evidence:
        a = e["attributes"]
        out.update(str(c).lower() for c in a.get("codes") or ())
        if a.get("code"):
            out.add(str(a["code"]).lower())
    return out


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize(
    ("name", "expected", "command", "code", "after"), CASES, ids=map(_ids, CASES)
)
def test_incident_diagnosis(
    name: str,
    expected: str,
    command: str,
    code: str | None,
    after: str | None,
    lang: str,
    tmp_path: Path,
) -> None:
    data = triage_incident(HERE / name, tmp_path, expected, command, lang)
    ids = [d["id"] for d in data["diagnoses"]]
    top = data["diagnoses"][0]
    assert "generic.unexplained-error" not in ids
    if code is not None:
        assert code in _codes(top["evidence"]), top["evidence"]
    if after is not None:
        # The generic rule may still be listed, but below the one that names the cause.
        assert after in ids and ids.index(after) > 0, ids
    if lang == "ja":
        assert JAPANESE.search(top["summary"]) and all(JAPANESE.search(a) for a in top["avoid"])


def test_the_collision_cites_the_system_log_line_and_the_backup_error(tmp_path: Path) -> None:
    data = triage_incident(
        HERE / "vhd-signature-collision-eventviewer-en", tmp_path, COLLISION, None, "en"
    )
    messages = " ".join(
        str(e["attributes"].get("message")) for e in data["diagnoses"][0]["evidence"]
    )
    assert "number of volumes reverted does not match" in messages
    assert "non-transient error" in messages  # the 0x800423F4 line is cited as support


def test_the_vhds_title_names_the_collection_error(tmp_path: Path) -> None:
    data = triage_incident(HERE / "vhds-active-active-32770-en", tmp_path, VHDS, None, "en")
    assert "32770" in data["diagnoses"][0]["title"]


def test_a_listed_disabled_checkpoint_type_is_not_a_failure(tmp_path: Path) -> None:
    # "Disabled" in a Get-VM table is a setting, not a refused checkpoint.
    # (Whether the table itself is read is the table reader's business: no failure either way.)
    data = triage_incident(HERE / "near-miss-checkpoint-type-listed-en", tmp_path, None, None, "en")
    assert not OURS & {d["id"] for d in data["diagnoses"]}


def test_an_object_that_does_not_exist_is_not_a_duplicate(tmp_path: Path) -> None:
    data = triage_incident(HERE / "near-miss-vss-object-not-found-en", tmp_path, None, None, "en")
    assert not OURS & {d["id"] for d in data["diagnoses"]}


def test_diskpart_keeps_its_own_rule_for_a_corrupt_file(tmp_path: Path) -> None:
    data = triage_incident(
        HERE / "near-miss-diskpart-corrupt-en", tmp_path, "vdisk.diskpart-corrupted", None, "en"
    )
    assert CORRUPT not in {d["id"] for d in data["diagnoses"]}
