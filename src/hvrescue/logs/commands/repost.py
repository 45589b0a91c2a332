"""Undo what reposting does to a command's output, line for line (the line numbers stay those
of the file): quote markers ("> "), code fences, non-breaking and full-width spaces, zero-width
characters. Column positions inside a quoted block stay aligned: the same prefix is removed
from every line of the block."""

from __future__ import annotations

import re
import weakref
from typing import Any

QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
FENCE = re.compile(r"^\s*(?:>\s*)*(?:```|~~~)[\w+-]*\s*$")
_ODD_SPACES = ("\u00a0", "\u2007", "\u202f")
_INVISIBLES = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_MARKS = (">", "`", "~")


def clean_line(line: str) -> str:
    """One line without quote markers, fences, odd spaces (tabs become four spaces)."""
    head = line.lstrip(" ")[:1]
    if line.isascii() and head not in _MARKS:
        # The common case, kept cheap: a log of a million lines passes here.
        return (line.replace("\t", "    ") if "\t" in line else line).rstrip()
    if FENCE.match(line):
        return ""
    line = QUOTE.sub("", line, count=1)
    if not line.isascii():
        line = _unodd(line)
    return line.replace("\t", "    ").rstrip()


def _unodd(line: str) -> str:
    for ch in _ODD_SPACES:
        if ch in line:
            line = line.replace(ch, " ")
    for ch in _INVISIBLES:
        if ch in line:
            line = line.replace(ch, "")
    return line


def clean_lines(lines: list[str]) -> list[str]:
    """``lines`` as the console printed them, as far as that can be told (same length)."""
    return [clean_line(line) for line in lines]


def clean_keep_tabs(line: str) -> str:
    """As ``clean_line`` but tabs kept (msinfo32 separates its columns with them)."""
    if FENCE.match(line):
        return ""
    line = QUOTE.sub("", line, count=1)
    return (line if line.isascii() else _unodd(line)).rstrip(" ")


_CACHE: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def cleaned(text: Any) -> list[str]:
    """``clean_lines(text.lines)``, made once per text: every command parser asks for it."""
    found = _CACHE.get(text)
    if found is None or len(found) != len(text.lines):
        found = clean_lines(text.lines)
        _CACHE[text] = found
    return found
