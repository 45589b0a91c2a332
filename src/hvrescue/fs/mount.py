"""`mount`: a read-only FUSE view of a flattened disk or chain, and of each of its partitions,
so that people can use their own tools on it (`ntfs-3g -o ro`, `photorec`, `fls`...).

    MOUNTPOINT/disk.raw   the whole virtual disk as the guest sees it (log replayed, chain read)
    MOUNTPOINT/p1.raw ... each partition of its MBR or GPT

Every write is refused (EROFS). A read that reaches a range without defined content (see
``Disk.undefined``) fails with EIO at its first byte, as a bad sector would. The filesystem
runs in the foreground, single-threaded (the engine's caches are not shared between threads),
and Ctrl-C unmounts it cleanly.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any

from hvrescue.errors import InputError
from hvrescue.fs.partitions import partitions
from hvrescue.platform import user_ids
from hvrescue.vdisk.disk import Disk


def _fuse() -> Any:
    try:
        import mfusepy
    except (ImportError, OSError) as exc:
        raise InputError("error.mount.no-fuse", reason=str(exc)[:200]) from exc
    return mfusepy


def build_view(disk: Disk) -> dict[str, tuple[int, int]]:
    """{name: (offset, size)} of the files the mount shows."""
    view = {"disk.raw": (0, disk.size)}
    for part in partitions(disk):
        if part.scheme != "none":
            view[f"p{part.index}.raw"] = (part.offset, min(part.size, disk.size - part.offset))
    return view


def mount(disk: Disk, mountpoint: str, debug: bool = False) -> None:
    fuse = _fuse()
    if not os.path.isdir(mountpoint):
        raise InputError("error.mount.not-a-folder", path=mountpoint)
    view = build_view(disk)
    now = time.time()
    uid, gid = user_ids()

    state = {"mounted": False}

    class ReadOnlyView(fuse.Operations):  # type: ignore[misc,name-defined]
        use_ns = False

        def init(self, path: str) -> None:
            state["mounted"] = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            base = {"st_uid": uid, "st_gid": gid, "st_atime": now, "st_mtime": now, "st_ctime": now}
            if path == "/":
                return {**base, "st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
            entry = view.get(path.lstrip("/"))
            if entry is None:
                raise fuse.FuseOSError(errno.ENOENT)
            return {**base, "st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": entry[1]}

        def readdir(self, path: str, fh: int) -> list[str]:
            if path != "/":
                raise fuse.FuseOSError(errno.ENOTDIR)
            return [".", "..", *view]

        def open(self, path: str, flags: int) -> int:
            if path.lstrip("/") not in view:
                raise fuse.FuseOSError(errno.ENOENT)
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC):
                raise fuse.FuseOSError(errno.EROFS)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            entry = view.get(path.lstrip("/"))
            if entry is None:
                raise fuse.FuseOSError(errno.ENOENT)
            start, length = entry
            if offset >= length:
                return b""
            try:
                data, gaps = disk.read_checked(start + offset, min(size, length - offset))
            except Exception as exc:  # a read error must reach the reader as EIO, not kill us
                raise fuse.FuseOSError(errno.EIO) from exc
            if gaps:
                # Undefined content (damage, truncation, read errors, a missing parent) is
                # never handed out as data: the reader gets what a bad sector gives, EIO, for
                # the first undefined byte; what lies before it is returned.
                first = gaps[0].offset - (start + offset)
                if first <= 0:
                    raise fuse.FuseOSError(errno.EIO)
                return data[:first]
            return data

        def statfs(self, path: str) -> dict[str, int]:
            return {
                "f_bsize": 4096,
                "f_frsize": 4096,
                "f_blocks": 0,
                "f_bfree": 0,
                "f_bavail": 0,
                "f_namemax": 255,
            }

        def _refuse(self, *args: Any, **kwargs: Any) -> None:
            raise fuse.FuseOSError(errno.EROFS)

        write = create = truncate = unlink = mkdir = rmdir = rename = _refuse
        chmod = chown = utimens = symlink = link = setxattr = removexattr = _refuse

    try:
        fuse.FUSE(
            ReadOnlyView(),
            mountpoint,
            foreground=True,
            nothreads=True,
            ro=True,
            fsname="hvrescue",
            debug=debug,
        )
    except RuntimeError:
        # libfuse reports the loop ended by a signal as an error; after a mount that worked and
        # is gone again, that is the clean Ctrl-C ending, not a failure.
        if not state["mounted"] or os.path.ismount(mountpoint):
            raise
