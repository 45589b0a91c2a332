"""What differs between the platforms hvrescue runs on, and the only place a POSIX-only or
Windows-only call lives: positioned reads and writes, sparse outputs and the holes of a source,
the user ids a FUSE view reports, the interface language, long paths.

Each function asks at call time which platform it is on (:func:`on_windows`) and hands over to
:mod:`.windows` (the Win32 API through ctypes) or :mod:`.posix` (``os``), so that the suite can
run the Windows logic against a stand-in kernel32 and the POSIX logic for real.
"""

from __future__ import annotations

import ntpath
import os
import sys
import threading

from hvrescue.platform import posix, windows

# Positioned I/O without pread/pwrite: a seek and a read or write under the descriptor's lock.
# A fixed set of locks, picked by descriptor number, keeps the table bounded.
_LOCKS = tuple(threading.Lock() for _ in range(64))


def on_windows() -> bool:
    """Whether to use the Windows API (asked per call, so tests can stand in for Windows)."""
    return sys.platform == "win32"


def fd_lock(fd: int) -> threading.Lock:
    """The lock that serialises seek-and-transfer on descriptor ``fd``."""
    return _LOCKS[fd % len(_LOCKS)]


def _seek_write(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    with fd_lock(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)


def _seek_read(fd: int, length: int, offset: int) -> bytes:
    with fd_lock(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, length)


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """``os.pwrite``; where ``os`` has none (Windows), a seek and a write under a lock."""
    if not on_windows():
        try:
            return posix.pwrite(fd, data, offset)
        except AttributeError:  # an os module without it (the suite's Windows simulation)
            pass
    return _seek_write(fd, data, offset)


def pread(fd: int, length: int, offset: int) -> bytes:
    """``os.pread``; where ``os`` has none (Windows), a seek and a read under a lock."""
    if not on_windows():
        data = posix.pread(fd, length, offset)
        if data is not None:
            return data
    return _seek_read(fd, length, offset)


def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset`` (one call, may be short); ``os.preadv`` where it exists,
    otherwise a positioned read copied into ``view``."""
    if not on_windows():
        got = posix.preadv(fd, view, offset)
        if got is not None:
            return got
    data = pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (short writes continued)."""
    view = memoryview(data)
    while view:
        n = pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(28, "No space left on device")
        view = view[n:]
        offset += n


# ---------------------------------------------------------------- sparse files and holes
def make_sparse(fd: int) -> bool:
    """Mark a new output sparse, so that growing it allocates nothing (NTFS needs asking; POSIX
    filesystems are sparse by default). False where the filesystem cannot (FAT, some shares)."""
    return windows.make_sparse(fd) if on_windows() else True


def set_size(fd: int, size: int) -> None:
    """Grow or cut the output ``fd`` to ``size`` bytes. Growing writes no zeros: on Windows the
    file is marked sparse first and its end set (``os.ftruncate`` there writes every zero)."""
    if on_windows():
        windows.set_size(fd, size)
    else:
        os.ftruncate(fd, size)


def punch(fd: int, offset: int, length: int) -> None:
    """Make ``[offset, offset+length)`` of the output ``fd`` read as zeros, deallocated where
    the filesystem can (FSCTL_SET_ZERO_DATA, fallocate PUNCH_HOLE), written as zeros where not."""
    if length <= 0:
        return
    if on_windows():
        windows.punch(fd, offset, length)
    elif not posix.punch(fd, offset, length):
        _write_zeros(fd, offset, length)


def _write_zeros(fd: int, offset: int, length: int) -> None:
    zeros = bytes(min(length, 1 << 20))
    end = offset + length
    while offset < end:
        n = min(len(zeros), end - offset)
        pwrite_all(fd, memoryview(zeros)[:n], offset)
        offset += n


def data_ranges(fd: int, size: int, start: int = 0) -> list[tuple[int, int]]:
    """The allocated ``(start, end)`` ranges of ``[start, size)`` of ``fd`` in order; what lies
    between them is a hole (reads as zeros). Where the filesystem cannot tell, the whole range
    is one data range: treating a hole as data is only slower, never wrong."""
    if start >= size:
        return []
    if on_windows():
        found = windows.data_ranges(fd, start, size)
    else:
        with fd_lock(fd):  # SEEK_DATA moves the position a seek-and-read fallback relies on
            found = posix.data_ranges(fd, start, size)
    return [(start, size)] if found is None else found


def sees_holes() -> bool:
    """Whether holes are found by seeking (SEEK_DATA/SEEK_HOLE). Windows asks the volume
    instead (:func:`data_ranges`), which a FAT or exFAT volume cannot answer: a caller that
    knows what it wrote reads that back there rather than every zero of a hole."""
    return not on_windows() and posix.sees_holes()


# ---------------------------------------------------------------- in-kernel copies
def copy_range(src: int, dst: int, offset: int, length: int) -> int | None:
    """Copy ``[offset, offset+length)`` of ``src`` to the same offset of ``dst`` inside the
    kernel (Linux ``copy_file_range``: no trip through user space, a reflink where the
    filesystem can); returns the bytes copied (0 at the source's end, may be short), or None
    where the platform has no such call (the caller copies through a buffer). OSError as the
    call raises it (EIO on a bad sector, EXDEV/EOPNOTSUPP where the filesystems refuse)."""
    if on_windows():
        return None
    return posix.copy_range(src, dst, offset, length)


# ---------------------------------------------------------------- the rest
def long_path(path: str) -> str:
    """``path`` made absolute; on Windows in its ``\\\\?\\`` form, which is not bound by the
    260-character MAX_PATH (extracted guest trees go deeper than that)."""
    if on_windows():
        return windows.extended_path(ntpath.abspath(path))
    return os.path.abspath(path)


def path_limit(folder: str) -> int:
    """The longest path (in bytes; UTF-16 units on Windows) that may be created in
    ``folder`` plus one: PATH_MAX where the system says it, 4096 (Linux) otherwise; on
    Windows the 32,767 units of a ``\\\\?\\`` path."""
    if on_windows():
        return 32_767
    return posix.path_limit(folder)


def user_ids() -> tuple[int, int]:
    """(uid, gid) for files of a FUSE view: the caller's where the platform has them."""
    return (0, 0) if on_windows() else posix.user_ids()


def no_access_time_flag() -> int:
    """The open flag that leaves a file's access time alone (Linux's ``O_NOATIME``; it needs
    ownership of the file, so callers fall back to a plain open on PermissionError), or 0."""
    return int(getattr(os, "O_NOATIME", 0))


def advise(fd: int, offset: int, length: int, advice: str) -> None:
    """``posix_fadvise`` where it exists (``advice``: ``"sequential"`` or ``"dontneed"``)."""
    if not on_windows() and length > 0:
        posix.advise(fd, offset, length, advice)


def set_times(path: str, atime_ns: int, mtime_ns: int, *, follow_symlinks: bool = True) -> None:
    """Set a file's access and modification times. Without following a link where the
    platform can; Windows cannot (cpython#90648), so there the path itself is used, which the
    callers only do for files and folders they created (never a link)."""
    times = (atime_ns, mtime_ns)
    if follow_symlinks or on_windows():
        os.utime(path, ns=times)
        return
    try:
        os.utime(path, ns=times, follow_symlinks=False)
    except (NotImplementedError, SystemError):
        os.utime(path, ns=times)


def kill_process_group(pgid: int) -> None:
    """End at once every process of the group a child started with ``start_new_session``
    leads (POSIX; on Windows a tree is ended with ``taskkill /T /F`` instead)."""
    if not on_windows():
        posix.kill_group(pgid)


def ui_language() -> str | None:
    """The two-letter language of the Windows user interface (GetUserDefaultUILanguage), or
    None off Windows or where it cannot be asked."""
    return windows.ui_language() if on_windows() else None


__all__ = [
    "advise",
    "copy_range",
    "data_ranges",
    "fd_lock",
    "kill_process_group",
    "long_path",
    "make_sparse",
    "no_access_time_flag",
    "on_windows",
    "path_limit",
    "pread",
    "pread_into",
    "punch",
    "pwrite",
    "pwrite_all",
    "sees_holes",
    "set_size",
    "set_times",
    "ui_language",
    "user_ids",
]
