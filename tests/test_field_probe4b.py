"""Wrong leaders and wrong diagnoses found by the held-out probe 4 (task H26): a cause must lead
over the failure it causes, and a rule must not claim evidence that is not its own. First on
facts shaped as the readers give them, then end to end through ``hvrescue triage`` on incidents
of the same kinds (tests/fixtures/field_probe4b, sources in its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.engine import Diagnosis, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands import cbs
from hvrescue.logs.textutil import Text
from tests.helpers import run_cli, triage_incident

RULES = load_rules()
FIXTURES = Path(__file__).parent / "fixtures" / "field_probe4b"
FC = "Microsoft-Windows-FailoverClustering"
HA = "Microsoft-Windows-Hyper-V-High-Availability"


def diagnose(*items: tuple[str, dict[str, Any]]) -> list[Diagnosis]:
    facts = [
        Fact(kind, attrs, Provenance("/evidence/pasted.txt", f"line:{i + 1}"))
        for i, (kind, attrs) in enumerate(items)
    ]
    return evaluate(RULES, facts)


def ids(found: list[Diagnosis]) -> list[str]:
    return [d.rule.id for d in found]


def event(provider: str | None, event_id: int | None, message: str, **more: Any):
    return (
        "event",
        {"provider": provider, "event_id": event_id, "level": 2, "message": message, **more},
    )


# --------------------------------------------------------------------------- the engine


def test_a_21502_alone_is_no_failed_role_and_its_memory_reason_leads():
    text = (
        "Live migration of 'Virtual Machine SRV-SQL02' failed.\n\nVirtual machine migration "
        "operation for 'SRV-SQL02' failed at migration destination 'HV-NODE04'.\n\n'SRV-SQL02' "
        "could not be started.\n\n'SRV-SQL02' could not initialize memory: Insufficient system "
        "resources exist to complete the requested service. (0x800705AA)."
    )
    found = ids(diagnose(event(HA, 21502, text)))
    assert found[0] == "vm.migration-failed.destination-memory"
    assert "cluster.vm-role-failed" not in found
    assert "cluster.live-migration-failed" in found
    # Without the memory reason the generic live-migration rule stays first.
    plain = text.split("\n\n'SRV-SQL02' could")[0]
    assert ids(diagnose(event(HA, 21502, plain)))[0] == "cluster.live-migration-failed"


def test_the_failed_role_still_holds_on_its_own_events():
    vm = (
        "Cluster resource 'Virtual Machine SRV-APP01' of type 'Virtual Machine' in clustered "
        "role 'SRV-APP01' failed."
    )
    assert "cluster.vm-role-failed" in ids(diagnose(event(FC, 1069, vm)))


def test_the_csv_pause_leads_over_the_node_it_took_out():
    pause = event(
        FC,
        5120,
        "Cluster Shared Volume 'Volume2' ('Cluster Virtual Disk (Volume2)') has entered a paused "
        "state because of 'STATUS_IO_TIMEOUT(c00000b5)'.",
    )
    removed = event(
        FC, 1135, "Cluster node 'HV-N3' was removed from the active failover cluster membership."
    )
    assert ids(diagnose(pause, removed))[:2] == ["cluster.csv-paused", "cluster.node-removed"]
    assert ids(diagnose(removed))[0] == "cluster.node-removed"


def test_a_full_export_target_is_not_a_merge():
    full = event(
        None,
        None,
        "Failed to copy files: There is not enough space on the disk. (0x80070070).\nThere is "
        "not enough disk space for copy under 'F:\\Exports\\SRV-WEB1'.",
        format="signature",
        signature="disk-full",
    )
    found = ids(diagnose(full))
    assert found[0] == "host.copy-target-full"
    assert "vdisk.merge-failed.disk-full" not in found
    merge = event(
        "Microsoft-Windows-Hyper-V-VMMS",
        19100,
        "'SRV-WEB1' background disk merge failed to complete: There is not enough space on the "
        "disk. (0x80070070).",
    )
    found = ids(diagnose(merge))
    assert found[0] == "vdisk.merge-failed.disk-full"
    assert "host.copy-target-full" not in found


def test_no_merge_diagnosis_for_wsb_0x80780119_even_beside_a_merge():
    dialog = (
        "dialog",
        {
            "title": "Windows Server Backup",
            "content": "There is not enough disk space to create the volume shadow copy on the "
            "storage location. (0x80780119)",
            "codes": ["0x80780119", "0x80070070"],
        },
    )
    started = (
        "event",
        {
            "provider": "Microsoft-Windows-Hyper-V-VMMS",
            "event_id": 19070,
            "level": 4,
            "message": "'SRV-APP01' background disk merge has been started.",
        },
    )
    found = ids(diagnose(dialog, started))
    assert "vdisk.merge-failed.disk-full" not in found
    assert "host.copy-target-full" not in found


@pytest.mark.parametrize(
    "message",
    [
        "'FS-02': Failed to open attachment 'D:\\VMs\\FS-02.vhdx'. Error: 'The process cannot "
        "access the file because it is being used by another process.' (0x80070020).",
        "'FS-02': 添付ファイル 'D:\\VMs\\FS-02.vhdx' を開けませんでした。エラー: "
        "'プロセスはファイルにアクセスできません。別のプロセスが使用中です。'",
        "'FS-02': Failed to open attachment 'E:\\VMs\\FS-02.vhd'. Error: 'The requested operation "
        "could not be completed due to a virtual disk system limitation.' (0xC03A001D).",
    ],
)
def test_an_attachment_in_use_or_refused_is_no_config_mismatch(message: str):
    found = ids(diagnose(event("Microsoft-Windows-Hyper-V-Worker", 12140, message)))
    assert "vm.config-disk-mismatch" not in found
    other = message.replace("0x80070020", "0x80070002").replace("0xC03A001D", "0x80070002")
    if other != message:  # the same event for a missing file is still a mismatch
        missing = other.split("Error:")[0] + "Error: 'The system cannot find the file specified.'"
        missing += " (0x80070002)."
        found = ids(diagnose(event("Microsoft-Windows-Hyper-V-Worker", 12140, missing)))
        assert "vm.config-disk-mismatch" in found


def test_the_host_bugcheck_takes_the_module_named_under_the_1001():
    text = (
        "The computer has rebooted from a bugcheck.  The bugcheck was: 0x0000001a "
        "(0x0000000000041284, 0xfffff88003a1c001, 0x0000000000000000, 0xfffffa8000c0f000). A dump "
        "was saved in: C:\\Windows\\MEMORY.DMP. Report Id: 112926-1234-01.\n\nMEMORY_MANAGEMENT\n"
        "Probably caused by : vid.sys"
    )
    found = diagnose(event("Microsoft-Windows-WER-SystemErrorReporting", 1001, text))
    assert ids(found)[0] == "host.bugcheck.hyperv-stack"
    assert found[0].bindings["stop"][0].attributes["image"] == "vid.sys"
    guest_driver = text.replace("vid.sys", "storvsc.sys")
    assert "host.bugcheck.hyperv-stack" not in ids(
        diagnose(event("Microsoft-Windows-WER-SystemErrorReporting", 1001, guest_driver))
    )


def test_the_cbs_reader_gives_the_failing_installer_to_the_failures_after_it():
    text = (FIXTURES / "cbs-installer-chain-failed" / "CBS.log").read_text(encoding="utf-8")
    facts = cbs.parse(Text.of(text, "CBS.log"))
    failed = [f.attributes for f in facts if f.attributes.get("failed")]
    assert failed and all(a.get("installer") == "Task Scheduler" for a in failed)
    chain = next(a for a in failed if "execution chain" in a["message"])
    assert chain["outcome"] is True and chain["hresult"] == "0x800f0922"
    # An installer that ended without a failure names nothing afterwards.
    quiet = text.replace(
        "2026-11-28 03:12:40, Error                 CSI    00000a18",
        "2026-11-28 03:12:40, Info                  CSI    00000a17 End executing advanced "
        "installer (index 1962, sequence 2001)\n2026-11-28 03:12:40, Error                 CSI"
        "    00000a18",
    )
    later = [
        f.attributes for f in cbs.parse(Text.of(quiet, "CBS.log")) if f.attributes.get("failed")
    ]
    assert later and all(a.get("installer") is None for a in later)


# --------------------------------------------------------------------------- through the CLI

INCIDENTS = [
    ("wsb-checkpoint-storage", "vm.checkpoint-failed", "Get-WinEvent -LogName", "en"),
    ("csv-pause-then-node-removed", "cluster.csv-paused", "Get-ClusterLog", "en"),
    (
        "lm-destination-memory-en",
        "vm.migration-failed.destination-memory",
        "Get-VMHostNumaNode",
        "en",
    ),
    (
        "lm-destination-memory-en",
        "vm.migration-failed.destination-memory",
        "Get-VMHostNumaNode",
        "ja",
    ),
    ("export-target-full", "host.copy-target-full", "Export-VM", "en"),
    ("export-target-full", "host.copy-target-full", "Export-VM", "ja"),
    ("host-bugcheck-vmswitch", "host.bugcheck.hyperv-stack", "Get-NetAdapterVmq", "en"),
    ("cbs-installer-chain-failed", "guest.servicing.installers-failed", "schtasks", "en"),
]


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"),
    INCIDENTS,
    ids=[f"{i[0]}-{i[3]}" for i in INCIDENTS],
)
def test_incident_folder_through_the_cli(tmp_path: Path, name: str, expected, command, lang: str):
    data = triage_incident(FIXTURES / name, tmp_path, expected, command, lang)
    found = [d["id"] for d in data["diagnoses"]]
    if name == "wsb-checkpoint-storage":
        assert "backup.wbadmin-writer-nonretryable" in found[1:]
    if name == "csv-pause-then-node-removed":
        assert found[1] == "cluster.node-removed"
    if name == "lm-destination-memory-en":
        assert "cluster.vm-role-failed" not in found
    if name == "export-target-full":
        assert "vdisk.merge-failed.disk-full" not in found
    if name == "host-bugcheck-vmswitch":
        assert "vmswitch.sys" in data["diagnoses"][0]["title"]
    if name == "cbs-installer-chain-failed":
        assert "Task Scheduler" in data["diagnoses"][0]["title"]
        assert "0x800f0922" in data["diagnoses"][0]["title"]


@pytest.mark.parametrize("name", ["wsb-shadow-space-0x80780119", "attach-in-use-12140"])
def test_near_misses_through_the_cli(tmp_path: Path, name: str):
    folder = FIXTURES / name
    r = run_cli("triage", folder, "--out", tmp_path / "report", "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stderr[-2000:]
    found = [d["id"] for d in r.json()["diagnoses"]]
    assert "vdisk.merge-failed.disk-full" not in found
    assert "host.copy-target-full" not in found
    assert "vm.config-disk-mismatch" not in found
    assert found  # each paste is a real failure: something is said about it
