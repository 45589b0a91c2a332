"""Rows of the Event Viewer list: as "Save All Events As > Text (Tab delimited)" writes them (a
header row, then Level, Date and Time, Source, Event ID, Task Category and the message in
quotes, over several lines when it has several), and as people copy them from the list or a
screenshot (tabs become runs of spaces or single spaces, the date column may be missing, the
message may follow on the next lines). English, Japanese, German and French.

A row is read only when its level word, its event id and its source are where a row has them;
with single spaces between the cells, a source of several words is read only when the task
category after the id says where the id ends (None, なし ...).
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import LEVEL_WORDS, event_fact, level_from_word, parse_local_time
from hvrescue.logs.textutil import DASHES, Text
from hvrescue.logs.viewer_labels import ROW_HEADERS, full_provider, norm_label

CELLS = re.compile(r"\t| {2,}")
EVENT_ID = re.compile(r"^\d{1,5}$")
# Level words that say the list was French (its dates are day first).
FRENCH_LEVELS = {"erreur", "avertissement", "critique", "informations", "commentaires"}
# Task categories that mean "none": after one of them the row is unambiguous.
NO_CATEGORY = {"none", "なし", "keine", "aucun", "aucune", "(0)"}
_LEVEL = "|".join(sorted((re.escape(w) for w in LEVEL_WORDS if " " not in w), key=len)[::-1])
SPACED_ROW = re.compile(
    r"^(?P<level>" + _LEVEL + r")\s+"
    r"(?P<time>\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\s+(?:午前|午後)?\s?\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s?[AaPp]\.?[Mm]\.?)?)\s+(?P<rest>.+)$",
    re.IGNORECASE,
)
MAX_MESSAGE_LINES = 200
CONFIDENCE = 0.9


# First words of a row or a header row: most lines of a large text are rejected on them.
FIRST_WORDS = {w for w in LEVEL_WORDS if " " not in w}
HEADER_FIRST = {c.split(" ", 1)[0] for c, f in ROW_HEADERS.items() if f == "level"}


def _first_word(line: str) -> str:
    head = line.lstrip()[:24].split(None, 1)
    return head[0].lower() if head else ""


def _header(line: str) -> list[str] | None:
    """The columns of a header row, or None."""
    if ("\t" not in line and "  " not in line) or _first_word(line) not in HEADER_FIRST:
        return None
    cells = [norm_label(c) for c in CELLS.split(line.strip()) if c.strip()]
    fields = [ROW_HEADERS.get(c, "") for c in cells]
    if {"level", "source", "event_id"} <= set(fields) and len(cells) <= 8:
        return fields
    return None


class _Row:
    def __init__(self, level: str, time: str | None, source: str, event_id: str) -> None:
        self.level, self.time, self.source, self.event_id = level, time, source, event_id
        self.task: str | None = None
        self.message: str | None = None


def _cells_row(line: str, columns: list[str] | None) -> _Row | None:
    cells = [c.strip() for c in (line.split("\t") if columns else CELLS.split(line.strip()))]
    if columns:
        if len(cells) < len(columns):
            return None  # a row cut short (its event id may be cut too)
        values = dict(zip(columns, cells, strict=False))
        row = _checked(
            values.get("level", ""), values.get("time"), values.get("source", ""),
            values.get("event_id", ""),
        )  # fmt: skip
        if row is not None:
            row.task = values.get("task") or None
            extra = cells[len(columns) :]
            row.message = "\t".join(extra) if extra else None
        return row
    if len(cells) < 3 or level_from_word(cells[0]) is None:
        return None
    # The task category after the id says the id was not cut where a line was broken.
    if len(cells) >= 5 and EVENT_ID.match(cells[3]):  # Level, Date and Time, Source, Event ID
        row = _checked(cells[0], cells[1], cells[2], cells[3])
        rest = cells[4:]
    elif len(cells) >= 4 and EVENT_ID.match(cells[2]):  # Level, Source, Event ID (no date)
        row = _checked(cells[0], None, cells[1], cells[2])
        rest = cells[3:]
    else:
        return None
    if row is not None and rest:
        row.task = rest[0] or None
        row.message = " ".join(rest[1:]) or None
    return row


def _spaced_row(line: str) -> _Row | None:
    m = SPACED_ROW.match(line.strip())
    if not m:
        return None
    tokens = m.group("rest").split()
    if len(tokens) >= 3 and tokens[-1].lower() in NO_CATEGORY and EVENT_ID.match(tokens[-2]):
        source, event_id, task = " ".join(tokens[:-2]), tokens[-2], tokens[-1]
    elif len(tokens) >= 3 and EVENT_ID.match(tokens[1]):
        source, event_id, task = tokens[0], tokens[1], " ".join(tokens[2:])
    else:
        return None  # where a source of several words ends cannot be told
    row = _checked(m.group("level"), m.group("time"), source, event_id)
    if row is not None:
        row.task = task or None
    return row


def _checked(level: str, time: str | None, source: str, event_id: str) -> _Row | None:
    level, source, event_id = level.strip(), source.strip(), event_id.strip()
    if level_from_word(level) is None or not EVENT_ID.match(event_id) or not source:
        return None
    if source.isdigit() or ":" in source:
        return None
    if time is not None:
        day_first = level.lower() in FRENCH_LEVELS
        parsed = parse_local_time(time, day_first=day_first)
        if parsed is None:
            return None
        time = parsed
    return _Row(level, time, source, event_id)


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    columns: list[str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        first = _first_word(line)
        if first not in FIRST_WORDS and first not in HEADER_FIRST:
            if columns is not None and "\t" not in line:
                columns = None  # the export is over
            i += 1
            continue
        header = _header(line)
        if header is not None:
            columns = header
            i += 1
            continue
        if columns is not None and "\t" not in line:
            columns = None  # the export is over
        row = _cells_row(line, columns) if ("\t" in line or "  " in line) else None
        row = row or (_spaced_row(line) if columns is None else None)
        if row is None:
            i += 1
            continue
        start = i
        exported = columns is not None
        i += 1
        if row.message and row.message.startswith('"'):
            i = _quoted(lines, i, row)
        elif not row.message and not exported:
            i = _following(text, i, row)
        facts.append(_fact(text, start, row, exported))
    return facts


def _quoted(lines: list[str], i: int, row: _Row) -> int:
    """A message cell in quotes, closed on this line or a later one ("" is a quote)."""
    assert row.message is not None
    body = [row.message[1:]]
    end = i
    while not _closes(body[-1]) and end < len(lines) and end - i < MAX_MESSAGE_LINES:
        body.append(lines[end])
        end += 1
    if not _closes(body[-1]):
        row.message = "\n".join(body).replace('""', '"').strip() or None
        return i  # never closed: keep the first line's text, read the rest as it comes
    body[-1] = body[-1].rstrip()[:-1]
    row.message = "\n".join(body).replace('""', '"').strip() or None
    return end


def _closes(line: str) -> bool:
    stripped = line.rstrip()
    return stripped.endswith('"') and (len(stripped) - len(stripped.rstrip('"'))) % 2 == 1


def _following(text: Text, i: int, row: _Row) -> int:
    """The message pasted under a copied row: the lines up to a blank line or the next row."""
    lines = text.lines
    body: list[str] = []
    while i < len(lines) and len(body) < MAX_MESSAGE_LINES:
        line = lines[i]
        if not line.strip() or DASHES.match(line) or text.is_prompt(i) or _header(line):
            break
        if _first_word(line) in FIRST_WORDS and (_cells_row(line, None) or _spaced_row(line)):
            break
        body.append(line.strip())
        i += 1
    row.message = "\n".join(body) or None
    return i


def _fact(text: Text, start: int, row: _Row, exported: bool) -> Fact:
    return event_fact(
        Provenance(text.path, text.locator(start)),
        source_format="viewer-row",
        provider=full_provider(row.source),
        source_name=row.source,
        event_id=int(row.event_id),
        level=level_from_word(row.level),
        time_local=row.time,
        task=row.task,
        message=row.message,
        confidence=None if exported and row.time else CONFIDENCE,
    )
