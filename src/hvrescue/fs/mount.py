"""`mount`: a read-only FUSE view of a flattened disk or chain, and of each of its partitions,
so that people can use their own tools on it (`ntfs-3g -o ro`, `photorec`, `fls`...).

    MOUNTPOINT/disk.raw   the whole virtual disk as the guest sees it (log replayed, chain read)
    MOUNTPOINT/p1.raw ... each partition of its MBR or GPT
    MOUNTPOINT/p3_vg0_root.raw ... each LVM logical volume that can be read (volume 3/vg0/root)

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
from hvrescue.fs.names import safe_name
from hvrescue.fs.partitions import partitions
from hvrescue.fs.source import MappedSource
from hvrescue.platform import on_windows, user_ids
from hvrescue.vdisk.disk import Disk


def _fuse() -> Any:
    try:
        import mfusepy
    except (ImportError, OSError) as exc:
        key = "error.mount.no-winfsp" if on_windows() else "error.mount.no-fuse"
        raise InputError(key, reason=str(exc)[:200]) from exc
    return mfusepy


def build_view(disk: Disk) -> dict[str, tuple[int, int]]:
    """{name: (offset, size)} of the files the mount shows."""
    view = {"disk.raw": (0, disk.size)}
    for part in partitions(disk):
        if part.scheme != "none":
            view[f"p{part.index}.raw"] = (part.offset, min(part.size, disk.size - part.offset))
    return view


def volume_views(disk: Disk) -> dict[str, MappedSource]:
    """{name: source} of every file the mount shows: the disk, partitions, logical volumes."""
    from hvrescue.fs.addressing import discover

    views = {n: MappedSource.whole(disk, o, s) for n, (o, s) in build_view(disk).items()}
    for info in discover(disk):
        if info.kind in ("lvm", "shadow") and info.problem is None:  # p2@vss1.raw: fs.shadow
            views[safe_name(f"p{info.id}") + ".raw"] = info.source
        elif info.detail.get("locked") is False:  # p2-decrypted.raw (fs.bitlocker)
            views[safe_name(f"p{info.id}") + "-decrypted.raw"] = info.source
    return views


def mount(disk: Disk, mountpoint: str, debug: bool = False) -> None:
    fuse = _fuse()
    if not os.path.isdir(mountpoint):
        raise InputError("error.mount.not-a-folder", path=mountpoint)
    view = volume_views(disk)
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
            return {**base, "st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": entry.size}

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
            if offset >= entry.size:
                return b""
            try:
                data, first = entry.read_checked(offset, min(size, entry.size - offset))
            except Exception as exc:  # a read error must reach the reader as EIO, not kill us
                raise fuse.FuseOSError(errno.EIO) from exc
            if first is not None:
                # Undefined content (damage, truncation, read errors, a missing parent) is
                # never handed out as data: the reader gets what a bad sector gives, EIO, for
                # the first undefined byte; what lies before it is returned.
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
