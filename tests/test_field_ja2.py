"""Japanese field evidence, round two (task H16): what Japanese admins paste of live migrations,
checkpoints, a VM's boot screen, guest crashes seen by the host, WinDbg, diskpart, wbadmin and
the host's storage, through ``hvrescue --lang ja triage`` end to end.

Each folder of tests/fixtures/field_ja2 (README.md there says where each layout and wording was
seen) must lead with the rule the English paste of the same failure leads with; the near misses
(a success, a healthy listing, a question) raise nothing. Three folders are read only through the
Japanese phrases of ``logs/signatures.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.facts.model import Fact
from hvrescue.logs.collect import facts_from_text
from tests.helpers import triage_incident

FIELD = Path(__file__).parent / "fixtures" / "field_ja2"


def facts_of(name: str, file: str = "post.txt") -> list[Fact]:
    path = FIELD / name / file
    return facts_from_text(path.read_text(encoding="utf-8"), str(path))


def kinds(facts: list[Fact], kind: str) -> list[dict[str, Any]]:
    return [f.attributes for f in facts if f.kind == kind]


# ------------------------------------------------------------------ end to end

INCIDENTS = [
    # live migration
    ("migration-credssp-dialog-ja", "vm.migration-failed.authentication", "setspn"),
    ("migration-cpu-ps-ja", "vm.migration-failed.processor-compatibility", "Get-VMProcessor"),
    # checkpoints
    ("checkpoint-dialog-ja", "vm.checkpoint-failed.production", "vssadmin list writers"),
    (
        "checkpoint-autorecovery-ja",
        "vm.checkpoint-failed.autorecovery-leftover",
        "AutoRecovery.avhdx",
    ),
    # the VM's boot screen
    ("boot-summary-fullwidth-ja", "vm.boot.disk-not-bootable", "-Generation 1"),
    ("efi-boot-failed-quoted-ja", "vm.boot.disk-not-bootable", "hvrescue ls"),
    # guest crashes seen by the host
    ("fatal-error-viewer-ja", "guest.bugcheck", "!analyze -v"),
    ("triple-fault-winevent-ja", "vm.guest-triple-fault", "EventID=18560"),
    # WinDbg
    ("windbg-logfile-annotated-ja", "guest.bugcheck.hyperv-driver", "netvsc.sys"),
    ("windbg-japanese-paths-ja", "host.bugcheck.hyperv-stack", "C:\\Users\\佐藤\\Desktop"),
    ("bluescreenview-japanese-ui-ja", "guest.bugcheck.hyperv-driver", "netvsc.sys"),
    # diskpart
    ("diskpart-parent-moved-ja", "vdisk.diskpart-parent-missing", "hvrescue reparent"),
    ("diskpart-select-missing-ja", "vdisk.diskpart-file-missing", "Test-Path"),
    # wbadmin
    ("wbadmin-skipped-ja", "backup.wbadmin-vm-skipped", "PRINT-01"),
    ("wbadmin-stopped-retryable-ja", "backup.wbadmin-vss-failed", "vssadmin list writers"),
    # the host's storage
    ("hoststorage-ntfs55-viewer-ja", "host.storage.ntfs-corruption", "Repair-Volume"),
    ("hoststorage-io-retried-ja", "host.storage.disk-io-retried", "mpclaim"),
]

NEEDS_SIGNATURE = [
    # Read through the Japanese phrases of logs/signatures.yaml alone (no parsed record).
    (
        "migration-cpu-mitigations-ja",
        "vm.migration-failed.processor-compatibility",
        "Get-VMProcessor",
    ),
    ("fatal-error-bare-ja", "guest.bugcheck", "!analyze -v"),
    ("triple-fault-bare-ja", "vm.guest-triple-fault", "EventID=18560"),
]

NEAR_MISSES = [
    ("near-miss-migration-ok-ja", True),
    ("near-miss-diskpart-attach-ok-ja", True),
    ("near-miss-wbadmin-success-ja", True),
    ("near-miss-bugcheck-talk-ja", False),  # nothing read at all: not "healthy", not a problem
]


@pytest.mark.parametrize(("name", "expected", "command"), INCIDENTS + NEEDS_SIGNATURE)
def test_japanese_paste_leads_with_the_rule_of_the_english_one(
    tmp_path: Path, name: str, expected: str, command: str
) -> None:
    triage_incident(FIELD / name, tmp_path, expected, command, "ja")


@pytest.mark.parametrize(("name", "healthy"), NEAR_MISSES)
def test_japanese_near_miss_raises_nothing(tmp_path: Path, name: str, healthy: bool) -> None:
    data = triage_incident(FIELD / name, tmp_path, None, None, "ja", healthy=healthy)
    assert data["diagnoses"] == [] or all(d["severity"] == "info" for d in data["diagnoses"])


def test_a_japanese_paste_reads_the_same_in_an_english_report(tmp_path: Path) -> None:
    data = triage_incident(
        FIELD / "diskpart-parent-moved-ja",
        tmp_path,
        "vdisk.diskpart-parent-missing",
        "hvrescue reparent",
        "en",
    )
    assert data["diagnoses"][0]["title"].isascii()


# ------------------------------------------------------------------ what the readers took


def test_annotated_windbg_log_keeps_the_stop_name_and_a_clean_image() -> None:
    (a,) = kinds(facts_of("windbg-logfile-annotated-ja"), "crash_analysis")
    assert (a["bugcheck_code"], a["stop_name"]) == (0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL")
    assert (a["image"], a["module"]) == ("netvsc.sys", "netvsc")


def test_windbg_on_a_japanese_host_keeps_the_dump_path() -> None:
    (a,) = kinds(facts_of("windbg-japanese-paths-ja"), "crash_analysis")
    assert a["dump_file"] == "C:\\Users\\佐藤\\Desktop\\ダンプ\\MEMORY.DMP"
    assert (a["image"], a["process"]) == ("vid.sys", "vmms.exe")


def test_bluescreenview_with_japanese_labels_reads_both_crashes() -> None:
    found = kinds(facts_of("bluescreenview-japanese-ui-ja"), "crash_analysis")
    assert [(a["tool"], a["bugcheck_code"], a["image"]) for a in found] == [
        ("bluescreenview", 0xD1, "netvsc.sys"),
        ("bluescreenview", 0xD1, "netvsc.sys"),
    ]
    assert [a["dump_file"] for a in found] == [
        "C:\\Windows\\Minidump\\112926-8421-01.dmp",
        "C:\\Windows\\Minidump\\112426-7953-01.dmp",
    ]


def test_boot_summary_retyped_in_full_width_has_its_devices() -> None:
    (screen,) = kinds(facts_of("boot-summary-fullwidth-ja"), "boot_failure")
    assert [(e["device"], e["reason"]) for e in screen["entries"]] == [
        ("SCSI Disk (0,0)", "no-uefi-fs"),
        ("Network Adapter (00155D016E0B)", "no-image"),
    ]
    assert screen["no_os_loaded"] is True


def test_older_firmware_lines_behind_a_full_width_quote_marker() -> None:
    (screen,) = kinds(facts_of("efi-boot-failed-quoted-ja"), "boot_failure")
    assert [e["kind"] for e in screen["entries"]] == ["disk", "disk", "network"]
    assert screen["disk_reasons"] == ["no-os"] and screen["no_os_loaded"] is True


def test_guest_crash_codes_from_a_japanese_event_viewer_copy() -> None:
    events = [
        e for e in kinds(facts_of("fatal-error-viewer-ja", "event.txt"), "event") if e["event_id"]
    ]
    assert [(e["provider"], e["event_id"], e["level"]) for e in events] == [
        ("Microsoft-Windows-Hyper-V-Worker", 18590, 1)
    ]
    assert "ErrorCode0: 0x7E" in events[0]["message"]


def test_japanese_detail_vdisk_of_a_moved_child() -> None:
    facts = facts_of("diskpart-parent-moved-ja")
    (detail,) = kinds(facts, "vdisk_detail")
    assert (detail["state"], detail["is_child"]) == ("added", True)
    assert detail["parent_file"] == "F:\\VMs\\KINTAI02\\Virtual Hard Disks\\KINTAI02.vhdx"
    assert detail["virtual_size"] == 127 << 30
    (failed,) = [r for r in kinds(facts, "diskpart_result") if r["ok"] is False]
    assert (failed["missing"], failed["lang"]) == ("parent", "ja")


def test_japanese_list_volume_header_is_no_failure() -> None:
    results = kinds(facts_of("diskpart-select-missing-ja"), "diskpart_result")
    assert [(r["ok"], r["missing"]) for r in results] == [(False, "file")]


def test_wbadmin_in_japanese_names_the_skipped_vm_and_the_code() -> None:
    (skipped,) = kinds(facts_of("wbadmin-skipped-ja"), "wbadmin_result")
    # "completed" with a VM left out is read as the English run is: completed with warnings
    assert (skipped["outcome"], skipped["skipped_names"]) == (
        "completed_with_warnings",
        ["PRINT-01"],
    )
    assert skipped["skipped"][0]["error"].startswith("ライターで一時的でないエラーが発生しました")
    (stopped,) = kinds(facts_of("wbadmin-stopped-retryable-ja"), "wbadmin_result")
    assert (stopped["outcome"], stopped["hresult"], stopped["vms"]) == (
        "failed",
        "0x800423f3",
        ["KINTAI01"],
    )
