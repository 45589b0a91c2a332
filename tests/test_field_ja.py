"""Japanese field evidence (task H9): what Japanese admins paste, recognised end to end.

Each incident folder of tests/fixtures/field_ja (README.md there says where each layout was
seen) goes through `hvrescue triage` and must lead with the right diagnosis; then the readers
on their own: Event Viewer labels retyped in full width and Windows Server 2003's layout,
task dialogs with widened brackets, `systeminfo`'s Japanese requirement lines, `bcdedit` as
Japanese Windows prints it and as posts indent it, the Japanese message signatures. Near
misses (a success, a healthy listing) raise nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.facts.model import Fact
from hvrescue.logs.collect import facts_from_text
from hvrescue.logs.commands import bcdedit
from hvrescue.logs.textutil import Text
from hvrescue.logs.viewer_labels import label, norm_label
from tests.helpers import triage_incident

FIELD = Path(__file__).parent / "fixtures" / "field_ja"


def facts_of(path: Path) -> list[Fact]:
    return facts_from_text(path.read_text(encoding="utf-8"), str(path))


def kinds(facts: list[Fact], kind: str) -> list[dict[str, Any]]:
    return [f.attributes for f in facts if f.kind == kind]


# ------------------------------------------------------------------ end to end

INCIDENTS = [
    ("worker-logon-dialog-ja", "vm.start-failed.logon-right", "SeServiceLogonRight"),
    ("hypervisor-start-vm-pserror-ja", "host.hypervisor-not-running", "bcdedit /enum"),
    ("chain-restore-dialog-ja", "vdisk.chain.parent-mismatch", "hvrescue chain"),
    ("start-vm-denied-pserror-ja", "vdisk.access-denied", "icacls"),
    ("start-vm-yen-paths-ja", "vdisk.access-denied", "icacls"),
    ("dialog-fullwidth-brackets-ja", "vdisk.access-denied", "icacls"),
    ("checkpoint-vm-pserror-ja", "vm.checkpoint-failed.production", "Get-VMIntegrationService"),
    ("general-tab-nolabels-ja", "vdisk.merge-failed.disk-full", "Get-Volume"),
    ("general-tab-fullwidth-ja", "vdisk.merge-failed.disk-full", "Get-Volume"),
    ("get-winevent-merge-ja", "vdisk.merge-failed.filesystem-limitation", "compact"),
    (
        "systeminfo-firmware-off-ja",
        "host.hypervisor-not-running.virtualization-disabled",
        "systeminfo",
    ),
    ("bcdedit-launchtype-off-ja", "host.hypervisor-not-running.launch-disabled", "bcdedit /set"),
    ("bcdedit-indented-post-ja", "host.hypervisor-not-running.launch-disabled", "bcdedit /set"),
]


@pytest.mark.parametrize(("name", "expected", "command"), INCIDENTS)
def test_japanese_incident_leads_with_its_diagnosis(
    tmp_path: Path, name: str, expected: str, command: str
) -> None:
    triage_incident(FIELD / name, tmp_path, expected, command, "ja")


def test_japanese_incident_reads_the_same_in_an_english_report(tmp_path: Path) -> None:
    # The language of the report is not the language of the evidence.
    data = triage_incident(
        FIELD / "hypervisor-start-vm-pserror-ja",
        tmp_path,
        "host.hypervisor-not-running",
        "bcdedit /enum",
        "en",
    )
    assert data["diagnoses"][0]["title"].isascii()


@pytest.mark.parametrize("name", ["near-miss-merge-done-ja", "near-miss-writers-stable-ja"])
def test_japanese_success_raises_nothing(tmp_path: Path, name: str) -> None:
    triage_incident(FIELD / name, tmp_path, None, None, "ja", healthy=True)


# ------------------------------------------------------------------ Event Viewer labels


def test_full_width_labels_with_accelerators_are_labels() -> None:
    assert norm_label("ログの名前（Ｍ）") == "ログの名前"
    assert label("イベント ＩＤ（Ｅ）") == ("event_id", "ja")
    assert label("ソース\u3000") == ("source", "ja")


def test_general_tab_retyped_in_full_width_is_an_event() -> None:
    events = [
        e
        for e in kinds(facts_of(FIELD / "general-tab-fullwidth-ja" / "post.txt"), "event")
        if e.get("format") != "signature"
    ]
    assert len(events) == 1
    e = events[0]
    assert e["provider"] == "Microsoft-Windows-Hyper-V-VMMS"
    assert e["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin"
    assert (e["event_id"], e["level"], e["computer"]) == (19100, 2, "HV02")
    assert e["time_local"] == "2024-06-03T23:41:17"


def test_windows_2003_event_layout_is_read_in_japanese_and_english(tmp_path: Path) -> None:
    events = kinds(facts_of(FIELD / "volsnap-old-event-ja" / "post.txt"), "event")
    assert [(e["provider"], e["event_id"], e["level"]) for e in events] == [
        ("VolSnap", 25, 2),
        ("VolSnap", 14, 2),
    ]
    assert events[0]["task"] == "なし"
    assert "拡張できなかったため削除されました" in events[0]["message"]
    # The date and the clock have labels of their own: no time is made up from the date alone.
    assert events[0]["time_local"] is None
    english = tmp_path / "event.txt"
    english.write_text(
        "Event Type:\tError\nEvent Source:\tVolSnap\nEvent Category:\tNone\nEvent ID:\t25\n"
        "Date:\t\t5/21/2024\nTime:\t\t2:14:08 AM\nUser:\t\tN/A\nComputer:\tHVHOST01\n"
        "Description:\nThe shadow copies of volume D: were deleted because the shadow copy "
        "storage could not grow in time.\n",
        encoding="utf-8",
    )
    (e,) = kinds(facts_of(english), "event")
    assert (e["provider"], e["event_id"], e["level"], e["task"]) == ("VolSnap", 25, 2, "None")
    assert e["message"].startswith("The shadow copies of volume D:")


def test_copy_details_in_japanese_keeps_the_message_and_its_sections() -> None:
    (e,) = kinds(facts_of(FIELD / "vss-12289-prerestore-ja" / "event.txt"), "event")
    assert (e["channel"], e["provider"], e["event_id"], e["level"]) == (
        "Application",
        "VSS",
        12289,
        2,
    )
    assert (
        "hr = 0x80042409" in e["message"]
        and "ライター名: Microsoft Hyper-V VSS Writer" in (e["message"])
    )


# ------------------------------------------------------------------ dialogs


def test_dialog_with_full_width_brackets_has_its_sections() -> None:
    (d,) = kinds(facts_of(FIELD / "dialog-fullwidth-brackets-ja" / "post.txt"), "dialog")
    assert d["title"] == "Hyper-V マネージャー"
    assert d["instruction"] == "選択された仮想マシンの起動中にエラーが発生しました。"
    assert d["content"].startswith("'SRV-WEB03' を起動できませんでした。")
    assert "［" not in d["content"] and "閉じる" not in d["content"]
    assert d["codes"] == ["0x80070005"]


# ------------------------------------------------------------------ signatures


def signatures(facts: list[Fact]) -> list[str]:
    return [e["signature"] for e in kinds(facts, "event") if e.get("signature")]


def test_hypervisor_message_names_the_vm_between_its_halves() -> None:
    facts = facts_of(FIELD / "hypervisor-start-vm-pserror-ja" / "post.txt")
    assert "hypervisor-not-running" in signatures(facts)
    # The error record is read as well, with its command.
    (ps,) = kinds(facts, "ps_error")
    assert ps["command"] == "Start-VM"
    assert ps["error_id"] == "FromStdErr,Microsoft.HyperV.PowerShell.Commands.StartVM"


def test_identifier_mismatch_in_japanese_is_not_a_missing_parent() -> None:
    facts = facts_of(FIELD / "chain-restore-dialog-ja" / "post.txt")
    found = signatures(facts)
    assert "vhd-parent-id-mismatch" in found
    assert "vhd-chain-broken" not in found
    assert "vhd-chain-inaccessible" in found


def test_missing_parent_in_japanese_is_still_a_broken_chain(tmp_path: Path) -> None:
    post = tmp_path / "post.txt"
    post.write_text(
        "アタッチメント 'C:\\VM\\a_1.avhdx' を開けませんでした。エラー: '仮想ハード ディスクの"
        "チェーンが壊れています。差分ディスクの親仮想ハード ディスクが見つかりません。' "
        "(0xC03A000D)。\n",
        encoding="utf-8",
    )
    found = signatures(facts_of(post))
    assert "vhd-chain-broken" in found and "vhd-parent-id-mismatch" not in found


# ------------------------------------------------------------------ systeminfo


def test_systeminfo_japanese_requirements_all_four_read() -> None:
    (info,) = kinds(
        facts_of(FIELD / "systeminfo-firmware-off-ja" / "systeminfo.txt"), "system_info"
    )
    assert info["vm_monitor_mode_extensions"] is True
    assert info["virtualization_firmware_enabled"] is False
    assert info["slat"] is True
    assert info["dep_available"] is True  # "データ実行防止が使用できます: はい"
    assert info["hypervisor_detected"] is False


# ------------------------------------------------------------------ bcdedit


def test_bcdedit_reads_past_a_name_followed_by_one_space() -> None:
    (entry,) = kinds(facts_of(FIELD / "bcdedit-launchtype-off-ja" / "bcdedit.txt"), "bcd_entry")
    assert entry["section"] == "Windows ブート ローダー"
    assert entry["elements"]["allowedinmemorysettings"] == "0x15000075"
    assert entry["hypervisorlaunchtype"] == "Off"


def test_bcdedit_indented_and_quoted_in_a_post() -> None:
    entries = kinds(facts_of(FIELD / "bcdedit-indented-post-ja" / "post.md"), "bcd_entry")
    assert [e["identifier"] for e in entries] == ["{current}", "{current}"]
    assert all(e["hypervisorlaunchtype"] == "Off" for e in entries)
    assert all(e["elements"]["nx"] == "OptOut" for e in entries)


def test_bcdedit_sections_without_blank_lines_between_them() -> None:
    text = (
        "Windows ブート マネージャー\n--------------------------------\n"
        "identifier              {bootmgr}\ntimeout                 30\n"
        "Windows ブート ローダー\n--------------------------------\n"
        "identifier              {current}\nhypervisorlaunchtype    Auto\n"
    )
    entries = bcdedit.parse(Text.of(text, "bcd.txt"))
    assert [
        (e.attributes["identifier"], e.attributes["hypervisorlaunchtype"]) for e in entries
    ] == [
        ("{bootmgr}", None),
        ("{current}", "Auto"),
    ]
    assert entries[0].attributes["elements"] == {"identifier": "{bootmgr}", "timeout": "30"}


def test_bcdedit_short_name_with_one_space_is_not_an_element() -> None:
    # Only bcdedit's longest names are followed by a single space; "path value" is prose.
    text = "Windows Boot Loader\n-------------------\nidentifier              {current}\npath x\n"
    (entry,) = bcdedit.parse(Text.of(text, "bcd.txt"))
    assert entry.attributes["elements"] == {"identifier": "{current}"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Windows ブート ローダー",
                "-------------------",
                "    ",
                "> ",
                "identifier              {current}",
                "hypervisorlaunchtype    Off",
                "allowedinmemorysettings 0x15000075",
                "",
                "          {x}",
                "\t",
                "ｉｄｅｎｔｉｆｉｅｒ  {a}",
                "path",
                "x" * 30 + " y",
            ]
        ),
        max_size=40,
    )
)
def test_bcdedit_never_fails_on_shuffled_lines(lines: list[str]) -> None:
    for entry in bcdedit.parse(Text(lines, "bcd.txt")):
        assert entry.attributes["identifier"] == "{current}"


# ------------------------------------------------------------------ read, not yet diagnosed


def test_merge_vhd_error_record_in_japanese_is_read_whole() -> None:
    facts = facts_of(FIELD / "merge-vhd-mismatch-pserror-ja" / "post.txt")
    (ps,) = kinds(facts, "ps_error")
    assert ps["command"] == "Merge-VHD"
    # The line the console broke inside a word is joined without a space.
    assert "差分ディスクの識別子が一致しません" in ps["message"]
    assert ps["codes"] == ["0xc03a000e"]
    found = signatures(facts)
    assert "vhd-parent-id-mismatch" in found and "vhd-chain-broken" not in found


def test_japanese_vssadmin_with_no_writer_is_an_empty_listing() -> None:
    facts = facts_of(FIELD / "vss-writers-missing-ja" / "vssadmin_writers.txt")
    (listing,) = kinds(facts, "vss_writer_list")
    assert listing["count"] == 0
    assert kinds(facts, "vss_writer") == []
