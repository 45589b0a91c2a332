"""An incident reads the same however it travelled: the field incidents' evidence, carried the
ways people carry it (CRLF, quoted once or twice, in a code fence, indented as a Markdown code
block, with trailing spaces, with non-breaking spaces, double-spaced by a web page or a remote
desktop, saved as UTF-16 or with a BOM), gives the same leading diagnosis as the original; a
double-spaced text's facts point at the lines of the file as it is."""

from __future__ import annotations

import codecs
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.diagnose.triage import run_triage
from hvrescue.logs import repost
from hvrescue.logs.collect_text import facts_from_text
from tests.helpers import run_cli
from tests.test_field_rules import FIELD, INCIDENTS

EXPECTED = {name: expected for name, expected, _command, _lang in INCIDENTS}
# One of each layout: a CAPI2 post with a writer list, PowerShell Format-List and Format-Table,
# a PowerShell error record, msinfo32 in Japanese, Event Viewer text, a near miss.
CHOSEN = [
    "capi2-missing-binary-en",
    "capi2-denied-ja",
    "virt-disabled-computerinfo",
    "virt-disabled-msinfo-ja",
    "recovery-checkpoint",
    "checkpoint-missing-ps",
    "virt-disabled-findstr-en",
    "merge-diskfull-ja",
    "capi2-near-miss-en",
]


def _lines(text: str, fn: Callable[[str], str]) -> str:
    return "".join(fn(line) for line in text.splitlines(True))


TEXT: dict[str, Callable[[str], str]] = {
    "crlf": lambda t: t.replace("\r\n", "\n").replace("\n", "\r\n"),
    "quoted": lambda t: _lines(t, lambda line: "> " + line),
    "quoted-twice": lambda t: _lines(t, lambda line: ">> " + line),
    "fenced": lambda t: "This is what I got:\n\n```\n" + t + "\n```\n\nAny idea?\n",
    "indented": lambda t: "This is what I got:\n\n" + _lines(t, lambda line: "    " + line),
    "indented-tab": lambda t: _lines(t, lambda line: "\t" + line),
    "trailing-spaces": lambda t: _lines(
        t, lambda line: line.rstrip("\r\n") + "  \t" + ("\n" if line.endswith("\n") else "")
    ),
    "nbsp": lambda t: t.replace("  ", "\u00a0 "),
    "double-spaced": lambda t: t.replace("\n", "\n\n"),
    "double-spaced-crlf": lambda t: t.replace("\r\n", "\n").replace("\n", "\r\n\r\n"),
}
ENCODED: dict[str, Callable[[str], bytes]] = {
    "utf-16": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-8-bom": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
}


def _top(folder: Path) -> str | None:
    found = run_triage([str(folder)], jobs=1)
    worst = [d for d in found.diagnoses if SEVERITY_ORDER[d.severity] >= SEVERITY_ORDER["warning"]]
    return worst[0].rule.id if worst else None


def _carried(src: Path, dest: Path, how: str) -> Path:
    shutil.copytree(src, dest)
    for path in dest.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8-sig")
        if how in TEXT:
            path.write_text(TEXT[how](text), encoding="utf-8", newline="")
        else:
            path.write_bytes(ENCODED[how](text))
    return dest


@pytest.mark.parametrize("how", [*TEXT, *ENCODED])
@pytest.mark.parametrize("name", CHOSEN)
def test_the_same_incident_however_it_travelled(tmp_path: Path, name: str, how: str):
    assert _top(FIELD / name) == EXPECTED[name]  # the original, as test_field_rules has it
    carried = _carried(FIELD / name, tmp_path / name, how)
    assert _top(carried) == EXPECTED[name]


def test_a_double_spaced_text_reads_as_it_was_and_points_at_the_file_lines():
    original = (FIELD / "checkpoint-missing-ps" / "remove_vmsnapshot_error.txt").read_text()
    doubled = original.replace("\n", "\n\n")
    found = facts_from_text(repost.clean(doubled), "post.txt")
    plain = facts_from_text(repost.clean(original), "post.txt")
    assert [(f.kind, f.attributes) for f in found] == [(f.kind, f.attributes) for f in plain]
    assert found, "the error record is read"
    doubled_lines = doubled.split("\n")
    original_lines = original.split("\n")
    for single, double in zip(plain, found, strict=True):
        n = int(single.provenance.locator.split(":")[1])
        m = int(double.provenance.locator.split(":")[1])
        assert m == 2 * n - 1  # line n of the original is line 2n-1 of the doubled file
        assert doubled_lines[m - 1] == original_lines[n - 1]


def test_undouble_restores_empty_lines_and_maps_each_line():
    original = "a\nb\n\nc\n\n\nd\ne\n"
    doubled = original.replace("\n", "\n\n")
    single, origin = repost.undouble(doubled) or ("", [])
    assert single == original
    lines = doubled.split("\n")
    for i, line in enumerate(single.split("\n")):
        if line:
            assert lines[origin[i]] == line
    # a text with two lines of content next to each other is not double-spaced
    assert repost.undouble("a\n\nb\nc\n\nd\n\ne\n") is None
    assert repost.undouble("a\n\nb\n\nc\n") is None  # too few lines to tell


@pytest.mark.parametrize(
    "text",
    [
        # vssadmin indents its writer details by three spaces: not a code block
        "Writer name: 'System Writer'\n   Writer Id: {e8132975-6f93-4464-a53e-1050253ae220}\n"
        "   State: [1] Stable\n",
        # a PowerShell error's detail lines follow a line of text: not a code block
        "Remove-VMSnapshot : failed\n    + CategoryInfo          : ObjectNotFound: (:) []\n"
        "    + FullyQualifiedErrorId : ObjectNotFound\n",
        # one indented line after a blank line is a paragraph's indent, not a block
        "Hello\n\n    just one line\nnext\n",
    ],
)
def test_text_that_is_no_code_block_keeps_its_indentation(text: str):
    assert repost.clean(text) == text


def test_an_indented_block_keeps_its_columns_and_its_line_count():
    block = "A   B\n--- ---\n  1 2\n"
    post = "Look:\n\n" + "".join("    " + line for line in block.splitlines(True)) + "\nok\n"
    cleaned = repost.clean(post)
    assert cleaned.count("\n") == post.count("\n")
    assert cleaned == "Look:\n\n" + block + "\nok\n"
    assert repost.clean(cleaned) == cleaned  # cleaning twice changes nothing more


def test_a_format_list_value_of_several_paragraphs_is_read_whole():
    """Get-WinEvent | Format-List prints a message's paragraphs indented to the value column,
    with a blank line between them: not a code block, and one value."""
    listing = (
        "TimeCreated  : 11/30/2026 6:02:31 PM\n"
        "ProviderName : Microsoft-Windows-Hyper-V-VMMS\n"
        "Id           : 20413\n"
        "Message      : The first paragraph.\n"
        "               \n"
        "               The second paragraph names the cause (0x80070002).\n"
        "\n"
        "TimeCreated  : 11/30/2026 6:01:00 PM\n"
        "ProviderName : Microsoft-Windows-Hyper-V-VMMS\n"
        "Id           : 18500\n"
        "Message      : Another event.\n"
    )
    for text in (listing, "Got this:\n\n" + "".join("    " + x for x in listing.splitlines(True))):
        assert repost.clean(repost.clean(text)) == repost.clean(text)
        events = [f for f in facts_from_text(repost.clean(text), "p.txt") if f.kind == "event"]
        assert [e.attributes["message"] for e in events] == [
            "The first paragraph. The second paragraph names the cause (0x80070002).",
            "Another event.",
        ]


def test_a_double_spaced_paste_through_the_cli(tmp_path: Path):
    folder = _carried(FIELD / "recovery-checkpoint", tmp_path / "post", "double-spaced")
    r = run_cli("triage", folder, "--out", tmp_path / "report", "--json", evidence=[folder])
    assert r.rc == 1, r.stderr
    top = r.json()["diagnoses"][0]
    assert top["id"] == EXPECTED["recovery-checkpoint"]
    text = (folder / "get_vmsnapshot.txt").read_text().split("\n")
    for item in top["evidence"]:
        locator = item.get("locator") or ""
        if locator.startswith("line:"):
            assert text[int(locator[5:]) - 1].strip(), locator  # a line with content


def test_a_code_block_inside_a_post_indented_as_a_whole(tmp_path: Path):
    """A post whose Format-List sits in a code block, the whole post indented again (quoted by
    indentation): the block is taken in twice, its value's paragraphs stay one value."""
    cluster = FIELD.parent / "field_cluster" / "live-migration-switch-ja"
    assert _top(cluster) == "vm.migration-failed.switch-missing"
    carried = _carried(cluster, tmp_path / "post", "indented")
    text = (carried / "post.txt").read_text()
    assert "\n        PS C:\\> Get-WinEvent" in text  # eight columns: four and four
    assert _top(carried) == "vm.migration-failed.switch-missing"
    events = [f for f in facts_from_text(repost.clean(text), "post.txt") if f.kind == "event"]
    assert (
        events[-1].attributes["message"].endswith("Could not find Ethernet switch 'vSwitch-Prod'.")
    )


def test_a_full_width_quote_marker_is_a_quote_marker():
    """Japanese mail and forum posts quote with "＞" (U+FF1E), as English ones with ">"."""
    from hvrescue.logs.repost import clean

    quoted = "＞ Boot Failed. EFI SCSI Device.\n＞＞ No operating system was loaded.\nほかの行"
    assert clean(quoted).split("\n") == [
        "Boot Failed. EFI SCSI Device.",
        "No operating system was loaded.",
        "ほかの行",
    ]
