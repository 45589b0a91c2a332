"""Writing an output's bytes back to its device while the writing goes on, so that the flush
before the output is named finds little left to do.

Linux has ``sync_file_range(2)``: ``SYNC_FILE_RANGE_WRITE`` starts the writeback of a range's
dirty pages and returns without waiting for the device. It writes neither the file's metadata
nor the device's cache, so it never replaces the ``fsync`` an output gets before its name
(``io/atomic.py``); it only moves the data's writing earlier. Python's ``os`` has no binding,
so the call goes through ctypes.

Only the starting flag is used, never ``SYNC_FILE_RANGE_WAIT_AFTER``: a call that waits
consumes the file's writeback error (Linux reports one once per open file since 4.13), and
the final ``fsync`` would then no longer see it. Started without waiting, whatever the device
fails to write is reported by that ``fsync``; what the call itself fails with is raised as the
OSError it is. Where there is no such call (Windows, where ``FlushFileBuffers`` flushes the
whole file and waits; macOS; a kernel or sandbox without it) :func:`start_writeback` returns
False and the caller relies on its flushes alone.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from functools import cache

SYNC_FILE_RANGE_WRITE = 2
# errno values that say the call does not apply to this descriptor (a pipe, a socket) or does
# not exist here (ENOSYS: an old kernel, a sandbox): nothing was written back, no error lost.
_NOT_HERE = frozenset(
    e for e in (errno.ESPIPE, getattr(errno, "EOPNOTSUPP", None)) if e is not None
)

SyncFileRange = Callable[[int, int, int, int], int]


@cache
def _libc_sync_file_range() -> SyncFileRange | None:
    """libc's ``sync_file_range`` with its 64-bit signature, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at import: only a merge needs it

    try:
        # The process's own symbols, libc's among them (no search for the library's name).
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


# Set once the call turned out to be missing here, so that it is not asked again per range.
_missing: list[bool] = []


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing ``[offset, offset+length)`` of ``fd`` to its device without waiting for
    it (``SYNC_FILE_RANGE_WRITE``). False where the platform has no such call; OSError as the
    call fails (EIO: the device failed; ENOSPC: no room for the data being written)."""
    if length <= 0 or _missing:
        return False
    fn = _libc_sync_file_range()
    if fn is None:
        return False
    if fn(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0:
        return True
    code = _errno()
    if code == errno.ENOSYS:
        _missing.append(True)
        return False
    if code in _NOT_HERE:
        return False
    raise OSError(code, os.strerror(code))


def writes_back() -> bool:
    """Whether ranges can be written back here (Linux); elsewhere only whole-file flushes."""
    return not _missing and _libc_sync_file_range() is not None
