"""Read-only evidence access with positioned reads and bounded retries.

Every input is opened with O_RDONLY (and O_NOATIME where the kernel allows it), read with pread
so that no shared file position exists, and never written, truncated or locked. A read that
fails is retried a bounded number of times; if it still fails the range is recorded in
``bad_ranges`` and either raised (structure reads) or zero-filled (data reads with
``tolerant=True``), so that one bad range never ends the whole job.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass

from hvrescue import platform
from hvrescue.errors import InputError, UnreadableRangeError
from hvrescue.io.files import open_evidence

DEFAULT_RETRIES = 3
# Reads are split so that one failing sector does not poison a whole multi-MiB request.
RETRY_GRANULE = 64 * 1024
# A granule that fails is read again in units of this size: the smallest a disk can lose.
SECTOR = 512


@dataclass(frozen=True)
class BadRange:
    offset: int
    length: int
    errno: int | None


def _append(ranges: list[BadRange], offset: int, length: int, err: int | None) -> None:
    """Add a bad range, extending the last one where it continues it."""
    if ranges:
        last = ranges[-1]
        if last.offset + last.length == offset and last.errno == err:
            ranges[-1] = BadRange(last.offset, last.length + length, err)
            return
    ranges.append(BadRange(offset, length, err))


class ReadOnlySource:
    """A file opened read-only, read only with positioned reads."""

    def __init__(
        self, path: str | os.PathLike[str], retries: int = DEFAULT_RETRIES, *, fd: int = -1
    ) -> None:
        """``fd``: an already open read-only descriptor of ``path`` (see :meth:`own`), which
        the source then owns; otherwise ``path`` is opened as evidence."""
        self.path = os.fspath(path)
        self.retries = max(0, retries)
        self.bad_ranges: list[BadRange] = []
        self._lock = threading.Lock()
        self._bad_lock = threading.Lock()
        self._fd = fd if fd >= 0 else open_evidence(self.path)
        try:
            st = os.fstat(self._fd)
        except OSError as exc:
            os.close(self._fd)
            raise InputError("error.input.stat", path=self.path, reason=exc.strerror) from exc
        self.size = st.st_size

    @classmethod
    def own(cls, path: str | os.PathLike[str], retries: int = DEFAULT_RETRIES) -> ReadOnlySource:
        """One of hvrescue's own files (a copy in DEST, a partial output) read back: opened
        without following a link (see ``io.nofollow``), a link refused as ``LinkError``."""
        from hvrescue.io.nofollow import open_existing

        path = os.fspath(path)
        try:
            fd = open_existing(path)
        except FileNotFoundError as exc:
            raise InputError("error.input.missing", path=path) from exc
        except OSError as exc:
            raise InputError("error.input.open", path=path, reason=exc.strerror) from exc
        return cls(path, retries, fd=fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ReadOnlySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pread(self, length: int, offset: int) -> bytes:
        # Windows has no pread: the platform seeks and reads under the descriptor's lock.
        return platform.pread(self._fd, length, offset)

    def _pread_retry(self, offset: int, length: int) -> bytes:
        last: OSError | None = None
        for _ in range(self.retries + 1):
            try:
                return self._pread(length, offset)
            except OSError as exc:
                if exc.errno not in (
                    errno.EIO,
                    errno.EAGAIN,
                    errno.EINTR,
                    errno.ENXIO,
                    errno.ETIMEDOUT,
                ):
                    raise InputError(
                        "error.input.read", path=self.path, reason=exc.strerror
                    ) from exc
                last = exc
        assert last is not None
        raise last

    def read(self, offset: int, length: int, *, tolerant: bool = False) -> bytes:
        """Read up to ``length`` bytes at ``offset``; short only at end of file.

        With ``tolerant`` every persistently failing sector is zero-filled and recorded; without
        it, :class:`UnreadableRangeError` is raised after recording.
        """
        data, _bad = self.read_checked(offset, length, tolerant=tolerant)
        return data

    def read_checked(
        self, offset: int, length: int, *, tolerant: bool = True
    ) -> tuple[bytes, list[BadRange]]:
        """Like :meth:`read`, and the exact ranges of *this* read that failed (zero-filled).

        A granule that fails after the retries is read again sector by sector, so that one bad
        sector costs one sector, never its neighbours; the ranges are exact to the sector.
        """
        if length <= 0 or offset >= self.size:
            return b"", []
        length = min(length, self.size - offset)
        try:
            return self._read_full(offset, length), []
        except OSError:
            pass
        # Slow path: granule by granule, so that good data around the bad range survives.
        out = bytearray()
        bad: list[BadRange] = []
        pos = offset
        end = offset + length
        while pos < end:
            n = min(RETRY_GRANULE - (pos % RETRY_GRANULE), end - pos)
            try:
                out += self._read_full(pos, n)
            except OSError:
                out += self._read_sectors(pos, n, bad, tolerant)
            pos += n
        return bytes(out), bad

    def _read_sectors(self, offset: int, length: int, bad: list[BadRange], tolerant: bool) -> bytes:
        """A failed granule read sector by sector (one attempt each: the granule was retried)."""
        out = bytearray()
        pos = offset
        end = offset + length
        while pos < end:
            n = min(SECTOR - (pos % SECTOR), end - pos)
            try:
                out += self._pread_once(pos, n)
            except OSError as exc:
                self._record(pos, n, exc.errno)
                _append(bad, pos, n, exc.errno)
                if not tolerant:
                    raise UnreadableRangeError(self.path, pos, n, exc.errno) from exc
                out += bytes(n)
            pos += n
        return bytes(out)

    def _pread_once(self, offset: int, length: int) -> bytes:
        data = self._pread(length, offset)
        if len(data) < length:
            # A short read inside the file: the rest of the sector comes next (or is EOF).
            more = self._pread(length - len(data), offset + len(data)) if data else b""
            data += more
        return data

    def _read_full(self, offset: int, length: int) -> bytes:
        data = self._pread_retry(offset, length)
        if len(data) == length or not data:
            return data
        # pread may return short on some platforms before EOF; keep reading.
        parts = [data]
        got = len(data)
        while got < length:
            more = self._pread_retry(offset + got, length - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _record(self, offset: int, length: int, err: int | None) -> None:
        with self._bad_lock:
            _append(self.bad_ranges, offset, length, err)

    def data_segments(self, start: int = 0, end: int | None = None) -> list[tuple[int, int, bool]]:
        """``(offset, length, is_data)`` runs covering ``[start, end)``: holes of a sparse file
        (``platform.data_ranges``) are ``is_data=False``. Where the filesystem cannot tell,
        the whole range is one data run. Holes read as zeros: treating one as data is slower."""
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return []
        out: list[tuple[int, int, bool]] = []
        pos = start
        for lo, hi in platform.data_ranges(self._fd, end, start):
            if lo > pos:
                out.append((pos, lo - pos, False))
            out.append((lo, hi - lo, True))
            pos = hi
        if pos < end:
            out.append((pos, end - pos, False))
        return out

    def read_into(self, offset: int, view: memoryview, *, tolerant: bool = False) -> int:
        """Fill ``view`` from ``offset`` without allocating (preadv into a reused buffer);
        returns the bytes placed, short only at end of file. Errors take :meth:`read`'s path,
        so retries, recording and zero-filling behave the same."""
        got, _bad = self.read_into_checked(offset, view, tolerant=tolerant)
        return got

    def read_into_checked(
        self, offset: int, view: memoryview, *, tolerant: bool = True
    ) -> tuple[int, list[BadRange]]:
        """:meth:`read_into` and the exact ranges of this read that failed (zero-filled)."""
        length = min(len(view), max(0, self.size - offset))
        if length <= 0:
            return 0, []
        got = 0
        try:
            while got < length:
                n = platform.pread_into(self._fd, view[got:length], offset + got)
                if n <= 0:
                    break
                got += n
            return got, []
        except OSError:
            pass  # the careful path below retries, records and zero-fills
        data, bad = self.read_checked(offset, length, tolerant=tolerant)
        view[: len(data)] = data
        return len(data), bad
