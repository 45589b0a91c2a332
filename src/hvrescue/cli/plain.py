"""Styled lines printed without importing rich's console where rich would add nothing to them.

Importing ``rich.console`` costs a small command more than the command itself (about 40 ms of
a 0.1 s start here). When the stream is no terminal, rich writes no escape codes at all: it
only wraps each line at the console's width. :class:`Printer` then writes the same bytes
itself, wrapping with rich's own line-breaking functions (``rich._wrap`` and ``rich.cells``,
a few ms to import), so the output is rich's to the byte; on a terminal, on Windows, for text
with tabs, or wherever rich's choice is in any doubt it hands the line to rich's Console.
tests/test_plain_output.py holds the two side by side.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

# What rich.text.Text removes from any text it is given (rich.control.STRIP_CONTROL_CODES:
# bell, backspace, vertical tab, form feed, carriage return).
_STRIP_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))
_TRAILING_SPACE = re.compile(r"\s+$")  # as rich.text's _re_whitespace


class Styled:
    """A text of runs, each with a rich style name ("bold", "red", "" for none): what
    ``rich.text.Text`` holds for the lines our commands print, without importing rich."""

    __slots__ = ("parts",)

    def __init__(self, text: str = "", style: str = "") -> None:
        self.parts: list[tuple[str, str]] = [(text, style)] if text else []

    def append(self, text: str, style: str = "") -> Styled:
        if text:
            self.parts.append((text, style))
        return self

    @property
    def plain(self) -> str:
        return "".join(text for text, _style in self.parts)

    def rich(self) -> Text:
        """The same text as rich's Text (styles kept), for a console that draws them."""
        from rich.text import Text

        if len(self.parts) == 1:  # as the commands built it before: the style the Text's own
            text, style = self.parts[0]
            return Text(text, style=style)
        out = Text()
        for text, style in self.parts:
            out.append(text, style=style or None)
        return out


def plain_width(stream: Any) -> int | None:
    """The width rich's Console would wrap at when it writes ``stream`` as plain text (no
    terminal, so no escape codes); None when rich would draw styles there, or when its choice
    depends on things not repeated here (Windows consoles, notebooks, IDLE)."""
    if stream is None or sys.platform == "win32" or "IPython" in sys.modules:
        return None
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return None
    environ = os.environ
    tty_compatible = environ.get("TTY_COMPATIBLE", "")
    if tty_compatible == "1":
        return None
    if tty_compatible != "0":
        if environ.get("FORCE_COLOR") is not None:
            if environ["FORCE_COLOR"] != "":
                return None
        else:
            isatty = getattr(stream, "isatty", None)
            try:
                if isatty is not None and isatty():
                    return None
            except ValueError:  # closed: rich says no terminal
                pass
    # rich.console.Console: COLUMNS first, else the first standard stream with a size, else 80.
    columns = environ.get("COLUMNS")
    width: int | None = None
    if columns is not None and columns.isdigit():
        width = int(columns)
    else:
        for fd in (0, 1, 2):
            try:
                width = os.get_terminal_size(fd).columns
            except (AttributeError, ValueError, OSError):
                continue
            break
        width = width or 80
    return width if width > 0 else None


_WORD = re.compile(r"\s*\S+\s*")  # as rich._wrap.re_word


def divide_ascii(text: str, width: int, fold: bool = True) -> list[int]:
    """``rich._wrap.divide_line(text, width, fold)`` for printable ASCII text, where each
    character is one cell (so without importing rich's cell tables)."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(text):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width and not fold:  # alone on its line, cut there later
            if start:
                breaks.append(start)
            offset = len(word)
        elif length > width:  # folded across lines, `width` characters each
            pieces = [word[i : i + width] for i in range(0, len(word), width)]
            for i, piece in enumerate(pieces):
                if start:
                    breaks.append(start)
                if i == len(pieces) - 1:
                    offset = len(piece)
                else:
                    start += len(piece)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def rstrip_end(line: str, width: int) -> str:
    """Text.rstrip_end: the white space at the end beyond ``width`` characters dropped."""
    if len(line) > width:
        space = _TRAILING_SPACE.search(line)
        if space is not None:
            line = line[: len(line) - min(len(space.group(0)), len(line) - width)]
    return line


def wrap_plain(text: str, width: int) -> str:
    """What rich's Console prints for ``Text(text)`` without a terminal at ``width`` cells:
    each line broken where ``Text.wrap`` breaks it (words, folding the longer ones), trailing
    white space beyond the width dropped, cropped to the width, and a final newline."""
    text = text.translate(_STRIP_CONTROL)
    out: list[str] = []
    for piece in text.split("\n"):  # as Text.split(allow_blank=True)
        ascii_text = _printable_ascii(piece)
        if ascii_text and len(piece) <= width:
            out.append(piece)  # fits: nothing to break
            continue
        if ascii_text:
            offsets = divide_ascii(piece, width)
        else:
            from rich._wrap import divide_line

            offsets = divide_line(piece, width, fold=True)
        for start, end in zip([0, *offsets], [*offsets, len(piece)], strict=True):
            line = rstrip_end(piece[start:end], width)
            if ascii_text:
                line = line[:width]  # Text.truncate (overflow "fold"): one cell a character
            else:
                from rich.cells import cell_len, set_cell_size

                if cell_len(line) > width:
                    line = set_cell_size(line, width)
            out.append(line)
    return "\n".join(out) + "\n"


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


class Printer:
    """Prints :class:`Styled` lines to one stream as rich's Console(highlight=False,
    soft_wrap=False) would: plain where rich adds no codes, through rich otherwise."""

    def __init__(self, stream: IO[str] | None, make_console: Any) -> None:
        self._stream = stream
        self._make_console = make_console  # () -> rich Console for the same stream
        self._console: Any = None

    def table(self, header: tuple[str, str], rows: list[tuple[str, str]]) -> bool:
        """A two-column table as rich draws ``Table(show_header=True)`` with a folding second
        column (:mod:`hvrescue.cli.plain_table`); False where rich must draw it."""
        width = plain_width(self._stream)
        encoding = (getattr(self._stream, "encoding", "utf-8") or "utf-8").lower()
        if width is None or self._stream is None or not encoding.startswith("utf"):
            return False  # (rich draws ASCII boxes where the stream cannot encode its own)
        from hvrescue.cli.plain_table import draw_table

        drawn = draw_table(header, rows, width)
        if drawn is None:
            return False
        self._write(drawn)
        return True

    def print(self, line: Styled | str) -> None:
        styled = line if isinstance(line, Styled) else Styled(line)
        text = styled.plain
        width = plain_width(self._stream) if "\t" not in text else None
        if width is None or self._stream is None:
            if self._console is None:
                self._console = self._make_console()
            self._console.print(styled.rich())
            return
        if _printable_ascii(text) and len(text) <= width:
            rendered = text + "\n"
        else:
            rendered = wrap_plain(text, width)
        self._write(rendered)

    def _write(self, text: str) -> None:
        assert self._stream is not None
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            # as rich.console.Console.on_broken_pipe: the reader went away, exit 1 quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(1) from None
