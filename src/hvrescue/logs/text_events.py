"""Events pasted as text: Event Viewer's "Copy details as text" and its General tab, in English,
Japanese, German and French, and the shorter `Level: / Date and Time: / Source: / ID: / Message:`
form support articles and tickets use.

Read tolerantly: labels in any order and any subset (a General tab has no `Source:` line when
it was retyped, a fragment lost its first or last lines), two labels on one line (the General
tab's grid), a value or a label wrapped onto the next line, the message after the labels or,
as the General tab shows it, before them. A record needs its event id and either its source or
two more labels: a bare message is not read here (message signatures are, elsewhere).
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import event_fact, level_from_word, parse_local_time
from hvrescue.logs.textutil import DASHES, Text
from hvrescue.logs.viewer_labels import (
    LABEL_LINE,
    SECOND_LABEL,
    XML_LABELS,
    full_provider,
    label,
    norm_label,
)
from hvrescue.logs.xml_events import iter_xml_events

# The labels the first reader of this layout knew: a record written only with them, in the
# order "Copy details as text" writes them, keeps its format name "text".
LEGACY = frozenset(
    {
        "log name", "source", "date", "date and time", "event id", "task category", "level",
        "keywords", "user", "computer", "description", "message", "opcode", "ログの名前",
        "ソース", "日付", "日付と時刻", "イベント id", "id", "タスクのカテゴリ", "レベル",
        "キーワード", "ユーザー", "コンピューター", "説明", "メッセージ", "オペコード",
    }
)  # fmt: skip
STARTERS = {"channel", "level", "source", "time", "event_id", "task", "keywords", "user"}
STARTERS |= {"computer", "opcode"}
HEADER = STARTERS | {"more", "value", "user_name"}
COUNTED = HEADER - {"source", "event_id", "more", "value", "user_name"}
NAMES = {"source", "channel", "computer"}
MAX_XML_LINES = 2000
MAX_HEADER_LINES = 60
MAX_MESSAGE_ABOVE = 40
EVENT_ID = re.compile(r"^\d{1,5}$")
MERIDIEM = re.compile(r"^(?:[AaPp]\.?[Mm]\.?|午前|午後)$")
DATE_TIME = re.compile(r"^\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}(?:\s+\S+){0,2}$")
CLOCK = re.compile(r"^(?:午前|午後)?\s?\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:\s?[AaPp]\.?[Mm]\.?)?$")
CONFIDENCE = 0.9
WEVTUTIL_EVENT = re.compile(r"^Event\[\d+\]:\s*$")  # wevtutil /f:text's heading of a record
UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")

Pair = tuple[str, str, str, str]  # field, value, language, normalised label


def _labels(line: str) -> list[Pair] | None:
    """The labels of one line and their values (two on a line of the General tab's grid)."""
    ascii_colon, wide_colon = line.find(":", 0, 40), line.find("：", 0, 40)
    if ascii_colon < 0 and wide_colon < 0:
        if line[:1] in (" ", "\t") and line.strip():
            return _labels(line.lstrip())  # an indented label (a quoted block)
        return None  # most lines of a large log: no label can start them
    if ascii_colon < 0 or 0 <= wide_colon < ascii_colon:
        ascii_colon = wide_colon
    colon = ascii_colon
    key = line[:colon]
    found = label(key)  # cached: logs repeat their keys
    if not found or "\t" in key.strip():
        return None
    field, lang = found
    value = line[colon + 1 :].strip()
    if field != "message" and (":" in value or "：" in value):
        for s in SECOND_LABEL.finditer(line, colon + 1):
            if label(s.group("key")):
                rest = _labels(line[s.end() :])
                if rest:
                    first = line[colon + 1 : s.start()].strip()
                    return [(field, first, lang, norm_label(key)), *rest]
    return [(field, value, lang, norm_label(key))]


class _Record:
    def __init__(self, start: int) -> None:
        self.start = start
        self.fields: dict[str, str] = {}
        self.keys: list[str] = []
        self.langs: set[str] = set()
        self.message: list[str] | None = None
        self.message_above = False
        self.last: str | None = None

    def add(self, pairs: list[Pair]) -> None:
        for field, value, lang, key in pairs:
            self.langs.add(lang)
            self.keys.append(key)
            if field == "message":
                self.message = [value] if value else []
            else:
                self.fields[field] = value
                self.last = field

    def fact(self, path: str, locator: str) -> Fact | None:
        fields = self.fields
        event_id = fields.get("event_id", "").strip()
        if not EVENT_ID.match(event_id):
            return None
        source = fields.get("source", "").strip() or None
        if source and source.endswith(("-", "\\", "/")):
            source = None  # cut where the line broke: not a name to match rules on
        if source is None and sum(1 for f in COUNTED if fields.get(f)) < 2:
            return None
        level = level_from_word(fields.get("level"))
        when = fields.get("time", "")
        # A date without its clock time was cut: no time rather than an invented midnight.
        time_local = parse_local_time(when, day_first="fr" in self.langs) if ":" in when else None
        utc = when.strip() if UTC.match(when.strip()) else None
        legacy = (
            source is not None
            and not self.message_above
            and set(self.keys) <= LEGACY
            and self.keys[0] in ("log name", "ログの名前", "source", "ソース", "level", "レベル")
        )
        complete = source is not None and level is not None and (time_local or utc) is not None
        message = "\n".join(self.message).strip() if self.message else None
        return event_fact(
            Provenance(path, locator),
            source_format="text" if legacy else "viewer-text",
            channel=fields.get("channel") or None,
            provider=full_provider(source),
            source_name=source,
            event_id=int(event_id),
            level=level,
            time=utc,
            time_local=time_local,
            computer=fields.get("computer") or None,
            task=fields.get("task") or None,
            opcode=fields.get("opcode") or None,
            keywords=fields.get("keywords") or None,
            data={"value": fields["value"]} if fields.get("value") else None,
            message=message or None,
            confidence=None if legacy or complete else CONFIDENCE,
        )


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    floor = 0  # lines above belong to the record before
    i = 0
    while i < len(lines):
        pairs = _labels(lines[i])
        if pairs is None or pairs[0][0] not in STARTERS or pairs[0][3] == "id":
            i += 1
            continue
        record = _Record(i)
        i = _header(text, i, record)
        if record.message is not None:
            i = _message(text, i, record)
        elif record.fields.get("event_id"):
            _message_above(text, floor, record)
        fact = record.fact(text.path, text.locator(record.start))
        if fact is not None:
            xml, i = _event_xml(lines, i)
            facts.append(_enrich(fact, xml) if xml else fact)
        floor = max(floor, i)  # lines a header took are no other record's message
        i = max(i, record.start + 1, floor)
    return facts


def _header(text: Text, i: int, record: _Record) -> int:
    lines = text.lines
    start = i
    while i < len(lines) and i - start < MAX_HEADER_LINES:
        line = lines[i]
        pairs = _labels(line)
        if pairs is None:
            if not line.strip():
                nxt = _labels(lines[i + 1]) if i + 1 < len(lines) else None
                if nxt and nxt[0][0] in HEADER and nxt[0][0] not in record.fields:
                    i += 1  # a blank line inside the grid
                    continue
                break
            if record.last == "event_id" and line[:1].isdigit():
                record.fields["event_id"] = ""  # "Event ID: 19" + "100": cut, not 19
                break
            joined = _wrapped_label(lines, i)
            if joined is not None and not any(p[0] in record.fields for p in joined):
                record.add(joined)
                i += 2
            elif _continues(text, i, record):
                last = record.last or ""
                record.fields[last] = _join(last, record.fields[last], line.strip())
                i += 1
            else:
                break
        elif any(p[0] in record.fields or (p[0] == "message" and record.message is not None)
                 for p in pairs):  # fmt: skip
            break  # a label seen again: the next record
        else:
            record.add(pairs)
            i += 1
        if record.message is not None:
            break
    return i


def _wrapped_label(lines: list[str], i: int) -> list[Pair] | None:
    """'Task' + 'Category: None': a label broken over two lines by a wrapping mail client."""
    if i + 1 >= len(lines) or ":" in lines[i] or "：" in lines[i] or len(lines[i]) > 32:
        return None
    return _labels(lines[i].rstrip() + " " + lines[i + 1].lstrip())


def _continues(text: Text, i: int, record: _Record) -> bool:
    """Whether line ``i`` is the rest of the value above it, wrapped: only when that is clear
    (the value broke after a hyphen or a backslash, or the grid goes on right after)."""
    last = record.last
    line = text.lines[i].strip()
    value = record.fields.get(last or "", "")
    if last == "time" and (MERIDIEM.match(line) or CLOCK.match(line)):
        return True  # "10/2/2023" then "9:12:01 AM", or "9:12:01" then "PM"
    if last == "time" and not value and DATE_TIME.match(line):
        return True  # "Logged:" at the end of a line, its date and time on the next
    if last is None or DASHES.match(line) or text.is_prompt(i) or LABEL_LINE.match(line):
        return False
    if "  " in line or "\t" in line or line.startswith((":", "：")):
        return False  # a line of the grid, not the rest of one value
    if last == "event_id":
        return not value and bool(EVENT_ID.match(line))
    if value.endswith(("-", "\\", "/")):
        return True
    nxt = _labels(text.lines[i + 1]) if i + 1 < len(text.lines) else None
    if not value and " " in line:
        return False  # a value never seen whole: the line may be anything
    if not value and line.endswith(("-", "\\")):
        return True  # "Log Name:", then "Microsoft-Windows-Hyper-V-", then "VMMS-Admin"
    return nxt is not None and nxt[0][0] in HEADER and nxt[0][0] not in record.fields


def _join(field: str, value: str, rest: str) -> str:
    """A value and its wrapped rest. A name (source, log, computer) of one word broken in two
    was broken inside the word: a console wraps at its width, not at a space."""
    if not value or value.endswith(("-", "\\", "/")) or rest.startswith(("-", "\\", "/")):
        return value + rest
    if field in NAMES and " " not in value and " " not in rest:
        return value + rest
    return f"{value} {rest}"


def _message(text: Text, i: int, record: _Record) -> int:
    """The message after a `Description:` label. It ends at a rule, the event XML, a prompt,
    the next event, or two blank lines."""
    lines = text.lines
    message = record.message if record.message is not None else []
    while i < len(lines):
        line = lines[i]
        blank_run = not line.strip() and (i + 1 >= len(lines) or not lines[i + 1].strip())
        if blank_run or DASHES.match(line) or text.is_prompt(i):
            break
        if line.strip().lower().startswith(XML_LABELS) or WEVTUTIL_EVENT.match(line):
            break
        if _next_event(line, lines[i - 1]):
            break
        message.append(line)
        i += 1
    return i


def _next_event(line: str, above: str) -> bool:
    """A starting label ends a message: "Log Name:" always, another after a blank line."""
    pairs = _labels(line)
    if pairs is None or pairs[0][0] not in STARTERS or pairs[0][3] == "id":
        return False
    return pairs[0][0] == "channel" or not above.strip()


def _message_above(text: Text, floor: int, record: _Record) -> None:
    """The General tab shows the message first, then the labels: the paragraph right above
    the labels (at most one blank line between) is the message."""
    lines = text.lines
    j = record.start - 1
    if j >= floor and not lines[j].strip():
        j -= 1
    end = j
    while j >= floor and end - j < MAX_MESSAGE_ABOVE:
        line = lines[j]
        if not line.strip() or DASHES.match(line) or text.is_prompt(j) or _labels(line):
            break
        j -= 1
    if end <= j or lines[end].rstrip().endswith((":", "：")):
        return  # nothing above, or a sentence introducing what follows
    record.message = lines[j + 1 : end + 1]
    record.message_above = True
    record.start = j + 1


def _event_xml(lines: list[str], i: int) -> tuple[str | None, int]:
    """The `Event Xml:` section Event Viewer appends to a copied event, if it follows."""
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j >= len(lines) or not lines[j].strip().lower().startswith(XML_LABELS):
        return None, i
    body: list[str] = []
    for k in range(j + 1, min(len(lines), j + 1 + MAX_XML_LINES)):
        body.append(lines[k])
        if "</Event>" in lines[k]:
            return "\n".join(body), k + 1
    return None, i


def _enrich(fact: Fact, xml: str) -> Fact:
    """The XML carries what the text leaves out (UTC time, record id, data fields); the text's
    own message is kept, since the XML has none."""
    parsed = [f for f in iter_xml_events(xml, fact.provenance.path) if isinstance(f, Fact)]
    if not parsed:
        return fact
    attributes = dict(parsed[0].attributes)
    for key in ("message", "time_local"):
        attributes[key] = attributes.get(key) or fact.attributes.get(key)
    attributes["format"] = fact.attributes["format"]
    return Fact("event", attributes, fact.provenance)
