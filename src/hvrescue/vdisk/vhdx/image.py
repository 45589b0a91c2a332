"""A VHDX/AVHDX file: parse, validate every structure into findings, replay the log in memory,
and map virtual ranges to this file's data (MS-VHDX v1.0).

Damage is data: nothing here raises on a bad file. Problems become findings; the structure's
second copy is used where one exists; ``readable`` says whether reading can go on at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hvrescue.findings import Severity
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.base import ImageBase
from hvrescue.vdisk.layer import (
    BEYOND_EOF,
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
from hvrescue.vdisk.vhdx import bat, metadata, regions
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.bat import all_zeroed, scan_bat  # noqa: F401 (all_zeroed: tests)
from hvrescue.vdisk.vhdx.describe import describe as describe_image
from hvrescue.vdisk.vhdx.log import LogScan, Overlay


class VhdxImage(ImageBase):
    format = "vhdx"

    def __init__(self, source: ReadOnlySource) -> None:
        super().__init__(source)
        self.overlay = Overlay()
        self.identifier: s.FileIdentifier | None = None
        self.headers: list[tuple[int, s.Header | None, list[str]]] = []
        self.header: s.Header | None = None
        self.header_index: int | None = None
        self.region_tables: list[tuple[int, s.RegionTable | None, list[str]]] = []
        self.regions: dict[str, s.RegionEntry] = {}
        self.log_scan: LogScan | None = None
        self.metadata_table: s.MetadataTable | None = None
        self.metadata: dict[str, Any] = {}
        self.parent_locator: s.ParentLocator | None = None
        self.size = 0
        self.block_size = 0
        self.logical_sector_size = 512
        self.physical_sector_size = 4096
        self.has_parent = False
        self.leave_blocks_allocated = False
        self.chunk_ratio = 0
        self.data_blocks = 0
        self.bat: memoryview | None = None
        self.bat_counts: dict[str, int] = {}
        # BAT entries whose bytes could not be read, and where the BAT stops short of what the
        # disk needs (with why): the blocks they govern are undefined, never zero.
        self.bat_unreadable: set[int] = set()
        self.bat_short: tuple[int, str] | None = None
        # BAT indexes whose block overlaps another block or a structure (undefined), and the
        # first overlapping pairs as (file offset, index, other) for messages.
        self.overlapping: set[int] = set()
        self.overlaps: list[tuple[int, int | str, int | str]] = []
        self._bitmap_cache: OrderedDict[int, bytes | None] = OrderedDict()
        self._parse()

    # ------------------------------------------------------------------ reading the file
    @classmethod
    def open(cls, path: str) -> VhdxImage:
        return cls(ReadOnlySource(path))

    @property
    def file_size(self) -> int:
        # After replay the file is as long as the log says it must be (LastFileOffset).
        return max(self.source.size, self.overlay.extent)

    def read_file_checked(
        self, file_offset: int, length: int
    ) -> tuple[bytes, list[tuple[int, int]]]:
        """:meth:`read_file` and the file ranges that could not be read (those the log rewrites
        are not lost: their bytes come from the log)."""
        data, bad = self.source.read_checked(file_offset, length)
        if not bad and self.overlay.empty and len(data) == length:
            return data, []
        buf = bytearray(data)
        if len(buf) < length:
            buf += bytes(length - len(buf))
        self.overlay.patch(file_offset, buf)
        lost: list[tuple[int, int]] = []
        for r in bad:
            lost.extend(
                self.overlay.uncovered(r.offset, r.length)
                if not self.overlay.empty
                else [(r.offset, r.length)]
            )
        return bytes(buf), lost

    def read_file(self, file_offset: int, length: int) -> bytes:
        """File bytes as they are after log replay; beyond the end of file reads as zeros."""
        data = self.source.read(file_offset, length, tolerant=True)
        if self.overlay.empty and len(data) == length:
            return data
        buf = bytearray(data)
        if len(buf) < length:
            buf += bytes(length - len(buf))
        self.overlay.patch(file_offset, buf)
        return bytes(buf)

    # ------------------------------------------------------------------ parsing
    def _parse(self) -> None:
        size = self.source.size
        if size == 0:
            self.sink.add("file.empty", Severity.CRITICAL, 0)
            return
        if size < s.REGION_TABLE_OFFSETS[1] + s.REGION_TABLE_SIZE:
            self.sink.add(
                "file.truncated", Severity.CRITICAL, size, size=size, expected=s.HEADER_AREA
            )
        ident = self._raw(0, 64 * s.KiB)
        self.identifier = s.FileIdentifier.parse(ident)
        if self.identifier.signature != s.FILE_SIGNATURE:
            self.sink.add(
                "vhdx.identifier.signature",
                Severity.ERROR,
                0,
                found=self.identifier.signature.hex(),
            )
        regions.parse_headers(self)
        regions.parse_region_tables(self)
        if self.header is not None:
            regions.parse_log(self)
        if not metadata.parse_metadata(self):
            self._summarise()
            return
        bat.parse_bat(self)
        self._summarise()

    # ------------------------------------------------------------------ BAT (2.5)
    @property
    def sector_bitmap_blocks(self) -> int:
        return -(-self.data_blocks // self.chunk_ratio) if self.chunk_ratio else 0

    @property
    def bat_entries_needed(self) -> int:
        if self.has_parent:
            return self.sector_bitmap_blocks * (self.chunk_ratio + 1)
        return self.data_blocks + (self.data_blocks - 1) // self.chunk_ratio

    def bat_entry(self, index: int) -> int:
        bat = self.bat
        if bat is None or index >= len(bat):
            return 0
        return int(bat[index])

    # ------------------------------------------------------------------ the layer API
    @property
    def is_differencing(self) -> bool:
        return self.has_parent

    @property
    def identity(self) -> str | None:
        return s.guid_str(self.header.data_write_guid) if self.header else None

    @property
    def timestamp(self) -> int | None:
        return None

    @property
    def parent_ref(self) -> ParentRef | None:
        if not self.has_parent:
            return None
        entries = self.parent_locator.entries if self.parent_locator else {}
        linkage = s.parse_guid_text(entries.get("parent_linkage", ""))
        alternate = s.parse_guid_text(entries.get("parent_linkage2", ""))
        paths = tuple(
            (k, entries[k])
            for k in ("relative_path", "volume_path", "absolute_win32_path")
            if entries.get(k)
        )
        return ParentRef(
            linkage=s.guid_str(linkage) if linkage else None,
            linkage_alternate=s.guid_str(alternate) if alternate else None,
            paths=paths,
        )

    def map(self, offset: int, length: int) -> Iterator[Run]:
        if not self.readable:
            raise ValueError("layer is not readable")
        end = min(offset + length, self.size)
        pos = offset
        bs = self.block_size
        cr = self.chunk_ratio
        while pos < end:
            block = pos // bs
            within = pos - block * bs
            n = min(bs - within, end - pos)
            index = block + block // cr
            if self.bat_short is not None and index >= self.bat_short[0]:
                # No entry for this block or any after it: one run, however many blocks.
                yield Run(pos, end - pos, RunKind.UNDEFINED, cause=self.bat_short[1])
                return
            cause = self._entry_undefined(index)
            if cause:
                yield Run(pos, n, RunKind.UNDEFINED, cause=cause)
                pos += n
                continue
            entry = self.bat_entry(index)
            state = entry & 7
            block_file = (entry >> 20) << 20
            if state == s.PAYLOAD_FULLY_PRESENT:
                yield from self._file_data(pos, n, block_file + within, block_file)
            elif state == s.PAYLOAD_PARTIALLY_PRESENT and self.has_parent:
                yield from self._partial_runs(block, entry, pos, within, n)
            elif state in (s.PAYLOAD_NOT_PRESENT, s.PAYLOAD_UNDEFINED):
                yield Run(pos, n, RunKind.PARENT if self.has_parent else RunKind.ZERO)
            elif state in (s.PAYLOAD_ZERO, s.PAYLOAD_UNMAPPED):
                yield Run(pos, n, RunKind.ZERO)
            else:
                # States 4 and 5, and PARTIALLY_PRESENT without a parent: the format does not
                # say what such a block holds.
                yield Run(pos, n, RunKind.UNDEFINED, cause=INVALID_STATE)
            pos += n

    def _file_data(self, pos: int, n: int, file_offset: int, block_file: int) -> Iterator[Run]:
        """A DATA run of this file: what lies past the end of the file is UNDEFINED, except
        what the replayed log writes there (the log may grow the file: LastFileOffset)."""
        real_end = self.source.size
        if self.overlay.empty or file_offset + n <= real_end:
            yield from clip_to_file(pos, n, file_offset, real_end, block_file)
            return
        have = max(0, real_end - file_offset)
        if have:
            yield Run(pos, have, RunKind.DATA, file_offset)
        cause = TRUNCATED if block_file < real_end else BEYOND_EOF
        at = file_offset + have
        for lo, m in self.overlay.uncovered(at, n - have):
            if lo > at:
                yield Run(pos + at - file_offset, lo - at, RunKind.DATA, at)
            yield Run(pos + lo - file_offset, m, RunKind.UNDEFINED, cause=cause)
            at = lo + m
        if at < file_offset + n:
            yield Run(pos + at - file_offset, file_offset + n - at, RunKind.DATA, at)

    def _past_end(self, file_offset: int, length: int) -> bool:
        """Whether some of these file bytes lie past the end with no log write to supply them."""
        end = self.source.size
        if file_offset + length <= end:
            return False
        start = max(file_offset, end)
        return self.overlay.empty or bool(
            self.overlay.uncovered(start, file_offset + length - start)
        )

    def _entry_undefined(self, index: int) -> str:
        if index in self.bat_unreadable:
            return METADATA_UNREADABLE
        if self.bat_short is not None and index >= self.bat_short[0]:
            return self.bat_short[1]
        if index in self.overlapping:
            return OVERLAP
        return ""

    def _block_bitmap(self, block: int) -> bytes | None:
        """The block's sector bitmap, or None where it is lost (its bitmap block is absent,
        lies past the end of the file, or cannot be read)."""
        if block in self._bitmap_cache:
            self._bitmap_cache.move_to_end(block)
            return self._bitmap_cache[block]
        cr = self.chunk_ratio
        sb_index = (block // cr) * (cr + 1) + cr
        sb_entry = self.bat_entry(sb_index)
        sectors = self.block_size // self.logical_sector_size
        nbytes = sectors // 8
        bitmap: bytes | None
        sb_offset = (sb_entry >> 20) << 20
        at = sb_offset + (block % cr) * nbytes
        if (
            self._entry_undefined(sb_index)
            or sb_entry & 7 != s.SB_PRESENT
            or self._past_end(at, nbytes)
        ):
            bitmap = None
        else:
            bitmap, bad = self.read_file_checked(at, nbytes)
            if bad:
                bitmap = None
        self._bitmap_cache[block] = bitmap
        if len(self._bitmap_cache) > 256:
            self._bitmap_cache.popitem(last=False)
        return bitmap

    def _partial_runs(self, block: int, entry: int, pos: int, within: int, n: int) -> Iterator[Run]:
        lss = self.logical_sector_size
        bitmap = self._block_bitmap(block)
        if bitmap is None:
            # Which sectors are this file's and which the parent's cannot be known.
            yield Run(pos, n, RunKind.UNDEFINED, cause=BITMAP_LOST)
            return
        first = within // lss
        last = (within + n + lss - 1) // lss
        block_file = (entry >> 20) << 20
        block_start = pos - within
        for start_bit, count, present in bitmap_runs(bitmap, first, last - first, True):
            lo = max(block_start + (first + start_bit) * lss, pos)
            hi = min(block_start + (first + start_bit + count) * lss, pos + n)
            if hi <= lo:
                continue
            if present:
                at = block_file + (lo - block_start)
                yield from self._file_data(lo, hi - lo, at, block_file)
            else:
                yield Run(lo, hi - lo, RunKind.PARENT)

    def _payload_entries(self, skip_zeroed: bool = False) -> Iterator[tuple[int, int, int]]:
        """(block, BAT index, entry) of every non-zero payload entry of a block inside the
        disk, ascending; all-zero stretches of the BAT are skipped in bulk, and with
        ``skip_zeroed`` so are stretches of empty blocks as qemu marks them (ZERO entries)."""
        if not self.readable or self.bat is None:
            return
        bat = self.bat
        cr1 = self.chunk_ratio + 1
        for start, stop, zeroed in scan_bat(bat, cr1, self.data_blocks, skip_zeroed):
            if zeroed:
                continue
            for index in range(start, stop):
                entry = int(bat[index])
                if not entry or index % cr1 == cr1 - 1:
                    continue
                block = index - index // cr1
                if block < self.data_blocks:
                    yield block, index, entry

    def _block_range(self, block: int) -> tuple[int, int]:
        lo = block * self.block_size
        return lo, min(self.block_size, self.size - lo)

    def _holds(self, block_file: int) -> bool:
        """Whether any byte of a block starting at ``block_file`` is in the file (or written
        there by the log)."""
        if block_file < self.source.size:
            return True
        return not self.overlay.empty and self.overlay.touches(block_file, self.block_size)

    def allocated(self) -> Iterator[tuple[int, int]]:
        """Blocks whose data may be in the file: not past its end (those are undefined, found
        by :meth:`suspect`), not overlapping anything; together at most the file's size (and
        what the log writes) plus one block."""
        present = (s.PAYLOAD_FULLY_PRESENT, s.PAYLOAD_PARTIALLY_PRESENT)
        for block, index, entry in self._payload_entries(skip_zeroed=True):
            if entry & 7 not in present or index in self.bat_unreadable:
                continue
            if index in self.overlapping or not self._holds((entry >> 20) << 20):
                continue
            yield self._block_range(block)

    def zeroed(self) -> Iterator[tuple[int, int]]:
        """Virtual ranges whose blocks read as zeros by their state (ZERO, UNMAPPED) without
        asking a parent, ascending."""
        for block, _index, entry in self._payload_entries():
            if entry & 7 in (s.PAYLOAD_ZERO, s.PAYLOAD_UNMAPPED):
                yield self._block_range(block)

    def suspect(self) -> Iterator[tuple[int, int]]:
        return bat.suspect(self)

    def file_to_virtual(self, file_offset: int, length: int) -> list[tuple[int, int]]:
        """The virtual ranges whose data (or sector bitmap) lies in the file range; empty for
        structures (headers, region tables, log, BAT, metadata)."""
        return bat.file_to_virtual(self, file_offset, length)

    def describe(self) -> dict[str, Any]:
        return describe_image(self)
