"""EVTX through the Rust-backed ``evtx`` package: every record, damaged chunks reported.

The package yields each record as JSON; ``_from_json`` turns it into the event fact shape. A chunk
the package cannot parse raises once and iteration goes on with the next chunk, so a damaged chunk
costs only its own records, and it is reported with the record range the chunk header names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

import evtx

from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.logs.events import as_int, event_fact, normalise_utc

EVTX_MAGIC = b"ElfFile\0"
MAX_CONSECUTIVE_ERRORS = 10_000


def _text(value: Any) -> Any:
    """Element text as the JSON rendering gives it: a scalar, or {"#text": ...}."""
    if isinstance(value, dict):
        return value.get("#text")
    return value


def _data_fields(event: dict[str, Any]) -> tuple[dict[str, Any] | list[Any], str | None]:
    """EventData as named fields or a positional list (UserData flattened one level), and the
    Binary element apart."""
    ed = event.get("EventData")
    if isinstance(ed, dict):
        fields = {k: v for k, v in ed.items() if k != "#attributes"}
        binary = _text(fields.pop("Binary", None))
        if set(fields) == {"Data"}:
            data = fields["Data"]
            data = _text(data) if isinstance(data, dict) else data
            if isinstance(data, list):
                return [_text(x) for x in data], binary
            return ([data] if data is not None else []), binary
        return {k: _text(v) for k, v in fields.items()}, binary
    if ed is not None:
        return [ed], None
    ud = event.get("UserData")
    if isinstance(ud, dict):
        for inner in ud.values():
            if isinstance(inner, dict):
                return {k: _text(v) for k, v in inner.items() if k != "#attributes"}, None
    return {}, None


def from_json(record: dict[str, Any], path: str) -> Fact:
    event = json.loads(record["data"]).get("Event", {})
    system = event.get("System", {}) or {}
    provider = (system.get("Provider") or {}).get("#attributes", {}) or {}
    eid = system.get("EventID")
    qualifiers = None
    if isinstance(eid, dict):
        qualifiers = as_int((eid.get("#attributes") or {}).get("Qualifiers"))
        eid = eid.get("#text")
    execution = (system.get("Execution") or {}).get("#attributes", {}) or {}
    security = (system.get("Security") or {}) if isinstance(system.get("Security"), dict) else {}
    created = (system.get("TimeCreated") or {}).get("#attributes", {}) or {}
    # The record header's number locates the record in this file; EventRecordID is what Event
    # Viewer shows, and differs from it in exported logs (wevtutil epl renumbers the headers).
    record_id = as_int(record.get("event_record_id"))
    data, binary = _data_fields(event)
    return event_fact(
        Provenance(path, f"record:{record_id}"),
        source_format="evtx",
        channel=_text(system.get("Channel")),
        provider=provider.get("Name"),
        source_name=provider.get("EventSourceName") or provider.get("Name"),
        event_id=as_int(_text(eid)),
        qualifiers=qualifiers,
        level=as_int(_text(system.get("Level"))),
        time=normalise_utc(created.get("SystemTime") or record.get("timestamp")),
        record_id=record_id,
        system_record_id=as_int(_text(system.get("EventRecordID"))),
        computer=_text(system.get("Computer")),
        data=data,
        binary=binary,
        task=_text(system.get("Task")),
        opcode=_text(system.get("Opcode")),
        keywords=_text(system.get("Keywords")),
        user_sid=(security.get("#attributes") or {}).get("UserID"),
        process_id=as_int(execution.get("ProcessID")),
        thread_id=as_int(execution.get("ThreadID")),
    )


def read_evtx(source: str | IO[bytes], path: str) -> tuple[list[Fact], list[Problem]]:
    facts: list[Fact] = []
    problems: list[Problem] = []
    for item in iter_evtx(source, path):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            facts.append(item)
    return facts, problems


def iter_evtx(source: str | IO[bytes], path: str) -> Iterator[Fact | Problem]:
    try:
        parser = evtx.PyEvtxParser(source)
    except (OSError, RuntimeError, ValueError) as exc:
        yield Problem(path, "evtx.unreadable", None, {"reason": str(exc)[:300]})
        return
    records = parser.records_json()
    errors = 0
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except (RuntimeError, OSError, ValueError) as exc:
            errors += 1
            text = str(exc)
            m = re.search(r"record IDs (\d+)\.\.(\d+)", text)
            locator = f"records:{m.group(1)}-{m.group(2)}" if m else None
            yield Problem(path, "evtx.chunk-damaged", locator, {"reason": text[:300]})
            if errors > MAX_CONSECUTIVE_ERRORS:
                return
            continue
        errors = 0
        if not isinstance(item, dict):
            continue
        record: dict[str, Any] = item
        try:
            yield from_json(record, path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            yield Problem(
                path,
                "evtx.record-damaged",
                f"record:{record.get('event_record_id')}",
                {"reason": str(exc)[:300]},
            )
