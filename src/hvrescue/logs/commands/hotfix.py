"""Installed updates: `Get-HotFix` (table) and `wmic qfe list` (fixed-width columns)."""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.events import parse_local_time
from hvrescue.logs.textutil import Text

DASH_LINE = re.compile(r"^\s*-+(\s+-+)+\s*$")
KB = re.compile(r"^KB\d{6,7}$", re.I)


def _spans_from_dashes(line: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", line)]


def _spans_from_header(line: str) -> list[tuple[int, int]]:
    starts = [m.start() for m in re.finditer(r"\S+", line)]
    return [(s, e) for s, e in zip(starts, [*starts[1:], 10**6], strict=True)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    """Cells of a fixed-width row: each column runs to the next column's start."""
    out = []
    for n, (start, _end) in enumerate(spans):
        stop = spans[n + 1][0] if n + 1 < len(spans) else len(line)
        out.append(line[start:stop].strip())
    return out


def _fact(text: Text, i: int, row: dict[str, str], source: str) -> Fact | None:
    kb = (row.get("hotfixid") or "").strip()
    if not KB.match(kb):
        return None
    installed = row.get("installedon") or row.get("installdate") or ""
    attrs = {
        "kb": kb.upper(),
        "description": row.get("description") or None,
        "installed_on": installed or None,
        "installed_on_local": parse_local_time(installed) if installed else None,
        "installed_by": row.get("installedby") or None,
        "computer": row.get("source") or row.get("csname") or None,
        "source": source,
    }
    return Fact("hotfix", attrs, Provenance(text.path, text.locator(i)))


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = cleaned(text)  # a table reposted as a quote or in a fence reads the same
    i = 0
    while i < len(lines):
        line = lines[i]
        if "HotFixID" not in line or ":" in line:
            i += 1
            continue
        header = line
        dashed = i + 1 < len(lines) and bool(DASH_LINE.match(lines[i + 1]))
        spans = _spans_from_dashes(lines[i + 1]) if dashed else _spans_from_header(header)
        names = [header[s:e].strip().lower() for s, e in _spans_from_header(header)]
        if dashed and len(names) != len(spans):
            names = header.split()
            names = [n.lower() for n in names]
        source = "get-hotfix" if dashed else "wmic-qfe"
        j = i + (2 if dashed else 1)
        while j < len(lines) and lines[j].strip() and not text.is_prompt(j):
            cells = _cells(lines[j], spans)
            fact = _fact(text, j, dict(zip(names, cells, strict=False)), source)
            if fact is not None:
                facts.append(fact)
            j += 1
        i = j
    return facts
