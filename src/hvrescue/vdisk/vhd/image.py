"""A VHD/AVHD file: footer (and its copy), dynamic header, BAT, block bitmaps, parent locators.

As for VHDX, damage becomes findings; ``readable`` says whether reading can go on. Parsing is
:mod:`~hvrescue.vdisk.vhd.parse` and :mod:`~hvrescue.vdisk.vhd.bat`; this module maps virtual
ranges to the file.

Cost is bounded by the file, not by numbers read from it: blocks that lie past the end of the
file or overlap another block or a structure are undefined and never read, so the ranges
``allocated`` names (what readers, ``merge`` and ``check --deep`` read) add up to at most the
file's size plus one block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.base import ImageBase
from hvrescue.vdisk.layer import (
    BEYOND_EOF,
    BITMAP_CONTRADICTS,
    BITMAP_LOST,
    INVALID_STATE,
    METADATA_UNREADABLE,
    OVERLAP,
    TRUNCATED,
    ParentRef,
    Run,
    RunKind,
    bitmap_runs,
    clip_to_file,
)
from hvrescue.vdisk.vhd import parse
from hvrescue.vdisk.vhd import structures as s
from hvrescue.vdisk.vhd.describe import describe as describe_image


class VhdImage(ImageBase):
    format = "vhd"

    def __init__(self, source: ReadOnlySource) -> None:
        super().__init__(source)
        self.footer: s.Footer | None = None
        self.footer_offset: int | None = None
        self.footer_copy: s.Footer | None = None
        self.header: s.DynamicHeader | None = None
        self.size = 0
        self.logical_sector_size = s.SECTOR
        self.physical_sector_size = s.SECTOR
        self.block_size = 0
        self.bitmap_size = 0
        self.bat: tuple[int, ...] = ()
        self.locators: list[dict[str, Any]] = []
        self.allocated_blocks = 0
        # BAT entries whose bytes could not be read, and the blocks the BAT should cover but
        # the file cuts off: what those blocks hold is unknown.
        self.bat_unreadable: set[int] = set()
        # Blocks [len(bat), bat_cut) have no BAT entry in the file (it was cut); blocks past
        # the table the header declares (max_table_entries below what the size needs) have no
        # entry at all: both are undefined, never zeros.
        self.bat_cut = 0
        # Blocks whose file space overlaps another block or a structure (undefined), and the
        # first overlapping pairs as (file offset, block, other) for messages.
        self.overlapping: set[int] = set()
        self.overlaps: list[tuple[int, int | str, int | str]] = []
        # Per block: (sector bitmap, whether it could not be read, non-zero sectors whose
        # bitmap bit says "never written" as (first sector, count) runs).
        self._blocks: OrderedDict[int, tuple[bytes, bool, list[tuple[int, int]]]] = OrderedDict()
        parse.parse(self)

    @classmethod
    def open(cls, path: str) -> VhdImage:
        return cls(ReadOnlySource(path))

    def read_file(self, file_offset: int, length: int) -> bytes:
        data = self.source.read(file_offset, length, tolerant=True)
        return data if len(data) == length else data + bytes(length - len(data))

    def read_file_checked(
        self, file_offset: int, length: int
    ) -> tuple[bytes, list[tuple[int, int]]]:
        data, bad = self.source.read_checked(file_offset, length)
        if len(data) < length:
            data += bytes(length - len(data))
        return data, [(r.offset, r.length) for r in bad]

    @property
    def data_end(self) -> int:
        """Where block data may end: the footer at the end of the file, or the end itself."""
        return self.footer_offset if self.footer_offset is not None else self.source.size

    # ------------------------------------------------------------------ the layer API
    @property
    def is_differencing(self) -> bool:
        return self.footer is not None and self.footer.disk_type == 4

    @property
    def identity(self) -> str | None:
        return "{" + str(self.footer.unique_id) + "}" if self.footer else None

    @property
    def timestamp(self) -> int | None:
        return self.footer.timestamp if self.footer else None

    @property
    def parent_ref(self) -> ParentRef | None:
        if not self.is_differencing or self.header is None:
            return None
        order = {"W2ru": 0, "Wi2r": 1, "W2ku": 2, "Wi2k": 3, "MacX": 4}
        kinds = {
            "W2ru": "relative_path",
            "Wi2r": "relative_path",
            "W2ku": "absolute_win32_path",
            "Wi2k": "absolute_win32_path",
            "MacX": "absolute_path",
        }
        paths = [
            (kinds[e["platform"]], e["path"])
            for e in sorted(
                (e for e in self.locators if e.get("path") and e["platform"] in order),
                key=lambda e: order[e["platform"]],
            )
        ]
        if self.header.parent_name and "\ufffd" not in self.header.parent_name:
            paths.append(("parent_name", self.header.parent_name))  # not when undecodable
        return ParentRef(
            linkage="{" + str(self.header.parent_unique_id) + "}",
            timestamp=self.header.parent_timestamp,
            paths=tuple(paths),
            name=self.header.parent_name or None,
        )

    @property
    def table_end(self) -> int:
        """The blocks the BAT declares entries for (held in the file or cut off)."""
        return max(self.bat_cut, len(self.bat))

    def map(self, offset: int, length: int) -> Iterator[Run]:
        if not self.readable or self.footer is None:
            raise ValueError("layer is not readable")
        end = min(offset + length, self.size)
        if self.footer.disk_type == 2:
            if offset < end:
                yield from clip_to_file(offset, end - offset, offset, self.data_end, 0)
            return
        bs = self.block_size
        diff = self.footer.disk_type == 4
        pos = offset
        while pos < end:
            block = pos // bs
            within = pos - block * bs
            n = min(bs - within, end - pos)
            if block >= len(self.bat):
                # No entry for this block or any after it: one run, however many blocks.
                declared = self.table_end
                stop = min(end, declared * bs) if block < declared else end
                cause = TRUNCATED if block < declared else INVALID_STATE
                yield Run(pos, stop - pos, RunKind.UNDEFINED, cause=cause)
                pos = stop
                continue
            if block in self.bat_unreadable:
                yield Run(pos, n, RunKind.UNDEFINED, cause=METADATA_UNREADABLE)
            elif block in self.overlapping:
                yield Run(pos, n, RunKind.UNDEFINED, cause=OVERLAP)
            else:
                sector = self.bat[block]
                if sector == s.UNUSED_BAT:
                    yield Run(pos, n, RunKind.PARENT if diff else RunKind.ZERO)
                else:
                    yield from self._block_runs(block, sector * s.SECTOR, pos, within, n, diff)
            pos += n

    def _block(self, block: int, block_file: int) -> tuple[bytes, bool, list[tuple[int, int]]]:
        """The block's sector bitmap, whether it was unreadable, and (for a disk without parent)
        the non-zero sectors the bitmap marks as never written."""
        cached = self._blocks.get(block)
        if cached is not None:
            self._blocks.move_to_end(block)
            return cached
        bitmap, bad = self.read_file_checked(block_file, self.bitmap_size)
        contradicting: list[tuple[int, int]] = []
        if not bad and self.footer is not None and self.footer.disk_type == 3:
            contradicting = self._contradictions(block, block_file, bitmap)
        entry = (bitmap, bool(bad), contradicting)
        self._blocks[block] = entry
        if len(self._blocks) > 256:
            self._blocks.popitem(last=False)
        return entry

    def _contradictions(self, block: int, block_file: int, bitmap: bytes) -> list[tuple[int, int]]:
        nsect = min(self.block_size, self.size - block * self.block_size) // s.SECTOR
        if bitmap[: nsect // 8] == b"\xff" * (nsect // 8) and nsect % 8 == 0:
            return []
        data_file = block_file + self.bitmap_size
        out: list[tuple[int, int]] = []
        for start, count, present in bitmap_runs(bitmap, 0, nsect, False):
            if present:
                continue
            lo = data_file + start * s.SECTOR
            hi = min(lo + count * s.SECTOR, self.data_end)
            if hi <= lo:
                continue
            data, _bad = self.read_file_checked(lo, hi - lo)
            for i in range(0, len(data), s.SECTOR):
                if data.count(0, i, i + s.SECTOR) == s.SECTOR:
                    continue
                sector = start + i // s.SECTOR
                if out and out[-1][0] + out[-1][1] == sector:
                    out[-1] = (out[-1][0], out[-1][1] + 1)
                else:
                    out.append((sector, 1))
        return out

    def _block_runs(
        self, block: int, block_file: int, pos: int, within: int, n: int, diff: bool
    ) -> Iterator[Run]:
        limit = self.data_end
        data_file = block_file + self.bitmap_size
        if data_file > limit:
            # Not even the sector bitmap is in the file: nothing of this block is known.
            cause = BEYOND_EOF if block_file >= limit else TRUNCATED
            yield Run(pos, n, RunKind.UNDEFINED, cause=cause)
            return
        bitmap, unreadable, contradicting = self._block(block, block_file)
        if unreadable:
            yield Run(pos, n, RunKind.UNDEFINED, cause=BITMAP_LOST)
            return
        first = within // s.SECTOR
        last = (within + n + s.SECTOR - 1) // s.SECTOR
        block_start = pos - within
        for start_bit, count, present in bitmap_runs(bitmap, first, last - first, False):
            lo = max(block_start + (first + start_bit) * s.SECTOR, pos)
            hi = min(block_start + (first + start_bit + count) * s.SECTOR, pos + n)
            if hi <= lo:
                continue
            if present:
                yield from clip_to_file(
                    lo, hi - lo, data_file + (lo - block_start), limit, block_file
                )
            elif diff:
                yield Run(lo, hi - lo, RunKind.PARENT)
            else:
                yield from _zero_or_contradicting(lo, hi, block_start, contradicting)

    def allocated(self) -> Iterator[tuple[int, int]]:
        """Blocks whose data may be in the file: not past its end (those are undefined, found
        by :meth:`suspect`), not overlapping anything; together at most the file's size."""
        if not self.readable or self.footer is None:
            return
        limit = self.data_end
        if self.footer.disk_type == 2:
            held = min(self.size, limit)
            if held > 0:
                yield 0, held
            return
        bs = self.block_size
        for block, sector in enumerate(self.bat):
            if sector == s.UNUSED_BAT or block in self.bat_unreadable:
                continue
            if block in self.overlapping or sector * s.SECTOR + self.bitmap_size >= limit:
                continue
            lo = block * bs
            yield lo, min(bs, self.size - lo)

    def suspect(self) -> Iterator[tuple[int, int]]:
        if not self.readable or self.footer is None:
            return
        limit = self.data_end
        if self.footer.disk_type == 2:
            if self.size > limit:
                yield limit, self.size - limit
            return
        bs = self.block_size
        for block in range(min(len(self.bat), -(-self.size // bs))):
            sector = self.bat[block]
            lo = block * bs
            n = min(bs, self.size - lo)
            if block in self.bat_unreadable or block in self.overlapping:
                yield lo, n
                continue
            if sector == s.UNUSED_BAT:
                continue
            start = sector * s.SECTOR
            if start + self.bitmap_size + n > limit:
                yield lo, n
            elif self.footer.disk_type == 3:
                bitmap = self.source.read(start, self.bitmap_size, tolerant=True)
                nbytes = n // s.SECTOR // 8
                if bitmap[:nbytes] != b"\xff" * nbytes or (n // s.SECTOR) % 8:
                    yield lo, n
            else:
                yield lo, n  # a differencing block's bitmap may be unreadable
        lo = len(self.bat) * bs  # blocks without an entry (cut off, or past the table)
        if lo < self.size:
            yield lo, self.size - lo

    def file_to_virtual(self, file_offset: int, length: int) -> list[tuple[int, int]]:
        """The virtual ranges whose data lies in the file range (a block's bitmap counts for
        the whole block); empty for structures (footer, header, BAT, locators)."""
        if not self.readable or self.footer is None:
            return []
        lo, hi = file_offset, file_offset + length
        if self.footer.disk_type == 2:
            a, b = max(lo, 0), min(hi, self.size)
            return [(a, b - a)] if b > a else []
        out: list[tuple[int, int]] = []
        bs = self.block_size
        for block, sector in enumerate(self.bat):
            if sector == s.UNUSED_BAT:
                continue
            start = sector * s.SECTOR
            data = start + self.bitmap_size
            if hi <= start or lo >= data + bs:
                continue
            vlo = block * bs
            if lo < data:  # the bitmap: which sectors are data is lost for the whole block
                out.append((vlo, min(bs, self.size - vlo)))
                continue
            a, b = max(lo, data), min(hi, data + bs)
            out.append((vlo + a - data, b - a))
        return [(a, n) for a, n in out if n > 0]

    def describe(self) -> dict[str, Any]:
        return describe_image(self)


def _zero_or_contradicting(
    lo: int, hi: int, block_start: int, contradicting: list[tuple[int, int]]
) -> Iterator[Run]:
    """Sectors the bitmap marks as never written read as zeros (the specification), except
    those whose data is not zero: which of the two is right cannot be known."""
    pos = lo
    for first, count in contradicting:
        a = max(lo, block_start + first * s.SECTOR)
        b = min(hi, block_start + (first + count) * s.SECTOR)
        if b <= a:
            continue
        if a > pos:
            yield Run(pos, a - pos, RunKind.ZERO)
        yield Run(a, b - a, RunKind.UNDEFINED, cause=BITMAP_CONTRADICTS)
        pos = b
    if pos < hi:
        yield Run(pos, hi - pos, RunKind.ZERO)
