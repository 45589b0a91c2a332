"""The walk: the paths given, the folders below them, the zips inside, once, in a stable order.

Folders are walked top-down like ``os.walk`` (a folder's entries by name, then its sub-folders
by name). Only regular files are opened (through ``hvrescue.io.files``: read-only, no access
time, never blocking); what ``lstat`` says is a FIFO, socket or device is skipped unopened.
Links met in a walk are not followed (their target is named in the skipped entry: inside the
tree it is read under its own name, outside it is not read); a folder met twice (a bind mount
loop) is walked once. The paths given are taken as the user named them, links followed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from hvrescue.errors import HvrescueError, InputError
from hvrescue.evidence import bundle
from hvrescue.evidence import classify as cls
from hvrescue.evidence.budget import Budget
from hvrescue.evidence.items import GuardedFile, Item, ItemError, Opener, Stream
from hvrescue.evidence.zips import Tally, archive_items
from hvrescue.facts.model import Skipped
from hvrescue.io.files import (
    DIRECTORY,
    REGULAR,
    NotRegularFileError,
    mode_kind,
    open_evidence,
    open_evidence_file,
)
from hvrescue.io.nofollow import is_link
from hvrescue.io.source import ReadOnlySource


@dataclass(frozen=True)
class Folder:
    """A folder given, after its walk: ``kind`` is ``vm-folder`` when it holds a disk or a VM
    configuration, ``bundle`` when a collector wrote it, else ``folder``."""

    path: str
    kind: str
    files: int


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _opener(path: str) -> Opener:
    def open_file(limit: int | None) -> Stream:
        try:
            return GuardedFile(open_evidence_file(path), path, limit)
        except NotRegularFileError as exc:
            raise ItemError("not-regular", exc.kind) from exc
        except InputError as exc:
            raise ItemError("unreadable", str(exc.params.get("reason") or exc.key)) from exc

    return open_file


def file_item(path: str, root: str, expected: os.stat_result | None = None) -> Item | Skipped:
    """A regular file classified (head, and a disk's signatures further in for binary data),
    or why it could not be: ``expected`` is what the walk's ``lstat`` saw, and a file replaced
    since (by a link, a FIFO) is not read."""
    try:
        fd = open_evidence(path)
    except NotRegularFileError as exc:
        return Skipped(path, "not-regular", exc.kind)
    except InputError as exc:
        return Skipped(path, "unreadable", str(exc.params.get("reason") or exc.key))
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return Skipped(path, "unreadable", exc.strerror)
    # (A walk's stat on Windows has no file index: nothing to compare there.)
    if (
        expected is not None
        and expected.st_ino
        and (st.st_dev, st.st_ino)
        != (
            expected.st_dev,
            expected.st_ino,
        )
    ):
        os.close(fd)
        return Skipped(path, "unreadable", "replaced while the folder was walked")
    with ReadOnlySource(path, retries=0, fd=fd) as source:
        try:
            head = source.read(0, cls.HEAD_BYTES)
        except HvrescueError as exc:
            return Skipped(path, "unreadable", str(exc.params.get("reason") or exc.key))

        def probe() -> str | None:
            from hvrescue.vdisk.detect import sniff

            try:
                return sniff(source)
            except (HvrescueError, OSError):
                return None

        found = cls.classify(path, head, st.st_size, probe)
    return Item(
        path, found.kind, found.format, found.content, st.st_size, _opener(path), root, stat=st
    )


class Walk:
    """Iterate to walk: every item (``Item``), every folder given once walked (``Folder``) and
    everything not read (``Skipped``), in walk order. ``archives``: open zips and hand on their
    members (facts, triage) or leave them as files (inventory)."""

    def __init__(
        self, paths: list[str], budget: Budget | None = None, *, archives: bool = True
    ) -> None:
        self.paths = list(paths)
        self.budget = budget or Budget()
        self.archives = archives
        self.count = 0
        self.stopped = False

    def __iter__(self) -> Iterator[Item | Folder | Skipped]:
        for path in self.paths:
            if self.stopped:
                return
            yield from self._given(path)

    def _given(self, path: str) -> Iterator[Item | Folder | Skipped]:
        try:
            st = os.stat(path)
        except OSError as exc:
            yield Skipped(path, "unreadable", exc.strerror or str(exc))
            return
        kind = mode_kind(st.st_mode)
        if kind == DIRECTORY:
            yield from self._folder(path)
        elif kind == REGULAR:
            yield from self._file(path, path, None)
        else:
            yield Skipped(path, "not-regular", kind)

    def _file(
        self, path: str, root: str, expected: os.stat_result | None
    ) -> Iterator[Item | Skipped]:
        found = file_item(path, root, expected)
        if isinstance(found, Skipped) or found.content != cls.C_ZIP or not self.archives:
            yield found
            return
        try:
            stream = found.open()
        except ItemError as exc:
            yield Skipped(path, exc.reason, exc.detail)
            return
        with stream:
            yield from archive_items(stream, found, self.budget, Tally(), 1)

    def _folder(self, root: str) -> Iterator[Item | Folder | Skipped]:
        real_root = os.path.realpath(root)
        stack = [root]
        visited: set[tuple[int, int]] = set()
        kinds: set[str] = set()
        table: dict[str, bundle.Route] = {}
        files = 0
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                yield Skipped(folder, "unreadable", exc.strerror or str(exc))
                continue
            if (st.st_dev, st.st_ino) in visited and st.st_ino:
                continue  # a folder met twice (a mount inside itself): walked once
            visited.add((st.st_dev, st.st_ino))
            subfolders = []
            for entry in entries:
                path = os.path.join(folder, entry.name)
                if folder == root and cls.is_bundle_manifest(entry.name):
                    kinds.add(cls.BUNDLE)
                self.count += 1
                if self.count > self.budget.max_files:
                    yield Skipped(root, "too-many-files", str(self.budget.max_files))
                    self.stopped = True
                    return
                try:
                    lst = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    yield Skipped(path, "unreadable", exc.strerror or str(exc))
                    continue
                if is_link(lst):
                    yield _link(path, real_root)
                    continue
                kind = mode_kind(lst.st_mode)
                if kind == DIRECTORY:
                    subfolders.append(path)
                elif kind != REGULAR:
                    yield Skipped(path, "not-regular", kind)
                else:
                    files += 1
                    if folder == root and cls.is_bundle_manifest(entry.name):
                        table = _bundle_table(path)
                    for found in self._file(path, root, lst):
                        if isinstance(found, Item):
                            kinds.add(found.kind)
                            if table and not found.member:
                                rel = os.path.relpath(path, root).replace(os.sep, "/")
                                found.route = table.get(rel)
                        yield found
            stack.extend(reversed(subfolders))
        if cls.BUNDLE in kinds:
            kind = cls.BUNDLE
        elif kinds & {cls.DISK, cls.VM_CONFIG}:
            kind = cls.VM_FOLDER
        else:
            kind = cls.FOLDER
        yield Folder(root, kind, files)


def _bundle_table(path: str) -> dict[str, bundle.Route]:
    """The routes of a bundle folder's members from its manifest (bounded; none when it
    cannot be read as one)."""
    try:
        with open_evidence_file(path) as fh:
            data = fh.read(bundle.MAX_MANIFEST_BYTES + 1)
    except (OSError, NotRegularFileError):
        return {}
    return bundle.table_from(data)


def _link(path: str, real_root: str) -> Skipped:
    """A link met in a walk, not followed: where it points says whether its target is read."""
    try:
        target = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError, ValueError):
        try:
            shown = os.readlink(path)
        except (OSError, ValueError, NotImplementedError):
            shown = "?"
        return Skipped(path, "link-broken", shown)  # a missing target or a loop of links
    if _inside(target, real_root):
        return Skipped(path, "link-inside", target)
    return Skipped(path, "link-outside", target)


def items_from_bytes(
    data: bytes, path: str, budget: Budget | None = None, depth: int = 0
) -> Iterator[Item | Skipped]:
    """Bytes already in memory (a file read out of a guest's disk, a test's data) as items:
    classified by their start, a zip walked (``depth``: how deep these bytes already are)."""
    import io

    budget = budget or Budget()
    found = cls.classify(path, data[: cls.HEAD_BYTES], len(data))

    def open_bytes(limit: int | None) -> Stream:
        return GuardedFile(io.BytesIO(data), path, limit)

    item = Item(path, found.kind, found.format, found.content, len(data), open_bytes, path,
                depth=depth)  # fmt: skip
    if found.content != cls.C_ZIP:
        yield item
    elif depth >= budget.max_zip_depth:
        yield Skipped(path, "zip-too-deep", f"deeper than {budget.max_zip_depth}")
    else:
        yield from archive_items(io.BytesIO(data), item, budget, Tally(), depth + 1)
