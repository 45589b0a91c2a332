"""One event fact shape whatever the source (EVTX, XML export, CSV export, copied text)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeGuard

from hvrescue.facts.model import Fact, Provenance

LEVEL_NAMES = {
    0: "information",
    1: "critical",
    2: "error",
    3: "warning",
    4: "information",
    5: "verbose",
}
# Level words as Event Viewer and PowerShell print them, English and Japanese.
LEVEL_WORDS = {
    "critical": 1,
    "error": 2,
    "warning": 3,
    "information": 4,
    "informational": 4,
    "verbose": 5,
    "audit success": 0,
    "audit failure": 0,
    "重大": 1,
    "エラー": 2,
    "警告": 3,
    "情報": 4,
    "詳細": 5,
    "監査の成功": 0,
    "監査の失敗": 0,
    # German and French Event Viewer.
    "kritisch": 1,
    "fehler": 2,
    "warnung": 3,
    "informationen": 4,
    "ausführlich": 5,
    "critique": 1,
    "erreur": 2,
    "avertissement": 3,
    "informations": 4,
    "commentaires": 5,
}

_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y/%m/%d",
    "%Y-%m-%d",
    "%m/%d/%Y",
)


_MERIDIEM_FORMATS = tuple(f for f in _TIME_FORMATS if "%p" in f)
# Day-first dates (French, British English): "02/10/2023 09:12:01" is 2 October there.
_DAY_FIRST_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y",
    "%d.%m.%Y",
)


def parse_local_time(text: str, day_first: bool = False) -> str | None:
    """A time as Event Viewer or PowerShell printed it (local, no zone) to ISO 8601 without zone.
    ``day_first`` reads d/m/Y (the labels said French); otherwise m/d/Y, as before."""
    text = text.strip()
    if not text:
        return None
    if day_first:
        bare = re.sub(r"\.\d+$", "", text)
        for fmt in _DAY_FIRST_FORMATS:
            try:
                return datetime.strptime(bare, fmt).isoformat()
            except ValueError:
                continue
        if not re.match(r"^\d{4}", text):
            return None  # never read a day-first date month-first
    # Japanese AM/PM markers: 午前 9:00:19 / 午後 9:00:19.
    m = re.match(r"^(\S+)\s+(午前|午後)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?$", text)
    if m:
        hour = int(m.group(3)) % 12 + (12 if m.group(2) == "午後" else 0)
        text = f"{m.group(1)} {hour}:{m.group(4)}:{m.group(5) or '00'}"
    text = re.sub(r"\.\d+$", "", text)
    # Only the AM/PM forms can read "... 9:12:01 AM": trying only them saves four misses.
    formats = _MERIDIEM_FORMATS if text[-2:].upper() in ("AM", "PM") else _TIME_FORMATS
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return None


def is_evtx_time(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is a time in EVTX's own form, ``2019-03-19T23:34:25.1234567Z`` (six or
    seven fractional digits and Z): the bulk of a host's events, read by the fast paths of the
    readers of times (its first 26 characters are what they read)."""
    return (
        type(value) is str
        and 27 <= len(value) <= 28
        and value[-1] == "Z"
        and value[19] == "."
        and value[20:-1].isdigit()
        and value.isascii()
        and "Z" not in value[:19]
    )


def normalise_utc(text: str | None) -> str | None:
    """SystemTime as EVTX/XML give it, always ending in Z."""
    if not text:
        return None
    if text[-1] == "Z":
        return text
    text = text.strip().replace(" UTC", "")
    if not text.endswith("Z") and "+" not in text[10:]:
        text += "Z"
    return text


def as_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    text = str(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def level_from_word(word: str | None) -> int | None:
    if not word:
        return None
    return LEVEL_WORDS.get(word.strip().lower())


def event_fact(
    provenance: Provenance,
    *,
    source_format: str,
    channel: str | None = None,
    provider: str | None = None,
    source_name: str | None = None,
    event_id: int | None = None,
    qualifiers: int | None = None,
    level: int | None = None,
    time: str | None = None,
    time_local: str | None = None,
    record_id: int | None = None,
    system_record_id: int | None = None,
    computer: str | None = None,
    binary: str | None = None,
    data: dict[str, Any] | list[Any] | None = None,
    message: str | None = None,
    task: str | int | None = None,
    opcode: str | int | None = None,
    keywords: str | None = None,
    user_sid: str | None = None,
    process_id: int | None = None,
    thread_id: int | None = None,
    confidence: float | None = None,
    signature: str | None = None,
) -> Fact:
    attributes: dict[str, Any] = {
        "channel": channel,
        "provider": provider,
        "source_name": source_name or provider,
        "event_id": event_id,
        "qualifiers": qualifiers,
        "level": level,
        "level_name": None if level is None else LEVEL_NAMES.get(level, str(level)),
        "time": time,
        "time_local": time_local,
        "record_id": record_id,
        "system_record_id": system_record_id if system_record_id is not None else record_id,
        "computer": computer,
        "data": data if data is not None else {},
        "binary": binary,
        "message": message,
        "task": task,
        "opcode": opcode,
        "keywords": keywords,
        "user_sid": user_sid,
        "process_id": process_id,
        "thread_id": thread_id,
        "format": source_format,
    }
    # Only events read tolerantly from loose text say how sure they are (a parsed record is 1.0).
    if confidence is not None:
        attributes["confidence"] = confidence
    if signature is not None:
        attributes["signature"] = signature
    return Fact("event", attributes, provenance)


# ---------------------------------------------------------------- events kept or counted
class RecordHead(Protocol):
    """What the head of a record (a few fields read without building the event) tells:
    ``read`` gives its key (hashable) and its ``time_local or time``, or None when only the
    whole reading can say; ``fields`` the event's fields but ``unknown`` from a key; ``text`` a
    text of the record holding the value of each field of ``verbatim`` (some of ``unknown``) as
    it is; ``fact`` the event itself (the whole reading)."""

    unknown: frozenset[str]
    verbatim: frozenset[str]

    def read(self, record: Any) -> tuple[Any, Any] | None: ...

    def fields(self, key: Any) -> dict[str, Any]: ...

    def text(self, record: Any) -> str: ...

    def fact(self, record: Any, path: str) -> Fact: ...


class EventSelector(Protocol):
    """One log's events offered as read; ``kept()``: those to keep in full, in order."""

    def add(self, fact: Fact) -> bool: ...

    def take(self, key: Any, when: Any, record: Any, head: RecordHead, path: str) -> bool:
        """Take an event by the head of its record (``key, when = head.read(record)``) when that
        settles that no rule can use it; False: offer it whole."""
        ...

    def kept(self) -> list[Fact]: ...


class EventFilter(Protocol):
    """What decides which events a run needs in full (triage's
    :class:`hvrescue.diagnose.relevance.EventRelevance`); the others are counted."""

    def selector(self) -> EventSelector: ...


@lru_cache(maxsize=4096)
def counted(path: str, fmt: Any) -> Fact:
    """The stand-in of an event of ``path`` that was counted, not kept: shared by all of them
    (a list of N stand-ins costs N pointers), no time, ``counted: true``."""
    return Fact("event", {"format": fmt, "counted": True}, Provenance(path, None))


def thin(facts: list[Fact], keep: EventFilter) -> list[Fact]:
    """``facts`` with the events ``keep`` does not need replaced, in place, by counted
    stand-ins (same path and format: every count per file, and the order in which a file's
    formats first appear, stay)."""
    selector = keep.selector()
    for fact in facts:
        selector.add(fact)
    kept = {id(f) for f in selector.kept()}
    return [
        f
        if f.kind != "event" or id(f) in kept
        else counted(f.provenance.path, f.attributes.get("format"))
        for f in facts
    ]
