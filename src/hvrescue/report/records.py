"""Facts as flat timeline records, written as JSON Lines or CSV (Timesketch, Splunk, Excel).

Every record has Timesketch's three required fields, ``message``, ``datetime`` (ISO 8601) and
``timestamp_desc``, and ``timestamp`` (microseconds since 1970, as Timesketch and plaso count),
then ours: ``kind``, ``source`` (event provider), ``event_id``, ``level``, ``channel``,
``computer``, ``record_id``, ``time_zone``, ``path`` and ``locator`` (provenance) and
``attributes`` (all of the fact, as JSON text). The same columns, in the same order, head the CSV.

Times are never invented or shifted:
- a time recorded in UTC (EVTX SystemTime, crash dump and WER FILETIMEs) is written with
  ``+00:00`` and ``time_zone`` ``UTC``;
- a local time of a host whose zone the evidence does not give (Event Viewer CSV exports,
  DISM listings) is written without an offset and ``time_zone`` ``local``; Timesketch reads
  such a time as UTC, so it may be off by the host's offset;
- a fact with no time of its own (a writer list, a service) follows plaso's convention:
  ``datetime`` ``1970-01-01T00:00:00+00:00``, ``timestamp`` 0, ``timestamp_desc`` ``Not a time``.

CSV is UTF-8 with a byte order mark (what Excel needs to read UTF-8), CRLF line ends, a header
row; a cell that Excel would run as a formula (starting with ``=``, ``+``, ``-``, ``@``) gets a
leading ``'`` (evidence comes from compromised hosts), and a cell over Excel's 32,767
characters is cut with a marker. JSON Lines keeps every value as it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

from hvrescue.facts.model import Fact
from hvrescue.logs.events import is_evtx_time

COLUMNS = (
    "datetime",
    "timestamp",
    "timestamp_desc",
    "message",
    "kind",
    "source",
    "event_id",
    "level",
    "channel",
    "computer",
    "record_id",
    "time_zone",
    "path",
    "locator",
    "attributes",
)
# (attribute, recorded in UTC, what the time is), first found wins.
TIME_FIELDS = (
    ("time", True, "Event Logged"),
    ("time_local", False, "Event Logged"),
    ("system_time", True, "Crash Time"),
    ("event_time", True, "Error Reported"),
    ("install_time_local", False, "Package Installed"),
)
NOT_A_TIME = "Not a time"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)
_fromisoformat = dt.datetime.fromisoformat
MAX_MESSAGE = 4096
EXCEL_CELL = 32_767
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_encoder = msgspec.json.Encoder(enc_hook=str)
_encode = _encoder.encode
_encode_lines = _encoder.encode_lines
# Records encoded and written at once: one call for many lines; the batch stays small.
LINES_PER_WRITE = 256


def _json(value: Any) -> bytes:
    try:
        return _encode(value)
    except (TypeError, ValueError, UnicodeEncodeError, msgspec.EncodeError):
        # A string that is no valid Unicode (surrogates): \u-escaped, nothing lost.
        return json.dumps(value, ensure_ascii=True, default=str).encode("ascii")


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as the parsers write it (7 fractional digits allowed), or None."""
    # EVTX's own form, the bulk of a host's events: the same value as below without the
    # substitutions.
    if is_evtx_time(value):
        try:
            return dt.datetime.fromisoformat(value[:26]).replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def fact_time(fact: Fact) -> tuple[dt.datetime, bool, str] | None:
    """The fact's own time: (moment, whether it is UTC, what it is), or None."""
    for name, utc, desc in TIME_FIELDS:
        moment = parse_time(fact.attributes.get(name))
        if moment is None:
            continue
        if moment.tzinfo is not None:
            return moment.astimezone(dt.UTC), True, desc
        return (moment.replace(tzinfo=dt.UTC) if utc else moment), utc, desc
    return None


def _message(fact: Fact) -> str:
    """The fact's own text on one line: an event's message (its data when it has none), other
    facts as their first attributes."""
    if fact.kind == "event":
        return _event_message(fact.attributes)
    # Imported here: the rule engine (and the YAML it loads) is not needed for events.
    from hvrescue.diagnose.engine import excerpt

    text = " ".join(f"{fact.kind}: {excerpt(fact)}".split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _event_message(a: dict[str, Any]) -> str:
    text = str(a.get("message") or "").strip()
    if not text:
        data = a.get("data")
        values = data.values() if isinstance(data, dict) else data or []
        # (most values are already str: str() of one is itself)
        text = " | ".join(
            [v if type(v) is str else str(v) for v in values if v is not None and v != ""]
        )
        head = f"{a.get('provider') or a.get('source_name') or ''} {a.get('event_id') or ''}"
        text = f"{head.strip()}: {text}" if text else head.strip()
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def fact_record(fact: Fact) -> dict[str, Any]:
    """One fact as a flat timeline record (the columns of :data:`COLUMNS`)."""
    if fact.kind == "event":
        record = _evtx_record(fact)
        if record is not None:
            return record
    a = fact.attributes
    found = fact_time(fact)
    if found is None:
        moment, zone, desc = _EPOCH, "", NOT_A_TIME
        text = _EPOCH.isoformat()
    else:
        moment, utc, desc = found
        zone = "UTC" if utc else "local"
        text = moment.isoformat()
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    delta = aware - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    event = fact.kind == "event"
    return {
        "datetime": text,
        "timestamp": micros,
        "timestamp_desc": desc,
        "message": _message(fact),
        "kind": fact.kind,
        "source": (a.get("provider") or a.get("source_name")) if event else None,
        "event_id": a.get("event_id") if event else None,
        "level": a.get("level_name") if event else None,
        "channel": a.get("channel") if event else None,
        "computer": a.get("computer") if event else None,
        "record_id": (a.get("system_record_id") or a.get("record_id")) if event else None,
        "time_zone": zone,
        "path": fact.provenance.path,
        "locator": fact.provenance.locator,
        "attributes": _json(a).decode("utf-8", errors="replace"),
    }


def _evtx_record(fact: Fact) -> dict[str, Any] | None:
    """:func:`fact_record` of an event whose ``time`` has EVTX's own form (the bulk of a host's
    events), or None for any other: the same record, without the general path's steps
    (tests/test_facts_jsonl_fast.py holds the two equal)."""
    a = fact.attributes
    value = a.get("time")
    if not is_evtx_time(value):
        return None
    try:
        # what parse_time gives, before its tzinfo=UTC (astimezone(UTC) then keeps it as it is)
        moment = _fromisoformat(value[:26])
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    delta = moment - _NAIVE_EPOCH
    return {
        "datetime": moment.isoformat() + "+00:00",
        "timestamp": (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds,
        "timestamp_desc": "Event Logged",
        "message": _event_message(a),
        "kind": "event",
        "source": a.get("provider") or a.get("source_name"),
        "event_id": a.get("event_id"),
        "level": a.get("level_name"),
        "channel": a.get("channel"),
        "computer": a.get("computer"),
        "record_id": a.get("system_record_id") or a.get("record_id"),
        "time_zone": "UTC",
        "path": fact.provenance.path,
        "locator": fact.provenance.locator,
        "attributes": _json(a).decode("utf-8", errors="replace"),
    }


def fact_records(facts: Iterable[Fact]) -> Iterator[dict[str, Any]]:
    """Every fact, in the order given (those without a time as "Not a time")."""
    return (fact_record(f) for f in facts)


def timeline_records(facts: Iterable[Fact]) -> list[dict[str, Any]]:
    """The facts that carry a time of their own, oldest first (local and UTC times are sorted
    as written: the evidence does not say how far apart they are)."""
    timed = []
    for fact in facts:
        found = fact_time(fact)
        if found is not None:
            timed.append((found[0].replace(tzinfo=None), fact))
    timed.sort(key=lambda item: item[0])
    return [fact_record(f) for _, f in timed]


def write_jsonl(records: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    """One JSON object per line (UTF-8); the number written."""
    count = 0
    batch: list[dict[str, Any]] = []
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= LINES_PER_WRITE:
                done, batch = batch, []
                out.write(jsonl_bytes(done))
                count += len(done)
    finally:
        # also when reading the next record failed: every record made is written, as before
        if batch:
            out.write(jsonl_bytes(batch))
            count += len(batch)
    return count


def facts_jsonl(facts: list[Fact]) -> bytes:
    """The JSON Lines of ``facts``' records, as :func:`write_jsonl` writes them (a few hundred
    records at a time: the bytes, not the records, are what is held)."""
    step = LINES_PER_WRITE
    return b"".join(
        [
            jsonl_bytes([fact_record(f) for f in facts[i : i + step]])
            for i in range(0, len(facts), step)
        ]
    )


def write_jsonl_parts(parts: Iterable[list[Fact] | bytes], out: IO[bytes]) -> None:
    """Facts, or their JSON Lines already made (``logs.stream.FactStream.parts`` with
    ``render=facts_jsonl``), written in order as JSON Lines."""
    step = LINES_PER_WRITE
    for part in parts:
        if isinstance(part, bytes):
            out.write(part)
            continue
        for i in range(0, len(part), step):
            out.write(jsonl_bytes([fact_record(f) for f in part[i : i + step]]))


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    """The JSON Lines of ``records``: each line as :func:`_json` writes it, and a line end."""
    try:
        return _encode_lines(records)
    except (TypeError, ValueError, UnicodeEncodeError, msgspec.EncodeError):
        # one of them needs _json's fallback (a string that is no valid Unicode)
        return b"".join([_json(record) + b"\n" for record in records])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA):
        value = "'" + value
    if len(value) > EXCEL_CELL:
        marker = " …[cut]"
        value = value[: EXCEL_CELL - len(marker)] + marker
    return value


def write_csv(records: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    """A header row, then one row per record, for Excel (see the module's notes); the number
    of rows written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    out.write(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))
    count = 0
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(record.get(c)) for c in COLUMNS])
        out.write(buffer.getvalue().encode("utf-8", errors="replace"))
        count += 1
    return count


def write_records(records: Iterable[dict[str, Any]], out: IO[bytes], fmt: str) -> int:
    """``fmt`` is ``jsonl``, ``csv`` or ``json`` (one array, for tools that want a document)."""
    if fmt == "jsonl":
        return write_jsonl(records, out)
    if fmt == "csv":
        return write_csv(records, out)
    if fmt == "json":
        items = list(records)
        try:
            data = json.dumps(items, ensure_ascii=False, indent=2).encode("utf-8")
        except UnicodeEncodeError:
            data = json.dumps(items, ensure_ascii=True, indent=2).encode("ascii")
        out.write(data + b"\n")
        return len(items)
    raise ValueError(f"unknown record format {fmt!r}")
