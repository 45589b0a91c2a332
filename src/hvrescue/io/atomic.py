"""Outputs that appear only when complete: write to a temporary name beside the target, flush,
then rename. An existing target is never overwritten."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hvrescue.errors import InputError


def link_into_place(tmp: str, target: str) -> None:
    """Give the finished file ``tmp`` the name ``target``, never replacing an existing file:
    link() refuses an existing target, so a file that appeared meanwhile is not replaced. Where
    the filesystem has no hard links (FAT/exFAT), a rename after checking is the best there is.
    ``tmp`` is gone afterwards."""
    try:
        os.link(tmp, target)
    except FileExistsError as exc:
        raise InputError("error.output.exists", path=target) from exc
    except OSError:
        if os.path.lexists(target):
            raise InputError("error.output.exists", path=target) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[int]:
    """Yield a writable file descriptor; on success the file becomes ``path`` atomically."""
    target = os.fspath(path)
    if os.path.lexists(target):
        raise InputError("error.output.exists", path=target)
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, f".{os.path.basename(target)}.hvrescue-{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        yield fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            link_into_place(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    finally:
        if fd >= 0:
            os.close(fd)
            os.unlink(tmp)
