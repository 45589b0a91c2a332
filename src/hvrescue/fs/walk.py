"""One walk over a folder tree of a :class:`Volume`, folder by folder, iteratively.

Each folder is read once, through its address; its entries are handed over together (the
extractor needs a whole folder to give its names distinct safe names) and the walk goes on
into its subfolders, depth first. Nothing is left out silently: a folder met a second time (a
crafted NTFS can make a folder hold its own ancestor) or deeper than any Windows path can go is
marked (``Entry.status``) and not entered; a folder that cannot be read, or the end of the
entry budget, is a :class:`WalkIssue`; deleted entries are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hvrescue.errors import HvrescueError
from hvrescue.fs.volume import MAX_DEPTH, MAX_WALK, Entry

if TYPE_CHECKING:
    from hvrescue.fs.linuxfs import LinuxVolume
    from hvrescue.fs.volume import Volume

LOOP = "loop"
TOO_DEEP = "too-deep"
SKIP = "skip"  # set by a consumer: do not enter


@dataclass(frozen=True)
class WalkIssue:
    path: str
    inode: int
    reason: str  # a catalogue key taking {path}


class Walk:
    def __init__(
        self, volume: Volume | LinuxVolume, limit: int = MAX_WALK, max_depth: int = MAX_DEPTH
    ) -> None:
        self.volume = volume
        self.limit = limit
        self.max_depth = max_depth
        self.issues: list[WalkIssue] = []
        self.deleted = 0  # names of deleted entries met (not files of the folder)
        self.count = 0

    def folders(self, top: Entry) -> Iterator[tuple[Entry, list[Entry]]]:
        """(folder, its entries) for ``top`` and every folder under it, depth first."""
        if not top.is_dir:
            return
        stack = [top]
        visited = {top.inode}
        stopped = False
        while stack and not stopped:
            folder = stack.pop()
            children: list[Entry] = []
            try:
                for child in self.volume.children(folder, self):
                    if self.count >= self.limit:
                        self.issues.append(
                            WalkIssue(folder.path, folder.inode, "error.fs.walk-limit")
                        )
                        stopped = True
                        break
                    self.count += 1
                    children.append(child)
            except HvrescueError as exc:
                self.issues.append(WalkIssue(folder.path, folder.inode, exc.key))
            for child in children:
                if not child.is_dir:
                    continue
                if child.inode in visited:
                    child.status = LOOP
                elif child.depth > self.max_depth:
                    child.status = TOO_DEEP
                else:
                    visited.add(child.inode)
            yield folder, children
            if not stopped:
                # The consumer may have set the status of a folder it does not want entered.
                stack.extend(c for c in reversed(children) if c.is_dir and c.status is None)
