"""Copy one file once: read once, write once, hash once, holes kept, read errors survived.

The reading thread reads a chunk with positioned reads and writes it to the copy; a second
thread hashes the same chunk meanwhile (hashlib releases the GIL on large buffers), so hashing
costs little wall time. A hole of a sparse source (``platform.data_ranges``) is hashed as zeros
but never written: the copy, marked sparse, gets the same hole when its size is set. A range
that stays unreadable after the source layer's retries is written as zeros and returned in
``unreadable``. A chunk that read whole is written by the kernel from the source's cached pages
where it can (:mod:`hvrescue.preserve.fastcopy`: ``copy_file_range``, a reflink on filesystems
that share extents), never through our buffer again.

Progress is checkpointed beside the partial copy (``<part>.state``) after the data up to that
offset is on disk, so that an interrupted copy continues where it stopped; the part already
written is re-hashed from the partial copy itself.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io import digest
from hvrescue.io.nofollow import Confined
from hvrescue.io.source import ReadOnlySource
from hvrescue.platform import advise, make_sparse, pwrite_all, set_size
from hvrescue.preserve.fastcopy import KernelCopy, SourceRange
from hvrescue.preserve.partial import load_state, save_state, set_times

CHUNK = 4 * 1024 * 1024
CHECKPOINT_EVERY = 256 * 1024 * 1024
WRITEBACK_EVERY = 64 * 1024 * 1024
ALGORITHMS = digest.ALGORITHMS  # what a manifest may record
_ZEROS = bytes(CHUNK)


@dataclass
class CopyResult:
    size: int
    mtime_ns: int
    hashes: dict[str, str]
    unreadable: list[list[int]] = field(default_factory=list)
    holes: int = 0  # bytes left as holes in the copy


POOL_BUFFERS = 8
# What the hasher is handed: the bytes, and the pool buffer holding them (None: not ours).
_HashItem = tuple[bytes | memoryview, bytearray | None]


class _Hasher:
    """Hash chunks on a second thread, in order, then hand each buffer back for reuse.

    Reused buffers matter: a fresh 4 MiB object per chunk costs a page fault per 4 KiB page,
    more kernel time than the copy itself. They are made on first need (a small file takes
    one), at most :data:`POOL_BUFFERS`."""

    def __init__(self, algorithms: tuple[str, ...]) -> None:
        self.digests = [digest.new(a) for a in algorithms]
        self.algorithms = algorithms
        self._queue: queue.Queue[_HashItem | None] = queue.Queue(maxsize=POOL_BUFFERS - 1)
        self.free: queue.Queue[bytearray] = queue.Queue()
        self._made = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, buffer = item
            try:
                if self._error is None:
                    for d in self.digests:
                        d.update(data)
            except BaseException as exc:  # surfaced in finish()
                self._error = exc
            finally:
                if buffer is not None:
                    self.free.put(buffer)

    def buffer(self) -> bytearray:
        if self._made < POOL_BUFFERS and self.free.empty():
            self._made += 1
            return bytearray(CHUNK)
        return self.free.get()

    def update(self, data: bytes | memoryview, buffer: bytearray | None = None) -> None:
        """Hash ``data``; ``buffer`` (which holds it) returns to the pool afterwards."""
        self._queue.put((data, buffer))

    def finish(self) -> dict[str, str]:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return {a: d.hexdigest() for a, d in zip(self.algorithms, self.digests, strict=True)}


def _write_all(fd: int, data: bytes | memoryview | SourceRange, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (each output descriptor has one writer); a
    :class:`SourceRange` is copied inside the kernel where it can be."""
    if isinstance(data, SourceRange):
        data.write_to(fd, offset)
    else:
        pwrite_all(fd, data, offset)


def hash_file(
    path: str,
    algorithms: tuple[str, ...],
    progress: Callable[[int], None] | None = None,
    *,
    own: bool = False,
) -> tuple[dict[str, str], int]:
    """Hashes of a whole file (read-only); returns (hashes, size). ``own``: a file of ours (a
    copy in DEST), never read through a link (``LinkError``)."""
    with ReadOnlySource.own(path) if own else ReadOnlySource(path) as src:
        hasher = _Hasher(algorithms)
        try:
            _hash_range(src, 0, src.size, hasher, progress)
        finally:
            hashes = hasher.finish()
        return hashes, src.size


def _hash_range(
    src: ReadOnlySource,
    start: int,
    end: int,
    hasher: _Hasher,
    progress: Callable[[int], None] | None,
) -> None:
    pos = start
    while pos < end:
        n = min(CHUNK, end - pos)
        buffer = hasher.buffer()
        view = memoryview(buffer)[:n]
        try:
            got = src.read_into(pos, view)
        except BaseException:
            hasher.free.put(buffer)
            raise
        if got < n:
            hasher.free.put(buffer)
            raise InputError("error.input.read", path=src.path, reason="short read")
        hasher.update(view, buffer)
        pos += n
        if progress:
            progress(n)


def copy_file(
    source: str,
    part: str,
    algorithms: tuple[str, ...],
    *,
    progress: Callable[[int], None] | None = None,
    resume: bool = False,
    confined: Confined | None = None,
) -> CopyResult:
    """Copy ``source`` to the partial file ``part`` (created, or continued with ``resume``).

    ``part`` and its state file live in a work folder of ours (``confined``, by default the
    folder of ``part``): they are created new or reopened without following links."""
    confined = confined or Confined(os.path.dirname(os.path.abspath(part)))
    state_path = part + ".state"
    src = ReadOnlySource(source)
    try:
        st = os.fstat(src._fd)
        size = src.size
        unreadable: list[list[int]] = []
        state = load_state(state_path, confined) if resume else None
        out = -1
        if (
            state is not None
            and state.get("size") == size
            and state.get("mtime_ns") == st.st_mtime_ns
            and confined.exists(part)
        ):
            out = confined.open_existing(part, os.O_RDWR)
            start = min(int(state["offset"]), os.fstat(out).st_size)
        else:
            start = 0
            confined.check(part)  # a link there is refused (LinkError), never removed quietly
            confined.unlink(part)  # a partial copy of ours that cannot be continued
            out = confined.open_new(part, os.O_RDWR)
        try:
            hasher = _Hasher(algorithms)
            try:
                if start:
                    start = _verified_prefix(src, part, start, hasher, progress, unreadable)
                set_size(out, start)
                holes = _copy_range(
                    src,
                    out,
                    start,
                    size,
                    hasher,
                    progress,
                    unreadable,
                    lambda state: save_state(confined, state_path, state),
                    st,
                )
            finally:
                hashes = hasher.finish()
            set_size(out, size)  # the holes past the last data: none written
            os.fsync(out)
            set_times(out, part, confined, st)
        finally:
            os.close(out)
        return CopyResult(size, st.st_mtime_ns, hashes, _merge(unreadable), holes)
    finally:
        src.close()


def _verified_prefix(
    src: ReadOnlySource,
    part: str,
    end: int,
    hasher: _Hasher,
    progress: Callable[[int], None] | None,
    unreadable: list[list[int]],
) -> int:
    """Hash the part of an interrupted copy that still equals the source; return where the
    copy must go on (the first chunk that differs, e.g. one lost in a power cut)."""
    pos = 0
    with ReadOnlySource.own(part) as done:
        while pos < end:
            n = min(CHUNK, end - pos)
            # Read again, also where it failed before: a range that reads now differs from the
            # zeros in the copy, so the copy goes on from here and the range is filled.
            expected, bad_ranges = src.read_checked(pos, n, tolerant=True)
            have = done.read(pos, n)
            if have != expected or len(have) < n:
                break
            unreadable.extend([bad.offset, bad.length] for bad in bad_ranges)
            hasher.update(have)
            pos += n
            if progress:
                progress(n)
    return pos


class _Writer:
    """Write chunks on a third thread, in order, then pass them to the hasher, so that reading
    the next chunk overlaps writing this one (the two wait on different devices)."""

    def __init__(
        self,
        out: int,
        hasher: _Hasher,
        on_written: Callable[[int, int], None],
        kernel: KernelCopy | None = None,
    ) -> None:
        self.out = out
        self.hasher = hasher
        self.on_written = on_written
        self.kernel = kernel  # copies clean chunks from the source inside the kernel
        self.error: BaseException | None = None
        self._queue: queue.Queue[tuple[memoryview, int, bytearray | None, bool, bool] | None] = (
            queue.Queue(maxsize=POOL_BUFFERS)
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            view, pos, buffer, write, clean = item
            if self.error is not None:
                if buffer is not None:
                    self.hasher.free.put(buffer)
                continue
            try:
                if write:
                    kernel = self.kernel if clean and self.kernel and self.kernel.usable else None
                    _write_all(self.out, SourceRange(kernel, view) if kernel else view, pos)
                self.hasher.update(view, buffer)
                buffer = None
                self.on_written(pos + len(view), len(view))
            except BaseException as exc:  # raised to the reader at its next put or finish
                self.error = exc
                if buffer is not None:
                    self.hasher.free.put(buffer)

    def put(
        self, view: memoryview, pos: int, buffer: bytearray | None, clean: bool = False
    ) -> None:
        """Queue a chunk; ``buffer`` None means a hole: hashed as zeros, not written. ``clean``:
        ``view`` is the source's range as it read, whole and without error, so the kernel may
        copy that range instead (else ``view``, zero-filled where it failed, is written)."""
        if self.error is not None:
            if buffer is not None:
                self.hasher.free.put(buffer)
            raise self.error
        self._queue.put((view, pos, buffer, buffer is not None, clean))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


def _copy_range(
    src: ReadOnlySource,
    out: int,
    start: int,
    size: int,
    hasher: _Hasher,
    progress: Callable[[int], None] | None,
    unreadable: list[list[int]],
    save_state: Callable[[dict[str, Any]], None],
    st: os.stat_result,
) -> int:
    holes = 0
    marks = {"flushed": start, "checkpoint": start}

    def on_written(upto: int, n: int) -> None:
        if progress:
            progress(n)
        if upto - marks["flushed"] >= WRITEBACK_EVERY:
            # Start write-back of what is written so far (Linux does this for dirty pages on
            # DONTNEED), so the final fsync has little left and a multi-terabyte copy does not
            # fill the page cache.
            advise(out, marks["flushed"], upto - marks["flushed"], "dontneed")
            marks["flushed"] = upto
        if upto - marks["checkpoint"] >= CHECKPOINT_EVERY:
            # No flush here: a resume compares what the partial copy holds with the source
            # before trusting it, so the checkpoint needs no forced write-back.
            marks["checkpoint"] = upto
            save_state(
                {
                    "source": src.path,
                    "size": size,
                    "mtime_ns": st.st_mtime_ns,
                    "offset": upto,
                    "unreadable": _merge(list(unreadable)),
                },
            )

    advise(src._fd, start, size - start, "sequential")
    segments = src.data_segments(start, size)
    if any(not is_data for _, _, is_data in segments):
        make_sparse(out)  # else NTFS fills every skipped hole with zeros when writing past it
    writer = _Writer(out, hasher, on_written, KernelCopy(src._fd, out))
    try:
        for offset, length, is_data in segments:
            pos, end = offset, offset + length
            while pos < end:
                n = min(CHUNK, end - pos)
                if is_data:
                    buffer = hasher.buffer()
                    view = memoryview(buffer)[:n]
                    try:
                        # The bad ranges of this very read, exact to the sector (the source's
                        # own list may extend a range of an earlier chunk in place).
                        got, bad_ranges = src.read_into_checked(pos, view, tolerant=True)
                    except BaseException:
                        hasher.free.put(buffer)
                        raise
                    unreadable.extend([bad.offset, bad.length] for bad in bad_ranges)
                    if got < n:  # the file shrank under us: the rest reads as zeros
                        unreadable.append([pos + got, n - got])
                        view[got:] = bytes(n - got)
                    writer.put(view, pos, buffer, clean=got == n and not bad_ranges)
                else:
                    writer.put(memoryview(_ZEROS)[:n], pos, None)
                    holes += n
                pos += n
    finally:
        writer.finish()
    return holes


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for off, length in sorted(ranges):
        if out and out[-1][0] + out[-1][1] >= off:
            out[-1][1] = max(out[-1][0] + out[-1][1], off + length) - out[-1][0]
        else:
            out.append([off, length])
    return out
