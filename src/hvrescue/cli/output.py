"""Output helpers: JSON for machines, rich tables for people (colour only on a terminal).

Everything a command prints goes through :func:`console` (text) and :func:`emit_json` /
:func:`stdout_binary` (bytes), so that ``-o FILE`` (:func:`output_file`) takes all of it to a
new file instead of stdout, and ``-q`` (:func:`set_quiet`) silences progress bars and hints.
JSON is always UTF-8, whatever the console's code page.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from hvrescue.cli.plain import Printer, Styled
from hvrescue.report.i18n import Messages
from hvrescue.units import human_size

if TYPE_CHECKING:
    # Imported where used: `hvrescue --help` and the commands that print no table start
    # without rich's console and table (about a third of the CLI's start-up).
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hvrescue.findings import Finding

SEVERITY_STYLE = {"info": "dim", "warning": "yellow", "error": "red", "critical": "bold red"}


class _Sink:
    """The -o file while a command runs: text for rich, bytes for JSON/JSONL/CSV, one stream."""

    def __init__(self, text: io.TextIOWrapper, binary: IO[bytes]) -> None:
        self.text = text
        self.binary = binary
        self.written = False


class _State:
    quiet = False
    sink: _Sink | None = None


_state = _State()


def set_quiet(quiet: bool) -> None:
    """-q: no progress bars and no hints; results and errors are printed as always."""
    _state.quiet = quiet


def is_quiet() -> bool:
    return _state.quiet


def console(stderr: bool = False) -> Console:
    """A console for stdout (the -o file while one is open) or stderr."""
    from rich.console import Console

    sink = _state.sink
    if not stderr and sink is not None:
        sink.written = True
        return Console(file=sink.text, highlight=False, soft_wrap=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def printer(stderr: bool = False) -> Printer:
    """What :func:`console` prints :class:`Styled` lines to, without importing rich where its
    console would write them as plain text anyway (no terminal: a pipe, a file, -o)."""
    sink = _state.sink
    if not stderr and sink is not None:
        sink.written = True
        return Printer(sink.text, lambda: console())
    return Printer(sys.stderr if stderr else sys.stdout, lambda: console(stderr=stderr))


def styled(text: str, style: str = "") -> Styled:
    """One line of text with a rich style name, for :func:`printer`."""
    return Styled(text, style)


def rich_text(text: str, style: str = "") -> Text:
    """``rich.text.Text(text, style=style)``, rich imported when one is made."""
    from rich.text import Text

    return Text(text, style=style)


def escape(text: str) -> str:
    """``rich.markup.escape``: text printed inside rich markup, rich imported when needed."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)


def hint(text: str | Text) -> None:
    """A hint for a person on stderr (what to try next, where something went); not with -q."""
    if not _state.quiet:
        console(stderr=True).print(text)


@contextlib.contextmanager
def stdout_binary() -> Iterator[IO[bytes]]:
    """The byte stream of stdout (or of the -o file), text written before it flushed first."""
    sink = _state.sink
    if sink is not None:
        sink.written = True
        sink.text.flush()
        yield sink.binary
        sink.binary.flush()
        return
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (an embedding application): decode what we write
        yield cast(IO[bytes], _TextAsBinary(sys.stdout))
        return
    yield buffer
    buffer.flush()


class _TextAsBinary(io.RawIOBase):
    def __init__(self, text: IO[str]) -> None:
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._text.write(bytes(data).decode("utf-8", errors="replace"))
        return len(data)


def _json_default(value: Any) -> Any:
    """Values JSON has no type for (bytes of a damaged registry value, sets): never a crash."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def json_bytes(data: Any, indent: int | None = 2) -> bytes:
    """``data`` as UTF-8 JSON. A string that is no valid Unicode (a file name in a foreign
    encoding, kept as surrogates) is written \\u-escaped instead: valid JSON, nothing lost."""
    import json

    separators = None if indent is not None else (",", ":")
    text = json.dumps(
        data, ensure_ascii=False, indent=indent, separators=separators, default=_json_default
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(
            data, ensure_ascii=True, indent=indent, separators=separators, default=_json_default
        ).encode("ascii")


def emit_json(data: Any) -> None:
    """One JSON document on stdout (or the -o file), UTF-8 whatever the console's code page."""
    with stdout_binary() as out:
        out.write(json_bytes(data) + b"\n")


@contextlib.contextmanager
def output_file(path: str) -> Iterator[None]:
    """Take what the command prints to the new file ``path`` (through ``atomic_output``: a
    temporary name, renamed when complete, never over an existing file).

    The command ends with ``sys.exit(code)``: the file is kept when the command printed
    something or ended with 0 or 1; an error that printed nothing (the message went to stderr)
    or any exception leaves no file."""
    from hvrescue.io.atomic import atomic_output

    ended: SystemExit | None = None
    with atomic_output(path) as fd:
        binary = open(fd, "wb", closefd=False)  # noqa: SIM115 (closed below, fd by atomic_output)
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
        sink = _Sink(text, binary)
        _state.sink = sink
        try:
            try:
                yield
            except SystemExit as exc:
                ended = exc
            if ended is not None and not sink.written and ended.code not in (None, 0, 1):
                raise ended  # nothing to keep: no file
            text.flush()
        finally:
            _state.sink = None
            with contextlib.suppress(ValueError, OSError):
                text.detach()
            binary.close()
    if ended is not None:
        raise ended


def make_stream_safe(stream: Any) -> None:
    """Text on a console whose code page cannot show a character prints a replacement instead
    of ending the command (cp1252 and Japanese, say); a file name that is no valid Unicode
    prints as its bytes."""
    reconfigure = getattr(stream, "reconfigure", None)
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if reconfigure is None:
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        reconfigure(errors="surrogateescape" if encoding == "utf8" else "replace")


# ---------------------------------------------------------------- sizes
def size_text(n: int | None, msg: Messages) -> str:
    """A size for a person, the exact count beside it: ``64.0 GiB (68719476736 bytes)``."""
    if n is None:
        return "-"
    if -1024 < n < 1024:
        return msg("ui.size.bytes", count=n)
    return msg("ui.size.exact", human=human_size(n), bytes=n)


def is_size_key(key: str) -> bool:
    """Field names that hold byte counts in the structures `info` shows (offsets and sector
    sizes stay exact numbers)."""
    name = key.rsplit(".", 1)[-1].split("[", 1)[0]
    if name.endswith("sector_size") or name.endswith("_count"):
        return False
    return name in ("size", "length") or name.endswith(("_size", "_length", "_bytes"))


# ---------------------------------------------------------------- tables
def finding_json(f: Finding, msg: Messages) -> dict[str, Any]:
    out = f.as_dict()
    out["message"] = msg(f.message_key, **f.message_params)
    return out


def findings_table(findings: list[Finding], msg: Messages, show_file: bool = True) -> Text:
    """Findings as a list: one head line (severity, code, file, offset), then the message."""
    return findings_lines(findings, msg, show_file).rich()


def findings_lines(findings: list[Finding], msg: Messages, show_file: bool = True) -> Styled:
    """:func:`findings_table` for :func:`printer` (rich imported only where it draws)."""
    text = Styled()
    for f in findings:
        sev = f.severity.label
        text.append(f"[{msg('ui.severity.' + sev)}]", style=SEVERITY_STYLE[sev])
        text.append(f" {f.code}", style="bold")
        if show_file:
            text.append(f"  {f.path}")
        if f.offset is not None:
            text.append(f" @ {f.offset:#x}")
        text.append("\n    " + msg(f.message_key, **f.message_params) + "\n")
    return text


def _cell(value: Any, msg: Messages) -> str:
    if isinstance(value, bool):  # yes / no in the reader's language
        return msg(f"ui.value.{str(value).lower()}")
    return "" if value is None else str(value)


def kv_table(rows: list[tuple[str, Any]], msg: Messages) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True)
    table.add_column(msg("ui.col.field"))
    table.add_column(msg("ui.col.value"), overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), Text(_cell(value, msg)))
    return table


def print_kv_table(rows: list[tuple[str, Any]], msg: Messages) -> None:
    """:func:`kv_table` on stdout (or the -o file): drawn without rich where rich would draw it
    as plain text (:mod:`hvrescue.cli.plain_table`), by rich otherwise."""
    header = (msg("ui.col.field"), msg("ui.col.value"))
    if not printer().table(header, [(key, _cell(value, msg)) for key, value in rows]):
        console().print(kv_table(rows, msg))


def sized_rows(rows: list[tuple[str, Any]], msg: Messages) -> list[tuple[str, Any]]:
    """Rows whose field is a byte count shown as a human size with the exact count."""
    return [
        (key, size_text(value, msg))
        if is_size_key(key) and type(value) is int and value >= 0
        else (key, value)
        for key, value in rows
    ]


def flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    """Nested dicts/lists as dotted rows for the human 'info' view."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append((prefix, value))


def transfer_progress(as_json: bool) -> Any:
    """A bytes / rate / ETA progress bar on stderr when it is a terminal and output is for a
    person; None otherwise (pipes, --json, -q)."""
    err = console(stderr=True)
    if as_json or _state.quiet or not err.is_terminal:
        return None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


MAX_GAP_LINES = 20


def gaps_table(gaps: list[Any], msg: Messages) -> Text:
    """Undefined ranges, one line each (the first few; the count of the rest)."""
    from rich.text import Text

    text = Text()
    for g in gaps[:MAX_GAP_LINES]:
        text.append(f"  {g.offset:#x}+{g.length:#x}", style="red")
        text.append(f" ({human_size(g.length)})  {msg('gap.cause.' + g.cause)}  {g.path}\n")
    if len(gaps) > MAX_GAP_LINES:
        text.append(msg("ui.gaps.more", count=len(gaps) - MAX_GAP_LINES) + "\n")
    return text


# ---------------------------------------------------------------- output paths
def _real(path: str) -> str:
    """``path`` with its folder resolved (the file itself need not exist)."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return os.path.normcase(os.path.join(folder, os.path.basename(path)))


def check_output_path(path: str, named: list[str], inputs: list[str] | None = None) -> None:
    """Refuse, before any work, an output file (-o, --log-file) that exists, that is one of the
    paths the command names (its inputs, searched folders, outputs) or inside one of those
    folders, or beside one of its ``inputs`` in the same folder: evidence is never written to,
    and nothing new appears in its tree."""
    from hvrescue.errors import InputError
    from hvrescue.io.atomic import check_output_folder

    if os.path.lexists(path):
        raise InputError("error.output.exists", path=path)
    check_output_folder(path)
    target = _real(path)
    for other in named:
        real = os.path.normcase(os.path.realpath(other))
        if target == real:
            raise InputError("error.output.is-input", path=path, input=other)
        if os.path.isdir(real) and target.startswith(real.rstrip(os.sep) + os.sep):
            raise InputError("error.output.inside-input", path=path, input=other)
    for other in inputs or []:
        if os.path.isfile(other):
            folder = os.path.normcase(os.path.dirname(os.path.realpath(other)))
            if os.path.dirname(target) == folder:
                raise InputError("error.output.beside-input", path=path, input=other)
