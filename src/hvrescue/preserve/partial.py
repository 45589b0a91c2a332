"""The work files beside a partial copy: its checkpoint (``<part>.state``) and its times.

They live in the work folder of a preservation (``DEST/.hvrescue-partial``), which a hostile
or hurried hand may have filled with links: each is created new, reopened and renamed only
through :class:`~hvrescue.io.nofollow.Confined`, never through a link.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hvrescue.io.files import NotRegularFileError
from hvrescue.io.nofollow import Confined, TooLargeError

MAX_STATE_BYTES = 1024 * 1024


def save_state(confined: Confined, state_path: str, state: dict[str, Any]) -> None:
    """The checkpoint beside a partial copy: our own work file, written new under a temporary
    name and renamed over the previous one, never through a link."""
    tmp = state_path + ".tmp"
    confined.unlink(tmp)  # left by a run that was killed
    fd = confined.open_new(tmp)
    try:
        os.write(fd, json.dumps(state).encode("utf-8"))
    finally:
        os.close(fd)
    confined.replace(tmp, state_path)


def load_state(state_path: str, confined: Confined | None = None) -> dict[str, Any] | None:
    """The checkpoint of a partial copy, or None when there is none usable; a link there is
    refused (``LinkError``), never read through."""
    confined = confined or Confined(os.path.dirname(os.path.abspath(state_path)))
    try:
        data = json.loads(confined.read(state_path, MAX_STATE_BYTES))
    except (OSError, ValueError, RecursionError, NotRegularFileError, TooLargeError):
        return None  # no usable checkpoint: the copy starts again (a link is refused above)
    if not isinstance(data, dict):
        return None
    offset, size, mtime = data.get("offset"), data.get("size"), data.get("mtime_ns")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (offset, size)):
        return None
    return data if isinstance(mtime, int) else None


def set_times(fd: int, path: str, confined: Confined, st: os.stat_result) -> None:
    """The original's times on the copy: through the descriptor where the platform can (no
    path, nothing to follow), else on the path once checked."""
    if os.utime in os.supports_fd:
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(confined.check(path), ns=(st.st_atime_ns, st.st_mtime_ns))
