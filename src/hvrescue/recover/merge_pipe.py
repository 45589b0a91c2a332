"""The merge's data path: read, write, digest, read back and flush, overlapped on threads with a
bounded pool of buffers, so that memory is the pool's whatever the block size.

- The caller's thread reads a chunk of the chain (at most :data:`CHUNK`, never across a block)
  into a pooled buffer, finds its non-zero 1 MiB units and says where their runs go in the file.
- The writer thread writes those runs. Every :data:`WRITEBACK_EVERY` bytes it hands the file
  range written since to the flusher thread, which starts that range's writeback to the device
  without waiting for it (Linux ``sync_file_range``), so the disk writes while reading goes on
  and the final ``fsync`` (``io/atomic.py``, before the output is named) finds little left.
  Where ranges cannot be written back (Windows, macOS) the flusher ``fsync``s the file every
  :data:`FLUSH_EVERY` bytes instead. Verifying, the writer then hands the chunk to the checker
  thread, which reads each run back from the output through a second, read-only descriptor
  and compares it byte for byte with the buffer it was written from, while the writer goes
  on with the next chunk (a chunk is read back only after all its runs were written).
- The digest thread feeds the chain's content digest: the one hash of the data.

A buffer goes back to the pool when the digest thread and the writer (or, verifying, the
checker after it) are done with it. An error on a thread stops
its work but not its consumption of buffers (nothing waits forever); it is raised by
:meth:`Pipeline.finish`. An error of a writeback or a flush is raised as
:class:`~hvrescue.io.atomic.FlushFailed`: a failure of the output, which is then not named.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hvrescue.io.atomic import FlushFailed
from hvrescue.platform import pread_into, pwrite_all
from hvrescue.platform.writeback import start_writeback, writes_back
from hvrescue.recover.digest import UNIT, ContentDigest

CHUNK = 4 * UNIT
POOL = 8
FLUSH_EVERY = 256 * UNIT
WRITEBACK_EVERY = 32 * UNIT
# Read-back mismatches kept to name in a result (all are counted).
MAX_MISMATCHES = 100


@dataclass
class Chunk:
    offset: int  # virtual offset of buffer[0]
    buffer: bytearray
    length: int
    flags: list[bool]
    # (file offset, start in the buffer, length): the runs of non-zero units to write.
    places: list[tuple[int, int, int]] = field(default_factory=list)


def nonzero_runs(flags: list[bool], length: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of non-zero units among the first ``length`` bytes."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, nonzero in enumerate(flags):
        if nonzero and start < 0:
            start = i * UNIT
        elif not nonzero and start >= 0:
            runs.append((start, i * UNIT - start))
            start = -1
    if start >= 0:
        runs.append((start, length - start))
    return runs


class Pipeline:
    """Writes chunks to ``fd`` (and reads them back through ``check_fd`` when given), feeds
    ``digest`` when given."""

    def __init__(
        self,
        fd: int,
        chunk: int,
        digest: ContentDigest | None,
        check_fd: int | None,
    ) -> None:
        self.fd = fd
        self.check_fd = check_fd
        self.digest = digest
        self.error: BaseException | None = None
        # (virtual offset, file offset, length) of every run written, ascending and merged; a
        # write below the previous one's end is an overlap (the proof of "verified" relies on
        # there being none).
        self.written: list[tuple[int, int, int]] = []
        self.overlaps = 0
        self.compared = 0
        self.mismatches: list[tuple[int, int]] = []
        self.mismatch_count = 0
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(POOL):
            self._free.put(bytearray(chunk))
        self._scratch = bytearray(chunk) if check_fd is not None else bytearray()
        self._users: dict[int, int] = {}
        self._lock = threading.Lock()
        self._since_flush = 0
        # The file range written since the last hand-over to the flusher, as [lo, hi).
        self._dirty_lo = -1
        self._dirty_hi = -1
        self._ranges = writes_back()
        # What the writer handed over and the flusher has not taken yet: one range, widened
        # while the flusher is busy, so that nothing grows with the output's size.
        self._pending: tuple[int, int] | None = None
        self._closing = False
        self._flush_cv = threading.Condition()
        self._write_q: queue.Queue[Chunk | None] = queue.Queue(maxsize=POOL)
        self._hash_q: queue.Queue[Chunk | None] = queue.Queue(maxsize=POOL)
        self._check_q: queue.Queue[Chunk | None] = queue.Queue(maxsize=POOL)
        after = self._check_q if check_fd is not None else None
        self._workers = [
            threading.Thread(
                target=self._run, args=(self._write_q, self._write, after), daemon=True
            )
        ]
        if check_fd is not None:
            self._workers.append(
                threading.Thread(target=self._run, args=(self._check_q, self._check), daemon=True)
            )
        if digest is not None:
            self._workers.append(
                threading.Thread(target=self._run, args=(self._hash_q, self._hash), daemon=True)
            )
        self._flush_thread = threading.Thread(target=self._flusher, daemon=True)
        for thread in [*self._workers, self._flush_thread]:
            thread.start()

    # ------------------------------------------------------------ the caller's side
    def buffer(self) -> bytearray:
        self._raise()
        return self._free.get()

    def give_back(self, buffer: bytearray) -> None:
        """A buffer the caller took but does not submit."""
        self._free.put(buffer)

    def submit(self, item: Chunk) -> None:
        self._raise()
        users = 2 if self.digest is not None else 1
        with self._lock:
            self._users[id(item.buffer)] = users
        self._write_q.put(item)
        if self.digest is not None:
            self._hash_q.put(item)

    def finish(self) -> None:
        """Wait for every chunk to be written, read back and digested; raise a thread's error."""
        self._write_q.put(None)
        if self.digest is not None:
            self._hash_q.put(None)
        for thread in self._workers:
            thread.join()
        if self._ranges:
            self._hand_over()  # the last range's writeback starts now, before the final fsync
        with self._flush_cv:
            self._closing = True
            self._flush_cv.notify()
        self._flush_thread.join()
        self._raise()

    @property
    def matched(self) -> bool:
        """Every byte written was read back equal, and no write overlapped another."""
        return self.check_fd is not None and not self.mismatch_count and not self.overlaps

    # ------------------------------------------------------------ the threads
    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _release(self, buffer: bytearray) -> None:
        with self._lock:
            left = self._users[id(buffer)] - 1
            if left:
                self._users[id(buffer)] = left
                return
            del self._users[id(buffer)]
        self._free.put(buffer)

    def _run(
        self,
        q: queue.Queue[Chunk | None],
        work: Callable[[Chunk], None],
        after: queue.Queue[Chunk | None] | None = None,
    ) -> None:
        """Do ``work`` on each chunk of ``q``, then pass it on to ``after`` (which releases
        it in turn) or release it; the end (None) is passed on too."""
        while True:
            item = q.get()
            if item is not None and self.error is None:
                try:
                    work(item)
                except BaseException as exc:  # handed to the caller by finish()
                    self.error = exc
            if after is not None:
                after.put(item)
            if item is None:
                return
            if after is None:
                self._release(item.buffer)

    def _hash(self, item: Chunk) -> None:
        assert self.digest is not None
        self.digest.add(item.offset, memoryview(item.buffer)[: item.length], item.flags)

    def _write(self, item: Chunk) -> None:
        view = memoryview(item.buffer)
        for at, start, n in item.places:
            data = view[start : start + n]
            pwrite_all(self.fd, data, at)
            self._note(item.offset + start, at, n)
            self._dirty_lo = at if self._dirty_lo < 0 else min(self._dirty_lo, at)
            self._dirty_hi = max(self._dirty_hi, at + n)
            self._since_flush += n
            if self._since_flush >= (WRITEBACK_EVERY if self._ranges else FLUSH_EVERY):
                self._hand_over()

    def _hand_over(self) -> None:
        """Give the flusher the range written since the last hand-over."""
        if self._dirty_lo >= 0:
            lo, hi = self._dirty_lo, self._dirty_hi
            with self._flush_cv:
                if self._pending is not None:
                    lo, hi = min(lo, self._pending[0]), max(hi, self._pending[1])
                self._pending = (lo, hi)
                self._flush_cv.notify()
        self._since_flush = 0
        self._dirty_lo = self._dirty_hi = -1

    def _note(self, virtual: int, at: int, n: int) -> None:
        if self.written:
            v, lo, length = self.written[-1]
            end = lo + length
            if at < end:
                self.overlaps += 1
            elif at == end and virtual == v + length:
                self.written[-1] = (v, lo, length + n)
                return
        self.written.append((virtual, at, n))

    def _check(self, item: Chunk) -> None:
        """Read back every run of a chunk the writer has written and compare it."""
        view = memoryview(item.buffer)
        for at, start, n in item.places:
            self._compare(at, view[start : start + n])

    def _compare(self, at: int, data: memoryview) -> None:
        """Read ``len(data)`` bytes back from the output at ``at`` and compare them."""
        assert self.check_fd is not None
        scratch = memoryview(self._scratch)
        pos = 0
        while pos < len(data):
            got = pread_into(self.check_fd, scratch[pos : len(data)], at + pos)
            if got <= 0:
                break
            pos += got
        self.compared += len(data)
        if pos < len(data) or not self._scratch.startswith(data):
            self.mismatch_count += 1
            if len(self.mismatches) < MAX_MISMATCHES:
                self.mismatches.append((at, len(data)))

    def _flusher(self) -> None:
        """Start the writeback of each range handed over, without waiting for it (the final
        ``fsync`` waits, and reports what the device failed to write); where ranges cannot be
        written back, ``fsync`` the file instead."""
        while True:
            with self._flush_cv:
                while self._pending is None and not self._closing:
                    self._flush_cv.wait()
                span, self._pending = self._pending, None
            if span is None:
                return
            if self.error is not None:
                continue
            try:
                if not (self._ranges and start_writeback(self.fd, span[0], span[1] - span[0])):
                    self._ranges = False
                    os.fsync(self.fd)
            except OSError as exc:
                if self.error is None:
                    self.error = FlushFailed(exc.errno or 0, exc.strerror or str(exc))
