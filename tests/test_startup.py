"""Start-up (issue 18 part 5): the group loads a command's module only when the command is run
or asked for, the catalogues are read without tomllib when they hold only ``"key" = "text"``
lines, and neither changes what a user sees."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tomllib
from contextlib import redirect_stdout
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.cli.lazy import COMMAND_MODULES, LazyCommands
from hvrescue.report import i18n
from hvrescue.report.i18n import catalogue_files, parse_catalogue
from tests.builders import make_chain

CLI_DIR = Path(i18n.__file__).resolve().parent.parent / "cli"
MODULES_AT_EXIT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules))))\n"
    "sys.argv = ['hvrescue', *sys.argv[1:]]\n"
    "from hvrescue.cli.main import main\n"
    "main()\n"
)


def run_counting_modules(*args: str | Path) -> tuple[int, str, set[str]]:
    """Run the CLI in a child; its exit code, stdout and the modules it had imported at exit."""
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="", COLUMNS="100")
    env.pop("HVRESCUE_LANG", None)
    proc = subprocess.run(
        [sys.executable, "-c", MODULES_AT_EXIT, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.rsplit("MODULES ", 1)[-1]
    return proc.returncode, proc.stdout, set(line.split())


def command_modules(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m.startswith("hvrescue.cli.") and m.endswith("_cmds")}


# ---------------------------------------------------------------- lazy commands
def test_group_help_lists_every_command_without_importing_them_or_rich():
    rc, out, loaded = run_counting_modules("--help")
    assert rc == 0
    rows = out.split("Commands:", 1)[1].splitlines()
    listed = {line.split()[0] for line in rows if line.startswith("  ") and line[2] != " "}
    assert listed == set(COMMAND_MODULES)
    assert command_modules(loaded) == set()
    assert not {m for m in loaded if m == "rich" or m.startswith("rich.")}
    # The catalogues were read by the fast path, not by tomllib.
    assert "tomllib" not in loaded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["explain", "0xC03A000D"], {"hvrescue.cli.diagnose_cmds"}),
        (["check", "--help"], {"hvrescue.cli.disk_cmds"}),
    ],
)
def test_a_command_imports_only_its_own_module(args, expected):
    rc, out, loaded = run_counting_modules(*args)
    assert rc == 0, out
    assert command_modules(loaded) == expected


def test_check_of_a_disk_imports_only_the_disk_commands(tmp_path):
    base = make_chain(tmp_path / "vm", depth=1)[0]
    rc, _out, loaded = run_counting_modules("check", base)
    assert rc == 0
    assert command_modules(loaded) == {"hvrescue.cli.disk_cmds"}


def test_command_map_names_the_module_that_registers_each_command():
    from hvrescue.cli.main import cli

    commands = dict(cli.commands.items())  # iterating imports every module
    assert set(commands) == set(COMMAND_MODULES)
    for name, command in commands.items():
        assert command.callback is not None
        assert command.callback.__module__ == f"hvrescue.cli.{COMMAND_MODULES[name]}", name
        # the group lists a command it has not imported as visible, from the catalogue
        assert not command.hidden, name
        # every command runs with its -o file and --log-file in place, wrapped once
        assert getattr(command.callback, "_hvrescue_outputs", False), name
        assert not hasattr(command.callback.__wrapped__, "_hvrescue_outputs"), name
    # a new command module is not forgotten in the map
    files = {p.stem for p in CLI_DIR.glob("*_cmds.py")}
    assert files == set(COMMAND_MODULES.values())


def _group_help_in_process(lang: str) -> str:
    from hvrescue.cli.main import cli

    dict(cli.commands.items())  # every command loaded: the eager way
    buffer = io.StringIO()
    with redirect_stdout(buffer), pytest.raises(SystemExit):
        cli.main(["--lang", lang, "--help"], prog_name="hvrescue", standalone_mode=True)
    return buffer.getvalue()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_group_help_is_the_same_whether_commands_are_loaded_or_not(lang, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    eager = _group_help_in_process(lang)
    env = dict(os.environ, COLUMNS="100")
    lazy = subprocess.run(
        [sys.executable, "-c", MODULES_AT_EXIT, "--lang", lang, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    ).stdout
    # the child runs as "hvrescue" too (its sys.argv[0])
    assert "Usage" in eager or "使い方" in eager
    assert lazy == eager


def test_a_mistyped_command_is_still_matched_against_every_command():
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", "replay-lg"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert "'replay-log'" in proc.stderr  # click's "did you mean", from the full list


def test_lazy_commands_import_a_module_on_lookup_and_all_on_iteration():
    imported: list[str] = []

    def fake_import(name: str) -> None:
        imported.append(name)
        for cmd in {"one": ["a"], "two": ["b", "c"]}[name]:
            commands[cmd] = click.Command(cmd)

    commands = LazyCommands({"a": "one", "b": "two", "c": "two"}, fake_import)
    assert commands.names() == ["a", "b", "c"] and imported == []
    assert commands.get("b") is not None and imported == ["two"]
    assert commands.pending() == ["a"]
    assert commands.get("zzz") is None and imported == ["two"]
    assert sorted(commands) == ["a", "b", "c"] and imported == ["two", "one"]
    assert len(commands) == 3 and imported == ["two", "one"]


def test_every_command_module_is_imported_by_a_literal_import_statement():
    """What a bundler (PyInstaller, for hvrescue.exe) sees: each module by name in the code."""
    import ast
    import inspect

    from hvrescue.cli import lazy

    tree = ast.parse(inspect.getsource(lazy.import_command_module))
    spelled = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert spelled == {f"hvrescue.cli.{m}" for m in COMMAND_MODULES.values()}


# ---------------------------------------------------------------- catalogues
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_every_catalogue_file_reads_the_same_as_with_tomllib_and_takes_the_fast_path(lang):
    for file in catalogue_files(lang):
        text = file.read_text(encoding="utf-8")
        assert i18n._parse_simple(text) == tomllib.loads(text), file.name


_SAFE = st.characters(blacklist_categories=("Cs",))
_KEY = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n\r'))
_BARE = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)


def _basic(value: str, style: int) -> str:
    out = []
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t" and style % 2:
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}" if style % 3 else f"\\U{ord(ch):08X}")
        elif style % 5 == 0 and not ch.isascii():
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(_KEY, _BARE), st.text(_SAFE), st.integers(0, 29)), max_size=12),
    st.sampled_from(["\n", "\r\n"]),
)
def test_written_catalogues_read_as_tomllib_reads_them(entries, newline):
    lines = ["# a comment", ""]
    for key, value, style in entries:
        quoted = _basic(key, 0) if not key or style % 4 or not key.isascii() else key
        if quoted == key and not key.replace("-", "").replace("_", "").isalnum():
            quoted = _basic(key, 0)
        pad = " " * (style % 3)
        comment = "  # note" if style % 7 == 0 else ""
        lines.append(f"{pad}{quoted}{pad}={pad}{_basic(value, style)}{comment}")
    text = newline.join(lines) + newline
    _same_as_tomllib(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("\"\\=#ab.[]' \t\r\nuU01\x00\x7f\u00e9\ud7ff")), max_size=40))
def test_any_text_reads_as_tomllib_reads_it_or_fails_as_it_does(text):
    _same_as_tomllib(text)


def _same_as_tomllib(text: str) -> None:
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        with pytest.raises(tomllib.TOMLDecodeError):
            parse_catalogue(text)
        return
    assert parse_catalogue(text) == expected


def test_a_duplicate_key_in_a_file_is_still_an_error():
    with pytest.raises(tomllib.TOMLDecodeError):
        parse_catalogue('"a" = "x"\na = "y"\n')
