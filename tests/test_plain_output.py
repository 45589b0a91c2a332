"""Lines printed without rich's console (hvrescue.cli.plain) are rich's own output to the byte:
rich itself is the oracle, on random text (Japanese, long words, control characters, runs of
spaces) at many widths, through the commands that use it, and in how the width and the
terminal question are answered from the environment."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from hvrescue.cli import plain
from hvrescue.cli.plain import Printer, Styled, plain_width, wrap_plain
from tests.builders import patch

PIECES = [
    "a",
    "bc",
    " ",
    "  ",
    "\n",
    "\r",
    "\x07",
    "\x0b",
    "-",
    "/",
    "0x1F",
    "仮想ディスク",
    "の",
    "。",
    "、",
    "\u3000",
    "\xa0",
    "é",
    "e\u0301",
    "😀",
    "ｱ",
    "x" * 33,
    "C:\\VMs\\disk.vhdx",
]


def rich_print(text: Any, width: int, **env: str) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, highlight=False, soft_wrap=False, _environ=env).print(text)
    return buffer.getvalue()


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.integers(1, 120))
def test_wrapped_text_is_what_rich_prints(pieces, width):
    text = "".join(pieces)
    assert wrap_plain(text, width) == rich_print(Text(text), width)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([*"ab -/.:", "x" * 17, "   ", "\n"])), st.integers(1, 50))
def test_ascii_text_wraps_as_rich_wraps_it(pieces, width):
    text = "".join(pieces)
    # the path that needs no rich module at all (one cell a character)
    assert wrap_plain(text, width) == rich_print(Text(text), width)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.integers(1, 90))
def test_any_text_wraps_as_rich_wraps_it(text, width):
    if "\t" in text:  # tabs go to rich itself (Printer), not through wrap_plain
        text = text.replace("\t", " ")
    assert wrap_plain(text, width) == rich_print(Text(text), width)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


ENVIRONMENTS = [
    {},
    {"COLUMNS": "37"},
    {"COLUMNS": "200", "LINES": "10"},
    {"COLUMNS": "x"},
    {"FORCE_COLOR": "1"},
    {"FORCE_COLOR": ""},
    {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
    {"TTY_COMPATIBLE": "1"},
    {"TERM": "dumb"},
    {"NO_COLOR": "1"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
@pytest.mark.parametrize("tty", [False, True])
def test_width_and_terminal_are_decided_as_rich_decides_them(environ, tty, monkeypatch):
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TERM", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    stream = _Stream(tty)
    console = Console(file=stream, highlight=False, soft_wrap=False)
    width = plain_width(stream)
    if console.is_terminal:
        assert width is None  # rich draws there: it is asked to
    else:
        assert width == console.width


STYLED = [
    Styled("plain line"),
    Styled("an error in red that is rather longer than the narrow console is", "red"),
    Styled("太字の見出し：仮想ディスクの検査結果", "bold"),
    Styled("[warning]", "yellow").append(" vhdx.bat.bad", "bold").append("\n    why\n"),
    Styled(""),
    Styled("a [bold]markup-like[/] text, never taken for markup"),
]


@pytest.mark.parametrize("line", STYLED, ids=range(len(STYLED)))
@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("columns", ["24", "80"])
def test_a_printed_line_is_the_same_as_rich_prints_its_text(line, tty, columns, monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("TERM", "xterm-256color")
    ours, theirs = _Stream(tty), _Stream(tty)

    def make() -> Console:
        return Console(file=ours, highlight=False, soft_wrap=False)

    Printer(ours, make).print(line)
    Console(file=theirs, highlight=False, soft_wrap=False).print(line.rich())
    assert ours.getvalue() == theirs.getvalue()
    if tty:  # on a terminal rich draws the styles itself
        assert ("\x1b[" in ours.getvalue()) == any(style for _t, style in line.parts)


def test_a_line_with_a_tab_is_left_to_rich(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    stream = _Stream(False)
    made: list[Console] = []

    def make() -> Console:
        made.append(Console(file=stream, highlight=False, soft_wrap=False))
        return made[-1]

    Printer(stream, make).print(Styled("a\tb\tc and more words to wrap"))
    assert made  # rich expands tabs itself
    assert stream.getvalue() == rich_print(Text("a\tb\tc and more words to wrap"), 20)


BROKEN_PIPE = """
import io, sys
from rich.console import Console
from hvrescue.cli.plain import Printer, Styled

class Gone(io.StringIO):
    def write(self, s):
        raise BrokenPipeError
    def isatty(self):
        return False

stream = Gone()
try:
    if sys.argv[1] == "rich":
        Console(file=stream).print("x")
    else:
        Printer(stream, lambda: Console(file=stream)).print(Styled("x"))
except SystemExit as exc:
    sys.stderr.write(f"exit {exc.code}")
"""


def test_a_reader_that_went_away_ends_the_command_as_with_rich():
    codes = []
    for which in ("rich", "plain"):
        proc = subprocess.run(
            [sys.executable, "-c", BROKEN_PIPE, which], capture_output=True, text=True, timeout=60
        )
        codes.append(proc.stderr.strip())
    assert codes[0] == codes[1] == "exit 1"


# ---------------------------------------------------------------- through the commands
def run_in_process(args: list[str]) -> tuple[int, str, str]:
    from hvrescue.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    argv = sys.argv
    sys.argv = ["hvrescue", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    return int(code or 0), out.getvalue(), err.getvalue()


@pytest.fixture
def disks(corpus_dir: Path, tmp_path: Path) -> list[Path]:
    damaged = tmp_path / "damaged.vhdx"
    damaged.write_bytes((corpus_dir / "dissect-hypervisor" / "dynamic.vhdx").read_bytes())
    patch(damaged, 64 * 1024, b"XXXX")  # the first header's signature: a finding
    return [
        corpus_dir / "dissect-hypervisor" / "dynamic.vhdx",
        corpus_dir / "dissect-hypervisor" / "fixed.vhd",
        corpus_dir / "dissect-hypervisor" / "differencing.avhdx",  # its parent is missing
        damaged,
    ]


@pytest.mark.parametrize("columns", ["30", "200"])
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_check_and_info_print_what_rich_printed(disks, lang, columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", columns)
    for args in (["check", *map(str, disks)], *(["info", str(d)] for d in disks)):
        command = ["--lang", lang, *args]
        ours = run_in_process(command)
        with monkeypatch.context() as m:
            m.setattr(plain, "plain_width", lambda stream: None)  # every line through rich
            theirs = run_in_process(command)
        assert ours == theirs, command
        assert ours[1].strip()
    assert "\n" in ours[1]


def test_rich_console_is_not_imported_by_small_commands(disks):
    from tests.test_startup import run_counting_modules

    for args in (
        ["--help"],
        ["check", disks[0]],  # its line longer than the console: wrapped, as rich wraps it
        ["check", "--json", disks[0]],
        ["info", disks[0]],  # its table drawn as rich draws it
        ["info", "--json", disks[0]],
        ["explain", "--json", "0xC03A000D"],
    ):
        _rc, out, loaded = run_counting_modules(*args)
        assert out.strip()
        assert not {m for m in loaded if m == "rich" or m.startswith("rich.")}, args
        assert "msgspec" not in loaded, args
    # Japanese is measured with rich's cell tables, still without its console
    _rc, out, loaded = run_counting_modules("--lang", "ja", "check", disks[2])
    assert "rich.console" not in loaded and "rich.cells" in loaded
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_disk_opens_with_its_own_format_reader_only(disks):
    from tests.test_startup import run_counting_modules

    for disk, own, other in (
        (disks[0], "hvrescue.vdisk.vhdx.image", "hvrescue.vdisk.vhd.image"),
        (disks[1], "hvrescue.vdisk.vhd.image", "hvrescue.vdisk.vhdx.image"),
    ):
        for command in ("check", "info"):
            _rc, out, loaded = run_counting_modules(command, disk)
            assert out.strip()
            assert own in loaded and other not in loaded, (command, disk.name)


def test_the_code_tables_are_read_without_msgspec_and_still_checked_against_codes_yaml(
    tmp_path, monkeypatch
):
    from hvrescue.diagnose import codes

    codes.tables.cache_clear()
    fresh = codes.tables()
    assert fresh == codes.tables_from_yaml(codes.yaml_source()[0])  # the snapshot is current
    # a snapshot for another codes.yaml is not used: the YAML is read instead
    monkeypatch.setattr(codes, "yaml_source", lambda: (b"ntstatus: []\n", "0" * 64))
    codes.tables.cache_clear()
    try:
        assert codes.tables() == {"ntstatus": []}
    finally:
        monkeypatch.undo()
        codes.tables.cache_clear()


# ---------------------------------------------------------------- info's table
from hvrescue.cli.plain_table import draw_table  # noqa: E402

CELL_WORDS = [
    "a",
    "bc",
    "headers[0].offset",
    "0x10000",
    "64.0 GiB (68719476736 bytes)",
    "仮想ディスク",
    "の",
    "。",
    " ",
    "  ",
    "x" * 25,
    "y" * 70,
    "\n",
    "é",
    "ｱ",
    "😀",
    "{2DC27766-F623-4200-9D64-115E9BFD4A08}",
    "",
    "-",
]
_CELL = st.lists(st.sampled_from(CELL_WORDS), max_size=8).map("".join)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([("Field", "Value"), ("フィールド", "値"), ("F", "V a l u e")]),
    st.lists(st.tuples(_CELL, _CELL), max_size=7),
    st.integers(10, 200),
)
def test_the_table_is_drawn_as_rich_draws_it(header, rows, width):
    table = _rich_table(header, rows)
    ours = draw_table(header, rows, width)
    if ours is not None:  # None: a column too narrow to be sure of, rich draws it
        assert ours == rich_print(table, width)
    elif width >= 40 and header[0] != "F":
        raise AssertionError("a table of ordinary width was left to rich")


def _rich_table(header, rows):
    from rich.table import Table

    table = Table(show_header=True)
    table.add_column(header[0])
    table.add_column(header[1], overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), Text(value))
    return table


def test_a_table_rich_would_draw_differently_is_left_to_rich():
    assert draw_table(("[b]Field[/b]", "Value"), [("a", "b")], 80) is None  # markup
    assert draw_table(("Field", "Value"), [("a\tb", "c")], 80) is None  # a tab
    assert draw_table(("Field", "Value"), [("a", "b")], 12) is None  # too narrow
    drawn = draw_table(("Field", "Value"), [("a", "b")], 80)
    assert drawn == rich_print(_rich_table(("Field", "Value"), [("a", "b")]), 80)


# ---------------------------------------------------------------- help text pieces
@settings(max_examples=1000, deadline=None)
@given(
    st.text(
        st.sampled_from(
            [
                *"ab .\n\t",
                "仮",
                "、",
                "\u3000",
                "\u2028",
                "😀",
                "\u10ff",
                "\u1100",
                "\uffff",
                "\xa0",
                "ｱ",
                "é",
            ]
        )
    )
)
def test_help_text_is_cut_into_the_pieces_the_regular_expression_finds(text):
    import re

    from hvrescue.cli.help_format import _tokens

    assert _tokens(text) == re.findall(r"\s+|[^\s\u1100-\uffff]+|.", text, re.DOTALL)
