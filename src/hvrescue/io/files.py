"""The one place evidence files are opened for reading.

Evidence is opened read-only, without updating its access time where the kernel allows
(the platform's flag for it needs ownership: without it the open falls back), and never
blocks: a FIFO, socket or device is opened with ``O_NONBLOCK`` (or not at all, when ``lstat``
already says what it is) and refused as ``NotRegularFileError`` after an ``fstat``. Walkers call
``file_kind`` first and skip what is not a regular file without opening it.
"""

from __future__ import annotations

import io
import os
import stat

from hvrescue.errors import InputError
from hvrescue.platform import no_access_time_flag

# What a path is, as lstat sees it (links not followed).
REGULAR, DIRECTORY, SYMLINK = "regular", "directory", "symlink"
FIFO, SOCKET, OTHER = "fifo", "socket", "other"
CHAR_DEVICE, BLOCK_DEVICE = "char-device", "block-device"
MISSING = "missing"


class NotRegularFileError(InputError):
    """A path that is not a regular file (FIFO, socket, device, folder) where one was needed."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__("error.input.not-regular", path=path, kind=kind)
        self.kind = kind


def mode_kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return REGULAR
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISFIFO(mode):
        return FIFO
    if stat.S_ISSOCK(mode):
        return SOCKET
    if stat.S_ISCHR(mode):
        return CHAR_DEVICE
    if stat.S_ISBLK(mode):
        return BLOCK_DEVICE
    return OTHER


def file_kind(path: str | os.PathLike[str], follow: bool = True) -> str:
    """What ``path`` is (``follow``: what a link points at), without opening it."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return OTHER
    return mode_kind(st.st_mode)


def open_evidence(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file at ``path`` (links followed), never blocking.

    Raises ``NotRegularFileError`` for anything else and ``InputError`` when it cannot be opened.
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if kind not in (REGULAR, MISSING, OTHER):
        raise NotRegularFileError(path, kind)
    flags = (
        os.O_RDONLY
        | getattr(os, "O_BINARY", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_NONBLOCK", 0)
    )
    noatime = no_access_time_flag()
    try:
        fd = -1
        if noatime:
            try:
                fd = os.open(path, flags | noatime)
            except PermissionError:
                fd = -1  # the flag needs ownership; a plain read-only open follows
        if fd < 0:
            fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise InputError("error.input.missing", path=path) from exc
    except IsADirectoryError as exc:
        raise NotRegularFileError(path, DIRECTORY) from exc
    except OSError as exc:
        raise InputError("error.input.open", path=path, reason=exc.strerror) from exc
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise InputError("error.input.stat", path=path, reason=exc.strerror) from exc
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(path, mode_kind(st.st_mode))
    return fd


def open_evidence_file(path: str | os.PathLike[str]) -> io.BufferedReader:
    """``open_evidence`` as a buffered binary file object (``with`` closes it)."""
    fd = open_evidence(path)
    try:
        return io.BufferedReader(io.FileIO(fd, "rb"))
    except BaseException:
        os.close(fd)
        raise


def read_evidence(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit`` bytes from the start of a regular evidence file."""
    with open_evidence_file(path) as f:
        return f.read(limit)
