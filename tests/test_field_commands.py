"""PowerShell tables and lists, error records, partial command outputs and backup logs as people
paste them (issue 14): exact facts from each fixture, the same facts (or fewer, never others)
from reposted, cut and mangled copies."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.facts.model import Fact
from hvrescue.logs.collect import facts_from_bytes, facts_from_text

FIX = Path(__file__).parent / "fixtures" / "field_commands"
MINE = {
    "vm",
    "vhd",
    "checkpoint",
    "vm_disk",
    "volume",
    "service_status",
    "system_info",
    "hotfix",
    "ps_error",
    "backup_error",
    "vss_writer",
}


def facts(name: str) -> list[Fact]:
    return facts_from_bytes((FIX / name).read_bytes(), str(FIX / name)).facts


def of(found: list[Fact], kind: str, **where: Any) -> list[dict[str, Any]]:
    out = []
    for f in found:
        if f.kind != kind:
            continue
        if all(f.attributes.get(k) == v for k, v in where.items()):
            out.append({**f.attributes, "_line": f.provenance.locator})
    return out


def mine(found: list[Fact]) -> list[Fact]:
    return [
        f
        for f in found
        if f.kind in MINE
        or (f.kind == "event" and f.attributes.get("format") in ("ps-table", "ps-list"))
    ]


# ---------------------------------------------------------------- Format-Table
def test_get_vm_and_vm_disks_two_tables_in_one_transcript():
    found = facts("ps_get_vm_tables_en.txt")
    vms = of(found, "vm")
    assert [(v["name"], v["state"], v["status"], v["version"], v["uptime"]) for v in vms] == [
        ("web01", "Off", "Operating normally", "9.0", "00:00:00"),
        ("sql01", "Running", "Operating normally", "9.0", "12.04:31:07.2210000"),
        ("dc01", "Saved", "Operating normally", "8.0", "00:00:00"),
    ]
    assert [v["_line"] for v in vms] == ["line:5", "line:6", "line:7"]
    disks = of(found, "vm_disk")
    assert [
        (d["vm_name"], d["controller_type"], d["controller_number"], d["controller_location"])
        for d in disks
    ] == [("web01", "SCSI", 0, 0), ("web01", "SCSI", 0, 1), ("sql01", "IDE", 0, 0)]
    # The first path was cut by the console: kept as printed and said so.
    assert disks[0]["path"].endswith("...") and disks[0]["truncated_fields"] == ["Path"]
    assert disks[0]["confidence"] < 1.0
    assert disks[1]["path"] == r"D:\Hyper-V\web01\Virtual Hard Disks\web01-data.vhdx"
    assert "truncated" not in disks[1] and "confidence" not in disks[1]
    assert disks[2]["path"] is None and disks[2]["disk_number"] == 3


def test_japanese_tables_quoted_in_a_post_line_up_by_console_cells():
    found = facts("ps_get_vm_snapshot_ja.txt")
    vms = of(found, "vm")
    assert [(v["name"], v["state"], v["status"], v["version"]) for v in vms] == [
        ("web01", "Running", "正常稼働中", "9.0"),
        ("検証用VM", "Off", "正常稼働中", "9.0"),
    ]
    cps = of(found, "checkpoint")
    assert [
        (c["name"], c["snapshot_type"], c["creation_time"], c["parent_checkpoint_name"])
        for c in cps
    ] == [
        ("web01 - (2024/03/05 - 10:21:33)", "Standard", "2024-03-05T10:21:33", None),
        (
            "パッチ適用前",
            "Standard",
            "2024-03-06T09:02:11",
            "web01 - (2024/03/05 - 10:21:33)",
        ),
        (
            "web01 - Backup - (2024/03/07 - 1:00:04)",
            "Recovery",
            "2024-03-07T01:00:04",
            "パッチ適用前",
        ),
    ]
    assert all(c["vm_name"] == "web01" for c in cps)


def test_cut_checkpoint_names_are_kept_marked_and_never_read_as_other_values():
    cps = of(facts("ps_get_vmsnapshot_cut_en.txt"), "checkpoint")
    assert [c["snapshot_type"] for c in cps] == ["Standard", "Standard", "Recovery"]
    assert cps[0]["name"] == "fileserver01 - (3/5/2024 - ..." and cps[0]["truncated"] is True
    assert cps[1]["name"] == "Before KB5034441" and cps[1]["truncated_fields"] == [
        "ParentSnapshotName"
    ]
    assert cps[2]["parent_checkpoint_name"] == "Before KB5034441"
    assert [c["creation_time"] for c in cps] == [
        "2024-03-05T10:21:33",
        "2024-03-06T09:02:11",
        "2024-03-07T01:00:04",
    ]


def test_get_vhd_table_numbers_right_aligned_and_fragmentation():
    vhds = of(facts("ps_get_vhd_table_en.txt"), "vhd")
    assert [(v["vhd_type"], v["file_size"], v["size"]) for v in vhds] == [
        ("Differencing", 41943040, 136365211648),
        ("Dynamic", 53687091200, 136365211648),
    ]
    assert [v["fragmentation_percentage"] for v in vhds] == [None, 37]
    assert vhds[0]["truncated_fields"] == ["ParentPath", "Path"]
    assert vhds[0]["parent_path"].endswith("...") and vhds[1]["parent_path"] is None


def test_table_wider_than_the_console_is_put_back_together():
    vhds = of(facts("ps_get_vhd_wrapped_header_en.txt"), "vhd")
    assert [
        (v["path"], v["vhd_format"], v["vhd_type"], v["file_size"], v["size"]) for v in vhds
    ] == [
        (r"E:\VMs\app02\app02.vhdx", "VHDX", "Dynamic", 107374182400, 214748364800),
        (r"E:\VMs\app02\app02_0D9F.avhdx", "VHDX", "Differencing", 4194304, 214748364800),
    ]
    assert [v["fragmentation_percentage"] for v in vhds] == [12, None]
    assert [v["_line"] for v in vhds] == ["line:7", "line:9"]


def test_column_names_wrapped_by_format_table_wrap_are_put_back_together():
    (vhd,) = of(facts("ps_get_vhd_wrap_header_en.txt"), "vhd")
    assert (vhd["path"], vhd["vhd_type"], vhd["file_size"], vhd["fragmentation_percentage"]) == (
        r"E:\VMs\app02\app02.vhdx",
        "Dynamic",
        107374182400,
        12,
    )
    assert vhd["_line"] == "line:7"


def test_get_service_tables_become_service_status_like_sc():
    en = of(facts("ps_get_service_en.txt"), "service_status")
    assert [(s["service_name"], s["running"], s["state"]) for s in en] == [
        ("CryptSvc", False, {"code": 1, "name": "STOPPED"}),
        ("EventSystem", True, {"code": 4, "name": "RUNNING"}),
        ("vmms", True, {"code": 4, "name": "RUNNING"}),
        ("VSS", False, {"code": 1, "name": "STOPPED"}),
    ]
    ja = of(facts("ps_get_service_ja.txt"), "service_status")  # non-breaking spaces throughout
    assert [(s["service_name"], s["running"]) for s in ja] == [
        ("CryptSvc", True),
        ("EventSystem", False),
        ("vmms", True),
        ("VSS", False),
    ]
    assert ja[2]["display_name"] == "Hyper-V 仮想マシン管理"


def test_get_winevent_tables_and_lists_are_events_with_their_layout():
    en = of(facts("ps_get_winevent_table_en.txt"), "event", format="ps-table")
    assert [(e["provider"], e["event_id"], e["level"], e["time_local"]) for e in en] == [
        ("Microsoft-Windows-Hyper-V-VMMS", 19100, 2, "2024-03-14T02:01:17"),
        ("Microsoft-Windows-Hyper-V-VMMS", 18304, 4, "2024-03-14T02:00:02"),
    ]
    assert en[0]["truncated_fields"] == ["Message"] and "truncated" not in en[1]
    assert en[1]["message"] == "'web01' was checkpointed successfully."
    ja = of(facts("ps_get_winevent_table_ja.txt"), "event", format="ps-table")
    assert [(e["event_id"], e["level"], e["time_local"]) for e in ja] == [
        (19100, 2, "2024-03-14T02:01:17"),
        (16060, 3, "2024-03-14T01:58:40"),
    ]
    assert ja[0]["message"].startswith("'web01' のバックグラウンド ディスク マージ")
    lst = of(facts("ps_get_winevent_list_en.txt"), "event", format="ps-list")
    assert len(lst) == 1 and lst[0]["event_id"] == 19100
    assert lst[0]["message"] == (
        "'web01' background disk merge failed to complete: The requested operation could not "
        "be completed due to a file system limitation (0x80070299). (Virtual machine ID "
        "6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7)"
    )


def test_format_table_wrap_continuation_lines_join_the_row_above():
    events = of(facts("ps_get_winevent_wrap_en.txt"), "event", format="ps-table")
    assert [(e["provider"], e["event_id"], e["level"]) for e in events] == [
        ("VSS", 12290, 3),
        ("VSS", 8193, 2),
    ]
    assert events[1]["message"] == (
        "Volume Shadow Copy Service error: Unexpected error calling routine CreateFileW. "
        "hr = 0x80070005, Access is denied."
    )


def test_get_volume_sizes_and_a_volume_without_a_letter():
    vols = of(facts("ps_get_volume_en.txt"), "volume")
    assert [(v["drive_letter"], v["label"], v["filesystem"], v["health"]) for v in vols] == [
        ("C", None, "NTFS", "Healthy"),
        ("D", "VMs", "ReFS", "Healthy"),
        (None, "System Reserved", "NTFS", "Healthy"),
        ("E", "Backup", "NTFS", "Warning"),
    ]
    assert vols[0]["free"] == round(18.27 * 2**30) and vols[0]["size"] == round(126.45 * 2**30)
    assert vols[1]["free"] == round(1.2 * 2**30) and vols[1]["size"] == round(3.64 * 2**40)
    assert vols[2]["size"] == 500 * 2**20 and vols[3]["free"] == 0
    assert vols[3]["operational_status"] == "Full Repair Needed"
    ja = of(facts("ps_get_volume_ja.txt"), "volume")
    assert [(v["drive_letter"], v["label"]) for v in ja] == [
        ("C", None),
        ("D", "仮想マシン"),
        (None, "システムで予約済み"),
    ]
    assert ja[2]["size"] == 500 * 2**20


def test_quoted_get_hotfix_is_read_once():
    hot = of(facts("ps_get_hotfix_quoted_ja.txt"), "hotfix")
    assert [(h["kb"], h["installed_on_local"], h["source"]) for h in hot] == [
        ("KB5034439", "2024-01-10T00:00:00", "get-hotfix"),
        ("KB5034768", "2024-02-14T00:00:00", "get-hotfix"),
    ]


def test_table_without_a_prompt_is_known_by_its_columns():
    text = (FIX / "ps_get_volume_en.txt").read_text(encoding="utf-8").split("\n", 2)[2]
    assert [f.attributes["drive_letter"] for f in facts_from_text(text, "x.txt")] == [
        "C",
        "D",
        None,
        "E",
    ]


# ---------------------------------------------------------------- Format-List
def test_get_computerinfo_gives_the_hyperv_requirements_as_booleans():
    (en,) = of(facts("ps_get_computerinfo_en.txt"), "system_info")
    assert en["host_name"] == "HV-LAB02" and en["os_build"] == 20348
    assert (
        en["hypervisor_detected"],
        en["virtualization_firmware_enabled"],
        en["vm_monitor_mode_extensions"],
        en["slat"],
        en["dep_available"],
    ) == (False, False, True, True, True)
    (ja,) = of(facts("ps_get_computerinfo_ja.txt"), "system_info")
    assert ja["host_name"] == "HV-TOKYO01" and ja["os_build"] == 17763
    assert ja["hypervisor_detected"] is True
    # Empty when a hypervisor runs: unknown, not False.
    assert ja["virtualization_firmware_enabled"] is None and ja["dep_available"] is None


def test_get_vmcheckpoint_list():
    (cp,) = of(facts("ps_get_vmcheckpoint_list_en.txt"), "checkpoint")
    assert cp == {
        "vm_name": "sql01",
        "name": "sql01 - Backup - (2/28/2024 - 11:00:07 PM)",
        "snapshot_type": "Recovery",
        "creation_time": "2024-02-28T23:00:07",
        "parent_checkpoint_name": None,
        "id": "3f5d7c1a-9b2e-4d8f-a6c0-1e2b3c4d5e6f",
        "vm_id": None,
        "path": r"C:\ProgramData\Microsoft\Windows\Hyper-V",
        "_line": "line:4",
    }


def test_existing_format_list_fixtures_keep_their_facts():
    old = Path(__file__).parent / "fixtures" / "commands"
    vhd = [
        f
        for f in facts_from_bytes((old / "get_vhd_fl.txt").read_bytes(), "get_vhd_fl.txt").facts
        if f.kind == "vhd"
    ]
    assert len(vhd) == 1 and vhd[0].attributes["fragmentation_percentage"] == 0
    assert vhd[0].attributes["path"].endswith(r"web01_6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.avhdx")
    assert "confidence" not in vhd[0].attributes


# ---------------------------------------------------------------- error records
def test_remove_vmsnapshot_error_record_wrapped_over_many_lines():
    (err,) = of(facts("ps_error_remove_vmsnapshot_en.txt"), "ps_error")
    assert err["_line"] == "line:4"
    assert err["command"] == "Remove-VMSnapshot"
    assert err["codes"] == ["0x80070002"]
    assert err["category"] == "NotSpecified"
    assert (
        err["error_id"] == "OperationFailed,Microsoft.HyperV.PowerShell.Commands.RemoveVMSnapshot"
    )
    assert err["target"] is None and err["confidence"] == 0.9
    assert err["message"].startswith("'web01' failed to remove checkpoint. Cannot delete")
    assert "'web01' is missing a checkpoint." in err["message"]
    assert err["message"].endswith("(Virtual Machine ID 6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.)")
    assert "Any idea" not in err["message"] and "At line" not in err["message"]


def test_japanese_error_record_quoted():
    (err,) = of(facts("ps_error_ja.txt"), "ps_error")
    assert err["command"] == "Get-VHD" and err["codes"] == ["0x800700a1"]
    assert err["category"] == "ObjectNotFound"
    assert err["error_id"] == "ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD"
    assert err["target"] == r"D:\Hyper-V\web0...F607182.avhdx"
    # Japanese lines wrapped by the console join without a space.
    assert (
        "チェーンが壊れています。システムは、差分仮想ハード ディスクの親仮想ハード ディスク"
        in err["message"]
    )


def test_error_record_without_its_first_line():
    (err,) = of(facts("ps_error_fragment_en.txt"), "ps_error")
    assert err["command"] == "Remove-VMSnapshot"  # from CategoryInfo's activity
    assert err["codes"] == ["0x80070002"]
    assert err["message"].startswith("cannot find the file specified.")
    assert "(copied from" not in err["message"]


def test_powershell7_concise_errors():
    found = of(facts("ps_error_concise_ps7_en.txt"), "ps_error")
    assert [(e["command"], e["codes"], e["_line"]) for e in found] == [
        ("Get-VMCheckpoint", [], "line:2"),
        ("Remove-VMCheckpoint", ["0x80070002"], "line:4"),
    ]
    assert found[0]["message"] == "Unable to find a snapshot matching the given criteria."
    assert found[1]["category"] is None and found[1]["error_id"] is None


def test_powershell7_ellipsis_and_columns_removed_for_the_console():
    disks = of(facts("ps_get_vmharddiskdrive_ps7_en.txt"), "vm_disk")
    assert [(d["controller_location"], d["path"]) for d in disks] == [
        (0, "E:\\VMs\\app02\\Virtual Hard Disks\\app02_0…"),
        (1, "E:\\VMs\\app02\\Virtual Hard Disks\\app02-l…"),
    ]
    assert all(d["truncated_fields"] == ["Path"] for d in disks)
    vms = of(facts("ps_get_vm_columns_removed_en.txt"), "vm")
    # The columns PowerShell dropped are unknown, not empty.
    assert [(v["name"], v["state"], v["status"], v["version"]) for v in vms] == [
        ("web01", "Running", None, None),
        ("sql01", "Off", None, None),
    ]


def test_prose_with_a_cmdlet_name_is_not_an_error_record():
    text = "Get-VM : shows nothing for me\nAt the moment I cannot tell why.\n"
    assert [f for f in facts_from_text(text, "post.txt") if f.kind == "ps_error"] == []
    text = "I ran it twice.\nGet-Help: see the docs.\n\nGet-VM: it lists nothing\nafter the update."
    found = [f.attributes["command"] for f in facts_from_text(text, "post.txt")]
    assert "Get-Help" not in found


# ---------------------------------------------------------------- partial outputs
def test_systeminfo_findstr_outputs_give_only_what_they_show():
    found = of(facts("systeminfo_findstr_en.txt"), "system_info")
    assert len(found) == 2
    first, second = found
    assert first["os_name"] == "Microsoft Windows Server 2019 Standard"
    assert first["os_build"] == 17763 and first["system_model"] == "PowerEdge R740"
    assert first["vm_monitor_mode_extensions"] is True
    assert first["virtualization_firmware_enabled"] is None  # not in that run's lines
    assert "host_name" not in first and first["partial"] is True and first["confidence"] < 1
    assert second["virtualization_firmware_enabled"] is False
    assert (second["slat"], second["dep_available"]) == (True, True)
    # The existing rule reads the requirement text: it is there as printed.
    assert "Virtualization Enabled In Firmware: No" in second["hyperv_requirements"]
    assert second["hypervisor_detected"] is False


def test_systeminfo_partial_in_japanese():
    (block,) = of(facts("systeminfo_hyperv_block_ja.txt"), "system_info")
    assert (
        block["vm_monitor_mode_extensions"],
        block["virtualization_firmware_enabled"],
        block["slat"],
        block["dep_available"],
        block["hypervisor_detected"],
    ) == (True, False, True, True, False)
    (det,) = of(facts("systeminfo_findstr_ja.txt"), "system_info")
    assert det["hypervisor_detected"] is True and det["os_build"] == 14393
    assert det["virtualization_firmware_enabled"] is None
    (en,) = of(facts("systeminfo_detected_en.txt"), "system_info")
    assert en["hypervisor_detected"] is True


def test_full_systeminfo_gains_the_structured_requirements():
    shared = Path(__file__).parents[2] / "shared" / "corpus" / "public" / "text" / "jc"
    old = Path(__file__).parent / "fixtures" / "commands" / "systeminfo_ja.txt"
    (info,) = of(facts_from_bytes(old.read_bytes(), "systeminfo_ja.txt").facts, "system_info")
    assert info["hypervisor_detected"] is True and info["host_name"] == "HV-HOST01"
    assert info["virtualization_firmware_enabled"] is None and "partial" not in info
    if shared.exists():
        data = (shared / "systeminfo-windows-2012r2.txt").read_bytes()
        (en,) = of(facts_from_bytes(data, "systeminfo.txt").facts, "system_info")
        assert en["hypervisor_detected"] is True and en["os_build"] == 9600


def test_vssadmin_reposted_with_typographic_dash_and_quotes():
    found = facts("vssadmin_typographic_en.txt")
    (listing,) = of(found, "vss_writer_list")
    assert listing["names"] == ["System Writer", "Microsoft Hyper-V VSS Writer"]
    writers = of(found, "vss_writer")
    assert [(w["name"], w["state_code"], w["last_error"]) for w in writers] == [
        ("System Writer", 1, "No error"),
        ("Microsoft Hyper-V VSS Writer", 8, "Retryable error"),
    ]


def test_japanese_writer_list_without_banner_quoted():
    found = facts("vssadmin_writers_nobanner_ja.txt")
    writers = of(found, "vss_writer")
    assert [(w["name"], w["state_code"], w["last_error_ok"]) for w in writers] == [
        ("Microsoft Hyper-V VSS Writer", 9, False),
        ("Registry Writer", 1, True),
    ]
    (listing,) = of(found, "vss_writer_list")
    assert listing["count"] == 2


def test_msinfo32_exports_and_pastes():
    (en,) = of(facts("msinfo32_summary_en.txt"), "system_info")  # UTF-16 export
    assert en["source"] == "msinfo32" and "confidence" not in en
    assert en["host_name"] == "HV-LAB02" and en["os_build"] == 20348
    assert (
        en["virtualization_firmware_enabled"],
        en["vm_monitor_mode_extensions"],
        en["slat"],
        en["dep_available"],
        en["hypervisor_detected"],
    ) == (False, True, True, True, False)
    (ja,) = of(facts("msinfo32_summary_ja.txt"), "system_info")
    assert ja["host_name"] == "HV-TOKYO02" and ja["os_build"] == 17763
    assert ja["virtualization_firmware_enabled"] is False
    (paste,) = of(facts("msinfo32_paste_ja.txt"), "system_info")
    assert paste["virtualization_firmware_enabled"] is False and paste["confidence"] == 0.8
    assert paste["slat"] is True and paste.get("host_name") is None
    (det,) = of(facts("msinfo32_paste_detected_en.txt"), "system_info")
    assert det["hypervisor_detected"] is True and det["virtualization_firmware_enabled"] is None


# ---------------------------------------------------------------- backup logs
def test_windows_server_backup_error_log():
    found = of(facts("Backup_Error-14-03-2024_02-00-11.log"), "backup_error")
    assert [(b["tool"], b["code"], b["time"]) for b in found] == [
        ("wsb", "0x80070005", "2024-03-14T02:00:11"),
        ("wsb", "0x8007045d", "2024-03-14T02:00:11"),
        ("wsb", "0x80070005", "2024-03-14T02:00:11"),
    ]
    assert found[0]["path"] == (
        r"C:\ProgramData\Microsoft\Windows\Hyper-V\Virtual Machines"
        r"\6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.vmcx"
    )
    assert found[0]["message"] == "Access is denied."
    assert found[1]["path"] == r"D:\Hyper-V\web01\Virtual Hard Disks\web01.vhdx"
    assert found[2]["codes"] == ["0x8078010d", "0x80070005"] and found[2]["path"] is None
    assert found[2]["message"] == "Enumeration of the files failed. / Access is denied."


def test_japanese_backup_log_whose_date_is_ambiguous_has_no_time():
    found = of(facts("Backup_Error-03-05-2024_23-00-02.log"), "backup_error")
    assert [(b["code"], b["time"]) for b in found] == [("0x80070005", None), ("0x80070005", None)]
    assert found[0]["path"].endswith("6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.vmcx")
    assert found[0]["message"] == "アクセスが拒否されました。"


def test_wbadmin_console_errors():
    en = of(facts("wbadmin_start_backup_en.txt"), "backup_error")
    assert [(b["tool"], b["path"], b["code"]) for b in en] == [
        ("wbadmin", None, None),
        ("wbadmin", "D:", None),
        ("wbadmin", None, "0x800423f3"),
    ]
    assert en[2]["message"].startswith(
        "A Volume Shadow Copy Service operation error has occurred: (0x800423f3)"
    )
    assert en[2]["_line"] == "line:17"
    ja = of(facts("wbadmin_ja.txt"), "backup_error")
    assert [b["code"] for b in ja] == [None, "0x80042306"]
    assert ja[0]["message"] == "バックアップが見つかりませんでした。"
    # Japanese lines continue without a space.
    assert ja[1]["message"] == (
        "ボリューム シャドウ コピー サービスの操作エラーが発生しました: (0x80042306)"
        "シャドウ コピー プロバイダーでエラーが発生しました。"
        "詳細については、システム イベント ログとアプリケーション イベント ログを確認してください。"
    )


def test_error_lines_of_other_tools_are_not_backup_errors():
    text = "ERROR - something else went wrong\nError in module loader\n"
    assert [f for f in facts_from_text(text, "notes.txt") if f.kind == "backup_error"] == []


# ---------------------------------------------------------------- reposted, cut, mangled
TEXT_FIXTURES = sorted(p.name for p in FIX.iterdir() if p.suffix in (".txt", ".log"))
LOOSE = {"confidence", "truncated", "truncated_fields", "partial", "properties"}
PROSE = {"message", "hyperv_requirements", "names", "count", "codes", "command"}


def _decoded(name: str) -> str:
    data = (FIX / name).read_bytes()
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le").replace("\r\n", "\n")
    return data.decode("utf-8")


def _squash(value: Any) -> str:
    return re.sub(r"\s+", "", str(value).replace("：", ":"))


def _within(part: str, whole: str) -> bool:
    """Every character of ``part`` in ``whole``, in order (prose that lost lines or gained
    line breaks still says nothing the whole did not)."""
    it = iter(whole)
    return all(ch in it for ch in part)


def _agrees(fact: Fact, clean: list[Fact]) -> bool:
    """``fact`` says nothing that the clean text's facts contradict: some clean fact of its
    kind has every value it gives (prose may be a part of the clean prose)."""
    for other in clean:
        if other.kind != fact.kind:
            continue
        ok = True
        for key, value in fact.attributes.items():
            if key in LOOSE or value is None:
                continue
            theirs = other.attributes.get(key)
            if key in PROSE:
                if isinstance(value, str) and isinstance(theirs, str):
                    ok = _within(_squash(value), _squash(theirs))
                elif isinstance(value, list) and isinstance(theirs, list):
                    ok = all(v in theirs for v in value)
                else:
                    ok = key in ("count",)
            elif key == "code":
                # A cut record may show only its outer code: still one of the record's.
                ok = value == theirs or value in (other.attributes.get("codes") or [])
            elif isinstance(value, str) and (
                key in (fact.attributes.get("truncated_fields") or [])
                or value.endswith(("...", "…"))
            ):
                ok = isinstance(theirs, str) and theirs.startswith(value.rstrip(".…"))
            else:
                ok = value == theirs
            if not ok:
                break
        if ok:
            return True
    return False


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


REPOSTS = {
    "quoted": _quote,
    "fenced": lambda t: "```text\n" + t + "\n```",
    "nbsp": lambda t: t.replace(" ", "\u00a0"),
    "crlf-trailing": lambda t: "\n".join(line + "  " for line in t.split("\n")),
    "quoted-fenced": lambda t: _quote("```\n" + t + "\n```"),
}


@pytest.mark.parametrize("name", TEXT_FIXTURES)
@pytest.mark.parametrize("how", sorted(REPOSTS))
def test_reposted_text_gives_the_same_facts(name: str, how: str):
    text = _decoded(name)
    clean = mine(facts_from_text(text, name))
    again = mine(facts_from_text(REPOSTS[how](text), name))
    assert [f.kind for f in again] == [f.kind for f in clean]
    for fact in again:
        assert _agrees(fact, clean), (how, fact)


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_fragments_give_fewer_facts_never_other_ones(name: str):
    lines = _decoded(name).split("\n")
    clean = mine(facts_from_text("\n".join(lines), name))
    for cut in range(1, len(lines)):
        for part in (lines[cut:], lines[:cut]):
            for fact in mine(facts_from_text("\n".join(part), name)):
                assert _agrees(fact, clean), (name, cut, fact)


def _wrap_at(text: str, width: int) -> str:
    out = []
    for line in text.split("\n"):
        while len(line) > width:
            out.append(line[:width])
            line = line[width:]
        out.append(line)
    return "\n".join(out)


@settings(max_examples=120, deadline=None)
@given(
    name=st.sampled_from(TEXT_FIXTURES),
    width=st.integers(20, 200),
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(
        st.sampled_from(["wrap", "double-blank", "fullwidth", "quote", "drop-line", "bytes"]),
        min_size=1,
        max_size=4,
    ),
)
def test_mangled_text_never_crashes_and_never_contradicts(
    name: str, width: int, seed: int, ops: list[str]
):
    rng = random.Random(seed)
    text = _decoded(name)
    clean = mine(facts_from_text(text, name))
    exact = True  # only changes a reader may lose facts to, never gain wrong ones
    for op in ops:
        if op == "wrap":
            text = _wrap_at(text, width)
            exact = False  # a value cut by the wrap is what the text now says
        elif op == "double-blank":
            text = text.replace("\n\n", "\n\n\n")
        elif op == "fullwidth":
            text = text.replace(": ", "： ", rng.randint(0, 3))
        elif op == "quote":
            text = _quote(text)
        elif op == "drop-line":
            lines = text.split("\n")
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
            exact = False
        elif op == "bytes":
            pos = rng.randrange(max(1, len(text)))
            text = text[:pos] + rng.choice(["\x00", "\ufffd", "…", "\t", "�"]) + text[pos:]
            exact = False
    found = facts_from_bytes(text.encode("utf-8"), name)
    for fact in found.facts:
        assert isinstance(fact.attributes, dict)
    if exact:
        for fact in mine(found.facts):
            assert _agrees(fact, clean), (ops, width, fact)


def test_a_path_the_console_cut_is_joined_without_a_space():
    from hvrescue.logs.commands.pserror import join_lines

    parts = [
        "Failed to open attachment 'C:\\ProgramData\\multipassd\\vault\\instances\\devbox",
        "-b\\ubuntu-22.04.vhdx'. Error: 'The process cannot access the file because it is",
        "being used by another process.'.",
    ]
    assert join_lines(parts) == (
        "Failed to open attachment 'C:\\ProgramData\\multipassd\\vault\\instances\\devbox-b\\"
        "ubuntu-22.04.vhdx'. Error: 'The process cannot access the file because it is being "
        "used by another process.'."
    )
    # A closed path, and words, keep their space.
    assert join_lines(["at 'D:\\VMs\\a.vhdx'", "failed"]) == "at 'D:\\VMs\\a.vhdx' failed"
    assert join_lines(["The file C:\\VMs\\a.vhdx", "is missing"]) == (
        "The file C:\\VMs\\a.vhdx is missing"
    )
