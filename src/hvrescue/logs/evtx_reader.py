"""EVTX through the Rust-backed ``evtx`` package: every record, damaged chunks reported.

The package yields each record as JSON; ``evtx_records.from_json`` turns it into the event
fact. A chunk the package cannot parse raises once and iteration goes on with the next chunk,
so a damaged chunk costs only its own records, and it is reported with the record range the
chunk header names.
A chunk that would hold the package in an endless loop is found first and hidden from it (read
as an empty chunk), and reported the same way.
"""

from __future__ import annotations

import gc
import io
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from hvrescue.deps import MissingDependencyError, require
from hvrescue.facts.model import Fact, Problem
from hvrescue.logs.events import EventFilter, counted
from hvrescue.logs.evtx_records import EVTX_HEAD, _from_dicts, from_json, head_read

__all__ = ["_from_dicts", "from_json", "looping_chunks", "read_evtx"]

EVTX_MAGIC = b"ElfFile\0"
MAX_CONSECUTIVE_ERRORS = 10_000
# The parser's threads for one log: 0, the package's own choice (one per core), where this
# process reads alone; 1 in the worker processes of logs/parallel.py, which are the parallelism.
PARSER_THREADS = 0
# File layout (libyal's "Windows XML Event Log (EVTX)" notes): a 4 KiB file header, then 64 KiB
# chunks; a chunk header holds 64 string-table offsets (chunk-relative) at 128.
FILE_HEADER = 4096
CHUNK = 65536
CHUNK_MAGIC = b"ElfChnk\0"
_STRINGS = struct.Struct("<64I")
_NEXT = struct.Struct("<I")


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Facts are acyclic; without this the collector rescans every fact built so far, again
    and again, and a large log reads at half speed."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chain_loops(chunk: bytes, starts: tuple[int, ...], ends: set[int]) -> bool:
    """Whether following the ``next`` links (a u32 at each node's start) from any of ``starts``
    comes back to a node already on the way. ``ends``: nodes known to lead out (shared by the
    calls for one chunk). A link to itself, 0 or outside the chunk ends a chain, as in the
    parser."""
    for start in starts:
        node, path = start, set()
        while 0 < node <= len(chunk) - 4 and node not in ends:
            if node in path:
                return True
            path.add(node)
            following = _NEXT.unpack_from(chunk, node)[0]
            if following == node:
                break
            node = following
        ends |= path
    return False


def looping_chunks(fh: IO[bytes]) -> list[tuple[int, str | None, str]]:
    """The chunks whose string table links round in a circle: (index, record range named by
    the chunk header, which table). The ``evtx`` package (0.14: the evtx crate 0.13) follows
    those links until it meets 0 or a link to the same node, so a longer circle, which only
    damage makes, holds it in native code forever (no exception, no way to interrupt it; the
    crate's issue #290 and pull request #263 are of this kind). Read once, chunk by chunk."""
    found: list[tuple[int, str | None, str]] = []
    fh.seek(FILE_HEADER)
    index = 0
    while True:
        chunk = fh.read(CHUNK)
        if len(chunk) < 512:
            break
        # The template table's links are followed with a guard in the package (a circle there
        # parses; tests/test_parser_damage.py holds both cases); the string table's are not.
        # (an empty slot, 0, starts no chain: left out, as the loop would end at once)
        if chunk[:8] == CHUNK_MAGIC and _chain_loops(
            chunk, tuple(filter(None, _STRINGS.unpack_from(chunk, 128))), set()
        ):
            first, last = struct.unpack_from("<QQ", chunk, 24)
            found.append((index, f"records:{first}-{last}", "string table"))
        index += 1
    fh.seek(0)
    return found


class _Hidden(io.RawIOBase):
    """The log as the parser reads it, with the chunks in ``hidden`` read as zeros: an empty
    chunk, which the parser passes over."""

    def __init__(self, raw: IO[bytes], hidden: set[int]) -> None:
        super().__init__()
        self.raw = raw
        self.hidden = hidden
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence == io.SEEK_END:
            offset += self.raw.seek(0, io.SEEK_END)
        self.pos = max(0, offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        self.raw.seek(self.pos)
        data = self.raw.read(len(view))
        n = len(data)
        view[:n] = data
        for index in self.hidden:
            lo = max(self.pos, FILE_HEADER + index * CHUNK)
            hi = min(self.pos + n, FILE_HEADER + (index + 1) * CHUNK)
            if lo < hi:
                view[lo - self.pos : hi - self.pos] = bytes(hi - lo)
        self.pos += n
        return n


def read_evtx(
    source: str | IO[bytes], path: str, keep: EventFilter | None = None
) -> tuple[list[Fact], list[Problem]]:
    """Every record of an EVTX file as event facts, and what could not be read. With ``keep``,
    the events it does not need are counted as they are read (never all held) and given as
    stand-ins after the kept ones (:func:`hvrescue.logs.events.counted`)."""
    with _no_cyclic_gc():
        if isinstance(source, str):
            from hvrescue.io.files import open_evidence_file

            with open_evidence_file(source) as fh:
                return _read_evtx(fh, path, keep)
        return _read_evtx(source, path, keep)


def _read_evtx(
    source: IO[bytes], path: str, keep: EventFilter | None = None
) -> tuple[list[Fact], list[Problem]]:
    if keep is None:
        facts: list[Fact] = []
        problems = _read_records(source, path, facts.append)
        return facts, problems
    selector = keep.selector()
    take = selector.take
    offered = 0

    def offer(fact: Fact) -> None:
        nonlocal offered
        offered += 1
        selector.add(fact)

    def skip(record: dict[str, Any]) -> bool:
        # most events are settled by the head of the record, without building them
        nonlocal offered
        found = head_read(record)
        if found is not None and take(found[0], found[1], record, EVTX_HEAD, path):
            offered += 1
            return True
        return False

    problems = _read_records(source, path, offer, skip)
    kept = selector.kept()
    return kept + [counted(path, "evtx")] * (offered - len(kept)), problems


def _read_records(
    source: IO[bytes],
    path: str,
    append: Callable[[Fact], Any],
    skip: Callable[[dict[str, Any]], bool] | None = None,
) -> list[Problem]:
    """Each record as a fact handed to ``append`` (except those ``skip`` took as they are);
    what could not be read."""
    problems: list[Problem] = []
    try:
        evtx = require("evtx", "EVTX")
    except MissingDependencyError as exc:
        problems.append(Problem(path, "facts.dependency-missing", None, exc.params))
        return problems
    try:
        looping = looping_chunks(source)
    except OSError as exc:
        problems.append(Problem(path, "evtx.unreadable", None, {"reason": str(exc)[:300]}))
        return problems
    for _index, locator, table in looping:
        reason = f"its {table} links round in a circle"
        problems.append(Problem(path, "evtx.chunk-damaged", locator, {"reason": reason}))
    if looping:
        source = _Hidden(source, {index for index, _locator, _table in looping})  # type: ignore[assignment]
    try:
        records = evtx.PyEvtxParser(source, PARSER_THREADS).records_json()  # threads: positional
    except (OSError, RuntimeError, ValueError) as exc:
        problems.append(Problem(path, "evtx.unreadable", None, {"reason": str(exc)[:300]}))
        return problems
    errors = 0
    while errors <= MAX_CONSECUTIVE_ERRORS:
        try:
            # The iterator raises once for a chunk it cannot parse and then goes on with the
            # next chunk, so the loop resumes on the same iterator.
            for record in records:
                errors = 0
                try:
                    if skip is None or not skip(record):
                        append(from_json(record, path))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    problems.append(
                        Problem(
                            path,
                            "evtx.record-damaged",
                            f"record:{record.get('event_record_id')}",
                            {"reason": str(exc)[:300]},
                        )
                    )
            break
        except (RuntimeError, OSError, ValueError) as exc:
            errors += 1
            text = str(exc)
            m = re.search(r"record IDs (\d+)\.\.(\d+)", text)
            locator = f"records:{m.group(1)}-{m.group(2)}" if m else None
            problems.append(Problem(path, "evtx.chunk-damaged", locator, {"reason": text[:300]}))
    return problems
