"""Help text that fits the terminal: widths in columns (a Japanese character takes two), lines
broken between words or between wide characters, never before closing punctuation."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import click


def cell_width(text: str) -> int:
    """Columns a terminal gives ``text``: East Asian wide and full-width characters take two."""
    if text.isascii():  # no wide or combining character: one column each (most help text)
        return len(text)
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


# Characters a Japanese line may not begin with (they close what precedes them).
_NO_LINE_START = set("、。，．・：；？！）」』】〕〉》ー々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")
# Runs of white space and of anything else. A wide character (U+1100 to U+FFFF) is a piece of
# its own: split out by hand, as a character class of that range takes 4 ms to compile (a
# tenth of `hvrescue --help`'s own time; tests/test_plain_output.py holds the two ways alike).
_SPLIT = re.compile(r"\s+|\S+")


def _tokens(text: str) -> list[str]:
    r"""What ``re.findall(r"\s+|[^\s\u1100-\uffff]+|.", text, re.DOTALL)`` finds."""
    tokens: list[str] = []
    for token in _SPLIT.findall(text):
        if token.isascii() or token[0].isspace():
            tokens.append(token)
            continue
        run = ""
        for ch in token:
            if "\u1100" <= ch <= "\uffff":
                if run:
                    tokens.append(run)
                    run = ""
                tokens.append(ch)
            else:
                run += ch
        if run:
            tokens.append(run)
    return tokens


def _units(text: str) -> list[str]:
    """Pieces a line may break between: words of narrow characters, single wide characters
    (with the punctuation that must stay with them), runs of spaces."""
    if text.isascii():  # no wide character, nothing of _NO_LINE_START
        return _SPLIT.findall(text)
    units: list[str] = []
    for token in _tokens(text):
        if units and len(token) == 1 and token in _NO_LINE_START and not units[-1].isspace():
            units[-1] += token
        else:
            units.append(token)
    return units


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` columns (a longer word alone on its line is cut)."""
    width = max(width, 10)
    lines: list[str] = []
    line = ""
    for unit in _units(" ".join(text.split())):
        if unit.isspace():
            if line and cell_width(line) + 1 <= width:
                line += " "
            elif line:
                lines.append(line.rstrip())
                line = ""
            continue
        while cell_width(line) + cell_width(unit) > width:
            if line.strip():
                lines.append(line.rstrip())
                line = ""
                continue
            cut = 0  # a unit wider than a line: cut it where it fills the line
            while cut < len(unit) and cell_width(unit[: cut + 1]) <= width:
                cut += 1
            lines.append(unit[: max(cut, 1)])
            unit = unit[max(cut, 1) :]
        line += unit
    if line.strip():
        lines.append(line.rstrip())
    return lines


class CellFormatter(click.HelpFormatter):
    """click's formatter, measuring in terminal columns (Japanese is two columns a character)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        prefix = f"{prefix or 'Usage:'} "  # our commands always give the catalogue's
        head = f"{' ' * self.current_indent}{prefix}{prog} "
        indent = " " * cell_width(head)
        lines = wrap(args, self.width - cell_width(head)) or [""]
        self.write(head + lines[0] + "\n")
        for line in lines[1:]:
            self.write(indent + line + "\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        for i, paragraph in enumerate(re.split(r"\n\s*\n", text.strip())):
            if i:
                self.write("\n")
            for line in wrap(paragraph, self.width - self.current_indent):
                self.write(f"{indent}{line}\n")

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        rows = list(rows)
        if not rows:
            return
        first = min(max(cell_width(r[0]) for r in rows), col_max)
        indent = " " * self.current_indent
        text_at = self.current_indent + first + col_spacing
        for term, text in rows:
            width = cell_width(term)
            lines = wrap(text, self.width - text_at) if text else []
            if width <= first:
                pad = " " * (first - width + col_spacing)
                self.write(f"{indent}{term}{pad}{lines[0] if lines else ''}".rstrip() + "\n")
                lines = lines[1:]
            else:
                self.write(f"{indent}{term}\n")
            for line in lines:
                self.write(" " * text_at + line + "\n")


class HelpContext(click.Context):
    formatter_class = CellFormatter
