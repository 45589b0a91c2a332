"""One EVTX record (the ``evtx`` package's JSON) as the event fact: the hot path of large logs.

The record's JSON is decoded straight into the few parts the fact takes (msgspec structs); a
record of another shape goes through the same code over plain dicts (``_from_dicts``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import LEVEL_NAMES, as_int, normalise_utc


def _text(value: Any) -> Any:
    """Element text as the JSON rendering gives it: a scalar, or {"#text": ...}."""
    if type(value) is dict:
        return value.get("#text")
    return value


def _data_fields(ed: Any, ud: Any) -> tuple[dict[str, Any] | list[Any], str | None]:
    """EventData as named fields or a positional list (UserData flattened one level), and the
    Binary element apart."""
    if type(ed) is dict:
        binary = ed.get("Binary")
        if binary is not None or "#attributes" in ed:
            ed = {k: v for k, v in ed.items() if k not in ("Binary", "#attributes")}
            binary = _text(binary)
        if len(ed) == 1 and "Data" in ed:
            data = ed["Data"]
            if type(data) is dict:
                data = data.get("#text")
            if type(data) is list:
                if dict not in map(type, data):
                    return data, binary  # decoded for this record alone: no copy needed
                return [x.get("#text") if type(x) is dict else x for x in data], binary
            return ([data] if data is not None else []), binary
        if dict not in map(type, ed.values()):
            return ed, binary  # the common shape: flat values, the decoded dict as it is
        return {k: v.get("#text") if type(v) is dict else v for k, v in ed.items()}, binary
    if ed is not None:
        return [ed], None
    if type(ud) is dict:
        for inner in ud.values():
            if type(inner) is dict:
                return {k: _text(v) for k, v in inner.items() if k != "#attributes"}, None
    return {}, None


_EMPTY: dict[str, Any] = {}
# One reusable decoder (msgspec, already a dependency): within ~10 % of orjson end to end on
# bench/bench_facts.py, so one JSON library fewer to install.
_decode = msgspec.json.Decoder().decode


# The record's JSON decoded straight into the few parts the fact takes (msgspec skips the rest
# and builds no dicts for them): half the decoding cost. A record of another shape (a node that
# is no object where one is expected) is read by _from_dicts, the same code over plain dicts;
# tests/test_event_relevance.py holds the two equal on the public corpora.
class _ProviderAttributes(msgspec.Struct):
    Name: Any = None
    EventSourceName: Any = None


class _Provider(msgspec.Struct):
    attributes: _ProviderAttributes | None = msgspec.field(default=None, name="#attributes")


class _TimeAttributes(msgspec.Struct):
    SystemTime: Any = None


class _TimeCreated(msgspec.Struct):
    attributes: _TimeAttributes | None = msgspec.field(default=None, name="#attributes")


class _ExecutionAttributes(msgspec.Struct):
    ProcessID: Any = None
    ThreadID: Any = None


class _Execution(msgspec.Struct):
    attributes: _ExecutionAttributes | None = msgspec.field(default=None, name="#attributes")


class _SecurityAttributes(msgspec.Struct):
    UserID: Any = None


class _Security(msgspec.Struct):
    attributes: _SecurityAttributes | None = msgspec.field(default=None, name="#attributes")


class _System(msgspec.Struct):
    Provider: _Provider | None = None
    EventID: Any = None
    Level: Any = None
    Task: Any = None
    Opcode: Any = None
    Keywords: Any = None
    TimeCreated: _TimeCreated | None = None
    EventRecordID: Any = None
    Execution: _Execution | None = None
    Channel: Any = None
    Computer: Any = None
    Security: _Security | None = None


class _Event(msgspec.Struct):
    System: _System | None = None
    EventData: Any = None
    UserData: Any = None


class _Record(msgspec.Struct):
    Event: _Event | None = None


_decode_record = msgspec.json.Decoder(_Record).decode
_NO_SYSTEM = _System()
_NO_EVENT = _Event()


def from_json(record: dict[str, Any], path: str) -> Fact:
    """One record as the event fact. This is the hot path of large logs (see
    bench/bench_facts.py): decoded into structs, the attributes built in place, with exactly
    the keys of :func:`hvrescue.logs.events.event_fact` (a test holds the two together)."""
    attributes = json_attributes(record)
    if attributes is None:  # another shape (or no JSON): the plain reading says what
        return _from_dicts(record, path)
    return Fact("event", attributes, Provenance(path, f"record:{attributes['record_id']}"))


def json_attributes(record: dict[str, Any]) -> dict[str, Any] | None:
    """The attributes of :func:`from_json`'s fact, or None for a record of another shape (read
    the plain way by ``from_json``). What cannot be read raises, as in ``from_json``."""
    try:
        event = _decode_record(record["data"]).Event or _NO_EVENT
    except msgspec.DecodeError:
        return None
    system = event.System or _NO_SYSTEM
    node = system.Provider
    names = (node.attributes if node is not None else None) or _NO_PROVIDER
    eid = system.EventID
    qualifiers = None
    if type(eid) is dict:
        qualifiers = as_int((eid.get("#attributes") or _EMPTY).get("Qualifiers"))
        eid = eid.get("#text")
    execution = system.Execution
    run = (execution.attributes if execution is not None else None) or _NO_EXECUTION
    created_node = system.TimeCreated
    created = (
        (created_node.attributes if created_node is not None else None) or _NO_TIME
    ).SystemTime or record.get("timestamp")
    security = system.Security
    user = ((security.attributes if security is not None else None) or _NO_SECURITY).UserID
    return _attributes(
        record,
        (names.Name, names.EventSourceName, eid, qualifiers, system.Level, created),
        (system.EventRecordID, system.Channel, system.Computer, system.Task, system.Opcode),
        (system.Keywords, user, run.ProcessID, run.ThreadID),
        _data_fields(event.EventData, event.UserData),
    )


_NO_PROVIDER = _ProviderAttributes()
_NO_EXECUTION = _ExecutionAttributes()
_NO_TIME = _TimeAttributes()
_NO_SECURITY = _SecurityAttributes()


# The head of a record: the System fields that decide, for most events, that no rule can use
# them (``head``). A third of the full decoding's cost: msgspec skips everything else.
# The nodes decoded into structs are those of _System: a record one decoding refuses, the other
# refuses too (and from_json reads it the plain way, or reports it damaged).
class _HeadSystem(msgspec.Struct):
    Provider: _Provider | None = None
    EventID: Any = None
    Level: Any = None
    TimeCreated: _TimeCreated | None = None
    Execution: _Execution | None = None
    Security: _Security | None = None


class _HeadEvent(msgspec.Struct):
    System: _HeadSystem | None = None


class _HeadRecord(msgspec.Struct):
    Event: _HeadEvent | None = None


_decode_head = msgspec.json.Decoder(_HeadRecord).decode
_NO_HEAD_SYSTEM = _HeadSystem()


# The fields of from_json's event that the head leaves out: the event has each of the others as
# head_fields gives it, or does not have it (tests/test_evtx_head.py holds this on every record).
HEAD_UNKNOWN = frozenset(
    {
        "channel",
        "qualifiers",
        "time",
        "record_id",
        "system_record_id",
        "computer",
        "data",
        "binary",
        "task",
        "opcode",
        "keywords",
        "user_sid",
        "process_id",
        "thread_id",
    }
)


# The fields of HEAD_UNKNOWN whose strings (and integers) ``data_text`` holds as the event has
# them: taken from the record as they are, not converted.
HEAD_VERBATIM = frozenset({"data", "binary"})


def data_text(record: dict[str, Any]) -> str:
    """The record's JSON from its first ``EventData`` or ``UserData`` member on: every value of
    the event's ``data`` and ``binary`` appears in it as it is. (A key is found only where it
    is one: inside a JSON string its quotes are escaped.)"""
    text: str = record["data"]
    at = text.find('"EventData":')
    user = text.find('"UserData":', 0, at) if at >= 0 else text.find('"UserData":')
    if user >= 0:
        at = user
    return text[at:] if at >= 0 else ""


def head_read(record: dict[str, Any]) -> tuple[tuple[Any, Any, Any, Any], Any] | None:
    """The key of the record's event (``provider``, ``source_name``, ``event_id``, ``level``)
    and its ``time``, exactly as :func:`from_json` gives them, without building it; None where
    only :func:`from_json` can say (a record of another shape, read the plain way or reported
    damaged)."""
    try:
        event = _decode_head(record["data"]).Event
    except msgspec.DecodeError:
        return None
    system = (event.System if event is not None else None) or _NO_HEAD_SYSTEM
    node = system.Provider
    names = (node.attributes if node is not None else None) or _NO_PROVIDER
    eid = system.EventID
    if type(eid) is dict:
        if type(eid.get("#attributes") or _EMPTY) is not dict:
            return None  # from_json reports the record damaged
        eid = eid.get("#text")
    created_node = system.TimeCreated
    created = (
        (created_node.attributes if created_node is not None else None) or _NO_TIME
    ).SystemTime or record.get("timestamp")
    if created and type(created) is not str:
        return None  # from_json reports the record damaged
    level = system.Level
    key = (
        names.Name,
        names.EventSourceName or names.Name,
        eid if type(eid) is int else _event_id(eid),
        level if type(level) is int else _level(level),
    )
    return key, _time(created)


def head_fields(key: tuple[Any, Any, Any, Any]) -> dict[str, Any]:
    """The fields of the event but ``HEAD_UNKNOWN``, from its key (:func:`head_read`)."""
    provider, source_name, event_id, level = key
    return {
        "provider": provider,
        "source_name": source_name,
        "event_id": event_id,
        "level": level,
        "level_name": _level_name(level),
        "time_local": None,
        "message": None,
        "format": "evtx",
    }


class EvtxHead:
    """What the head of an EVTX record tells of its event (``EventSelector.take``)."""

    unknown = HEAD_UNKNOWN
    verbatim = HEAD_VERBATIM
    read = staticmethod(head_read)
    fields = staticmethod(head_fields)
    text = staticmethod(data_text)
    fact = staticmethod(from_json)


EVTX_HEAD = EvtxHead()


def _time(created: Any) -> str | None:
    return created if created and created[-1] == "Z" else normalise_utc(created)


def _event_id(eid: Any) -> int | None:
    return eid if type(eid) is int else as_int(_text(eid))


def _level(level: Any) -> int | None:
    return level if type(level) is int else as_int(_text(level))


def _level_name(level: int | None) -> str | None:
    return None if level is None else LEVEL_NAMES.get(level, str(level))


def _from_dicts(record: dict[str, Any], path: str) -> Fact:
    """:func:`from_json` over plain dicts, for a record of any shape (what cannot be read
    raises, and the record is reported damaged)."""
    event = _decode(record["data"]).get("Event") or _EMPTY
    system = event.get("System") or _EMPTY
    get = system.get
    node = get("Provider")
    provider = (node.get("#attributes") or _EMPTY) if type(node) is dict else _EMPTY
    eid = get("EventID")
    qualifiers = None
    if type(eid) is dict:
        qualifiers = as_int((eid.get("#attributes") or _EMPTY).get("Qualifiers"))
        eid = eid.get("#text")
    node = get("Execution")
    execution = (node.get("#attributes") or _EMPTY) if type(node) is dict else _EMPTY
    node = get("TimeCreated")
    created = ((node.get("#attributes") or _EMPTY) if type(node) is dict else _EMPTY).get(
        "SystemTime"
    ) or record.get("timestamp")
    node = get("Security")
    security = (node.get("#attributes") or _EMPTY) if type(node) is dict else _EMPTY
    attributes = _attributes(
        record,
        (
            provider.get("Name"),
            provider.get("EventSourceName"),
            eid,
            qualifiers,
            get("Level"),
            created,
        ),
        (get("EventRecordID"), get("Channel"), get("Computer"), get("Task"), get("Opcode")),
        (
            get("Keywords"),
            security.get("UserID"),
            execution.get("ProcessID"),
            execution.get("ThreadID"),
        ),
        _data_fields(event.get("EventData"), event.get("UserData")),
    )
    return Fact("event", attributes, Provenance(path, f"record:{attributes['record_id']}"))


def _attributes(
    record: dict[str, Any],
    head: tuple[Any, Any, Any, Any, Any, Any],
    ids: tuple[Any, Any, Any, Any, Any],
    tail: tuple[Any, Any, Any, Any],
    fields: tuple[dict[str, Any] | list[Any], str | None],
) -> dict[str, Any]:
    name, source, eid, qualifiers, level, created = head
    system_record_id, channel, computer, task, opcode = ids
    keywords, user_sid, process_id, thread_id = tail
    data, binary = fields
    # (the helpers' own first tests inline, without the calls: the common values are numbers
    # and EVTX's own time)
    if type(level) is not int:
        level = _level(level)
    # The record header's number locates the record in this file; EventRecordID is what Event
    # Viewer shows, and differs from it in exported logs (wevtutil epl renumbers the headers).
    record_id = record.get("event_record_id")
    if type(system_record_id) is not int:
        system_record_id = (
            as_int(_text(system_record_id)) if system_record_id is not None else record_id
        )
    return {
        "channel": channel if type(channel) is not dict else channel.get("#text"),
        "provider": name,
        "source_name": source or name,
        "event_id": eid if type(eid) is int else _event_id(eid),
        "qualifiers": qualifiers,
        "level": level,
        "level_name": _level_name(level),
        "time": created if created and created[-1] == "Z" else _time(created),
        "time_local": None,
        "record_id": record_id,
        "system_record_id": system_record_id,
        "computer": computer if type(computer) is not dict else computer.get("#text"),
        "data": data,
        "binary": binary,
        "message": None,
        "task": task if type(task) is not dict else task.get("#text"),
        "opcode": opcode if type(opcode) is not dict else opcode.get("#text"),
        "keywords": keywords if type(keywords) is not dict else keywords.get("#text"),
        "user_sid": user_sid,
        "process_id": process_id if type(process_id) is int else as_int(process_id),
        "thread_id": thread_id if type(thread_id) is int else as_int(thread_id),
        "format": "evtx",
    }
