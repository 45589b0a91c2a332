"""MS-VHDX 2.3 log: find the active sequence and replay it into an in-memory overlay.

Nothing is written to the file. The overlay patches reads of the file so that every structure
above it (metadata, BAT, payload) sees the content Hyper-V would see after replay.
"""

from __future__ import annotations

import bisect
import struct
import uuid
from dataclasses import dataclass, field

from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhdx.structures import (
    LOG_DATA_SIGNATURE,
    LOG_DESC_SIGNATURE,
    LOG_ENTRY_SIGNATURE,
    LOG_SECTOR,
    LOG_ZERO_SIGNATURE,
    LogDescriptor,
    LogEntryHeader,
    descriptor_sectors,
)

# A log larger than this is not read into memory; real logs are 1 MiB (Hyper-V) to a few MiB.
MAX_LOG_IN_MEMORY = 256 * 1024 * 1024
ZERO_SECTOR = bytes(LOG_SECTOR)


@dataclass(frozen=True, slots=True)
class Sector:
    """A data descriptor's 4 KiB as replay writes them: its leading 8 bytes, the data sector's
    bytes 8..4092 (a view into the log), its trailing 4 bytes."""

    leading: bytes
    body: bytes | memoryview
    trailing: bytes

    def slice(self, a: int, b: int) -> bytes:
        """Bytes [a, b) of the 4 KiB."""
        if a == 0 and b == LOG_SECTOR:
            return b"".join((self.leading, self.body, self.trailing))
        out = []
        base = 0
        for part in (self.leading, self.body, self.trailing):
            n = len(part)
            if a < base + n and b > base:
                out.append(part[max(a - base, 0) : min(b - base, n)])
            base += n
        return b"".join(out)


@dataclass
class LogEntry:
    position: int
    header: LogEntryHeader
    # In descriptor order: (file offset, length, 4 KiB content or None for a zero descriptor).
    ops: list[tuple[int, int, Sector | bytes | None]]


@dataclass
class LogScan:
    """What the log holds: every valid entry, the active sequence and what was wrong."""

    entries: dict[int, LogEntry] = field(default_factory=dict)
    active: list[LogEntry] = field(default_factory=list)
    invalid_entries: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def needs_replay(self) -> bool:
        return bool(self.active)


class _Circular:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def read(self, pos: int, length: int) -> bytes | memoryview:
        pos %= self.length
        end = pos + length
        if end <= self.length:
            # A view, not a copy: an entry may be as long as the log (up to 256 MiB).
            return memoryview(self.data)[pos:end]
        # An entry may wrap around the end of the circular buffer.
        first = self.data[pos:]
        rest = length - len(first)
        if rest > self.length:
            raise ValueError("read longer than log")
        return first + self.data[:rest]


def _parse_entry(log: _Circular, pos: int, log_guid: uuid.UUID) -> LogEntry | str:
    raw_head = bytes(log.read(pos, LOG_SECTOR))
    if raw_head[:4] != LOG_ENTRY_SIGNATURE:
        return "signature"
    hdr = LogEntryHeader.parse(raw_head)
    if hdr.log_guid != log_guid:
        return "log-guid"
    if hdr.entry_length < LOG_SECTOR or hdr.entry_length % LOG_SECTOR:
        return "entry-length"
    if hdr.entry_length > log.length:
        return "entry-length"
    if hdr.tail % LOG_SECTOR or hdr.tail >= log.length:
        return "tail"
    total = hdr.entry_length // LOG_SECTOR
    dsec = descriptor_sectors(hdr.descriptor_count)
    if dsec > total:
        return "descriptor-count"
    raw = log.read(pos, hdr.entry_length)
    if crc32c_with_field_zeroed(raw, 4) != hdr.checksum:
        return "checksum"
    ops: list[tuple[int, int, Sector | bytes | None]] = []
    data_index = dsec
    for i in range(hdr.descriptor_count):
        d = LogDescriptor.parse(raw, 64 + 32 * i)
        if d.sequence_number != hdr.sequence_number:
            return "descriptor-sequence"
        if d.file_offset % LOG_SECTOR:
            return "descriptor-offset"
        if d.signature == LOG_ZERO_SIGNATURE:
            if d.leading_bytes % LOG_SECTOR:
                return "zero-length"
            ops.append((d.file_offset, d.leading_bytes, None))
        elif d.signature == LOG_DESC_SIGNATURE:
            if data_index >= total:
                return "data-sector-count"
            sector = raw[data_index * LOG_SECTOR : (data_index + 1) * LOG_SECTOR]
            data_index += 1
            if bytes(sector[:4]) != LOG_DATA_SIGNATURE:
                return "data-signature"
            high, low = (
                struct.unpack_from("<I", sector, 4)[0],
                struct.unpack_from("<I", sector, 4092)[0],
            )
            if (high << 32 | low) != hdr.sequence_number:
                return "data-sequence"
            # The sector's bytes stay where they are in the log (a view): a log of 256 MiB
            # is held once, not once more as 65,536 copies of its sectors.
            content = Sector(
                struct.pack("<Q", d.leading_bytes),
                sector[8:4092],
                struct.pack("<I", d.trailing_bytes),
            )
            ops.append((d.file_offset, LOG_SECTOR, content))
        else:
            return "descriptor-signature"
    if data_index != total:
        return "data-sector-count"
    return LogEntry(pos, hdr, ops)


def scan_log(data: bytes, log_guid: uuid.UUID) -> LogScan:
    """2.3.3: find every valid entry, chain them by sequence number, pick the active sequence."""
    scan = LogScan()
    if not data or len(data) % LOG_SECTOR:
        scan.problems.append("log-length")
        return scan
    log = _Circular(data)
    for pos in range(0, len(data), LOG_SECTOR):
        if data[pos : pos + 4] != LOG_ENTRY_SIGNATURE:
            continue
        result = _parse_entry(log, pos, log_guid)
        if isinstance(result, LogEntry):
            scan.entries[pos] = result
        elif result != "log-guid":
            # Entries of an older log (another LogGuid) are expected leftovers, not damage.
            scan.invalid_entries.append((pos, result))
    if not scan.entries:
        return scan
    # Link each entry to the one that follows it in the circular buffer with seq + 1.
    successor: dict[int, int] = {}
    has_predecessor: set[int] = set()
    for pos, entry in scan.entries.items():
        nxt = (pos + entry.header.entry_length) % len(data)
        follower = scan.entries.get(nxt)
        if (
            follower is not None
            and nxt != pos
            and follower.header.sequence_number == entry.header.sequence_number + 1
        ):
            successor[pos] = nxt
            has_predecessor.add(nxt)
    best: list[LogEntry] = []
    for pos in scan.entries:
        if pos in has_predecessor:
            continue
        seq = [scan.entries[pos]]
        cur = pos
        while cur in successor and len(seq) <= len(scan.entries):
            cur = successor[cur]
            seq.append(scan.entries[cur])
        if not best or seq[-1].header.sequence_number > best[-1].header.sequence_number:
            best = seq
    if not best:
        return scan
    # The head's tail names the oldest entry still needed; older ones are already flushed.
    head = best[-1]
    positions = [e.position for e in best]
    if head.header.tail in positions:
        best = best[positions.index(head.header.tail) :]
    else:
        scan.problems.append("tail-outside-sequence")
    scan.active = best
    # An entry says how long the file is once it is applied (LastFileOffset); a write past
    # that is not one Hyper-V made: it is reported, and replay never extends the file for it.
    if any(off + n > e.header.last_file_offset for e in best for off, n, _ in e.ops):
        scan.problems.append("write-beyond-last-file-offset")
    return scan


class Overlay:
    """Replayed log writes, applied on top of the file's bytes when read.

    Built newest operation first, so that each byte keeps the value of the last operation that
    covered it: a data sector survives only if no newer zero descriptor covers it. Zero ranges
    are kept as sorted disjoint intervals; lookups are by bisection.
    """

    def __init__(self) -> None:
        self._sectors: dict[int, Sector | bytes] = {}
        self._keys: list[int] = []
        self._zero_starts: list[int] = []
        self._zero_ends: list[int] = []
        self.extent = 0  # the file size the log says the file must have (LastFileOffset)

    @classmethod
    def from_scan(cls, scan: LogScan) -> Overlay:
        ov = cls()
        for entry in reversed(scan.active):
            ov.extent = max(ov.extent, entry.header.last_file_offset)
            for off, length, content in reversed(entry.ops):
                if content is None:
                    ov._add_zero(off, off + length)
                elif off not in ov._sectors and not ov._zeroed(off):
                    ov._sectors[off] = content
        ov._keys = sorted(ov._sectors)
        return ov

    def _zeroed(self, off: int) -> bool:
        i = bisect.bisect_right(self._zero_starts, off) - 1
        return i >= 0 and off < self._zero_ends[i]

    def _add_zero(self, start: int, end: int) -> None:
        if end <= start:
            return
        starts, ends = self._zero_starts, self._zero_ends
        lo = bisect.bisect_left(ends, start)  # first interval ending at or after start
        hi = bisect.bisect_right(starts, end)  # intervals starting after end stay
        if lo < hi:
            start = min(start, starts[lo])
            end = max(end, ends[hi - 1])
        starts[lo:hi] = [start]
        ends[lo:hi] = [end]

    @property
    def empty(self) -> bool:
        return not self._sectors and not self._zero_starts

    def uncovered(self, offset: int, length: int) -> list[tuple[int, int]]:
        """The parts of the file range [offset, offset+length) that the log does not rewrite
        (the parts whose bytes come from the file itself); costs the log's writes met, not the
        range's length."""
        out: list[tuple[int, int]] = []
        pos, end = offset, offset + length
        while pos < end:
            if self._zeroed(pos):
                i = bisect.bisect_right(self._zero_starts, pos) - 1
                pos = min(end, self._zero_ends[i])
                continue
            key = pos - pos % LOG_SECTOR
            if key in self._sectors:
                pos = min(end, key + LOG_SECTOR)
                continue
            # Up to the next byte the log writes: the next data sector or zero range.
            k = bisect.bisect_right(self._keys, pos)
            z = bisect.bisect_right(self._zero_starts, pos)
            nxt = min(
                end,
                self._keys[k] if k < len(self._keys) else end,
                self._zero_starts[z] if z < len(self._zero_starts) else end,
            )
            if out and out[-1][0] + out[-1][1] == pos:
                out[-1] = (out[-1][0], out[-1][1] + nxt - pos)
            else:
                out.append((pos, nxt - pos))
            pos = nxt
        return out

    @property
    def written_end(self) -> int:
        """Where the last sector the log writes ends (0 when it writes none): past it the log
        supplies nothing but zeros, whatever LastFileOffset claims."""
        return self._keys[-1] + LOG_SECTOR if self._keys else 0

    def touches(self, offset: int, length: int) -> bool:
        """Whether the log writes (data or zeros) any byte of [offset, offset+length)."""
        end = offset + length
        i = bisect.bisect_left(self._keys, offset - LOG_SECTOR + 1)
        if i < len(self._keys) and self._keys[i] < end:
            return True
        j = bisect.bisect_right(self._zero_starts, end - 1) - 1
        return j >= 0 and self._zero_ends[j] > offset

    @property
    def touched_offsets(self) -> list[int]:
        return list(self._keys)

    def patch(self, offset: int, data: bytearray) -> None:
        """Apply the overlay to ``data``, which holds the file's bytes from ``offset``."""
        end = offset + len(data)
        i = max(0, bisect.bisect_right(self._zero_starts, offset) - 1)
        while i < len(self._zero_starts) and self._zero_starts[i] < end:
            lo, hi = max(self._zero_starts[i], offset), min(self._zero_ends[i], end)
            if lo < hi:
                data[lo - offset : hi - offset] = bytes(hi - lo)
            i += 1
        i = bisect.bisect_left(self._keys, offset - LOG_SECTOR + 1)
        while i < len(self._keys) and self._keys[i] < end:
            key = self._keys[i]
            lo, hi = max(key, offset), min(key + LOG_SECTOR, end)
            sector = self._sectors[key]
            data[lo - offset : hi - offset] = (
                sector.slice(lo - key, hi - key)
                if isinstance(sector, Sector)
                else sector[lo - key : hi - key]
            )
            i += 1
