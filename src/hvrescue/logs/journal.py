"""The entries of a systemd journal file (``/var/log/journal/<machine-id>/*.journal``), read from
its bytes as systemd's "Journal File Format" describes them: entry objects in the order they were
written, each with its time, boot and fields (``MESSAGE``, ``PRIORITY``, ``SYSLOG_IDENTIFIER``).

Both layouts are read: the regular one and the compact one systemd 252 and later write (32-bit
item offsets); data compressed with XZ (the standard library), LZ4 or zstd (the ``lz4`` and
``zstandard`` packages, when installed: a field they would decompress is said as
``undecoded`` otherwise). A journal cut short (copied while journald wrote, or its disk
damaged) is read as far as its objects are whole; every size and offset is checked against the
file before it is used, so a damaged file gives fewer entries and a reason, never a crash.
"""

from __future__ import annotations

import datetime as dt
import lzma
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hvrescue.facts.model import Fact, Problem, Provenance

SIGNATURE = b"LPKSHHRH"
HEADER_MIN = 208  # the header up to tail_entry_monotonic (systemd 187 and later are larger)
OBJECT_HEADER = 16
DATA, ENTRY = 1, 3
INCOMPAT_XZ, INCOMPAT_LZ4, INCOMPAT_KEYED_HASH, INCOMPAT_ZSTD, INCOMPAT_COMPACT = 1, 2, 4, 8, 16
OBJ_XZ, OBJ_LZ4, OBJ_ZSTD = 1, 2, 4
MAX_FIELD = 1 << 20  # a field decompressed to more than this is cut (journald caps fields too)
MAX_ITEMS = 1024  # fields read of one entry
WANTED = (b"MESSAGE", b"PRIORITY", b"SYSLOG_IDENTIFIER", b"_HOSTNAME", b"_COMM", b"_PID")


class JournalError(ValueError):
    """Not a journal file, or a header that cannot be one."""


@dataclass
class Entry:
    seqnum: int
    realtime: int  # microseconds since the epoch, UTC
    monotonic: int
    boot_id: str
    fields: dict[str, str] = field(default_factory=dict)
    undecoded: list[str] = field(default_factory=list)  # fields compressed by a missing codec


@dataclass
class Journal:
    entries: list[Entry]
    compact: bool
    state: str  # offline, online (journald had it open: the end may be cut), archived
    complete: bool  # every object up to the header's tail was read
    reason: str | None = None


_STATES = {0: "offline", 1: "online", 2: "archived"}


def read_journal(data: bytes, wanted: tuple[bytes, ...] = WANTED) -> Journal:
    """Every entry of a journal file's bytes, with the ``wanted`` fields."""
    if len(data) < HEADER_MIN or data[:8] != SIGNATURE:
        raise JournalError("no journal header")
    incompat = struct.unpack_from("<I", data, 12)[0]
    state = _STATES.get(data[16], f"state {data[16]}")
    header_size, arena_size = struct.unpack_from("<QQ", data, 88)
    tail_object = struct.unpack_from("<Q", data, 136)[0]
    if header_size < HEADER_MIN or header_size > len(data) or header_size % 8:
        raise JournalError(f"a header of {header_size} bytes")
    reader = _Reader(data, bool(incompat & INCOMPAT_COMPACT), wanted)
    end = min(len(data), header_size + arena_size)
    entries: list[Entry] = []
    reason = None
    for offset, kind in reader.objects(header_size, end):
        if kind == ENTRY:
            try:
                entries.append(reader.entry(offset))
            except (struct.error, ValueError) as exc:
                reason = f"entry at {offset}: {exc}"
                break
    complete = reader.last is not None and reader.last >= tail_object and reason is None
    if reason is None and not complete:
        reason = reader.stopped or "the file ends before its last object"
    return Journal(entries, reader.compact, state, complete, reason)


class _Reader:
    def __init__(self, data: bytes, compact: bool, wanted: tuple[bytes, ...]) -> None:
        self.data = data
        self.compact = compact
        self.wanted = wanted
        self.last: int | None = None
        self.stopped: str | None = None
        self._fields: dict[int, tuple[str, str] | None] = {}

    def objects(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(offset, type) of each whole object, in file order."""
        offset = start
        data = self.data
        while offset + OBJECT_HEADER <= end:
            kind = data[offset]
            size = struct.unpack_from("<Q", data, offset + 8)[0]
            if kind == 0 and size == 0:
                self.stopped = f"unused space at {offset}"  # journald's file past its tail
                return
            if size < OBJECT_HEADER or offset + size > end or not 1 <= kind <= 7:
                self.stopped = f"a damaged object at {offset}"
                return
            self.last = offset
            yield offset, kind
            offset += (size + 7) & ~7

    def entry(self, offset: int) -> Entry:
        data = self.data
        size = struct.unpack_from("<Q", data, offset + 8)[0]
        seqnum, realtime, monotonic = struct.unpack_from("<QQQ", data, offset + 16)
        boot = data[offset + 40 : offset + 56].hex()
        item = 4 if self.compact else 16
        count = min((size - 64) // item, MAX_ITEMS)
        out = Entry(seqnum, realtime, monotonic, boot)
        for n in range(count):
            at = offset + 64 + n * item
            target = struct.unpack_from("<I" if self.compact else "<Q", data, at)[0]
            found = self._field(target)
            if found is None:
                continue
            name, value = found
            if value is _UNDECODED:
                out.undecoded.append(name)
            else:
                out.fields.setdefault(name, value)
        return out

    def _field(self, offset: int) -> tuple[str, str] | None:
        if offset in self._fields:
            return self._fields[offset]
        found = self._decode(offset)
        if len(self._fields) < 1_000_000:
            self._fields[offset] = found
        return found

    def _decode(self, offset: int) -> tuple[str, str] | None:
        data = self.data
        if offset % 8 or offset + 64 > len(data) or data[offset] != DATA:
            raise ValueError(f"an item points at {offset}, which is no data object")
        flags = data[offset + 1]
        size = struct.unpack_from("<Q", data, offset + 8)[0]
        start = offset + (72 if self.compact else 64)
        if size < start - offset or offset + size > len(data):
            raise ValueError(f"the data object at {offset} is cut")
        payload = data[start : offset + size]
        raw: bytes | None = payload
        if flags & (OBJ_XZ | OBJ_LZ4 | OBJ_ZSTD):
            raw = _decompress(payload, flags)  # (only fields over 512 bytes are compressed)
            if raw is None:
                return "?", _UNDECODED  # its name is inside the compressed bytes too
        assert raw is not None
        eq = raw.find(b"=", 0, 256)
        if eq < 0 or raw[:eq] not in self.wanted:
            return None
        name_bytes, value = raw[:eq], raw[eq + 1 :]
        return name_bytes.decode("ascii", "replace"), value[:MAX_FIELD].decode("utf-8", "replace")


_UNDECODED = "\0undecoded"


def _decompress(payload: bytes, flags: int, limit: int = MAX_FIELD) -> bytes | None:
    """The field ``payload`` holds, at most ``limit`` bytes; None when its codec is missing or
    the payload does not decompress."""
    try:
        if flags & OBJ_XZ:
            return lzma.LZMADecompressor().decompress(payload, max_length=limit)
        if flags & OBJ_ZSTD:
            zstd: Any = _codec("zstandard")
            if zstd is None:
                return None
            reader = zstd.ZstdDecompressor().stream_reader(payload)
            return bytes(reader.read(limit))
        if flags & OBJ_LZ4:
            lz4: Any = _codec("lz4.block")
            if lz4 is None or len(payload) < 8:
                return None
            size = struct.unpack_from("<Q", payload, 0)[0]
            if size > MAX_FIELD:
                return None
            return bytes(lz4.decompress(payload[8:], uncompressed_size=size))[:limit]
    except Exception:  # each codec raises its own errors for damaged data
        return None
    return None


def _codec(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# ---------------------------------------------------------------- entries as evidence
def journal_event(entry: Entry, path: str) -> dict[str, object] | None:
    """A ``linux_log_event``'s attributes for an entry the log-line classifier
    (:mod:`hvrescue.logs.linux_lines`) finds notable, else None; its line as rsyslog would
    write it ("systemd[1]: ...", "kernel: ..."), so the same patterns read both."""
    from hvrescue.logs.linux_lines import classify

    fields = entry.fields
    message = fields.get("MESSAGE")
    if not message:
        return None
    ident = fields.get("SYSLOG_IDENTIFIER") or fields.get("_COMM") or ""
    pid = fields.get("_PID")
    line = f"{ident}[{pid}]: {message}" if ident and pid else f"{ident}: {message}"
    category = classify(line)
    if category is None:
        return None
    moment = dt.datetime.fromtimestamp(entry.realtime / 1_000_000, dt.UTC)
    return {
        "category": category,
        "time_text": moment.isoformat().replace("+00:00", "Z"),
        "host": fields.get("_HOSTNAME"),
        "message": line.replace("\r", " ").replace("\n", " ").strip()[:400],
        "priority": fields.get("PRIORITY"),
        "boot_id": entry.boot_id,
        "seqnum": entry.seqnum,
        "file": path,
        "source": "journal",
    }


MAX_EVENTS = 200  # notable entries kept per file, the newest


def journal_facts(data: bytes, path: str) -> tuple[list[Fact], list[Problem]]:
    """A journal file given as evidence: its notable entries as ``linux_log_event`` facts
    (the newest :data:`MAX_EVENTS`), and what could not be read."""
    try:
        journal = read_journal(data)
    except JournalError as exc:
        return [], [Problem(path, "journal.unreadable", None, {"reason": str(exc)[:300]})]
    events = []
    for item in journal.entries:
        attrs = journal_event(item, path)
        if attrs is not None:
            events.append((item.realtime, attrs, f"journal-seqnum:{item.seqnum}"))
    events.sort(key=lambda e: e[0])
    facts = [
        Fact("linux_log_event", a, Provenance(path, loc)) for _t, a, loc in events[-MAX_EVENTS:]
    ]
    problems = []
    if not journal.complete:
        reason = f"{journal.reason}; {len(journal.entries)} entries read"
        problems.append(Problem(path, "journal.incomplete", None, {"reason": reason[:300]}))
    undecoded = sum(len(e.undecoded) for e in journal.entries)
    if undecoded:
        problems.append(Problem(path, "journal.undecoded", None, {"count": undecoded}))
    return facts, problems
