"""Hyper-V-VMMS / Worker events people post that older rules did not diagnose (task H1):
VMMS 16010 (a file not found), the Hyper-V Replica failures of the 32000 range, a VM that
cannot start for lack of host memory (0x8007000E), the attachment events 12240/12290 and
VMMS 16300/16310 (a configuration that does not load). End to end through `hvrescue triage`
on incident folders of evidence as people paste it (tests/fixtures/field_vmms/README.md says
where each format was seen), then the rules on facts: near misses (the same id from another
provider, Information-level records, success messages) and the ranking against the older,
more specific rules."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.logs.collect import facts_from_text
from hvrescue.report.i18n import Messages
from tests.helpers import JAPANESE, run_cli
from tests.test_field_rules import diagnose, ids

RULES = load_rules()
FIELD = Path(__file__).parent / "fixtures" / "field_vmms"
OURS = {
    "vm.file-not-found",
    "vm.replication-failed",
    "vm.start-failed.out-of-memory",
    "vm.attachment-open-failed",
    "vm.config-load-failed",
}
VMMS = "Microsoft-Windows-Hyper-V-VMMS"
WORKER = "Microsoft-Windows-Hyper-V-Worker"
NOT_FOUND = "The operation failed because the file was not found."


def event(
    provider: str | None, event_id: int | None, message: str, level: int | None = 2
) -> tuple[str, dict[str, Any]]:
    return (
        "event",
        {"provider": provider, "event_id": event_id, "level": level, "message": message},
    )


def triage(tmp_path: Path, name: str, lang: str) -> tuple[int, dict[str, Any], Path]:
    folder = tmp_path / name
    shutil.copytree(FIELD / name, folder)
    out = tmp_path / f"{name}-{lang}-report"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    return r.rc, r.json(), folder


# ------------------------------------------------------------------ end to end, incident folders

INCIDENTS = [
    (
        "replication-table-critical",
        "vm.replication-failed",
        'Resume-VMReplication -VMName "SRV-SQL02"',
        "en",
    ),
    ("file-not-found-en", "vm.file-not-found", 'Get-VMHardDiskDrive -VMName "SRV-APP07"', "en"),
    ("file-not-found-ja", "vm.file-not-found", 'Get-VMHardDiskDrive -VMName "SRV-APP07"', "ja"),
    (
        "file-not-found-post-ja",
        "vm.file-not-found",
        "Get-WinEvent -LogName Microsoft-Windows-Hyper-V-VMMS-Admin",
        "ja",
    ),
    (
        "replication-suspended-table",
        "vm.replication-failed",
        'Resume-VMReplication -VMName "SRV-SQL02"',
        "en",
    ),
    (
        "replication-resume-error-ja",
        "vm.replication-failed",
        "Test-NetConnection -ComputerName",
        "ja",
    ),
    (
        "start-out-of-memory-dialog",
        "vm.start-failed.out-of-memory",
        'Set-VMMemory -VMName "SRV-RDS01"',
        "en",
    ),
    ("config-load-failed-en", "vm.config-load-failed", "Restart-Service vmms", "en"),
    (
        "config-load-failed-post-ja",
        "vm.config-load-failed",
        "Where-Object Id -in 16300, 16310",
        "ja",
    ),
    (
        "start-out-of-memory-dialog",
        "vm.start-failed.out-of-memory",
        'Set-VMMemory -VMName "SRV-RDS01" -StartupBytes <起動メモリ>',
        "ja",
    ),
]


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"),
    INCIDENTS,
    ids=[f"{i[0]}-{i[3]}" for i in INCIDENTS],
)
def test_incident_folder_through_the_cli(
    tmp_path: Path, name: str, expected: str, command: str, lang: str
) -> None:
    rc, data, folder = triage(tmp_path, name, lang)
    top = data["diagnoses"][0]
    assert top["id"] == expected, [d["id"] for d in data["diagnoses"]]
    assert rc == 1 and data["verdict"]["id"] == expected
    assert all(e["path"].startswith(str(folder)) for e in top["evidence"])
    commands = [s["command"] for s in top["steps"]]
    assert any(command in c for c in commands), commands
    # the first step never changes anything: it looks or preserves
    assert top["steps"][0]["precondition"] == "none"
    if lang == "ja":
        assert JAPANESE.search(top["title"]) and JAPANESE.search(top["steps"][0]["text"])
        assert JAPANESE.search(top["summary"]) and all(JAPANESE.search(a) for a in top["avoid"])
    else:
        assert not JAPANESE.search(top["title"] + top["summary"])


def test_a_12240_with_access_denied_ranks_the_specific_rule_first(tmp_path: Path) -> None:
    rc, data, _ = triage(tmp_path, "attachment-12240-denied", "en")
    found = [d["id"] for d in data["diagnoses"]]
    assert rc == 1 and found[0] == "vdisk.access-denied", found
    assert "vm.attachment-open-failed" in found
    assert found.index("vdisk.access-denied") < found.index("vm.attachment-open-failed")


def test_a_12240_from_saved_rows_names_the_disk_in_its_steps(tmp_path: Path) -> None:
    rc, data, _ = triage(tmp_path, "attachment-12240-saved-rows", "ja")
    ours = [d for d in data["diagnoses"] if d["id"] == "vm.attachment-open-failed"]
    assert rc == 1 and len(ours) == 1, [d["id"] for d in data["diagnoses"]]
    unc = "\\\\nas01\\vmstore\\SRV-FILE05\\Virtual Hard Disks\\SRV-FILE05-data.vhdx"
    commands = [s["command"] for s in ours[0]["steps"]]
    assert f'hvrescue chain "{unc}"' in commands, commands
    assert any("<エラー コード>" in c for c in commands), commands


def test_information_records_and_success_messages_raise_nothing(tmp_path: Path) -> None:
    rc, data, _ = triage(tmp_path, "near-miss-info-success", "en")
    worst = [
        d["id"]
        for d in data["diagnoses"]
        if SEVERITY_ORDER[d["severity"]] >= SEVERITY_ORDER["warning"]
    ]
    assert worst == [] and rc == 0 and data["verdict"]["state"] != "problems"


def test_the_same_ids_from_other_providers_fire_none_of_these_rules(tmp_path: Path) -> None:
    _, data, _ = triage(tmp_path, "near-miss-other-provider", "en")
    found = {d["id"] for d in data["diagnoses"]}
    assert not found & OURS, found
    # the error-level rows are still seen (the generic rule reports them), so the paste was read
    assert data["facts_summary"], data["facts_summary"]


# ------------------------------------------------------------------ the rules on facts


@pytest.mark.parametrize("level", [1, 2, 3])
def test_vmms_16010_at_error_or_warning_level(level: int) -> None:
    assert ids(diagnose(event(VMMS, 16010, NOT_FOUND, level))) == ["vm.file-not-found"]


@pytest.mark.parametrize(
    "item",
    [
        event(VMMS, 16010, NOT_FOUND, level=4),  # Information
        event("Microsoft-Windows-Security-SPP", 16010, NOT_FOUND),  # another provider
        event("Application Error", 1000, NOT_FOUND),  # the sentence outside Hyper-V
        event(VMMS, 16011, "The operation completed successfully."),
        event(VMMS, None, "The operation failed because the file was found in use."),
    ],
    ids=["information", "other-provider", "not-hyper-v", "other-id", "other-sentence"],
)
def test_16010_near_misses(item: tuple[str, dict[str, Any]]) -> None:
    assert "vm.file-not-found" not in ids(diagnose(item))


def test_the_missing_checkpoint_rule_ranks_above_the_bare_16010() -> None:
    found = diagnose(
        event(VMMS, 16010, NOT_FOUND),
        event(
            VMMS,
            None,
            "'SRV-APP07' is missing a checkpoint. The checkpoint disk "
            "'D:\\Hyper-V\\SRV-APP07\\Virtual Hard Disks\\SRV-APP07_5B1C.avhdx' could not be "
            "found. The system cannot find the file specified. (0x80070002).",
        ),
    )
    order = ids(found)
    assert order[0] == "vdisk.checkpoint-disk-missing", order
    assert order.index("vm.file-not-found") > 0


def test_16010_named_in_free_text_is_enough() -> None:
    text = "After the backup we get Hyper-V-VMMS event ID 16010 each time we start SRV-APP07."
    parsed = facts_from_text(text, "/evidence/post.txt")
    assert "vm.file-not-found" in ids(evaluate(RULES, parsed))
    other = facts_from_text("We get MSSQLSERVER event ID 16010 at night.", "/evidence/post.txt")
    assert "vm.file-not-found" not in ids(evaluate(RULES, other))


@pytest.mark.parametrize("event_id", [32000, 32010, 32022, 32315, 32546])
def test_replica_failures_by_id_need_the_vmms_provider_and_a_failure_level(event_id: int) -> None:
    text = "Hyper-V Replica event."
    assert ids(diagnose(event(VMMS, event_id, text))) == ["vm.replication-failed"]
    assert "vm.replication-failed" not in ids(diagnose(event(VMMS, event_id, text, level=4)))
    assert "vm.replication-failed" not in ids(diagnose(event("DFSR", event_id, text)))


@pytest.mark.parametrize(
    ("message", "fires"),
    [
        ("Hyper-V failed to enable replication for virtual machine 'SRV-SQL02'.", True),
        ("Hyper-V could not replicate changes for virtual machine 'SRV-SQL02'.", True),
        ("仮想マシン 'SRV-SQL02' のレプリケーションを再開できませんでした。", True),
        ("Hyper-V successfully enabled replication for virtual machine 'SRV-SQL02'.", False),
        ("Replication for virtual machine 'SRV-SQL02' was resumed successfully.", False),
    ],
)
def test_replica_failures_by_their_wording(message: str, fires: bool) -> None:
    # an id none of the rules names: only the wording decides
    found = ids(diagnose(event("Microsoft-Windows-Hyper-V-VMMS", 39999, message, level=3)))
    assert ("vm.replication-failed" in found) is fires, found


def test_a_resume_vmreplication_error_record_fires_and_fills_the_vm() -> None:
    found = diagnose(
        (
            "ps_error",
            {
                "command": "Resume-VMReplication",
                "message": "Hyper-V could not resume replication for virtual machine 'SRV-FS03'.",
                "codes": [],
            },
        ),
        ("vm", {"name": "SRV-FS03", "state": "Running"}),
    )
    assert ids(found)[0] == "vm.replication-failed"
    steps = found[0].as_dict("en", Messages("en"))["steps"]
    assert 'Resume-VMReplication -VMName "SRV-FS03"' in [s["command"] for s in steps]


@pytest.mark.parametrize(
    ("item", "fires"),
    [
        (event(WORKER, 3122, "'SRV-RDS01' could not start."), True),
        (event(WORKER, 3030, "'SRV-RDS01' could not start.", level=4), False),
        (
            event(
                "Microsoft-Windows-Hyper-V-Compute",
                2004,
                "DM operation add for the virtual machine 'SRV-RDS01' failed with error: Not "
                "enough memory resources are available to complete this operation. (0x8007000E)",
                level=3,
            ),
            False,
        ),
        (event("Application Error", 1000, "could not initialize memory (0x8007000E)"), False),
        (event(VMMS, 18500, "'SRV-RDS01' started successfully.", level=4), False),
    ],
    ids=["worker-3122", "worker-3030-information", "dynamic-memory-add", "not-hyper-v", "started"],
)
def test_out_of_memory_near_misses(item: tuple[str, dict[str, Any]], fires: bool) -> None:
    assert ("vm.start-failed.out-of-memory" in ids(diagnose(item))) is fires


@pytest.mark.parametrize(
    ("item", "fires"),
    [
        (event(VMMS, 16300, "Cannot load a virtual machine configuration: (0x80070005)"), True),
        (event(VMMS, 16310, "The configuration is corrupt.", level=3), True),
        (event(VMMS, 16300, "Cannot load a virtual machine configuration.", level=4), False),
        (event("Microsoft-Windows-Security-SPP", 16300, "License activation failed."), False),
    ],
    ids=["16300", "16310-warning", "information", "other-provider"],
)
def test_config_load_events(item: tuple[str, dict[str, Any]], fires: bool) -> None:
    assert ("vm.config-load-failed" in ids(diagnose(item))) is fires


@pytest.mark.parametrize("event_id", [12240, 12290])
@pytest.mark.parametrize("provider", [WORKER, VMMS, "Microsoft-Windows-Hyper-V-SynthStor"])
def test_attachment_events_by_id(event_id: int, provider: str) -> None:
    item = event(provider, event_id, "'SRV-FILE05': attachment error.")
    assert "vm.attachment-open-failed" in ids(diagnose(item))
    info = event(provider, event_id, "'SRV-FILE05': attachment error.", level=4)
    assert "vm.attachment-open-failed" not in ids(diagnose(info))


def test_texts_are_written_in_both_languages() -> None:
    ours = [r for r in RULES if r.id in OURS]
    assert {r.id for r in ours} == OURS
    for rule in ours:
        assert rule.title.en != rule.title.ja and JAPANESE.search(rule.title.ja)
        assert not JAPANESE.search(rule.title.en + rule.summary.en)
        for step in rule.steps:
            assert JAPANESE.search(step.text.ja) and not JAPANESE.search(step.text.en)


def test_a_get_vmreplication_table_is_read_as_replication_not_as_vms(tmp_path: Path) -> None:
    rc, data, _ = triage(tmp_path, "replication-table-normal", "en")
    assert rc == 0 and data["verdict"]["state"] == "healthy"
    assert data["facts_summary"] == {"vm_replication": 2}
    rc, data, _ = triage(tmp_path, "replication-table-critical", "ja")
    assert rc == 1 and data["diagnoses"][0]["id"] == "vm.replication-failed"
