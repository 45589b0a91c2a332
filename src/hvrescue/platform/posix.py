"""The POSIX twin of :mod:`hvrescue.platform.windows`: positioned I/O, holes through
``SEEK_DATA``/``SEEK_HOLE``, hole punching through Linux's ``fallocate``, user ids.

Every ``os`` function here is looked up per call: a Python without it (the suite's Windows
simulation, another Unix) takes the caller's fallback instead of failing at import.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from functools import cache

# Bound on the ranges one file may report: a pathological sparse file must not make a list of
# millions of entries; what lies past the last range found counts as data (slower, never wrong).
MAX_RANGES = 1_000_000

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """``os.pwrite``; AttributeError where ``os`` has none."""
    fn = getattr(os, "pwrite", None)
    if fn is None:
        raise AttributeError("os.pwrite")
    return int(fn(fd, data, offset))


def pread(fd: int, length: int, offset: int) -> bytes | None:
    """``os.pread``, or None where ``os`` has none."""
    fn = getattr(os, "pread", None)
    if fn is None:
        return None
    data: bytes = fn(fd, length, offset)
    return data


def preadv(fd: int, view: memoryview, offset: int) -> int | None:
    """``os.preadv`` into ``view``, or None where ``os`` has none."""
    fn = getattr(os, "preadv", None)
    if fn is None:
        return None
    return int(fn(fd, [view], offset))


def sees_holes() -> bool:
    return hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")


def data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]] | None:
    """The data ``(start, end)`` ranges of ``[start, end)`` by SEEK_DATA/SEEK_HOLE, or None
    where the platform or the filesystem cannot tell. Moves the descriptor's position: the
    caller holds its lock where the position matters."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return None
    out: list[tuple[int, int]] = []
    pos = start
    try:
        while pos < end:
            if len(out) >= MAX_RANGES:
                out.append((pos, end))
                break
            try:
                data = os.lseek(fd, pos, seek_data)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nothing but hole up to the end of the file
                    break
                raise
            if data >= end:
                break
            hole = min(os.lseek(fd, data, seek_hole), end)
            if hole <= data:  # a filesystem that answers nonsense: trust none of it
                return None
            out.append((data, hole))
            pos = hole
    except OSError:
        return None
    return out


@cache
def _libc_fallocate() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at import: ctypes.util pulls subprocess into every start-up
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def punch(fd: int, offset: int, length: int) -> bool:
    """Deallocate ``[offset, offset+length)`` keeping the size (Linux ``fallocate``
    PUNCH_HOLE); False where the platform or filesystem cannot, so the caller writes zeros."""
    fn = _libc_fallocate()
    if fn is None or not callable(fn):
        return False
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    return int(fn(fd, mode, offset, length)) == 0


def path_limit(folder: str) -> int:
    pathconf = getattr(os, "pathconf", None)
    try:
        value = pathconf(folder, "PC_PATH_MAX") if pathconf is not None else None
    except (OSError, ValueError):
        value = None
    return int(value) if value and value > 0 else 4096


def user_ids() -> tuple[int, int]:
    """The caller's (uid, gid); (0, 0) where ``os`` has none."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    try:
        return (getuid() if getuid else 0), (getgid() if getgid else 0)
    except AttributeError:  # the suite's Windows simulation
        return 0, 0


def kill_group(pgid: int) -> None:
    """SIGKILL to every process of the group ``pgid`` (SIGTERM where there is no SIGKILL)."""
    killpg = getattr(os, "killpg", None)
    sig = getattr(signal, "SIGKILL", signal.SIGTERM)
    if killpg is not None:
        killpg(pgid, sig)
    else:
        os.kill(-pgid, sig)


_ADVICE = {"sequential": "POSIX_FADV_SEQUENTIAL", "dontneed": "POSIX_FADV_DONTNEED"}


def advise(fd: int, offset: int, length: int, advice: str) -> None:
    value = getattr(os, _ADVICE.get(advice, ""), None)
    fadvise = getattr(os, "posix_fadvise", None)
    if value is None or fadvise is None:
        return
    with contextlib.suppress(OSError):  # advice only
        fadvise(fd, offset, length, value)


# ---------------------------------------------------------------- in-kernel copies (H13)
def copy_range(src: int, dst: int, offset: int, length: int) -> int | None:
    """``os.copy_file_range`` of ``[offset, offset+length)`` to the same offset of ``dst``:
    bytes copied inside the kernel (a reflink where the filesystem shares extents), 0 at the
    source's end; None where ``os`` has none. OSError as the call raises it."""
    fn = getattr(os, "copy_file_range", None)
    if fn is None:
        return None
    return int(fn(src, dst, length, offset, offset))
