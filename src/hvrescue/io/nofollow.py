"""Our own files (outputs, work and state files, manifests) are opened without following links.

Evidence folders come from compromised hosts and hurried copies: a link placed where hvrescue
writes or reopens one of its own files (``DEST/.hvrescue-partial/...``, a state file, a map,
``OUT`` of a retried salvage) would turn a write into a write to whatever the link names, an
original included. So:

- a new file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: nothing that exists under the
  name, a link included, is ever opened;
- a file of ours that is opened again (a partial copy, a state file, a journal) is opened with
  ``O_NOFOLLOW | O_NONBLOCK`` and must be a regular file; opened for writing, it must have no
  other hard link (a hard link to an original would be written through otherwise);
- Windows has no ``O_NOFOLLOW``: there ``lstat`` before the open and an identity comparison
  (``fstat`` against ``lstat``, device and file index) after it take its place, and a junction
  counts as a link. The same comparison runs on every platform, as a second check.

The folder a user names for an output (DEST, ``--to``, ``--out``, the folder of OUT) may be
reached through links: that is the user's choice, and the commands compare its real location
with their inputs (``preserve`` refuses a DEST inside a source; ``-o``/``--log-file`` are
checked by ``cli.output.check_output_path``). *Below* that folder nothing is followed:
:class:`Confined` checks every component between the folder and a file for links before it
creates, reopens, renames or removes anything there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from hvrescue.errors import InputError
from hvrescue.io.files import NotRegularFileError, mode_kind

# Windows reparse points that stand for another path (symbolic links, junctions): the
# "name surrogate" bit of the tag (ntifs.h IsReparseTagNameSurrogate).
_NAME_SURROGATE = 0x20000000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC
_BASE = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def nofollow_flag() -> int:
    """``O_NOFOLLOW`` where the platform has it (looked up per call: absent on Windows)."""
    return int(getattr(os, "O_NOFOLLOW", 0))


class LinkError(InputError):
    """A link (symbolic link, junction) or a hard-linked file where hvrescue keeps its own
    files: refused, nothing was opened through it."""

    def __init__(self, path: str, key: str = "error.links.link") -> None:
        super().__init__(key, path=path, target=_target(path))


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except (OSError, ValueError, NotImplementedError):
        return "-"


def is_link(st: os.stat_result) -> bool:
    """``st`` (from ``lstat``) is a symbolic link, or on Windows a junction or other link."""
    if stat.S_ISLNK(st.st_mode):
        return True
    tag = int(getattr(st, "st_reparse_tag", 0) or 0)
    return bool(tag & _NAME_SURROGATE)


def lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def refuse_link(path: str | os.PathLike[str]) -> None:
    """Raise :class:`LinkError` when ``path`` is a link; a missing path is fine."""
    path = os.fspath(path)
    st = lstat_or_none(path)
    if st is not None and is_link(st):
        raise LinkError(path)


def _same_file(fd: int, path: str) -> os.stat_result:
    """After an open: ``path`` is (still) the regular file that ``fd`` is, not a link."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, mode_kind(st.st_mode))
    now = lstat_or_none(path)
    if now is None or is_link(now) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise LinkError(path, "error.links.changed")
    return st


def open_new(path: str | os.PathLike[str], flags: int = os.O_WRONLY, mode: int = 0o644) -> int:
    """Create ``path`` as a new file and open it (``flags``: the access mode and extras).

    Nothing existing under the name is opened: a file or a link (even a dangling one) fails
    with ``FileExistsError``, as ``os.open`` with ``O_EXCL`` does, so callers keep their
    handling of an existing output."""
    path = os.fspath(path)
    nofollow = nofollow_flag()
    if not nofollow and lstat_or_none(path) is not None:
        # Windows: O_EXCL there may follow a link to create its target; never try.
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | nofollow | _BASE, mode)
    try:
        _same_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_existing(path: str | os.PathLike[str], flags: int = os.O_RDONLY) -> int:
    """Open again a regular file of ours, never through a link and never blocking.

    Raises :class:`LinkError` for a link (or, opened for writing, a file with another hard
    link), ``NotRegularFileError`` for a FIFO, socket, device or folder, and the ``OSError`` of
    the open otherwise (``FileNotFoundError`` when it is gone)."""
    path = os.fspath(path)
    before = os.lstat(path)
    if is_link(before):
        raise LinkError(path)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFileError(path, mode_kind(before.st_mode))
    try:
        fd = os.open(path, flags | nofollow_flag() | getattr(os, "O_NONBLOCK", 0) | _BASE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link meanwhile
            raise LinkError(path) from exc
        raise
    try:
        st = _same_file(fd, path)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise LinkError(path, "error.links.changed")
        if flags & _WRITE_FLAGS and st.st_nlink > 1:
            raise LinkError(path, "error.links.hard-link")
    except BaseException:
        os.close(fd)
        raise
    return fd


class TooLargeError(InputError):
    """A file of ours larger than it can be: not read (a hand or a fault made it)."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__("error.links.state-too-large", path=path, limit=limit)


def read_own(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole of a small file of ours (a state, journal, map or manifest), never through a
    link; one larger than ``limit`` bytes is refused (``TooLargeError``) without being read."""
    path = os.fspath(path)
    fd = open_existing(path)
    try:
        if os.fstat(fd).st_size > limit:
            raise TooLargeError(path, limit)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            data = os.read(fd, min(left, 1 << 20))
            if not data:
                break
            chunks.append(data)
            left -= len(data)
        if left <= 0:  # grew while being read
            raise TooLargeError(path, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Confined:
    """A folder of ours (a preservation's DEST, an output folder) under which no link is
    followed: every path handed to its methods must lie below ``root`` and reach its file
    through real folders only."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))

    def _parts(self, path: str) -> list[str]:
        full = os.path.abspath(path)
        if full == self.root:
            return []
        if not _is_within(full, self.root):
            raise LinkError(path, "error.links.outside")
        return os.path.relpath(full, self.root).split(os.sep)

    def check(self, path: str, *, last: bool = True) -> str:
        """``path`` when no component below the root (the last one too, unless ``last`` is
        false) is a link; missing components end the check (nothing there to follow)."""
        cur = self.root
        parts = self._parts(path)
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            if not last and i == len(parts) - 1:
                break
            st = lstat_or_none(cur)
            if st is None:
                break
            if is_link(st):
                raise LinkError(cur)
            if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                break  # the open will fail on its own (ENOTDIR)
        return path

    def makedirs(self, path: str) -> None:
        """Make ``path`` and the folders above it up to the root, each a real folder."""
        cur = self.root
        for part in self._parts(path):
            cur = os.path.join(cur, part)
            st = lstat_or_none(cur)
            if st is None:
                with contextlib.suppress(FileExistsError):  # made meanwhile: checked below
                    os.mkdir(cur)
                st = os.lstat(cur)
            if is_link(st):
                raise LinkError(cur)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), cur)

    def open_new(self, path: str, flags: int = os.O_WRONLY, mode: int = 0o644) -> int:
        self.check(path, last=False)
        fd = open_new(path, flags, mode)
        try:
            self.check(path)  # a folder above it swapped for a link meanwhile
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_existing(self, path: str, flags: int = os.O_RDONLY) -> int:
        self.check(path, last=False)
        fd = open_existing(path, flags)
        try:
            self.check(path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, path: str, limit: int) -> bytes:
        self.check(path)
        return read_own(path, limit)

    def exists(self, path: str) -> bool:
        """``path`` is there (a link counts, and is refused: LinkError)."""
        self.check(path)
        return lstat_or_none(path) is not None

    def unlink(self, path: str, missing_ok: bool = True) -> None:
        """Remove ``path`` (a link placed there is removed itself, never what it names)."""
        self.check(path, last=False)
        try:
            os.unlink(path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` (both ours; a link at ``dst`` is refused)."""
        self.check(src)
        self.check(dst)
        os.replace(src, dst)
