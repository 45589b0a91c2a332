"""diskpart on virtual disks: the reader (hvrescue/logs/commands/diskpart.py) on the field
fixtures and on pasted variants, and ``hvrescue triage`` of each fixture end to end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hvrescue.facts.model import Fact
from hvrescue.logs.collect_text import facts_from_text
from hvrescue.logs.commands import diskpart
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIX = Path(__file__).parent / "fixtures" / "field_diskpart"

CORRUPT = """DISKPART> select vdisk file="D:\\Hyper-V\\Virtual Hard Disks\\SRV01.vhdx"

DiskPart successfully selected the virtual disk file.

DISKPART> attach vdisk readonly

  0 percent completed

Virtual Disk Service error:
The file or directory is corrupted and unreadable.
"""


def read(name: str) -> list[Fact]:
    path = FIX / name
    return facts_from_text(path.read_text(encoding="utf-8"), str(path))


def results(facts: list[Fact]) -> list[dict[str, Any]]:
    return [f.attributes for f in facts if f.kind == "diskpart_result"]


def failed(facts: list[Fact]) -> dict[str, Any]:
    found = [r for r in results(facts) if r["ok"] is False]
    assert len(found) == 1, results(facts)
    return found[0]


def test_corrupted_attach_in_a_quoted_post():
    facts = read("attach-corrupted-en.txt")
    select, attach = results(facts)
    assert select["ok"] is True and select["command"].startswith("select vdisk")
    assert attach["command"] == "attach vdisk readonly"
    assert attach["vdisk_file"] == "E:\\Hyper-V\\FS-NORTH\\Virtual Hard Disks\\FS-NORTH-Data.vhdx"
    assert attach["ok"] is False and attach["reason"] == "corrupted"
    assert attach["error"] == "The file or directory is corrupted and unreadable."
    assert attach["error_code"] is None and attach["lang"] == "en"
    loc = next(f for f in facts if f.kind == "diskpart_result" and not f.attributes["ok"])
    line = (FIX / "attach-corrupted-en.txt").read_text(encoding="utf-8").split("\n")
    assert "attach vdisk readonly" in line[int(loc.provenance.locator.split(":")[1]) - 1]


def test_corrupted_attach_in_japanese():
    r = failed(read("attach-corrupted-ja.txt"))
    assert r["lang"] == "ja" and r["reason"] == "corrupted"
    assert r["error"] == "ファイルまたはディレクトリが壊れているため、読み取ることができません。"
    assert r["vdisk_file"].endswith("KAIKEI01.vhdx")


def test_in_use_message_wrapped_in_a_fence():
    r = failed(read("attach-in-use-en.md"))
    assert r["error"] == (
        "The process cannot access the file because it is being used by another process."
    )
    assert r["reason"] == "in_use" and r["vdisk_file"] == "D:\\VMs\\APP-07\\APP-07_C.vhdx"


def test_in_use_in_japanese_quoted_with_odd_spaces():
    facts = read("attach-in-use-ja.txt")
    r = failed(facts)
    assert r["reason"] == "in_use" and r["lang"] == "ja" and r["command"] == "attach vdisk"
    assert r["vdisk_file"] == "E:\\VM\\SHARE02\\SHARE02.vhdx"


def test_parent_missing_and_detail_vdisk():
    facts = read("attach-parent-missing-en.txt")
    r = failed(facts)
    assert r["reason"] == "not_found" and r["missing"] == "parent"
    (detail,) = [f.attributes for f in facts if f.kind == "vdisk_detail"]
    assert detail["is_child"] is True and detail["state"] == "added"
    assert detail["parent_file"] == "F:\\VMs\\SQL-09\\Virtual Hard Disks\\SQL-09.vhdx"
    assert detail["virtual_size"] == 127 * 1024**3
    assert detail["physical_size"] == 4196 * 1024**2
    assert detail["device_type"] == "3 (VHDX)" and detail["disk_number"] is None


def test_selection_of_a_missing_file_is_the_file_not_its_parent():
    r = failed(read("select-missing-en.txt"))
    assert r["command"].startswith("sel vdisk") and r["missing"] == "file"
    # The "See the System Event Log" line is diskpart's advice, not part of the message.
    assert r["error"] == "The system cannot find the file specified."


def test_doubled_repost_keeps_the_original_line_numbers():
    facts = read("merge-attached-en.txt")
    r = failed(facts)
    assert r["reason"] == "must_detach" and r["command"] == "merge vdisk depth=1"
    fact = next(f for f in facts if f.kind == "diskpart_result" and f.attributes["ok"] is False)
    lines = (FIX / "merge-attached-en.txt").read_text(encoding="utf-8").split("\n")
    assert "merge vdisk" in lines[int(fact.provenance.locator.split(":")[1]) - 1]


def test_successful_session_has_no_failure():
    facts = read("attach-ok-en.txt")
    assert [r["ok"] for r in results(facts)] == [True, True, True, True]
    (detail,) = [f.attributes for f in facts if f.kind == "vdisk_detail"]
    assert detail["state"] == "attached_not_open" and detail["disk_number"] == 3
    assert detail["is_child"] is False and detail["parent_file"] is None


@pytest.mark.parametrize(
    "paste",
    [
        "\n".join("> " + line for line in CORRUPT.split("\n")),
        "```text\n" + CORRUPT + "```\n",
        CORRUPT.replace("DISKPART> ", "DISKPART>\u00a0"),
        "\n\n".join(CORRUPT.split("\n")),
    ],
    ids=["quoted", "fenced", "nbsp", "doubled"],
)
def test_reposted_layouts_read_the_same(paste):
    r = failed(facts_from_text(paste, "post.txt"))
    assert r["reason"] == "corrupted" and r["command"] == "attach vdisk readonly"
    assert r["vdisk_file"] == "D:\\Hyper-V\\Virtual Hard Disks\\SRV01.vhdx"


def test_fragment_without_prompt_and_dp_error_with_code():
    text = "Virtual Disk Service error:\nThe file or directory is corrupted and unreadable.\n"
    (r,) = results(diskpart.parse(Text.of(text, "f.txt")))
    assert r["command"] is None and r["vdisk_file"] is None and r["reason"] == "corrupted"
    text = (
        "DISKPART> compact vdisk\n\nDiskPart has encountered an error: The device is not "
        "ready. (0x80070015)\nSee the System Event Log for more information.\n"
    )
    (r,) = results(diskpart.parse(Text.of(text, "f.txt")))
    assert r["error_code"] == "0x80070015" and r["reason"] == "other"
    assert r["error"] == "The device is not ready. (0x80070015)"


def test_near_misses_give_no_diskpart_result():
    # Talk about diskpart, and a list of disks, are no vdisk command's result.
    texts = [
        "I ran diskpart and attach vdisk but it said something about corrupted files.",
        "DISKPART> list disk\n\n  Disk ###  Status         Size     Free\n"
        "  Disk 0    Online          127 GB      0 B\n",
    ]
    for text in texts:
        assert results(diskpart.parse(Text.of(text, "n.txt"))) == []


def test_a_long_paste_is_bounded():
    line = "x" * 100_000
    text = "DISKPART> attach vdisk\n\nVirtual Disk Service error:\n" + (line + "\n") * 50
    (r,) = results(diskpart.parse(Text.of(text, "big.txt")))
    assert len(r["error"]) <= diskpart.MAX_FIELD


CASES = [
    ("attach-corrupted-en.txt", "vdisk.diskpart-corrupted", "hvrescue check --deep", "en"),
    ("attach-corrupted-ja.txt", "vdisk.diskpart-corrupted", "hvrescue preserve", "ja"),
    ("attach-in-use-en.md", "vdisk.diskpart-in-use", "Get-VMHardDiskDrive", "en"),
    ("attach-in-use-ja.txt", "vdisk.diskpart-in-use", "Get-VHD", "ja"),
    ("attach-parent-missing-en.txt", "vdisk.diskpart-parent-missing", "hvrescue chain", "en"),
    ("select-missing-en.txt", "vdisk.diskpart-file-missing", "Test-Path", "en"),
    ("merge-attached-en.txt", "vdisk.diskpart-must-detach", "Dismount-VHD", "en"),
    ("attach-ok-en.txt", None, None, "en"),
]


@pytest.mark.parametrize("name,expected,command,lang", CASES, ids=[c[0] for c in CASES])
def test_triage_of_each_fixture(tmp_path, name, expected, command, lang):
    source = tmp_path / "in" / Path(name).stem
    source.mkdir(parents=True)
    shutil.copy2(FIX / name, source / name)
    data = triage_incident(source, tmp_path, expected, command, lang)
    if expected == "vdisk.diskpart-corrupted":
        top = data["diagnoses"][0]
        # The file named in the evidence reaches the steps; the unsafe tools are named as such.
        assert any(".vhdx" in s["command"] and "preserve" in s["command"] for s in top["steps"])
        assert any("chkdsk /f" in a for a in top["avoid"])


def test_language_is_the_labels_not_the_file_names():
    text = (
        "DISKPART> attach vdisk\n\nVirtual Disk Service error:\n"
        "The file or directory is corrupted and unreadable.\n\n"
        "DISKPART> detail vdisk\n\nDevice type ID: 3 (VHDX)\nVendor ID: {EC984AEC-A0F9-47E9-901F-"
        "71415A66345B} (Microsoft Corporation)\nState: Added\nVirtual size:  40 GB\n"
        "Physical size: 1536 KB\nFilename: D:\\仮想マシン\\経理.vhdx\nIs Child: No\n"
    )
    facts = diskpart.parse(Text.of(text, "mixed.txt"))
    assert [r["lang"] for r in results(facts)] == ["en", "en"]
    (detail,) = [f.attributes for f in facts if f.kind == "vdisk_detail"]
    assert detail["lang"] == "en" and detail["file"] == "D:\\仮想マシン\\経理.vhdx"
    assert detail["virtual_size"] == 40 * 1024**3 and detail["physical_size"] == 1536 * 1024


def test_japanese_detail_vdisk_of_an_attached_disk_not_open() -> None:
    text = (
        "DISKPART> detail vdisk\n\n"
        "デバイスの種類 ID: 3 (VHDX)\n"
        "状態: アタッチ済み (開いていません)\n"
        "仮想サイズ:  200 GB\n"
        "ファイル名: E:\\VM\\SHARE02\\SHARE02.vhdx\n"
        "子: いいえ\n"
        "関連付けられたディスク番号: 3\n"
    )
    [detail] = [f.attributes for f in facts_from_text(text, "p.txt") if f.kind == "vdisk_detail"]
    assert (detail["state"], detail["state_text"]) == (
        "attached_not_open",
        "アタッチ済み (開いていません)",
    )
    assert (detail["is_child"], detail["disk_number"]) == (False, 3)
