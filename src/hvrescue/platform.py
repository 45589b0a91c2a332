"""What differs between the platforms hvrescue runs on: positioned writes and the user ids a
FUSE view reports (positioned reads are ``io.source``'s, which looks ``pread``/``preadv`` up per
call and seeks under a lock where they are missing). Nothing else in the package calls a
POSIX-only function of ``os``.

Windows has no ``pwrite``: a seek and a plain write take its place; each output descriptor has
one writer, so the moved file position is never shared.
"""

from __future__ import annotations

import os
import sys


def _seek_write(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)


if sys.platform == "win32":
    pwrite = _seek_write
else:

    def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        """``os.pwrite``; a seek and a write where ``os`` has none."""
        try:
            return os.pwrite(fd, data, offset)
        except AttributeError:  # an os module without it (the suite's Windows simulation)
            return _seek_write(fd, data, offset)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (short writes continued)."""
    view = memoryview(data)
    while view:
        n = pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(28, "No space left on device")
        view = view[n:]
        offset += n


def long_path(path: str) -> str:
    """``path`` made absolute; on Windows in its ``\\\\?\\`` form, which is not bound by the
    260-character MAX_PATH (extracted guest trees go deeper than that)."""
    path = os.path.abspath(path)
    if sys.platform != "win32" or path.startswith("\\\\?\\"):
        return path
    if path.startswith("\\\\"):  # \\server\share\...
        return "\\\\?\\UNC\\" + path[2:]
    return "\\\\?\\" + path


def path_limit(folder: str) -> int:
    """The longest path (in bytes; UTF-16 units on Windows) that may be created in
    ``folder`` plus one: PATH_MAX where the system says it, 4096 (Linux) otherwise; on
    Windows the 32,767 units of a ``\\\\?\\`` path."""
    if sys.platform == "win32":
        return 32_767
    pathconf = getattr(os, "pathconf", None)
    try:
        value = pathconf(folder, "PC_PATH_MAX") if pathconf is not None else None
    except (OSError, ValueError):
        value = None
    return int(value) if value and value > 0 else 4096


def user_ids() -> tuple[int, int]:
    """(uid, gid) for files of a FUSE view: the caller's where the platform has them."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    try:
        return (getuid() if getuid else 0), (getgid() if getgid else 0)
    except AttributeError:  # simulated Windows
        return 0, 0


def no_access_time_flag() -> int:
    """The open flag that leaves a file's access time alone (Linux's ``O_NOATIME``; it needs
    ownership of the file, so callers fall back to a plain open on PermissionError), or 0."""
    return int(getattr(os, "O_NOATIME", 0))


def sees_holes() -> bool:
    """Whether files' holes can be found (``SEEK_DATA``/``SEEK_HOLE``; not on Windows)."""
    return hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")
