"""Event exports as CSV: Event Viewer's "Save as CSV" (English or Japanese headers; the message is
an unnamed sixth column) and ``Get-WinEvent | Export-Csv`` (with or without the #TYPE line)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import as_int, event_fact, level_from_word, parse_local_time

# Event Viewer column headers -> our field names.
VIEWER_HEADERS = {
    "level": "level",
    "date and time": "time",
    "source": "source",
    "event id": "event_id",
    "task category": "task",
    "レベル": "level",
    "日付と時刻": "time",
    "ソース": "source",
    "イベント id": "event_id",
    "タスクのカテゴリ": "task",
}
POWERSHELL_KEYS = {"id", "providername", "timecreated", "recordid"}


def _rows(text: str) -> tuple[list[str], Iterator[list[str]]] | None:
    lines = text.lstrip("\ufeff")
    if lines.startswith("#TYPE"):
        lines = lines.split("\n", 1)[1] if "\n" in lines else ""
    reader = csv.reader(io.StringIO(lines))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return None
    return [h.strip() for h in header], reader


def looks_like_event_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 2)
    line = first[1] if first and first[0].startswith("#TYPE") and len(first) > 1 else first[0]
    names = {h.strip().strip('"').lower() for h in line.split(",")}
    viewer = sum(1 for n in names if n in VIEWER_HEADERS)
    return viewer >= 4 or names >= POWERSHELL_KEYS


def iter_csv_events(text: str, path: str) -> Iterator[Fact]:
    parsed = _rows(text)
    if parsed is None:
        return
    header, reader = parsed
    lowered = [h.lower() for h in header]
    if set(lowered) >= POWERSHELL_KEYS:
        yield from _powershell(lowered, reader, path)
    else:
        yield from _viewer(lowered, reader, path)


def _viewer(header: list[str], reader: Iterator[list[str]], path: str) -> Iterator[Fact]:
    fields = [VIEWER_HEADERS.get(h) for h in header]
    for row_no, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
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


def _powershell(header: list[str], reader: Iterator[list[str]], path: str) -> Iterator[Fact]:
    for row_no, row in enumerate(reader, start=2):
        if not row:
            continue
        v = {h: (row[i] if i < len(row) else "") for i, h in enumerate(header)}
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
