"""wbadmin (Windows Server Backup) console output: the reader (hvrescue/logs/commands/wbadmin.py)
on the field fixtures and on pasted variants, and ``hvrescue triage`` of each fixture end to
end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from hvrescue.facts.model import Fact
from hvrescue.logs.collect_text import facts_from_text
from hvrescue.logs.commands import wbadmin
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIX = Path(__file__).parent / "fixtures" / "field_wbadmin"
OLD = Path(__file__).parent / "fixtures" / "field_commands"

RUN = """C:\\>wbadmin start backup -backupTarget:E: -hyperv:"SRV01" -quiet
wbadmin 1.0 - Backup command-line tool
(C) Copyright Microsoft Corporation. All rights reserved.

Retrieving volume information...
This will back up SRV01 to E:.
The backup operation to E: is starting.
Creating a shadow copy of the volumes specified for backup...
Summary of the backup operation:
------------------

The backup operation stopped before completing.
Detailed error: The volume shadow copy operation failed with error 0x800423F4. View the event \
log for more information.
"""


def read(path: Path) -> list[Fact]:
    return facts_from_text(path.read_text(encoding="utf-8"), str(path))


def runs(facts: list[Fact]) -> list[dict[str, Any]]:
    return [f.attributes for f in facts if f.kind == "wbadmin_result"]


def test_writer_error_in_a_quoted_post_with_a_wrapped_detailed_error():
    (r,) = runs(read(FIX / "hyperv-0x800423f4-en.txt"))
    assert r["product"] == "Windows Server Backup" and r["subcommand"] == "start backup"
    assert r["ok"] is False and r["outcome"] == "failed"
    assert r["hresult"] == "0x800423f4" and r["codes"] == ["0x800423f4"]
    assert r["vms"] == ["ERP-01"] and r["target"] == "\\\\BK-NAS\\WSB"
    # The two lines of the wrapped sentence are one message.
    assert r["error"] == (
        "The volume shadow copy operation failed with error 0x800423F4. View the event log for "
        "more information."
    )


def test_japanese_run():
    (r,) = runs(read(FIX / "hyperv-ja.txt"))
    assert r["lang"] == "ja" and r["ok"] is False and r["outcome"] == "failed"
    assert r["hresult"] == "0x800423f4" and r["vms"] == ["KINTAI01"]
    assert r["error"].startswith("ボリューム シャドウ コピー操作がエラー 0x800423F4")


def test_skipped_vm_is_a_failure_of_that_vm_though_the_run_completed():
    (r,) = runs(read(FIX / "hyperv-skipped-en.md"))
    assert r["vms"] == ["DC-02", "PRINT-01"]
    assert r["skipped_names"] == ["PRINT-01"]
    assert r["skipped"][0]["error"] == (
        "The writer experienced a non-transient error. If the backup process is retried, the "
        "error is likely to reoccur."
    )
    assert r["ok"] is False and r["outcome"] == "completed_with_warnings"


def test_summary_alone_with_a_wrapped_error_and_no_code():
    (r,) = runs(read(FIX / "stopped-wrapped-en.txt"))
    assert r["command"] is None and r["subcommand"] == "start backup"
    assert r["ok"] is False and r["hresult"] is None and r["codes"] == []
    assert r["error"].endswith("one of the volumes in the backup set.")


def test_successful_run_versions_and_items():
    backup, versions, items = runs(read(FIX / "hyperv-success-en.txt"))
    assert backup["ok"] is True and backup["outcome"] == "completed" and backup["error"] is None
    assert versions["subcommand"] == "get versions" and versions["versions"] == 2
    assert versions["ok"] is True
    assert items["subcommand"] == "get items" and items["vms"] == ["WEB-11"]  # not the host's


def test_the_older_fixtures_keep_their_meaning():
    (r,) = runs(read(OLD / "wbadmin_start_backup_en.txt"))
    # The first Detailed error stands; the volume line after it is not part of it.
    assert r["error"] == (
        "The requested operation could not be completed due to a file system limitation"
    )
    assert r["codes"] == ["0x800423f3"]
    none_found, veto = runs(read(OLD / "wbadmin_ja.txt"))
    assert none_found["outcome"] == "no_versions" and none_found["subcommand"] == "get versions"
    assert veto["hresult"] == "0x80042306" and veto["lang"] == "ja"


@pytest.mark.parametrize(
    "paste",
    [
        "\n".join("> " + line for line in RUN.split("\n")),
        "~~~\n" + RUN + "~~~\n",
        RUN.replace("Detailed error: ", "Detailed error:\u00a0"),
        "\n\n".join(RUN.split("\n")),
    ],
    ids=["quoted", "fenced", "nbsp", "doubled"],
)
def test_reposted_layouts_read_the_same(paste):
    (r,) = runs(facts_from_text(paste, "post.txt"))
    assert r["hresult"] == "0x800423f4" and r["vms"] == ["SRV01"] and r["ok"] is False


def test_near_misses():
    # Words about backups, and a wbadmin banner alone, are no run's outcome.
    assert wbadmin.parse(Text.of("Our backup operation stopped last week, any ideas?", "a")) == []
    (r,) = runs(wbadmin.parse(Text.of("wbadmin 1.0 - Backup command-line tool\n", "b")))
    assert r["ok"] is None and r["outcome"] == "unknown"


def test_many_vms_are_bounded():
    names = ",".join(f"VM{i}" for i in range(5000))
    text = f'C:\\>wbadmin start backup -backupTarget:E: -hyperv:"{names}" -quiet\n'
    (r,) = runs(wbadmin.parse(Text.of(text, "big")))
    assert len(r["vms"]) == wbadmin.MAX_ITEMS


CASES = [
    ("hyperv-0x800423f4-en.txt", "backup.wbadmin-writer-nonretryable", "vssadmin list writers"),
    ("hyperv-ja.txt", "backup.wbadmin-writer-nonretryable", "Get-VMIntegrationService"),
    ("hyperv-skipped-en.md", "backup.wbadmin-vm-skipped", "PRINT-01"),
    ("stopped-wrapped-en.txt", "backup.wbadmin-failed", "Microsoft-Windows-Backup"),
    ("hyperv-success-en.txt", None, None),
]


@pytest.mark.parametrize("name,expected,command", CASES, ids=[c[0] for c in CASES])
def test_triage_of_each_fixture(tmp_path, name, expected, command):
    lang = "ja" if name.endswith("-ja.txt") else "en"
    source = tmp_path / "in" / Path(name).stem
    source.mkdir(parents=True)
    shutil.copy2(FIX / name, source / name)
    data = triage_incident(source, tmp_path, expected, command, lang, healthy=expected is None)
    if expected == "backup.wbadmin-writer-nonretryable":
        # The VM named in the command reaches the steps.
        vm = "ERP-01" if lang == "en" else "KINTAI01"
        assert any(vm in s["command"] for s in data["diagnoses"][0]["steps"])
        assert "generic.unexplained-error" not in [d["id"] for d in data["diagnoses"]]


def test_the_probe_layout_is_no_longer_unexplained(tmp_path):
    source = tmp_path / "in" / "probe"
    source.mkdir(parents=True)
    (source / "wbadmin.txt").write_text(RUN, encoding="utf-8")
    triage_incident(source, tmp_path, "backup.wbadmin-writer-nonretryable", "vmms", "en")


def test_a_code_no_rule_knows_is_the_wbadmin_fallback(tmp_path):
    source = tmp_path / "in" / "c5"
    source.mkdir(parents=True)
    head = RUN.split("Detailed error:")[0]
    text = head + (
        "Detailed error: There was a failure in preparing the backup image of one of the volumes "
        "in the backup set. (0x807800C5)\n"
    )
    (source / "wbadmin.txt").write_text(text, encoding="utf-8")
    data = triage_incident(
        source, tmp_path, "backup.wbadmin-failed", "Microsoft-Windows-Backup", "en"
    )
    assert "0x807800C5" in data["diagnoses"][0]["title"]
    assert "backup.wbadmin-writer-nonretryable" not in [d["id"] for d in data["diagnoses"]]


def test_the_backup_error_of_a_wrapped_detailed_error_is_the_whole_sentence():
    # backup_logs reads the same run as a backup_error for the backup rules: the sentence a
    # narrow console wrapped is joined, not cut at "View the".
    from hvrescue.logs.commands import backup_logs
    from hvrescue.logs.textutil import Text

    lines = [
        "wbadmin 1.0 - Backup command-line tool",
        "The backup operation stopped before completing.",
        "Detailed error: The volume shadow copy operation failed with error 0x800423F4. View the",
        "event log for more information.",
        "",
        "Detailed error: The filename, directory name, or volume label syntax is incorrect.",
        "The backup of volume C: could not be completed.",
    ]
    messages = [f.attributes["message"] for f in backup_logs.parse(Text(lines, "post.txt"))]
    assert messages[0].endswith("View the event log for more information.")
    assert messages[1] == "The filename, directory name, or volume label syntax is incorrect."
