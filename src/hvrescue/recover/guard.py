"""What the file-copying recovery commands (`replay-log`, `repair`, `reparent`) must not do:
copy bytes nobody can know as if they were content, or hand on a damaged file under a new name
as if it were whole.

A :class:`ContentGuard` watches one source file: its undefined ranges (blocks past the end of
the file, invalid BAT states, lost sector bitmaps, an unreadable BAT) are known before anything
is written, and read errors met while copying are mapped back to the virtual ranges they hold.
Without ``allow_gaps`` either refuses the command (:class:`UndefinedContentError`, exit 2);
with it, the copy goes ahead with zeros there and a GNU ddrescue map beside the output lists
them, in virtual offsets.
"""

from __future__ import annotations

from typing import Any

from hvrescue.errors import UndefinedContentError
from hvrescue.recover import ddmap
from hvrescue.vdisk.disk import gap_ranges, layer_undefined, merge_gaps
from hvrescue.vdisk.layer import READ_ERROR, Gap


class ContentGuard:
    def __init__(self, layer: Any, allow_gaps: bool, key: str = "error.rewrite.undefined") -> None:
        self.layer = layer
        self.allow_gaps = allow_gaps
        self.key = key
        self.gaps: list[Gap] = layer_undefined(layer)
        self.unmapped: list[tuple[int, int]] = []  # read errors outside any block (structures)
        self._check()

    def _check(self) -> None:
        if self.unmapped:
            raise UndefinedContentError(
                "error.rewrite.structure-unreadable",
                gaps=[Gap(lo, n, READ_ERROR, self.layer.path) for lo, n in self.unmapped],
                path=self.layer.path,
            )
        if self.gaps and not self.allow_gaps:
            raise UndefinedContentError(self.key, gaps=self.gaps, path=self.layer.path)

    def read(self, file_offset: int, length: int) -> bytes:
        """The file's bytes as the copy needs them (after log replay for a VHDX); read errors
        are mapped to the virtual ranges they hold, and refuse the copy unless allowed."""
        data, bad = self.layer.read_file_checked(file_offset, length)
        if bad:
            for lo, n in bad:
                held = self.layer.file_to_virtual(lo, n)
                if not held:
                    self.unmapped.append((lo, n))
                self.gaps.extend(Gap(v, m, READ_ERROR, self.layer.path) for v, m in held)
            self.gaps = merge_gaps(self.gaps)
            self._check()
        return bytes(data)

    def map_path(self, out: str) -> str:
        return out + ".map"

    def summary(self, out: str) -> dict[str, Any]:
        return {
            "count": len(self.gaps),
            "bytes": sum(g.length for g in self.gaps),
            "map": self.map_path(out),
        }

    def write_map(self, out: str, argv: list[str]) -> str | None:
        """The ddrescue map of the gaps beside ``out`` (before ``out`` gets its name)."""
        if not self.gaps:
            return None
        path = self.map_path(out)
        size = int(self.layer.size)
        ddmap.write_map(path, ddmap.entries_for(size, gap_ranges(self.gaps)), argv)
        return path
