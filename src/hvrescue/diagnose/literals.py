"""The literal shortcut in front of the rules' regular expressions (``relevance.py``).

Most rule expressions name words or codes ("0x0*c000021a|STATUS_...|Entry Point Not Found") and
Python's re is slow on case-insensitive alternations (~50 us over an event's data). A match needs
one of the literal runs the pattern requires, compared as re compares them under IGNORECASE (the
simple lower case, and the few extra equivalences of ``re._casefix``), so a text that holds none
of them cannot match and is not searched. tests/test_event_relevance.py holds the shortcut
against ``re`` itself.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

import msgspec


def _classes() -> dict[str, str]:
    # the equivalences re itself uses
    extra: dict[int, tuple[int, ...]] = importlib.import_module("re._casefix")._EXTRA_CASES

    parent: dict[int, int] = {}

    def find(c: int) -> int:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    for lo, others in extra.items():
        for other in others:
            a, b = find(lo), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members = set(parent) | set(extra) | {o for v in extra.values() for o in v}
    return {chr(c): chr(find(c)) for c in members if find(c) != c}


_FOLD = _classes()
_FOLD_CHARS = re.compile("[" + re.escape("".join(_FOLD)) + "]")


def fold(text: str) -> str:
    """``text`` as re's IGNORECASE compares it: lower case (U+0130 as re lowers it), then each
    class of extra equivalents as one character."""
    if text.isascii():
        return text.lower()
    low = text.replace("\u0130", "i").lower()
    return low if low.isascii() else _FOLD_CHARS.sub(lambda m: _FOLD[m.group()], low)


MIN_LITERAL = 3
_SEPARATORS = frozenset(',:"\\+[]{}')
_NUMBER_CHARS = frozenset("0123456789.eE-+InfinityaN")
_encode = msgspec.json.encode


def inside_a_token(literal: str) -> bool:
    """Whether every place ``literal`` occurs in json.dumps text lies inside one token that
    msgspec writes alike: printable, no separator, bracket, quote or backslash (so within one
    string's unescaped characters; json.dumps puts a space only after "," and ":", so a space
    inside the literal is never one of those), not starting with a space, and not all number
    characters (a float's exponent is written differently)."""
    return (
        literal.isprintable()
        and not literal.startswith(" ")
        and not _SEPARATORS.intersection(literal)
        and not _NUMBER_CHARS.issuperset(literal)
    )


def quick_fold(value: Any) -> str | None:
    try:
        return fold(_encode(value).decode("utf-8"))
    except (TypeError, ValueError, UnicodeDecodeError, msgspec.EncodeError):
        return None  # not plain JSON (or not valid Unicode): the exact path decides


def _required(items: Any) -> list[str] | None:
    """Strings one of which every match of the parsed sequence ``items`` contains, or None."""
    c = importlib.import_module("re._constants")

    best: list[str] | None = None
    run: list[str] = []

    def consider(found: list[str] | None) -> None:
        nonlocal best
        if found and (best is None or min(map(len, found)) > min(map(len, best))):
            best = found

    for op, av in [*items, (None, None)]:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            # any part of a required run is required too: a leading space is left out (a
            # space may be json.dumps's own after "," or ":", see _inside_a_token)
            consider(["".join(run).lstrip(" ")])
            run = []
        if op is c.BRANCH:
            alternatives = [_required(branch) for branch in av[1]]
            if all(a is not None for a in alternatives):
                consider([s for a in alternatives if a is not None for s in a])
        elif op is c.SUBPATTERN:
            consider(_required(av[3]))
    return best


@functools.lru_cache(maxsize=1024)
def literals(pattern: str) -> tuple[str, ...] | None:
    """The folded literal runs one of which any match of ``pattern`` (IGNORECASE) contains, or
    None when it has no such runs of ``MIN_LITERAL`` characters or more."""
    _parser = importlib.import_module("re._parser")

    try:
        found = _required(_parser.parse(pattern, re.IGNORECASE))
    except (re.error, RecursionError, TypeError, ValueError):
        return None
    if not found or min(map(len, found)) < MIN_LITERAL:
        return None
    return tuple(sorted({fold(s) for s in found}))
