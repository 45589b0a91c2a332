"""A volume as a run of disk ranges: a partition is one run, an LVM logical volume one run per
segment (or per stripe chunk). Reads go through the engine's :class:`Disk` (undefined ranges
read as zeros and are remembered in ``disk.touched``); :meth:`MappedSource.to_disk` turns a
range of the volume into the disk ranges under it, so that a file's undefined ranges can be
named in disk offsets as they are for NTFS."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hvrescue.vdisk.disk import Disk
from hvrescue.vdisk.layer import Gap

# Bytes a journal replay may keep in memory over a volume (see fs.jbd2).
MAX_OVERLAY = 1 << 30


@dataclass(frozen=True)
class Run:
    offset: int  # in the volume
    length: int
    disk_offset: int | None  # None: no disk holds it (a physical volume that is not here)


class MappedSource:
    """Bytes [0, size) of a volume, mapped onto a disk run by run, with an optional overlay of
    whole blocks (a journal replayed in memory) that reads see instead of the disk."""

    def __init__(self, disk: Disk, runs: list[Run], size: int) -> None:
        self.disk = disk
        self.runs = sorted(runs, key=lambda r: r.offset)
        self.size = size
        self._starts = [r.offset for r in self.runs]
        self.overlay: dict[int, bytes] = {}
        self.overlay_block = 0
        self.missing: Callable[[int, int], None] | None = None

    @classmethod
    def whole(cls, disk: Disk, offset: int, size: int) -> MappedSource:
        size = max(0, min(size, disk.size - offset))
        return cls(disk, [Run(0, size, offset)], size)

    def pieces(self, offset: int, length: int) -> Iterator[tuple[int, int, int | None]]:
        """(volume offset, length, disk offset or None) covering [offset, offset+length)."""
        end = min(offset + length, self.size)
        i = max(0, bisect.bisect_right(self._starts, offset) - 1)
        pos = offset
        while pos < end and i < len(self.runs):
            run = self.runs[i]
            if run.offset + run.length <= pos:
                i += 1
                continue
            if run.offset > pos:  # a hole in the map reads as nothing known
                n = min(run.offset, end) - pos
                yield pos, n, None
                pos += n
                continue
            n = min(run.offset + run.length, end) - pos
            disk = None if run.disk_offset is None else run.disk_offset + (pos - run.offset)
            yield pos, n, disk
            pos += n
            i += 1
        if pos < end:
            yield pos, end - pos, None

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        if not self.overlay and len(self.runs) == 1 and self.runs[0].disk_offset is not None:
            return self.disk.read(self.runs[0].disk_offset + offset, length)  # a partition
        out = bytearray()
        for pos, n, disk_at in self.pieces(offset, length):
            if disk_at is None:
                out += bytes(n)
                if self.missing is not None:
                    self.missing(pos, n)
            else:
                out += self.disk.read(disk_at, n)
        if self.overlay:
            self._apply_overlay(offset, out)
        return bytes(out)

    def read_checked(self, offset: int, length: int) -> tuple[bytes, int | None]:
        """Bytes as read (no overlay) and the index of the first undefined one (None: all
        defined): a range of the disk with no defined content, or a physical volume that
        is not on this disk."""
        out = bytearray()
        first: int | None = None
        for _pos, n, disk_at in self.pieces(offset, length):
            if disk_at is None:
                data, gaps = bytes(n), [Gap(0, n, "", "")]
                gap_at = 0
            else:
                data, gaps = self.disk.read_checked(disk_at, n)
                gap_at = gaps[0].offset - disk_at if gaps else 0
            if gaps and first is None:
                first = len(out) + max(0, gap_at)
            out += data
        return bytes(out), first

    def _apply_overlay(self, offset: int, out: bytearray) -> None:
        bs = self.overlay_block
        first, last = offset // bs, (offset + len(out) - 1) // bs
        if last - first > len(self.overlay):
            blocks = [b for b in self.overlay if first <= b <= last]
        else:
            blocks = [b for b in range(first, last + 1) if b in self.overlay]
        for block in blocks:
            data = self.overlay[block]
            start = block * bs
            lo, hi = max(start, offset), min(start + bs, offset + len(out))
            out[lo - offset : hi - offset] = data[lo - start : hi - start]

    def to_disk(self, offset: int, length: int) -> list[tuple[int, int]]:
        """The disk ranges under volume bytes [offset, offset+length)."""
        return [(d, n) for _pos, n, d in self.pieces(offset, length) if d is not None]

    # A file object for the libyal bindings (they read through ``read``/``seek``/``tell``).
    def file_object(self) -> SourceFile:
        return SourceFile(self)


class SourceFile:
    def __init__(self, source: MappedSource) -> None:
        self.source = source
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.source.size - self.pos
        data = self.source.read(self.pos, size)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.pos
        elif whence == 2:
            offset += self.source.size
        self.pos = max(0, offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def get_size(self) -> int:
        return self.source.size

    def close(self) -> None:
        pass
