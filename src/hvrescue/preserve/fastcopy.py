"""Copies made inside the kernel (``copy_file_range``; a reflink where the filesystem shares
extents), for :mod:`hvrescue.preserve.copy`.

Each chunk is read once through the source layer (retries, unreadable ranges recorded to the
sector) into the buffer the digest is taken from. A chunk that read whole and clean is then
copied by the kernel from the source's pages, still in the page cache, to the copy: no trip
back through user space, and no data written at all where the filesystem shares extents
(btrfs, XFS, ZFS, bcachefs: a reflink) or the server copies (NFS 4.2, SMB). A chunk that met
a read error is written from the buffer, zero-filled where it failed, as it always was. Where
the kernel cannot copy (another platform, filesystems that refuse), every chunk is written
from the buffer.
"""

from __future__ import annotations

import errno

from hvrescue.platform import copy_range, pwrite_all

# The platform or the filesystems cannot copy in the kernel: buffers from here on, for this file.
_REFUSED = {
    errno.ENOSYS,
    errno.EXDEV,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
    errno.EBADF,
    errno.EPERM,
    errno.ETXTBSY,
}


class KernelCopy:
    """In-kernel copies of one file's data ranges, until the kernel refuses."""

    def __init__(self, src: int, dst: int) -> None:
        self.src = src
        self.dst = dst
        self.usable = True

    def copy(self, pos: int, length: int) -> int:
        """Copy ``[pos, pos+length)`` to the same offset of the copy; return how many bytes
        from ``pos`` were copied. Less than ``length``: the rest is for the buffered path (a
        read error it retries and records, the source's end, or a refusal, after which
        :attr:`usable` is False)."""
        done = 0
        while self.usable and done < length:
            try:
                got = copy_range(self.src, self.dst, pos + done, length - done)
            except OSError as exc:
                if exc.errno in _REFUSED:
                    self.usable = False
                return done  # EIO and the like: the buffered path reads it with retries
            if got is None:
                self.usable = False
            elif got <= 0:
                return done  # the source ended early: the buffered path says so
            else:
                done += got
        return done


class SourceRange:
    """What to write at an offset of the copy: the same range of the source, copied by the
    kernel; ``view`` holds the same bytes (as read for the digest) for what it does not copy."""

    def __init__(self, kernel: KernelCopy, view: memoryview) -> None:
        self.kernel = kernel
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def write_to(self, fd: int, offset: int) -> None:
        done = self.kernel.copy(offset, len(self.view)) if fd == self.kernel.dst else 0
        if done < len(self.view):
            pwrite_all(fd, self.view[done:], offset + done)
