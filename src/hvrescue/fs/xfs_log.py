"""Whether an XFS filesystem's log needs recovery, read as the kernel's log recovery finds it
(fs/xfs/xfs_log_recover.c: ``xlog_find_head``, ``xlog_find_tail``, ``xlog_check_unmount_rec``).

XFS keeps no clean flag in its superblock: a filesystem was unmounted cleanly when the last
log record before the log's head is an unmount record. Otherwise the log holds metadata changes
that were never written to their place, and a reader that does not replay them (libfsxfs, and
so hvrescue) sees the state before recovery: recent changes may be missing and the metadata may
disagree with itself. hvrescue does not replay an XFS log; it says so (``xfs_logprint -t``
prints the same verdict as ``state: <CLEAN>`` or ``<DIRTY>``).

The head is where the cycle number stamped on every 512-byte block of the log changes (a
binary search), moved back over blocks of the previous cycle the last writes left behind and
over a record that does not end at the head (a torn write); the record before it is the last.
Every read is bounded: the search reads one block at a time, the checks at most
:data:`SCAN_BLOCKS` blocks, whatever size the superblock claims.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from hvrescue.errors import HvrescueError

BB = 512  # the log's basic block
HEADER_MAGIC = 0xFEEDBABE
UNMOUNT_TRANS = 0x20  # xlog_op_header.oh_flags
VERSION_2 = 2
HEADER_CYCLE_SIZE = 32 * 1024
# The most a log's in-core buffers can hold unwritten (XLOG_TOTAL_REC_SHIFT: 8 iclogs of up to
# 256 KiB), and the largest record (XLOG_REC_SHIFT), in basic blocks.
SCAN_BLOCKS = 8 * (256 * 1024) // BB
RECORD_BLOCKS = (256 * 1024) // BB
MAX_LOG_BYTES = 1 << 32  # XFS logs are at most 2 GiB; a larger claim is damage


class LogError(ValueError):
    """The log cannot be read as a log (the reason goes into the note)."""


@dataclass(frozen=True)
class LogState:
    """``state``: ``clean``, ``dirty``, ``external`` (the log is on another device) or
    ``unreadable``; ``head`` and ``tail`` in basic blocks from the log's start."""

    state: str
    head: int | None = None
    tail: int | None = None
    reason: str | None = None

    def note(self) -> dict[str, Any] | None:
        """What a listing says (None: nothing to say, the log is clean)."""
        if self.state == "dirty":
            where = {"head": self.head, "tail": self.tail}
            return {"key": "ui.fs.xfs-log-dirty", "severity": "warning", "params": where}
        if self.state == "unreadable":
            why = {"reason": self.reason or "?"}
            return {"key": "ui.fs.xfs-log-unreadable", "severity": "warning", "params": why}
        if self.state == "external":
            return {"key": "ui.fs.xfs-log-external", "severity": "info", "params": {}}
        return None


def log_state(source: Any) -> LogState:
    """The state of the log of the XFS filesystem that ``source`` (``read(offset, length)``)
    holds from its first byte."""
    try:
        return _Log.of(source).state()
    except LogError as exc:
        return LogState("unreadable", reason=str(exc))
    except (HvrescueError, OSError) as exc:
        return LogState("unreadable", reason=f"read failed: {str(exc)[:160]}")


class _Log:
    def __init__(self, source: Any, start: int, blocks: int) -> None:
        self.source = source
        self.start = start
        self.blocks = blocks  # basic blocks

    @classmethod
    def of(cls, source: Any) -> _Log | _External:
        sb = source.read(0, BB)
        if len(sb) < 0xD0 or sb[:4] != b"XFSB":
            raise LogError("no XFS superblock")
        bs = struct.unpack_from(">I", sb, 0x04)[0]
        logstart = struct.unpack_from(">Q", sb, 0x30)[0]
        agblocks, agcount = struct.unpack_from(">II", sb, 0x54)
        logblocks = struct.unpack_from(">I", sb, 0x60)[0]
        agblklog = sb[0x7C]
        if logstart == 0:
            return _External()
        if bs < BB or bs > 65536 or bs & (bs - 1) or not 0 < agblklog < 32 or not agblocks:
            raise LogError("the superblock's geometry is not valid")
        agno, agbno = logstart >> agblklog, logstart & ((1 << agblklog) - 1)
        if agno >= agcount or agbno >= agblocks:
            raise LogError(f"the log starts outside the filesystem (block {logstart})")
        size = logblocks * bs
        if not 0 < size <= MAX_LOG_BYTES:
            raise LogError(f"a log of {logblocks} blocks")
        return cls(source, (agno * agblocks + agbno) * bs, size // BB)

    # ------------------------------------------------------------------ blocks
    def read(self, block: int, count: int = 1) -> bytes:
        data = self.source.read(self.start + block * BB, count * BB)
        if len(data) < count * BB:
            raise LogError(f"the log ends early (block {block + len(data) // BB} of {self.blocks})")
        return bytes(data)

    @staticmethod
    def cycle_of(block: bytes) -> int:
        """The cycle number stamped on a block (a record header keeps it in h_cycle)."""
        first, second = struct.unpack_from(">II", block, 0)
        return int(second if first == HEADER_MAGIC else first)

    def cycle(self, block: int) -> int:
        return self.cycle_of(self.read(block))

    def cycles(self, start: int, count: int) -> list[int]:
        data = self.read(start, count)
        return [self.cycle_of(data[i : i + 8]) for i in range(0, len(data), BB)]

    # ------------------------------------------------------------------ the head
    def find_head(self) -> int:
        first, last = self.cycle(0), self.cycle(self.blocks - 1)
        if first == 0:
            raise LogError("the log's first block was never written (cycle 0)")
        if first == last:
            # Written all round in this cycle, unless the last writes left a hole of the
            # previous cycle near the end: the start of that hole is then the head.
            head, stop = self.blocks, last - 1
        else:
            head, stop = self._cycle_start(last), last
        # The writes in flight may have landed out of order: the first block of the cycle
        # sought within the last buffers' reach is the head.
        reach = min(self.blocks, SCAN_BLOCKS)
        if head >= reach:
            found = self._first_with(head - reach, reach, stop)
            if found is not None:
                head = found
        else:
            # The reach wraps round the log's end: a block there of the cycle before is a hole
            # the last round did not write (the head); else a block of the cycle sought
            # before ``head`` is.
            span = reach - head
            found = self._first_with(self.blocks - span, span, stop - 1)
            if found is None:
                found = self._first_with(0, head, stop)
            if found is not None:
                head = found
        return self._whole_records(head)

    def _cycle_start(self, cycle: int) -> int:
        """The first block of ``cycle`` after the blocks of the cycle before it (blocks
        ``[0, first)`` are of the newer cycle, ``[first, blocks)`` of ``cycle``)."""
        lo, hi = 0, self.blocks - 1
        mid = (lo + hi) // 2
        while mid not in (lo, hi):
            if self.cycle(mid) == cycle:
                hi = mid
            else:
                lo = mid
            mid = (lo + hi) // 2
        return hi

    def _first_with(self, start: int, count: int, cycle: int) -> int | None:
        if count <= 0:
            return None
        for i, c in enumerate(self.cycles(start, count)):
            if c == cycle:
                return start + i
        return None

    def _whole_records(self, head: int) -> int:
        """``head`` moved back to the last record header when that record does not end at
        it (a record torn by the crash is not part of the log)."""
        start = max(0, head - RECORD_BLOCKS)
        if head <= start:
            return head
        data = self.read(start, head - start)
        for at in range(head - 1, start - 1, -1):
            off = (at - start) * BB
            if struct.unpack_from(">I", data, off)[0] == HEADER_MAGIC:
                if at + self._record_blocks(data[off : off + BB]) != head:
                    return at
                return head
        return head

    # ------------------------------------------------------------------ the tail
    def _record_blocks(self, header: bytes) -> int:
        """Basic blocks of a record: its header's and its data's."""
        version, length = struct.unpack_from(">II", header, 8)
        size = struct.unpack_from(">I", header, 320)[0]
        hblocks = 1
        if version & VERSION_2 and size > HEADER_CYCLE_SIZE:
            hblocks = -(-size // HEADER_CYCLE_SIZE)
        return int(hblocks + -(-length // BB))

    def last_record(self, head: int) -> int:
        """The block of the last record header before ``head`` (searching back round the log's
        end, as the kernel does)."""
        for lo, hi in ((0, head), (head, self.blocks)):
            at = hi
            while at > lo:
                count = min(SCAN_BLOCKS, at - lo)
                data = self.read(at - count, count)
                for i in range(count - 1, -1, -1):
                    if struct.unpack_from(">I", data, i * BB)[0] == HEADER_MAGIC:
                        return at - count + i
                at -= count
        raise LogError("no log record header in the log")

    def state(self) -> LogState:
        head = self.find_head()
        if head == self.blocks:
            head = 0
        at = self.last_record(head)
        header = self.read(at)
        num_ops = struct.unpack_from(">I", header, 40)[0]
        tail_lsn = struct.unpack_from(">Q", header, 24)[0]
        tail = tail_lsn & 0xFFFFFFFF
        end = (at + self._record_blocks(header)) % self.blocks
        if end == head and num_ops == 1:
            hblocks = self._record_blocks(header) - -(
                -struct.unpack_from(">I", header, 12)[0] // BB
            )
            op = self.read((at + hblocks) % self.blocks)
            if op[9] & UNMOUNT_TRANS:
                return LogState("clean", head=head, tail=head)  # recovery starts after it
        return LogState("dirty", head=head, tail=tail)


class _External:
    def state(self) -> LogState:
        return LogState("external")
