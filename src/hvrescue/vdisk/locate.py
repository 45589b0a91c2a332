"""Where a parent may be: the local paths a locator string can mean, and the disk files of
the ``--search`` folders (MS-VHDX 2.6.2.6.1; VHD 2.2.5). Nothing here opens a file for more than
its identity; :mod:`hvrescue.vdisk.chain` decides which candidate is the parent.
"""

from __future__ import annotations

import ntpath
import os

from hvrescue.io.nofollow import is_link
from hvrescue.vdisk.detect import DISK_SUFFIXES, probe_identity

MAX_SEARCH_FILES = 200_000


def _win_parts(text: str) -> list[str]:
    return [p for p in text.replace("/", "\\").split("\\") if p not in ("", ".")]


def resolve_casefold(base: str, parts: list[str]) -> str | None:
    """``base`` joined with ``parts``, each component matched case-insensitively when the exact
    name is absent: evidence copied from NTFS keeps names whose case the locator may not."""
    cur = base
    for part in parts:
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        exact = os.path.join(cur, part)
        if os.path.lexists(exact):
            cur = exact
            continue
        try:
            names = os.listdir(cur)
        except OSError:
            return None
        folded = [n for n in names if n.casefold() == part.casefold()]
        if len(folded) != 1:
            return None
        cur = os.path.join(cur, folded[0])
    return cur if os.path.lexists(cur) else None


def _strip_root(text: str) -> list[str]:
    """Components of an absolute Windows path without its drive or volume root."""
    parts = _win_parts(text)
    if parts and parts[0] == "?":  # \\?\Volume{...}\ or \\?\C:\
        parts = parts[1:]
    if parts and (parts[0].endswith(":") or parts[0].lower().startswith("volume{")):
        parts = parts[1:]
    return parts


MAX_ANCESTORS = 32


def candidate_paths(child_path: str, kind: str, text: str) -> list[str]:
    """Local paths a locator string may mean, best first."""
    child_dir = os.path.dirname(os.path.abspath(child_path))
    text = text.strip().rstrip("\0")
    if not text or "\0" in text:  # a NUL inside cannot name a file on any system
        return []
    if kind == "relative_path":
        parts = _win_parts(text)
        found = resolve_casefold(child_dir, parts)
        return [found or os.path.normpath(os.path.join(child_dir, *parts))]
    if kind == "parent_name":
        name = ntpath.basename(text)
        return [resolve_casefold(child_dir, [name]) or os.path.join(child_dir, name)]
    out: list[str] = []
    if os.sep == "\\" or text.startswith("/"):
        out.append(text)
    # A Windows path read elsewhere: the evidence copy usually keeps the layout below some
    # folder, so try the path's tail under each folder above the child, longest tail first.
    parts = _strip_root(text)
    ancestor = child_dir
    for _ in range(MAX_ANCESTORS):
        for k in range(len(parts), 0, -1):
            found = resolve_casefold(ancestor, parts[-k:])
            if found is not None and os.path.isfile(found):
                out.append(found)
                return out
        up = os.path.dirname(ancestor)
        if up == ancestor:
            break
        ancestor = up
    return out


class Searcher:
    """The disk-named entries of the ``--search`` folders, walked once, none of them opened
    here. Links to folders are not descended (nor Windows junctions, which os.walk of Python
    3.11 would descend), so a link loop cannot make the walk endless; what is not a regular
    file (a FIFO, socket or device named like a disk) is left to the caller to skip unopened
    and to report. A link to a file is a candidate like any file: it is only read, and only
    its identity can make it a parent."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs
        self._files: list[str] | None = None
        self._ids: dict[str, tuple[str, str | None, int | None] | None] = {}

    def files(self) -> list[str]:
        if self._files is None:
            found: list[str] = []
            for root_dir in self.dirs:
                for root, dirs, names in os.walk(root_dir):
                    dirs[:] = sorted(d for d in dirs if not _is_link(os.path.join(root, d)))
                    for name in sorted(names):
                        if name.lower().endswith(DISK_SUFFIXES):
                            found.append(os.path.join(root, name))
                            if len(found) >= MAX_SEARCH_FILES:
                                self._files = found
                                return found
            self._files = found
        return self._files

    def identity(self, path: str) -> tuple[str, str | None, int | None] | None:
        key = os.path.realpath(path)
        if key not in self._ids:
            self._ids[key] = probe_identity(path)
        return self._ids[key]


def _is_link(path: str) -> bool:
    try:
        return is_link(os.lstat(path))
    except OSError:
        return False
