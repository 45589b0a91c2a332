"""Format-Table text that a mail client or a forum hard-wrapped (at 72 or 76 columns, say):
a line longer than the width was cut at its last space before it (or inside a longer word),
the spaces there dropped, the rest moved to the next line at column 0. A header wider than the
width comes out as two (three) header lines, then as many rows of dashes; a row continues on
the following line(s). Nothing tells how many spaces a cut dropped, so every place the rest may
have started is tried (and every gap of the header): a reading is kept where each value sits
as PowerShell puts it (starts at its dashes or ends at them, each column one way in all rows,
no value across two columns). A row with two readings keeps only the values both give; one
with none is left out. A line that starts with spaces is never a cut's rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.logs.commands import pstable
from hvrescue.logs.textutil import Text

MAX_GAP = 80  # spaces a cut may have dropped (the widest column of a console table, about)
MAX_GAP_3 = 30  # the same when the header was cut twice
MAX_READINGS = 24  # candidate readings of one row kept while its pieces are put back
MAX_ROWS = 400  # physical lines of one wrapped table read this way
MAX_CONFIGS = 2000
TOKEN = re.compile(r"[^ ]+")


@dataclass
class Unwrapped:
    """A wrapped table put back: logical lines, first physical line and unsure fields."""

    header: str
    dashes: str
    rows: list[str]
    origin: list[int]
    unsure: list[set[str]] = field(default_factory=list)
    joined: bool = False  # some row or the header was put back from pieces
    whole: bool = True  # every line was read into a row, every field sure


def _plain(line: str) -> str:
    return line.replace(pstable.WIDE_FILL, "")


def _tokens(line: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in TOKEN.finditer(line)]


def fits(line: str, spans: list[tuple[int, int]], partial: bool = False) -> bool:
    """Whether ``line`` (cells) sits on the columns as a row (``partial``: it may stop early)."""
    toks = _tokens(line)
    if not toks:
        return True
    col: list[int | None] = []
    for a, b in toks:
        hit = [j for j, (d0, d1) in enumerate(spans) if a < d1 and d0 < b]
        if len(hit) > 1:
            return False
        col.append(hit[0] if hit else None)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for (a, b), j in zip(toks, col, strict=True):
        if j is not None:
            first.setdefault(j, a)
            last[j] = b
    left = {j for j, a in first.items() if a == spans[j][0]}
    right = {j for j, b in last.items() if b == spans[j][1]}
    end_col = _column_of(toks[-1], spans)
    for j in first:
        if j not in left and j not in right and not (partial and j == end_col):
            return False
    for (a, _b), j in zip(toks, col, strict=True):
        if j is not None:
            continue
        before = max((n for n, (_d0, d1) in enumerate(spans) if d1 <= a), default=None)
        after = before + 1 if before is not None else 0
        ok_left = before is not None and before in left
        ok_right = after < len(spans) and (after in right or (partial and after == end_col))
        if not ok_left and not ok_right and not (partial and before == end_col):
            return False
    return True


def _column_of(tok: tuple[int, int], spans: list[tuple[int, int]]) -> int:
    a, b = tok
    n = 0
    for j, (d0, _d1) in enumerate(spans):
        if d0 < b:
            n = j
    return n if a < b else 0


def _places(built: str, piece: str, spans: list[tuple[int, int]], midword: bool) -> list[int]:
    """Where the rest ``piece`` may start in the logical line ``built``."""
    e = len(built)
    out = {e + 1}
    if midword:
        out.add(e)
    d0_last = spans[-1][0]
    if e <= d0_last:
        out.update(d0 for d0, _d1 in spans if d0 > e)
        ends = [b for _a, b in _tokens(piece)]
        for _d0, d1 in spans:
            out.update(d1 - b for b in ends if d1 - b > e)
    return sorted(out)


def _word(line: str) -> str:
    return line.split(" ", 1)[0]


def _last_word(line: str) -> str:
    return line.rsplit(" ", 1)[-1]


def _rows(
    pieces: list[str], raw: list[str], spans: list[tuple[int, int]], width: int
) -> tuple[int, list[tuple[int, int, list[str]]]]:
    """The logical rows of ``pieces`` (console cells, right-trimmed) for one column layout:
    (pieces left unread, [(first piece, pieces used, readings)])."""
    bad = 0
    out: list[tuple[int, int, list[str]]] = []
    i = 0
    while i < len(pieces):
        first = i
        if not fits(pieces[i], spans, partial=True):
            bad += 1
            out.append((i, 1, []))  # left out: the rows either side may miss a piece
            i += 1
            continue
        readings = [pieces[i]]
        i += 1
        while i < len(pieces) and pieces[i][:1] not in ("", " "):
            prev_raw = raw[i - 1]
            word = _word(raw[i])
            midword = len(prev_raw) == width and len(_last_word(prev_raw)) + len(word) > width
            joins: list[tuple[str, bool]] = []
            for built in readings:
                for p in _places(built, pieces[i], spans, midword):
                    line = built.ljust(p) + pieces[i]
                    if fits(line, spans, partial=True):
                        evident = len(prev_raw) + max(p - len(built), 1) + len(word) > width
                        joins.append((line, evident or p == len(built)))
            # A rest whose first word would have fitted on the line above is no rest.
            chosen = [line for line, ev in joins if ev]
            if not chosen:
                break
            readings = list(dict.fromkeys(chosen))[:MAX_READINGS]
            i += 1
        whole = [r for r in readings if fits(r, spans)]
        if not whole:
            bad += i - first
            out.append((first, i - first, []))
            continue
        out.append((first, i - first, whole))
    return bad, out


def _joined(pieces: list[str], gaps: tuple[int, ...]) -> str:
    line = pieces[0]
    for gap, piece in zip(gaps, pieces[1:], strict=True):
        line = line + " " * gap + piece
    return line


def _header(heads: list[str], dashes: str, spans: list[tuple[int, int]]) -> str | None:
    """The header pieces placed over the dashes (None when a label does not fit)."""
    line = heads[0]
    for piece in heads[1:]:
        placed = None
        for p in _starts_for(line, piece, spans):
            cand = line.ljust(p) + piece
            if pstable._names(cand, spans[: _count_upto(spans, len(cand))]) is not None:
                placed = cand
                break
        if placed is None:
            return None
        line = placed
    return line if pstable._names(line, spans) is not None else None


def _starts_for(line: str, piece: str, spans: list[tuple[int, int]]) -> list[int]:
    e = len(line)
    out = [d0 for d0, _d1 in spans if d0 > e]
    out += [d1 - len(_word(piece)) for _d0, d1 in spans if d1 - len(_word(piece)) > e]
    out.append(e + 1)
    return list(dict.fromkeys(p for p in out if p > e))


def _count_upto(spans: list[tuple[int, int]], end: int) -> int:
    return sum(1 for d0, _d1 in spans if d0 < end)


def unwrap(lines: list[str], heads: list[int], dash_rows: list[int], stop: int) -> Unwrapped | None:
    """The table whose header lines are ``heads``, rows of dashes ``dash_rows`` and rows
    the lines after them up to ``stop``, put back together (None when nothing fits)."""
    first_row = dash_rows[-1] + 1
    stop = min(stop, first_row + MAX_ROWS)
    view = {k: pstable._cells_wide(lines[k]).rstrip() for k in [*heads, *dash_rows]}
    pieces = [pstable._cells_wide(lines[k]).rstrip() for k in range(first_row, stop)]
    raw = [lines[k].rstrip() for k in range(first_row, stop)]
    width = max(len(lines[k].rstrip()) for k in [*heads, *dash_rows, *range(first_row, stop)])
    breaks = len(dash_rows) - 1
    limit = MAX_GAP if breaks <= 1 else MAX_GAP_3
    results: list[tuple[tuple[int, ...], str, str, list[tuple[int, int, list[str]]]]] = []
    for gaps in _gap_choices(breaks, limit):
        dashes = _joined([view[k] for k in dash_rows], gaps)
        spans = pstable._spans(dashes)
        if not pstable.DASH_ROW.match(dashes) or len(spans) > pstable.MAX_COLUMNS:
            continue
        header = _header([view[k] for k in heads], dashes, spans)
        if header is None:
            continue
        bad, rows = _rows(pieces, raw, spans, width)
        conflicts = _align(spans, rows)
        results.append((_score(bad, conflicts, header, dashes, spans, rows), header, dashes, rows))
        if breaks == 0:
            break
    if not results:
        return None
    least = min(r[0] for r in results)
    best = [r for r in results if r[0] == least]
    got = _agree(best, first_row, breaks > 0)
    if got is not None and least[0]:
        got.whole = False
    return got


def _score(
    bad: int,
    conflicts: int,
    header: str,
    dashes: str,
    spans: list[tuple[int, int]],
    rows: list[Any],
) -> tuple[int, int, int, int]:
    """Lines unread, alignment conflicts, rows run together, values left empty."""
    names = pstable._names(header, spans) or []
    empty = 0
    for _first, _used, readings in rows[:MAX_ROWS]:
        if not readings:
            continue
        cells = _line_cells(header, dashes, spans, readings[0], names)
        empty += sum(1 for v in (cells or {}).values() if not v)
    return bad, conflicts, -len(rows), empty


def _sides(line: str, spans: list[tuple[int, int]]) -> dict[int, set[str]]:
    """Per column with text: "L" if it starts at the dashes, "R" if it ends at them."""
    out: dict[int, set[str]] = {}
    for a, b in _tokens(line):
        for j, (d0, d1) in enumerate(spans):
            if a < d1 and d0 < b:
                side = out.setdefault(j, set())
                if a == d0:
                    side.add("L")
                if b == d1:
                    side.add("R")
    return out


def _align(spans: list[tuple[int, int]], rows: list[Any]) -> int:
    """Rows that read a column left- and right-aligned (PowerShell aligns it one way)."""
    sides: list[set[str]] = [{"L", "R"} for _ in spans]
    conflicts = 0
    for _first, _used, readings in rows:
        if len(readings) == 1:
            for j, got in _sides(readings[0], spans).items():
                if not sides[j] & got:
                    conflicts += 1
                sides[j] &= got or sides[j]
    for _round in range(3):
        for _first, _used, readings in rows:
            if len(readings) < 2:
                continue
            kept = [r for r in readings if all(sides[j] & g for j, g in _sides(r, spans).items())]
            conflicts += not kept
            readings[:] = kept or readings
            union: dict[int, set[str]] = {}
            for r in readings:
                for j, g in _sides(r, spans).items():
                    union.setdefault(j, set()).update(g)
            for j, g in union.items():
                if all(j in _sides(r, spans) for r in readings):
                    sides[j] &= g or sides[j]
    for j in range(len(spans) - 1):
        if sides[j] == {"R"} and sides[j + 1] == {"L"} and spans[j + 1][0] != spans[j][1] + 1:
            conflicts += 1
    return conflicts


def _gap_choices(breaks: int, limit: int) -> list[tuple[int, ...]]:
    if breaks == 0:
        return [()]
    out: list[tuple[int, ...]] = [()]
    for _ in range(breaks):
        out = [(*g, k) for g in out for k in range(1, limit + 1)]
        if len(out) > MAX_CONFIGS:
            return []
    return out


def _agree(
    best: list[Any],
    first_row: int,
    header_cut: bool,
) -> Unwrapped | None:
    """The rows every best reading agrees on, with the fields all their readings give."""
    _bad, header, dashes, rows = best[0]
    names = pstable._names(header, pstable._spans(dashes))
    if names is None:
        return None
    shapes = [{(f, n) for f, n, _r in b[3]} for b in best]
    out = Unwrapped(_plain(header), _plain(dashes), [], [], joined=header_cut)
    gap_after = False
    for start, used, readings in rows:
        if not readings:
            if out.unsure:
                out.unsure[-1] = set(names)
            out.whole, gap_after = False, True
            continue
        if any((start, used) not in s for s in shapes):
            out.whole = False
            continue
        cells: list[dict[str, str] | None] = []
        for b in best:
            spans = pstable._spans(b[2])
            for f, _n, rs in b[3]:
                if f == start:
                    cells += [_line_cells(b[1], b[2], spans, r, names) for r in rs]
        read = [c for c in cells if c is not None]
        if not read:
            out.whole = False
            continue
        sure = {k for k, v in read[0].items() if all(c.get(k) == v for c in read)}
        out.rows.append(_plain(readings[0]))
        out.origin.append(first_row + start)
        out.unsure.append(set(names) if gap_after else set(names) - sure)
        gap_after = False
        out.whole &= not out.unsure[-1]
        out.joined |= used > 1
    return out


def _line_cells(
    header: str, dashes: str, spans: list[tuple[int, int]], line: str, names: list[str]
) -> dict[str, str] | None:
    starts = pstable._layout(spans, [header, dashes, line])
    if starts is None:
        return None
    return pstable._cells(line, starts, names, 0).cells


def mail_table(
    text: Text, lines: list[str], dash: int, cuts: int, whole: bool = False
) -> pstable.Table | None:
    """The table at ``dash`` read as hard-wrapped (None, also when ``whole`` and not whole)."""
    heads = list(range(dash - cuts, dash))
    if heads[0] < 0 or any(
        not lines[k].strip() or text.is_prompt(k) or pstable.DASH_ROW.match(lines[k]) for k in heads
    ):
        return None
    dash_rows = list(range(dash, dash + cuts))
    stop = pstable._rows_end(text, lines, dash + cuts)
    got = unwrap(lines, heads, dash_rows, stop)
    if got is None or not got.rows or (whole and not got.whole) or not got.joined:
        return None  # nothing put back together: not a wrapped table
    joined = [got.header, got.dashes, *got.rows]
    table = pstable._table(Text(joined, text.path), joined, 1)
    if table is None:
        return None
    rows = []
    starts = [r.index for r in table.rows] + [len(joined)]
    for n, row in enumerate(table.rows):
        unsure = set().union(*got.unsure[row.index - 2 : starts[n + 1] - 2])
        cells = {k: v for k, v in row.cells.items() if k not in unsure}
        truncated = [k for k in row.truncated if k in cells]
        wrapped = row.wrapped or bool(unsure) or got.joined
        if cells:
            rows.append(pstable.Row(got.origin[row.index - 2], cells, truncated, wrapped))
    return pstable.Table(
        heads[0],
        table.columns,
        rows,
        text.command_at(heads[0]),
        pstable._group_above(lines, heads[0]),
        header_wrapped=cuts > 1,
        cleaned=True,
    )


def looks_cut(lines: list[str], dash: int, stop: int) -> bool:
    """Whether a line at column 0 does not sit on the columns after a line too long."""
    stop = min(stop, dash + 1 + MAX_ROWS)
    width = max(len(lines[k]) for k in range(dash - 1, stop))
    spans = pstable._spans(lines[dash])
    return any(
        lines[k][:1] not in ("", " ")
        and len(lines[k - 1]) + 1 + len(_word(lines[k])) > width
        and not fits(pstable._cells_wide(lines[k]), spans)
        for k in range(dash + 2, stop)
    )


def console_fits(lines: list[str], dash: int, stop: int) -> bool:
    """Whether the table at ``dash`` read as a console's cut (each line cut at one width, the
    pairs put back as ``pstable._wrapped_table`` does) has every row on its columns."""
    stop -= (stop - dash - 2) % 2
    firsts = range(dash - 2, min(stop, dash + 2 + 2 * MAX_ROWS), 2)
    width = max(len(pstable._cells_wide(lines[k])) for k in firsts)
    joined = [
        pstable._cells_wide(lines[k]).ljust(width) + pstable._cells_wide(lines[k + 1])
        for k in firsts
    ]
    spans = pstable._spans(joined[1])
    if any(lines[k + 1][:1] == " " for k in firsts):
        return True  # the rest of a line that starts with spaces: a wrap drops them
    return all(fits(line.rstrip(), spans) for line in joined[2:])
