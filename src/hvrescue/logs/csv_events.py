"""Event exports as CSV: Event Viewer's "Save as CSV" (English or Japanese headers; the message is
an unnamed sixth column) and ``Get-WinEvent | Export-Csv`` (with or without the #TYPE line).

Rows are read from a stream of lines, so a large export costs the memory of one row. A row the
csv module refuses (a field over its 128 KiB limit, a stray quote) is a problem of its own: the
rows after it are read on, once one looks like a row of this export again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from hvrescue.evidence.classify import POWERSHELL_KEYS, VIEWER_HEADERS, looks_like_event_csv
from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.logs.events import as_int, event_fact, level_from_word, parse_local_time

__all__ = ["POWERSHELL_KEYS", "VIEWER_HEADERS", "iter_csv_events", "iter_csv_lines"]
__all__ += ["looks_like_event_csv"]
# Errors in a row before the rest of the export is given up as not CSV at all.
MAX_BAD_ROWS = 1000


def _skip_type_line(lines: Iterable[str]) -> Iterator[str]:
    it = iter(lines)
    for first in it:
        first = first.lstrip("\ufeff")
        if not first.startswith("#TYPE"):
            yield first
        break
    yield from it


class _Lines:
    """The lines handed to csv.reader, with whether a quoted field is open after the last one
    (each quote toggles it; an escaped quote is two and toggles nothing)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.it = iter(lines)
        self.open = False
        self.count = 0  # lines given out, those csv never saw included

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.it)
        self.count += 1
        if line.count('"') % 2:
            self.open = not self.open
        return line

    def close_field(self) -> None:
        """After a row the reader refused inside a quoted field (a field over its limit):
        the lines up to the quote that ends the field are the rest of that row."""
        while self.open:
            if next(self, None) is None:
                return


class _Rows:
    """csv.reader over lines, each row with its number; a row the reader refuses becomes a
    Problem and the reader goes on after it."""

    def __init__(self, lines: Iterable[str], path: str) -> None:
        self.lines = _Lines(_skip_type_line(lines))
        self.reader = csv.reader(self.lines)
        self.path = path
        self.bad = 0

    def __iter__(self) -> Iterator[list[str] | Problem]:
        while self.bad <= MAX_BAD_ROWS:
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.bad += 1
                where = f"line:{self.lines.count}"
                self.lines.close_field()
                yield Problem(self.path, "csv.row-unreadable", where, {"reason": str(exc)[:300]})
                continue
            yield row


def iter_csv_events(text: str, path: str) -> Iterator[Fact | Problem]:
    yield from iter_csv_lines(io.StringIO(text), path)


def iter_csv_lines(lines: Iterable[str], path: str) -> Iterator[Fact | Problem]:
    """The events of a CSV export given as lines (with their line ends), and each row that
    could not be read as a problem."""
    rows = iter(_Rows(lines, path))
    header: list[str] | None = None
    for first in rows:
        if isinstance(first, Problem):
            return  # no header: not an export we can read
        header = [h.strip() for h in first]
        break
    if header is None:
        return
    lowered = [h.lower() for h in header]
    if set(lowered) >= POWERSHELL_KEYS:
        yield from _powershell(lowered, rows, path)
    else:
        yield from _viewer(lowered, rows, path)


def _resync(row: list[str] | Problem, state: list[bool], event_id: str | None) -> bool:
    """After a row the reader refused, the lines up to the next row whose event id is a number
    are the rest of that row (a long message cut into lines): skipped, not read as events."""
    if isinstance(row, Problem):
        state[0] = True
        return True
    if state[0]:
        if as_int(event_id) is None:
            return True
        state[0] = False
    return False


def _viewer(
    header: list[str], reader: Iterator[list[str] | Problem], path: str
) -> Iterator[Fact | Problem]:
    fields = [VIEWER_HEADERS.get(h) for h in header]
    id_column = fields.index("event_id") if "event_id" in fields else -1
    broken = [False]
    for row_no, row in enumerate(reader, start=2):
        if isinstance(row, Problem):
            _resync(row, broken, None)
            yield row
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        if _resync(row, broken, row[id_column] if 0 <= id_column < len(row) else None):
            continue
        values = {f: row[i].strip() for i, f in enumerate(fields) if f and i < len(row)}
        # The message is the column after the named ones (Event Viewer leaves it unnamed).
        message = row[len(header)].strip() if len(row) > len(header) else None
        yield event_fact(
            Provenance(path, f"line:{row_no}"),
            source_format="csv",
            provider=values.get("source"),
            source_name=values.get("source"),
            event_id=as_int(values.get("event_id")),
            level=level_from_word(values.get("level")),
            time_local=parse_local_time(values.get("time", "")),
            task=values.get("task") or None,
            message=message or None,
        )


def _powershell(
    header: list[str], reader: Iterator[list[str] | Problem], path: str
) -> Iterator[Fact | Problem]:
    broken = [False]
    for row_no, row in enumerate(reader, start=2):
        if isinstance(row, Problem):
            _resync(row, broken, None)
            yield row
            continue
        if not row:
            continue
        v = {h: (row[i] if i < len(row) else "") for i, h in enumerate(header)}
        if _resync(row, broken, v.get("id")):
            continue
        level = as_int(v.get("level"))
        if level is None:
            level = level_from_word(v.get("leveldisplayname"))
        record_id = as_int(v.get("recordid"))
        yield event_fact(
            Provenance(path, f"record:{record_id}" if record_id is not None else f"line:{row_no}"),
            source_format="csv",
            channel=v.get("logname") or None,
            provider=v.get("providername") or None,
            event_id=as_int(v.get("id")),
            qualifiers=as_int(v.get("qualifiers")),
            level=level,
            time_local=parse_local_time(v.get("timecreated", "")),
            record_id=record_id,
            computer=v.get("machinename") or None,
            message=v.get("message") or None,
            task=v.get("taskdisplayname") or v.get("task") or None,
            opcode=v.get("opcodedisplayname") or v.get("opcode") or None,
            keywords=v.get("keywords") or None,
            user_sid=v.get("userid") or None,
            process_id=as_int(v.get("processid")),
            thread_id=as_int(v.get("threadid")),
        )
