"""Events pasted as text: Event Viewer's "Copy details as text" / General tab, in English and
Japanese, and the shorter `Level: / Date and Time: / Source: / ID: / Message:` form support
articles and tickets use."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import as_int, event_fact, level_from_word, parse_local_time
from hvrescue.logs.textutil import DASHES, Text, norm_key
from hvrescue.logs.xml_events import iter_xml_events

KEYS = {
    "log name": "channel",
    "source": "source",
    "date": "time",
    "date and time": "time",
    "event id": "event_id",
    "task category": "task",
    "level": "level",
    "keywords": "keywords",
    "user": "user",
    "computer": "computer",
    "description": "message",
    "message": "message",
    "opcode": "opcode",
    "ログの名前": "channel",
    "ソース": "source",
    "日付": "time",
    "日付と時刻": "time",
    "イベント id": "event_id",
    "id": "event_id",
    "タスクのカテゴリ": "task",
    "レベル": "level",
    "キーワード": "keywords",
    "ユーザー": "user",
    "コンピューター": "computer",
    "説明": "message",
    "メッセージ": "message",
    "オペコード": "opcode",
}
LINE = re.compile(r"^\s*(?P<key>[^:：]{1,24}?)\s*[:：]\s*(?P<value>.*?)\s*$")
STARTERS = {"channel", "level", "source", "time"}
MAX_XML_LINES = 2000


def _key(line: str) -> tuple[str, str] | None:
    if ":" not in line and "：" not in line:
        return None  # most lines of a large log: no need for the expression
    m = LINE.match(line)
    if not m:
        return None
    field = KEYS.get(norm_key(m.group("key")))
    return (field, m.group("value")) if field else None


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        kv = _key(lines[i])
        if kv is None or kv[0] not in STARTERS:
            i += 1
            continue
        start = i
        fields: dict[str, Any] = {}
        message: list[str] | None = None
        while i < len(lines):
            line = lines[i]
            kv = _key(line)
            if message is None:
                if kv is None or kv[0] in fields:
                    break
                if kv[0] == "message":
                    message = [kv[1]] if kv[1] else []
                else:
                    fields[kv[0]] = kv[1]
                i += 1
                continue
            # Inside the message: it ends at a rule, the event XML, a prompt, the next event,
            # or two blank lines.
            blank_run = not line.strip() and (i + 1 >= len(lines) or not lines[i + 1].strip())
            if (
                DASHES.match(line)
                or line.strip().lower().startswith("event xml")
                or text.is_prompt(i)
                or blank_run
                or (kv is not None and kv[0] in STARTERS and not lines[i - 1].strip())
            ):
                break
            message.append(line)
            i += 1
        if "source" in fields and "event_id" in fields:
            fact = event_fact(
                Provenance(text.path, text.locator(start)),
                source_format="text",
                channel=fields.get("channel") or None,
                provider=fields.get("source") or None,
                event_id=as_int(fields.get("event_id")),
                level=level_from_word(fields.get("level")),
                time_local=parse_local_time(fields.get("time", "")),
                computer=fields.get("computer") or None,
                task=fields.get("task") or None,
                keywords=fields.get("keywords") or None,
                message="\n".join(message).strip() if message else None,
            )
            xml, i = _event_xml(lines, i)
            facts.append(_enrich(fact, xml) if xml else fact)
        i = max(i, start + 1)
    return facts


def _event_xml(lines: list[str], i: int) -> tuple[str | None, int]:
    """The `Event Xml:` section Event Viewer appends to a copied event, if it follows."""
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j >= len(lines) or not lines[j].strip().lower().startswith("event xml"):
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
    attributes["format"] = "text"
    return Fact("event", attributes, fact.provenance)
