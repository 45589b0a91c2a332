"""A generic reader of PowerShell's ``Format-Table`` and ``Format-List`` text, as consoles print
it and as people paste it (quoted, fenced, cut at the console width, header wrapped).

Format-Table: a header row, a row of dashes under each column name, then one line per object;
a column runs from the start of its dashes to the start of the next column's, the last one to
the end of the line. Values too wide are cut and end in "..." (PowerShell 5.1) or "…" (7.x);
such a value is kept, its column named in ``truncated``. ``Format-Table -Wrap`` continues a row
on lines whose first column is blank. A header too wide for the paste wraps: two header lines,
then two rows of dashes, and each object on two lines.

Format-List: ``Name : value`` lines, a wrapped value continued on lines indented to the value
column, a blank line between objects.

Property names are English in every language; values (dates, states) are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from unicodedata import east_asian_width

from hvrescue.logs.commands.repost import clean_lines
from hvrescue.logs.textutil import PROMPT, Text

DASH_ROW = re.compile(r"^\s*-{2,}(?:\s+-+)*\s*$")
GROUP = re.compile(r"^\s+(?P<key>[A-Za-z]+)\s*:\s*(?P<value>\S.*?)\s*$")
PROPERTY = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_()%]*)\s*:(?:\s(?P<value>.*))?$")
WIDE_FILL = "\x00"
ELLIPSIS = re.compile(r"(?:\.\.\.|…)$")
# Rows read from one table at most: a table longer than this is a log, not a paste.
MAX_ROWS = 100_000
MAX_COLUMNS = 64
MAX_HEADER_LINES = 3


@dataclass
class Row:
    index: int  # line index where the row starts
    cells: dict[str, str]
    truncated: list[str] = field(default_factory=list)
    wrapped: bool = False


@dataclass
class Table:
    header_index: int
    columns: list[str]
    rows: list[Row]
    command: str | None
    group: dict[str, str] = field(default_factory=dict)
    header_wrapped: bool = False
    cleaned: bool = False  # some line had to be un-quoted or otherwise cleaned


@dataclass
class Record:
    index: int
    props: dict[str, str]
    command: str | None
    truncated: list[str] = field(default_factory=list)
    cleaned: bool = False


def _cells_wide(line: str) -> str:
    """``line`` as console cells: a wide character (Japanese) takes two cells, so a filler
    follows it and the columns after it line up with the dashes again."""
    if line.isascii():
        return line
    return "".join(ch + WIDE_FILL if east_asian_width(ch) in "WF" else ch for ch in line)


def _spans(dashes: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]


_LABEL = re.compile(r"[A-Z][A-Za-z0-9]*(?: [A-Z][A-Za-z0-9]*){1,2}")


def _names(header: str, spans: list[tuple[int, int]]) -> list[str] | None:
    """The column names over ``spans``; None when the header does not sit on the dashes."""
    names = []
    for start, end in spans:
        name = header[start:end]
        if not name.strip() or header[end : end + 1] not in ("", " "):
            return None
        if " " in name.strip():
            # A format view's label of two or three capitalised words over one rule of dashes
            # (Get-Disk: "Friendly Name", "Total Size", "Partition Style") is the property
            # of those words run together.
            if not _LABEL.fullmatch(name.strip()):
                return None
            name = name.replace(" ", "")
        if start > 0 and header[start - 1 : start] not in ("", " "):
            return None
        names.append(name.strip())
    return names


def _layout(spans: list[tuple[int, int]], lines: list[str]) -> list[int] | None:
    """Where each column starts. A column is what lies between character positions that are
    blank in every line of the table (header, dashes, rows): left-aligned text starts at its
    dashes, right-aligned numbers end at them and may start further left. A stretch that
    touches no dashes belongs to the column on its left (the rest of a value with spaces)."""
    width = max(len(line) for line in lines)
    used = bytearray(width)
    for line in lines:
        for k, ch in enumerate(line):
            if ch != " ":
                used[k] = 1
    regions = [(m.start(), m.end()) for m in re.finditer(rb"\x01+", bytes(used))]
    starts: list[int | None] = [None] * len(spans)
    n = 0
    for r0, r1 in regions:
        hits = [k for k, (d0, d1) in enumerate(spans) if d0 < r1 and r0 < d1]
        if len(hits) > 1:
            return None  # a value runs across two columns: not a layout this reader trusts
        if hits:
            n = hits[0]
            if starts[n] is None:
                starts[n] = r0
    if any(s is None for s in starts):
        return None
    out = [s for s in starts if s is not None]
    return out if out == sorted(out) else None


def _cells(line: str, starts: list[int], names: list[str], index: int) -> Row:
    cells: dict[str, str] = {}
    truncated = []
    for n, name in enumerate(names):
        stop = starts[n + 1] if n + 1 < len(starts) else len(line)
        value = line[starts[n] : stop].replace(WIDE_FILL, "").strip()
        cells[name] = value
        if ELLIPSIS.search(value):
            truncated.append(name)
    return Row(index, cells, truncated)


def _end(text: Text, lines: list[str], i: int) -> bool:
    return (
        not lines[i].strip()
        or text.is_prompt(i)
        or bool(DASH_ROW.match(lines[i]))
        or (i + 1 < len(lines) and bool(DASH_ROW.match(lines[i + 1])))
    )


def _group_above(lines: list[str], header: int) -> dict[str, str]:
    """Format-Table's group line ("   ProviderName: Microsoft-Windows-Hyper-V-VMMS") above
    the header, with blank lines between."""
    j = header - 1
    while j >= 0 and header - j <= 3 and not lines[j].strip():
        j -= 1
    if j >= 0 and j < header - 1:
        m = GROUP.match(lines[j])
        if m:
            return {m.group("key"): m.group("value")}
    return {}


def read_tables(text: Text, lines: list[str] | None = None) -> list[Table]:
    """Every Format-Table block in ``text`` (``lines``: its cleaned lines, if already made)."""
    lines = lines if lines is not None else clean_lines(text.lines)
    tables: list[Table] = []
    i = 1
    while i < len(lines):
        if not DASH_ROW.match(lines[i]) or not lines[i - 1].strip():
            i += 1
            continue
        wrapped = (
            i + 1 < len(lines)
            and DASH_ROW.match(lines[i + 1])
            and i >= 2
            and lines[i - 2].strip()
            and not DASH_ROW.match(lines[i - 2])
        )
        table = _wrapped_table(text, lines, i) if wrapped else _table(text, lines, i)
        cuts = next(c for c in (3, 2, 1) if all(DASH_ROW.match(x) for x in lines[i : i + c]))
        table = _mail(text, lines, i, table, cuts if wrapped else 1)
        if table is None:
            i += 1
            continue
        tables.append(table)
        i = max(i + 1, table.rows[-1].index + 1 if table.rows else i + 1)
    return tables


def _mail(text: Text, lines: list[str], dash: int, table: Table | None, cuts: int) -> Table | None:
    """``table``, or read again as hard-wrapped by a mail client (``pstable_wrap``)."""
    from hvrescue.logs.commands import pstable_wrap

    stop = _rows_end(text, lines, dash + cuts)
    if cuts == 1 and not pstable_wrap.looks_cut(lines, dash, stop):
        return table
    if cuts > 1 and pstable_wrap.console_fits(lines, dash, stop):
        return table  # NOT DONE: a mail's wrap that also reads as a console's cut
    return pstable_wrap.mail_table(text, lines, dash, cuts) or table


def _rows_end(text: Text, lines: list[str], first: int) -> int:
    i = first
    while i < len(lines) and i - first < MAX_ROWS and not _end(text, lines, i):
        i += 1
    return i


def _table(text: Text, lines: list[str], dash: int) -> Table | None:
    spans = _spans(lines[dash])
    if len(spans) > MAX_COLUMNS:
        return None
    top, names = _header(text, lines, dash, spans)
    if names is None or len(set(names)) != len(names):
        return None
    stop = _rows_end(text, lines, dash + 1)
    view = [_cells_wide(line) for line in lines[top:stop]]
    starts = _layout(spans, view)
    if starts is None:
        return None
    rows: list[Row] = []
    for i in range(dash + 1, stop):
        row = _cells(view[i - top], starts, names, i)
        if rows and _is_continuation(rows[-1], row, names):
            _continue(rows[-1], row)  # Format-Table -Wrap: the rest of the row above
        else:
            rows.append(row)
    cleaned = any(text.lines[k] != lines[k] for k in range(top, stop))
    return Table(
        top,
        names,
        rows,
        text.command_at(top),
        _group_above(lines, top),
        header_wrapped=top < dash - 1,
        cleaned=cleaned,
    )


def _header(
    text: Text, lines: list[str], dash: int, spans: list[tuple[int, int]]
) -> tuple[int, list[str] | None]:
    """The column names and the line they start on. ``Format-Table -Wrap`` wraps a name
    wider than its column over two or three lines above the dashes ("Fragmentati" /
    "onPercentag" / "e"): those pieces are put back together, column by column."""
    names = _names(lines[dash - 1], spans)
    if names is not None:
        return dash - 1, names
    for top in range(dash - 2, max(-1, dash - 1 - MAX_HEADER_LINES), -1):
        if not lines[top].strip() or text.is_prompt(top) or DASH_ROW.match(lines[top]):
            break
        stacked: list[str] = []
        for n, (start, _end) in enumerate(spans):
            stop = spans[n + 1][0] if n + 1 < len(spans) else None
            pieces = (lines[k][start:stop].strip() for k in range(top, dash))
            name = "".join(p.replace(" ", "") if _LABEL.fullmatch(p) else p for p in pieces)
            if not name or " " in name:
                stacked = []
                break
            stacked.append(name)
        if stacked and lines[top][: spans[0][0]].strip() == "":
            return top, stacked
    return dash - 1, None


def _is_continuation(above: Row, row: Row, names: list[str]) -> bool:
    """A -Wrap continuation line fills only a few of the columns that the row above has
    (the long ones); a new object whose first column is blank (a volume without a drive
    letter) fills most of them."""
    filled = [n for n in names if row.cells.get(n)]
    if row.cells.get(names[0]) or not filled or len(names) < 2:
        return False
    return 2 * len(filled) < len(names) and all(above.cells.get(n) for n in filled)


def _continue(row: Row, more: Row) -> None:
    row.wrapped = True
    for name, value in more.cells.items():
        if not value:
            continue
        before = row.cells.get(name, "")
        # Paths and identifiers wrap inside a word; prose wraps at a space.
        joiner = "" if not before or "\\" in before or " " not in before else " "
        row.cells[name] = before + joiner + value
        if name in row.truncated and not ELLIPSIS.search(row.cells[name]):
            row.truncated.remove(name)
        if ELLIPSIS.search(row.cells[name]) and name not in row.truncated:
            row.truncated.append(name)


def _wrapped_table(text: Text, lines: list[str], dash: int) -> Table | None:
    """A table wider than the console that pasted it: every line cut at the same width W
    (the header on dash-2 and dash-1, the dashes on dash and dash+1, each object on two
    lines). Each pair is put back together (the first part padded to W, as the copy trimmed
    its trailing spaces) and read as one table; a pair that does not line up ends it."""
    stop = _rows_end(text, lines, dash + 2)
    stop -= (stop - dash - 2) % 2  # an odd line out: the last object is incomplete, leave it
    firsts = range(dash - 2, stop, 2)
    width = max(len(lines[k]) for k in firsts)
    joined = [lines[k].ljust(width) + lines[k + 1] for k in firsts]
    if not DASH_ROW.match(joined[1]):
        return None
    sub = Text(joined, text.path)
    table = _table(sub, joined, 1)
    if table is None:
        return None
    rows = [Row(dash + 2 + 2 * (r.index - 2), r.cells, r.truncated, r.wrapped) for r in table.rows]
    return Table(
        dash - 2,
        table.columns,
        rows,
        text.command_at(dash - 2),
        _group_above(lines, dash - 2),
        header_wrapped=True,
        cleaned=True,
    )


def read_lists(text: Text, lines: list[str] | None = None) -> list[Record]:
    """Every Format-List block: ``Key : value`` lines, blank-line separated."""
    lines = lines if lines is not None else clean_lines(text.lines)
    records: list[Record] = []
    i = 0
    while i < len(lines):
        if not _is_property_line(lines[i]) or not PROPERTY.match(lines[i]):
            i += 1
            continue
        start = i
        props: dict[str, str] = {}
        last: str | None = None
        column = 0  # where the values of the record start
        widest = _widest(lines, i)
        while i < len(lines) and not (i > start and text.is_prompt(i)):
            if not lines[i].strip():
                # A blank line ends the record, unless the value goes on below it indented to
                # the value column: a message of several paragraphs (Get-WinEvent | fl).
                nxt = _paragraph_after(lines, i, column) if last is not None else None
                if nxt is None:
                    break
                i = nxt
                continue
            line = lines[i]
            m = PROPERTY.match(line) if _is_property_line(line) else None
            if m:
                last = m.group("key")
                props[last] = (m.group("value") or "").strip()
                column = line.index(":", len(m.group("key"))) + 2
            elif last is not None and (
                (line[:1] == " " and len(line) - len(line.lstrip()) >= 4)
                or (":" not in line and len(lines[i - 1]) + len(line.split()[0]) >= widest >= 40)
            ):
                # Indented to the value column (PowerShell wraps at spaces, cuts only a word
                # longer than the line), or at column 0: a mail client's wrap of a long line.
                piece = line.strip()
                before = props[last]
                inside = len(lines[i - 1]) >= widest and _word_like(before, piece)
                props[last] = before + ("" if inside else " ") + piece if before else piece
            else:
                break
            i += 1
        if props:
            truncated = [k for k, v in props.items() if ELLIPSIS.search(v)]
            cleaned = any(text.lines[k] != lines[k] for k in range(start, i))
            records.append(Record(start, props, text.command_at(start), truncated, cleaned))
        i = max(i, start + 1)
    return records


def _paragraph_after(lines: list[str], blank: int, column: int) -> int | None:
    """The line after the blank lines at ``blank`` when it continues a value (indented to its
    column, not a property), else None."""
    j = blank
    while j < len(lines) and j - blank < MAX_BLANKS and not lines[j].strip():
        j += 1
    if j >= len(lines) or j - blank >= MAX_BLANKS or column < 4:
        return None
    line = lines[j]
    indent = len(line) - len(line.lstrip())
    if indent < column - 1 or (_is_property_line(line) and PROPERTY.match(line.lstrip())):
        return None
    return j


MAX_BLANKS = 2  # blank lines inside one value (a paragraph break)


def _widest(lines: list[str], start: int) -> int:
    """The longest line of the block starting at ``start`` (the console's width, nearly)."""
    end = start
    while end < len(lines) and lines[end].strip() and end - start < MAX_ROWS:
        end += 1
    return max(len(lines[k]) for k in range(start, end)) if end > start else 0


def _word_like(before: str, piece: str) -> bool:
    """Whether the words either side of a line break look like one identifier or path cut in
    two (digits, backslashes, dashes, dots) rather than two words of prose."""
    tail = before.rsplit(" ", 1)[-1]
    head = piece.split(" ", 1)[0]
    return bool(re.search(r"[\\\d_.\-{}]", tail + head)) and tail.isascii() and head.isascii()


def _is_property_line(line: str) -> bool:
    return " : " in line or line.rstrip().endswith(" :")


def cmdlet_of(command: str | None) -> str | None:
    """The last Get-* cmdlet of a pipeline typed at a prompt ("Get-VM | Get-VMSnapshot | ft")."""
    if not command:
        return None
    found = None
    for m in re.finditer(r"(?:^|[|;(]\s*)(?P<name>Get-[A-Za-z]+)\b", command):
        found = m.group("name")
    return found.lower() if found else None


def prompt_command(line: str) -> str | None:
    m = PROMPT.match(line)
    return m.group("cmd").strip() if m else None
