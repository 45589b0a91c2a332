"""Outputs that appear only when complete: write to a temporary name beside the target, flush,
then rename. An existing target is never overwritten.

Whatever stops the writing (an error, a full disk, Ctrl-C) removes the temporary file, so that
nothing is left behind under the final name or beside it; only a killed process (SIGKILL, power
loss) can leave a hidden ``.NAME.hvrescue-PID.part`` file, never a file under the final name.
Failures of the output itself become :class:`OutputError` with a message that names the path and
the reason, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hvrescue.errors import InputError, OutputError
from hvrescue.io.nofollow import open_new

# errno values that only writing produces: an OSError carrying one of them, wherever it was
# raised during an output's writing, is a failure of the output, not of an input.
WRITE_ERRNOS = frozenset(
    e
    for e in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EROFS,
        errno.EFBIG,
    )
    if e is not None
)
_KEYS = {
    errno.ENOSPC: "error.output.no-space",
    errno.EROFS: "error.output.read-only",
    errno.EFBIG: "error.output.too-large",
    errno.EACCES: "error.output.permission",
    errno.EPERM: "error.output.permission",
    errno.ENOENT: "error.output.folder-missing",
    errno.ENOTDIR: "error.output.folder-missing",
}
if hasattr(errno, "EDQUOT"):
    _KEYS[errno.EDQUOT] = "error.output.quota"
# A file name is at most 255 bytes on the filesystems we write to; the temporary name adds a
# prefix and a suffix to the target's, so a long target name is shortened in it.
_MAX_NAME = 255


class FlushFailed(OSError):
    """Writing an output's bytes back to its device (a flush, a range's writeback) failed: a
    failure of the output like a failed write, whatever its errno (EIO, mostly)."""


def output_error(exc: OSError, path: str) -> OutputError:
    """The domain error for an OSError met while writing the output ``path``."""
    code = exc.errno if exc.errno is not None else 0
    fallback = "error.output.flush" if isinstance(exc, FlushFailed) else "error.output.write"
    key = _KEYS.get(code, fallback)
    return OutputError(
        key,
        path=path,
        folder=os.path.dirname(os.path.abspath(path)),
        errno=errno.errorcode.get(code, str(code)),
        reason=exc.strerror or str(exc),
    )


def is_write_failure(exc: BaseException) -> bool:
    """An OSError that only writing can cause (disk full, quota, read-only, file too large,
    a failed flush)."""
    return isinstance(exc, FlushFailed) or (isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS)


def check_output_folder(path: str | os.PathLike[str]) -> None:
    """Refuse early, before any long work, an output whose folder is missing or not writable.

    The check is advisory (the location may change meanwhile); writing still reports its own
    failures. A missing folder is never created here: a mistyped path must not become one."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OutputError("error.output.folder-missing", path=target, folder=folder)
    if not os.access(folder, os.W_OK):
        # access() reports a read-only filesystem as EROFS and missing rights as EACCES.
        probe = _probe_write(folder)
        if probe is not None:
            raise output_error(probe, target)


def _probe_write(folder: str) -> OSError | None:
    """Try to create (and remove) a file in ``folder``: the OSError it fails with, or None."""
    name = os.path.join(folder, f".hvrescue-probe-{os.getpid()}.part")
    try:
        fd = open_new(name, os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def check_output_dir(path: str | os.PathLike[str]) -> None:
    """Like :func:`check_output_folder` for an output folder: an existing one must be a
    writable folder; a new one needs a writable parent (only its last level is ever made)."""
    folder = os.fspath(path)
    if os.path.isdir(folder):
        check_output_folder(os.path.join(folder, "x"))
    elif os.path.lexists(folder):
        raise OutputError("error.output.not-a-folder", path=folder)
    else:
        check_output_folder(folder)


def prepare_output_folder(path: str | os.PathLike[str]) -> None:
    """Make the output folder ``path`` (only its last level: its parent must exist, so that a
    mistyped path is refused rather than created) and check that it can be written."""
    folder = os.fspath(path)
    check_output_dir(folder)
    if os.path.isdir(folder):
        return
    try:
        os.mkdir(folder)
    except FileExistsError as exc:  # a file, not a folder, has that name
        raise OutputError("error.output.not-a-folder", path=folder) from exc
    except OSError as exc:
        raise output_error(exc, folder) from exc


def temp_path(target: str) -> str:
    """The hidden temporary name beside ``target`` that an output is written under."""
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    suffix = f".hvrescue-{os.getpid()}.part"
    name = f".{base}{suffix}"
    if len(os.fsencode(name)) > _MAX_NAME:
        digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:12]
        keep = _MAX_NAME - len(suffix) - len(digest) - 2
        short = os.fsencode(base)[:keep].decode("utf-8", errors="ignore")
        name = f".{short}~{digest}{suffix}"
    return os.path.join(directory, name)


def link_into_place(tmp: str, target: str) -> None:
    """Give the finished file ``tmp`` the name ``target``, never replacing an existing file:
    link() refuses an existing target, so a file that appeared meanwhile is not replaced. Where
    the filesystem has no hard links (FAT/exFAT), a rename after checking is the best there is.
    ``tmp`` is gone afterwards. A link at ``tmp`` is linked itself, never what it names."""
    try:
        if os.link in os.supports_follow_symlinks:
            os.link(tmp, target, follow_symlinks=False)
        else:
            os.link(tmp, target)
    except FileExistsError as exc:
        raise InputError("error.output.exists", path=target) from exc
    except OSError:
        if os.path.lexists(target):
            raise InputError("error.output.exists", path=target) from None
        try:
            os.rename(tmp, target)
        except OSError as exc:
            raise output_error(exc, target) from exc
        return
    os.unlink(tmp)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], check: Callable[[str], None] | None = None
) -> Iterator[int]:
    """Yield a writable file descriptor; on success the file becomes ``path`` atomically.

    ``check`` (kept for the lead's merge: do not remove) is called with the temporary file's
    path once it is complete and flushed, before it gets its final name: whatever it raises
    leaves nothing under ``path``, so an output is named only after the check that justifies
    its status.

    On any exception (KeyboardInterrupt included) the temporary file is removed and nothing
    appears under ``path``. OSErrors of the output (creating, writing with ENOSPC/EDQUOT/EROFS/
    EFBIG, flushing, closing, renaming) are raised as :class:`OutputError`."""
    target = os.fspath(path)
    if os.path.lexists(target):
        raise InputError("error.output.exists", path=target)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OutputError("error.output.folder-missing", path=target, folder=folder)
    tmp = temp_path(target)
    fd = _create(tmp, target)
    placed = False
    try:
        try:
            yield fd
        except OSError as exc:
            if is_write_failure(exc):
                raise output_error(exc, target) from exc
            raise
        try:
            os.fsync(fd)
        except OSError as exc:
            raise output_error(
                FlushFailed(exc.errno or 0, exc.strerror or str(exc)), target
            ) from exc
        closing, fd = fd, -1
        try:
            # Some filesystems (NFS, SMB) report a full disk or quota only when closing.
            os.close(closing)
        except OSError as exc:
            raise output_error(exc, target) from exc
        if check is not None:
            check(tmp)
        link_into_place(tmp, target)
        placed = True
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if not placed:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _create(tmp: str, target: str) -> int:
    # New, never through a link (O_EXCL | O_NOFOLLOW; see io.nofollow).
    try:
        return open_new(tmp, os.O_WRONLY, 0o644)
    except FileExistsError:
        # Left by a killed earlier process that had our process id: that one is gone (we
        # hold its id now), and the name is hidden and ours, so it is removed (a link placed
        # there is removed itself, never what it names).
        try:
            os.unlink(tmp)
            return open_new(tmp, os.O_WRONLY, 0o644)
        except OSError as exc:
            raise output_error(exc, target) from exc
    except OSError as exc:
        raise output_error(exc, target) from exc
