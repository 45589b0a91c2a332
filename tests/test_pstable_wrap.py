"""Format-Table output hard-wrapped by a mail client or forum (``pstable_wrap``): an oracle over
the fixtures that hold tables (wrap them, read them, compare with the unwrapped reading) and
over generated tables; a row that cannot be put back whole never gives a value that is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.logs.commands import pstable
from hvrescue.logs.textutil import Text

FIXTURES = Path(__file__).parent / "fixtures"
# Read back whole at every width.
WHOLE = [
    "field_cluster/node-removed-table/system_cluster.txt",
    "commands/get_hotfix_en.txt",
]
# Read back with no wrong value (a row with two readings keeps only what both give).
SOUND = [
    *WHOLE,
    "field/recovery-checkpoint/get_vmsnapshot.txt",
    "field_vmms/file-not-found-en/get_vm.txt",
    "field/storagevsp-disk-full/get_winevent_storagevsp.txt",
]


def hard_wrap(text: str, width: int) -> str:
    """A mail client's wrap: at the last space before ``width``, mid-word when there is none."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        out.extend(textwrap.wrap(line, width, break_on_hyphens=False) or [""])
    return "\n".join(out)


# NOT DONE: these still read a value that is not the original's (a piece of a -Wrap message
# dropped, two rows run together, a date split across two columns). Strict: a fix shows.
KNOWN_WRONG = {
    ("field_cluster/node-removed-table/system_cluster.txt", 76),
    ("field_cluster/node-removed-table/system_cluster.txt", 80),
    ("commands/get_hotfix_en.txt", 60),
    ("commands/get_hotfix_en.txt", 76),
    ("commands/get_hotfix_en.txt", 80),
    ("field/recovery-checkpoint/get_vmsnapshot.txt", 72),
    ("field/recovery-checkpoint/get_vmsnapshot.txt", 76),
    ("field_vmms/file-not-found-en/get_vm.txt", 80),
    ("field/storagevsp-disk-full/get_winevent_storagevsp.txt", 72),
    ("field/storagevsp-disk-full/get_winevent_storagevsp.txt", 76),
    ("field/storagevsp-disk-full/get_winevent_storagevsp.txt", 80),
}
NOT_WHOLE = KNOWN_WRONG | {
    ("commands/get_hotfix_en.txt", 72),
    ("field_cluster/node-removed-table/system_cluster.txt", 60),
}


def _known(
    request: pytest.FixtureRequest, case: tuple[str, int], known: set[tuple[str, int]]
) -> None:
    if case in known:
        request.applymarker(pytest.mark.xfail(strict=True, reason="not done: see KNOWN_WRONG"))


def _read(text: str) -> list[tuple[list[str], list[dict[str, str]]]]:
    return [(t.columns, [r.cells for r in t.rows]) for t in pstable.read_tables(Text.of(text, "p"))]


def _no_wrong_value(text: str, width: int) -> None:
    before = _read(text)
    after = _read(hard_wrap(text, width))
    for columns, rows in after:
        [original] = [r for c, r in before if c == columns]
        for row in rows:
            assert any(all(o.get(k) == v for k, v in row.items()) for o in original), row


@pytest.mark.parametrize("width", [60, 72, 76, 80])
@pytest.mark.parametrize("name", WHOLE)
def test_a_wrapped_table_reads_as_the_original(
    name: str, width: int, request: pytest.FixtureRequest
) -> None:
    _known(request, (name, width), NOT_WHOLE)
    text = (FIXTURES / name).read_text("utf-8-sig")
    assert _read(hard_wrap(text, width)) == _read(text)


@pytest.mark.parametrize("width", [60, 72, 76, 80])
@pytest.mark.parametrize("name", SOUND)
def test_a_wrapped_table_never_gives_a_wrong_value(
    name: str, width: int, request: pytest.FixtureRequest
) -> None:
    _known(request, (name, width), KNOWN_WRONG)
    _no_wrong_value((FIXTURES / name).read_text("utf-8-sig"), width)


@pytest.mark.xfail(strict=True, reason="not done: a 3-column row cut once is not put back")
def test_the_mail_wrap_drops_the_space_and_the_row_is_put_back() -> None:
    lines = [
        "Name      State   Status",
        "----      -----   ------",
        "SRV-APP01 Running Operating normally",
        "SRV-DB02  Off     Operating normally",
    ]
    wrapped = hard_wrap("\n".join(lines), 30).split("\n")
    assert wrapped[2] == "SRV-APP01 Running Operating"  # the cut, as a mail client makes it
    [table] = pstable.read_tables(Text(wrapped, "p"))
    assert [r.cells["Status"] for r in table.rows] == ["Operating normally"] * 2
    assert [r.index for r in table.rows] == [2, 4]


def test_format_table_wrap_continuations_still_join() -> None:
    lines = [
        "Id Level Message",
        "-- ----- -------",
        " 5 Error The disk is",
        "         full now.",
        " 6 Info  Done.",
    ]
    [table] = pstable.read_tables(Text(lines, "p"))
    assert [r.cells["Message"] for r in table.rows] == ["The disk is full now.", "Done."]


def test_a_quoted_and_wrapped_table_reads() -> None:
    text = (FIXTURES / WHOLE[0]).read_text("utf-8-sig")
    quoted = "\n".join("> " + line for line in hard_wrap(text, 72).split("\n"))
    assert _read(quoted) == _read(text)


def test_a_truncated_value_stays_named() -> None:
    lines = [
        "Name           Path                                  State",
        "----           ----                                  -----",
        "SRV-FILE01-OLD C:\\ClusterStorage\\Volume1\\Hyper-V\\S... Running",
    ]
    wrapped = hard_wrap("\n".join(lines), 40).split("\n")
    [table] = pstable.read_tables(Text(wrapped, "p"))
    [row] = table.rows
    assert row.cells.get("Path", "").endswith("...") or "Path" not in row.cells
    assert row.cells.get("State") in (None, "Running")


WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@pytest.mark.slow  # ~17 s: the explicit wraps above keep the default suite honest
@pytest.mark.xfail(
    strict=True, reason="not done: generated tables still find readings that shift a value"
)
@settings(max_examples=40, deadline=None)
@given(
    st.lists(WORD, min_size=2, max_size=5, unique=True),
    st.lists(st.lists(WORD, min_size=5, max_size=5), min_size=1, max_size=4),
    st.sampled_from([30, 40, 50]),
)
def test_generated_tables_never_give_a_wrong_value(
    names: list[str], values: list[list[str]], width: int
) -> None:
    names = [n.capitalize() for n in names]
    rows = [v[: len(names)] for v in values]
    widths = [max(len(n), *(len(r[j]) for r in rows)) for j, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    text = "\n".join([line(names), line(["-" * len(n) for n in names]), *(line(r) for r in rows)])
    _no_wrong_value(text, width)
