"""The destination of a preservation: what may be written there, and its work files.

DEST is the folder the user named; links in the path to it are the user's choice (it is used
as given, and its real location is what the checks against the sources compare). Inside DEST
nothing is followed: the work folder, partial copies, their checkpoints, the journal and the
final copies are made, reopened, linked and removed only through a
:class:`~hvrescue.io.nofollow.Confined` rooted at DEST, so a link placed there is refused
(``error.links.link``) instead of being written through.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io.atomic import link_into_place
from hvrescue.io.nofollow import Confined, LinkError, lstat_or_none
from hvrescue.preserve.manifest import MANIFEST, MAX_MANIFEST_BYTES
from hvrescue.preserve.plan import Plan

WORK_DIR = ".hvrescue-partial"
JOURNAL = "done.jsonl"
SPACE_MARGIN = 64 * 1024 * 1024
RESERVED = {WORK_DIR, "manifest.json", "manifest.csv", "case.sqlite", "case.sqlite-journal"}
# The journal holds one line per finished file: as large as the manifest may be.
MAX_JOURNAL_BYTES = MAX_MANIFEST_BYTES


def _existing_ancestor(path: str) -> str:
    cur = os.path.abspath(path)
    while not os.path.exists(cur):
        up = os.path.dirname(cur)
        if up == cur:
            break
        cur = up
    return cur


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_destination(sources: list[str], dest: str, resume: bool) -> str:
    """Refusals that need no plan; returns 'fresh', 'resume' or 'done'."""
    for s in sources:
        if os.path.isdir(s) and _inside(dest, s):
            raise InputError("error.preserve.dest-inside-source", dest=dest, source=s)
        if os.path.isfile(s) and os.path.realpath(s) == os.path.realpath(dest):
            raise InputError("error.preserve.dest-inside-source", dest=dest, source=s)
    if not os.path.exists(dest):
        if os.path.lexists(dest):
            raise InputError("error.output.exists", path=dest)
        return "fresh"
    if not os.path.isdir(dest):
        raise InputError("error.output.exists", path=dest)
    entries = set(os.listdir(dest))
    if MANIFEST in entries:
        if resume:
            return "done"
        raise InputError("error.preserve.dest-not-empty", dest=dest)
    if not entries:
        return "fresh"
    if WORK_DIR in entries and resume:
        work = os.path.join(dest, WORK_DIR)
        Confined(dest).check(work)  # a link there: refused, never followed
        st = lstat_or_none(work)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise InputError("error.links.work-not-folder", path=work)
        return "resume"
    if WORK_DIR in entries:
        raise InputError("error.preserve.needs-resume", dest=dest)
    raise InputError("error.preserve.dest-not-empty", dest=dest)


def check_storage(plan: Plan, dest: str, allow_same: bool) -> list[str]:
    anchor = _existing_ancestor(dest)
    device = os.stat(anchor).st_dev
    same = [f.source for f in plan.files if f.device == device]
    if same and not allow_same:
        raise InputError("error.preserve.same-storage", dest=dest, source=same[0])
    return same


def check_space(dest: str, needed: int) -> None:
    anchor = _existing_ancestor(dest)
    free = shutil.disk_usage(anchor).free
    if needed + SPACE_MARGIN > free:
        raise InputError(
            "error.preserve.no-space", dest=dest, needed=needed + SPACE_MARGIN, free=free
        )


def publish(tmp: str, final: str, confined: Confined) -> None:
    """Give ``tmp`` its final name without ever replacing an existing file, through real
    folders of DEST only."""
    confined.makedirs(os.path.dirname(final))
    confined.check(final)
    link_into_place(tmp, final)


def _valid_entry(entry: Any) -> bool:
    """A journal line that can stand for a finished copy (a hand may have edited it)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("source"), str)
    )


class Journal:
    """One line per finished copy, appended and flushed, so that ``--resume`` can trust it."""

    def __init__(self, confined: Confined, path: str) -> None:
        self.confined = confined
        self.path = path
        self.lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            raw = self.confined.read(self.path, MAX_JOURNAL_BYTES)
        except FileNotFoundError:
            return out
        for line in raw.splitlines():
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a line cut short by the interruption
            if _valid_entry(entry):
                out[entry["path"]] = entry
        return out

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            try:
                fd = self.confined.open_existing(self.path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                fd = self.confined.open_new(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)


__all__ = [
    "JOURNAL",
    "RESERVED",
    "SPACE_MARGIN",
    "WORK_DIR",
    "Journal",
    "LinkError",
    "check_destination",
    "check_space",
    "check_storage",
    "publish",
]
