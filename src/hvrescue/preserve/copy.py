"""Copy one file once: read once, write once, hash once, holes kept, read errors survived.

The reading thread reads a chunk with positioned reads and writes it to the copy; a second
thread hashes the same chunk meanwhile (hashlib releases the GIL on large buffers), so hashing
costs little wall time. A hole of a sparse source (SEEK_HOLE) is hashed as zeros but never
written: the copy gets the same hole by its final truncate. A range that stays unreadable after
the source layer's retries is written as zeros and returned in ``unreadable``.

Progress is checkpointed beside the partial copy (``<part>.state``) after the data up to that
offset is on disk, so that an interrupted copy continues where it stopped; the part already
written is re-hashed from the partial copy itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io.source import ReadOnlySource

CHUNK = 4 * 1024 * 1024
CHECKPOINT_EVERY = 256 * 1024 * 1024
ALGORITHMS = ("sha256", "sha1", "md5", "sha512", "blake2b", "sha3_256")
_ZEROS = bytes(CHUNK)


@dataclass
class CopyResult:
    size: int
    mtime_ns: int
    hashes: dict[str, str]
    unreadable: list[list[int]] = field(default_factory=list)
    holes: int = 0  # bytes left as holes in the copy


class _Hasher:
    """Hash chunks on a second thread, in order."""

    def __init__(self, algorithms: tuple[str, ...]) -> None:
        self.digests = [hashlib.new(a) for a in algorithms]
        self.algorithms = algorithms
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                for d in self.digests:
                    d.update(item)
        except BaseException as exc:  # surfaced in finish()
            self._error = exc
            while self._queue.get() is not None:
                pass

    def update(self, data: bytes | memoryview) -> None:
        self._queue.put(data)

    def finish(self) -> dict[str, str]:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return {a: d.hexdigest() for a, d in zip(self.algorithms, self.digests, strict=True)}


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _save_state(state_path: str, state: dict[str, Any]) -> None:
    tmp = state_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state_path)  # our own work file, never evidence


def load_state(state_path: str) -> dict[str, Any] | None:
    try:
        with open(state_path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def hash_file(
    path: str, algorithms: tuple[str, ...], progress: Callable[[int], None] | None = None
) -> tuple[dict[str, str], int]:
    """Hashes of a whole file (read-only); returns (hashes, size)."""
    with ReadOnlySource(path) as src:
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
        data = src.read(pos, n)
        if len(data) < n:
            raise InputError("error.input.read", path=src.path, reason="short read")
        hasher.update(data)
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
) -> CopyResult:
    """Copy ``source`` to the partial file ``part`` (created, or continued with ``resume``)."""
    state_path = part + ".state"
    src = ReadOnlySource(source)
    try:
        st = os.fstat(src._fd)
        size = src.size
        start = 0
        unreadable: list[list[int]] = []
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        state = load_state(state_path) if resume else None
        if (
            state is not None
            and state.get("size") == size
            and state.get("mtime_ns") == st.st_mtime_ns
            and os.path.exists(part)
        ):
            start = min(int(state.get("offset", 0)), os.path.getsize(part))
            unreadable = [list(r) for r in state.get("unreadable", []) if r[0] < start]
        else:
            start = 0
            if os.path.lexists(part):
                os.unlink(part)  # a partial copy of ours that cannot be continued
            flags |= os.O_EXCL
        out = os.open(part, flags, 0o644)
        try:
            os.ftruncate(out, start)
            hasher = _Hasher(algorithms)
            try:
                if start:
                    with ReadOnlySource(part) as done:
                        _hash_range(done, 0, start, hasher, progress)
                holes = _copy_range(
                    src, out, start, size, hasher, progress, unreadable, state_path, st
                )
            finally:
                hashes = hasher.finish()
            os.ftruncate(out, size)
            os.fsync(out)
        finally:
            os.close(out)
        os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
        return CopyResult(size, st.st_mtime_ns, hashes, _merge(unreadable), holes)
    finally:
        src.close()


def _copy_range(
    src: ReadOnlySource,
    out: int,
    start: int,
    size: int,
    hasher: _Hasher,
    progress: Callable[[int], None] | None,
    unreadable: list[list[int]],
    state_path: str,
    st: os.stat_result,
) -> int:
    holes = 0
    since_checkpoint = 0
    for offset, length, is_data in src.data_segments(start, size):
        pos, end = offset, offset + length
        while pos < end:
            n = min(CHUNK, end - pos)
            if is_data:
                before = len(src.bad_ranges)
                data = src.read(pos, n, tolerant=True)
                for bad in src.bad_ranges[before:]:
                    unreadable.append([bad.offset, bad.length])
                if len(data) < n:  # the file shrank under us: the rest reads as zeros
                    unreadable.append([pos + len(data), n - len(data)])
                    data = data + bytes(n - len(data))
                _write_all(out, data, pos)
                hasher.update(data)
            else:
                hasher.update(_ZEROS if n == CHUNK else memoryview(_ZEROS)[:n])
                holes += n
            pos += n
            since_checkpoint += n
            if progress:
                progress(n)
            if since_checkpoint >= CHECKPOINT_EVERY:
                since_checkpoint = 0
                os.fdatasync(out) if hasattr(os, "fdatasync") else os.fsync(out)
                _save_state(
                    state_path,
                    {
                        "source": src.path,
                        "size": size,
                        "mtime_ns": st.st_mtime_ns,
                        "offset": pos,
                        "unreadable": _merge(unreadable),
                    },
                )
    return holes


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for off, length in sorted(ranges):
        if out and out[-1][0] + out[-1][1] >= off:
            out[-1][1] = max(out[-1][0] + out[-1][1], off + length) - out[-1][0]
        else:
            out.append([off, length])
    return out
