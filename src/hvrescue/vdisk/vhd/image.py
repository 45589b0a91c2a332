"""A VHD/AVHD file: footer (and its copy), dynamic header, BAT, block bitmaps, parent locators.

As for VHDX, damage becomes findings; ``readable`` says whether reading can go on.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hvrescue.findings import Severity
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.base import ImageBase
from hvrescue.vdisk.layer import (
    BEYOND_EOF,
    BITMAP_CONTRADICTS,
    BITMAP_LOST,
    METADATA_UNREADABLE,
    TRUNCATED,
    ParentRef,
    Run,
    RunKind,
    bitmap_runs,
    clip_to_file,
)
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
        self.bat_cut = 0  # blocks [len(bat), bat_cut) have no BAT entry in the file
        # Per block: (sector bitmap, whether it could not be read, non-zero sectors whose
        # bitmap bit says "never written" as (first sector, count) runs).
        self._blocks: OrderedDict[int, tuple[bytes, bool, list[tuple[int, int]]]] = OrderedDict()
        self._parse()

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

    # ------------------------------------------------------------------ parsing
    def _parse(self) -> None:
        size = self.source.size
        if size == 0:
            self.sink.add("file.empty", Severity.CRITICAL, 0)
            return
        if size < s.FOOTER_SIZE:
            self.sink.add(
                "file.truncated", Severity.CRITICAL, size, size=size, expected=s.FOOTER_SIZE
            )
            return
        self._parse_footers()
        footer = self.footer
        if footer is None:
            return
        if footer.disk_type not in s.DISK_TYPES:
            self.sink.add(
                "vhd.footer.invalid",
                Severity.CRITICAL,
                self.footer_offset,
                problem="disk-type",
                value=footer.disk_type,
            )
            return
        self.size = footer.current_size
        self._check_geometry(footer)
        if footer.disk_type == 2:
            needed = footer.current_size
            limit = self.footer_offset if self.footer_offset is not None else size
            if needed > limit:
                self.sink.add(
                    "file.truncated",
                    Severity.ERROR,
                    limit,
                    size=size,
                    expected=needed + s.FOOTER_SIZE,
                )
            self.readable = True
            return
        self._parse_dynamic(footer)
        self._summarise()

    def _footer_at(self, offset: int) -> s.Footer | None:
        raw = self._raw(offset, s.FOOTER_SIZE)
        if raw[:8] != s.FOOTER_COOKIE:
            return None
        return s.Footer.parse(raw)

    def _parse_footers(self) -> None:
        size = self.source.size
        end = self._footer_at(size - s.FOOTER_SIZE)
        end_offset = size - s.FOOTER_SIZE
        if end is None and size >= 511:
            # Virtual PC once wrote a 511-byte footer; accept it where the cookie says so.
            end = self._footer_at(size - 511)
            end_offset = size - 511 if end else end_offset
        copy = self._footer_at(0) if size >= 2 * s.FOOTER_SIZE else None
        self.footer_copy = copy
        if end is not None:
            self.footer_offset = end_offset
            if not end.checksum_ok:
                self.sink.add(
                    "vhd.footer.checksum",
                    Severity.WARNING if (copy and copy.checksum_ok) else Severity.ERROR,
                    end_offset,
                    stored=f"0x{end.checksum:08x}",
                )
        if copy is not None and not copy.checksum_ok:
            self.sink.add(
                "vhd.footer.checksum",
                Severity.WARNING,
                0,
                copy=True,
                stored=f"0x{copy.checksum:08x}",
            )
        if end is None and copy is None:
            self.sink.add("vhd.footer.missing", Severity.CRITICAL, end_offset)
            return
        if end is None:
            assert copy is not None
            # The footer at the end is gone (truncated or overwritten); the copy stands in.
            self.sink.add("vhd.footer.missing", Severity.ERROR, end_offset, using_copy=True)
            self.footer = copy
            return
        if copy is not None and copy.disk_type != 2:
            fields_differ = [
                name
                for name in s.Footer.__dataclass_fields__
                if name not in ("checksum_ok",) and getattr(copy, name) != getattr(end, name)
            ]
            if fields_differ:
                self.sink.add(
                    "vhd.footer.mismatch", Severity.WARNING, 0, fields=",".join(fields_differ)
                )
        if not end.checksum_ok and copy is not None and copy.checksum_ok:
            self.footer = copy
        else:
            self.footer = end
        if self.footer.version != 0x00010000:
            self.sink.add(
                "vhd.footer.invalid",
                Severity.WARNING,
                self.footer_offset,
                problem="version",
                value=f"0x{self.footer.version:08x}",
            )

    def _check_geometry(self, footer: s.Footer) -> None:
        chs = footer.chs_size
        if chs == footer.current_size:
            return
        expected = s.geometry_for(footer.current_size)
        actual = (footer.cylinders, footer.heads, footer.sectors_per_track)
        # The specification's rounding leaves CHS slightly below the size, and large disks carry
        # the capped geometry: both normal. Virtual PC (and qemu for its images) size the disk
        # by CHS instead, so there the two sizes mean the guest saw a different disk.
        capped = actual == (65535, 16, 255)
        standard = (capped or (actual == expected and chs <= footer.current_size)) and (
            footer.creator_app != "vpc "
        )
        self.sink.add(
            "vhd.geometry.size-mismatch",
            Severity.INFO if standard else Severity.WARNING,
            self.footer_offset,
            current_size=footer.current_size,
            chs_size=chs,
            geometry=f"{actual[0]}/{actual[1]}/{actual[2]}",
            creator=footer.creator_app.strip(),
        )

    def _parse_dynamic(self, footer: s.Footer) -> None:
        size = self.source.size
        doff = footer.data_offset
        if doff == s.FIXED_DATA_OFFSET or doff + s.DYNAMIC_HEADER_SIZE > size:
            self.sink.add(
                "vhd.header.invalid",
                Severity.CRITICAL,
                self.footer_offset,
                problem="data-offset",
                value=doff,
            )
            return
        raw = self._raw(doff, s.DYNAMIC_HEADER_SIZE)
        hdr = s.DynamicHeader.parse(raw)
        self.header = hdr
        if hdr.cookie != s.DYNAMIC_COOKIE:
            self.sink.add("vhd.header.invalid", Severity.CRITICAL, doff, problem="cookie")
            return
        if not hdr.checksum_ok:
            self.sink.add(
                "vhd.header.checksum", Severity.ERROR, doff, stored=f"0x{hdr.checksum:08x}"
            )
        bsize = hdr.block_size
        if bsize < s.SECTOR or bsize > s.MAX_BLOCK_SIZE or bsize & (bsize - 1):
            self.sink.add(
                "vhd.header.invalid", Severity.CRITICAL, doff, problem="block-size", value=bsize
            )
            return
        self.block_size = bsize
        self.bitmap_size = -(-(bsize // s.SECTOR // 8) // s.SECTOR) * s.SECTOR
        blocks = -(-self.size // bsize)
        if hdr.max_table_entries < blocks:
            self.sink.add(
                "vhd.header.invalid",
                Severity.ERROR,
                doff,
                problem="max-table-entries",
                value=hdr.max_table_entries,
                needed=blocks,
            )
        # Bound the BAT by what the virtual size needs and what the file can hold.
        entries = min(hdr.max_table_entries, blocks)
        if hdr.table_offset + entries * 4 > size:
            self.sink.add(
                "file.truncated",
                Severity.ERROR,
                hdr.table_offset,
                size=size,
                expected=hdr.table_offset + entries * 4,
                structure="bat",
            )
            cut_at = entries
            entries = max(0, min(entries, (size - hdr.table_offset) // 4))
            self.bat_cut = cut_at
        raw_bat, bad = self.source.read_checked(hdr.table_offset, entries * 4)
        raw_bat += bytes(entries * 4 - len(raw_bat))
        for r in bad:
            self._add(
                "io.read-error",
                Severity.ERROR,
                r.offset,
                length=r.length,
                errno=r.errno,
                structure="bat",
            )
            first = (r.offset - hdr.table_offset) // 4
            last = (r.offset + r.length - hdr.table_offset - 1) // 4
            self.bat_unreadable.update(range(max(0, first), min(entries, last + 1)))
        self.bat = struct.unpack(f">{entries}I", raw_bat)
        self._validate_bat(hdr)
        if footer.disk_type == 4:
            self._parse_locators(hdr)
        self.readable = True

    def _validate_bat(self, hdr: s.DynamicHeader) -> None:
        limit = self.footer_offset if self.footer_offset is not None else self.source.size
        spans: list[tuple[int, int, int]] = []
        for block, sector in enumerate(self.bat):
            if sector == s.UNUSED_BAT or block in self.bat_unreadable:
                continue
            self.allocated_blocks += 1
            start = sector * s.SECTOR
            need = self.bitmap_size + min(self.block_size, self.size - block * self.block_size)
            if start + need > limit:
                self._add(
                    "vhd.bat.entry-beyond-eof",
                    Severity.ERROR,
                    hdr.table_offset + 4 * block,
                    block=block,
                    file_offset=start,
                    length=need,
                    file_size=limit,
                )
            spans.append((start, start + self.bitmap_size + self.block_size, block))
        fixed = [
            (0, s.FOOTER_SIZE, -1),
            (
                self.footer.data_offset if self.footer else 0,
                (self.footer.data_offset if self.footer else 0) + s.DYNAMIC_HEADER_SIZE,
                -2,
            ),
            (hdr.table_offset, hdr.table_offset + len(self.bat) * 4, -3),
        ]
        needed_end = max(
            (
                start + self.bitmap_size + min(self.block_size, self.size - block * self.block_size)
                for start, _end, block in spans
            ),
            default=0,
        )
        if needed_end > limit:
            self.sink.add(
                "file.truncated",
                Severity.ERROR,
                limit,
                size=self.source.size,
                expected=needed_end + s.FOOTER_SIZE,
                structure="blocks",
            )
        names = {-1: "footer-copy", -2: "dynamic-header", -3: "bat"}
        items = sorted(fixed + spans)
        reach, who = -1, 0
        for start, end, block in items:
            if start < reach and (block >= 0 or who >= 0):
                a, b = (block, who) if block >= 0 else (who, block)
                self._add(
                    "vhd.bat.overlap", Severity.ERROR, start, block=a, other=names.get(b, str(b))
                )
            if end > reach:
                reach, who = end, block

    def _parse_locators(self, hdr: s.DynamicHeader) -> None:
        size = self.source.size
        for loc in hdr.locators:
            entry: dict[str, Any] = {
                "index": loc.index,
                "platform": loc.platform_code,
                "offset": loc.data_offset,
                "length": loc.data_length,
            }
            if (
                loc.data_length > s.MAX_LOCATOR_DATA
                or loc.data_offset + loc.data_length > size
                or loc.data_length == 0
            ):
                self.sink.add(
                    "vhd.locator.invalid",
                    Severity.WARNING,
                    loc.data_offset,
                    index=loc.index,
                    platform=loc.platform_code,
                )
                self.locators.append(entry)
                continue
            data = self._raw(loc.data_offset, loc.data_length)
            if loc.platform_code in ("W2ku", "W2ru"):
                text = data.decode("utf-16-le", errors="replace")
            elif loc.platform_code == "MacX":
                text = data.decode("utf-8", errors="replace")
            else:
                text = data.decode("latin-1")
            entry["path"] = text.split("\0", 1)[0]
            self.locators.append(entry)

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
        if self.header.parent_name:
            paths.append(("parent_name", self.header.parent_name))
        return ParentRef(
            linkage="{" + str(self.header.parent_unique_id) + "}",
            timestamp=self.header.parent_timestamp,
            paths=tuple(paths),
            name=self.header.parent_name or None,
        )

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
            if block in self.bat_unreadable:
                yield Run(pos, n, RunKind.UNDEFINED, cause=METADATA_UNREADABLE)
            elif block >= len(self.bat) and block < self.bat_cut:
                yield Run(pos, n, RunKind.UNDEFINED, cause=TRUNCATED)
            else:
                sector = self.bat[block] if block < len(self.bat) else s.UNUSED_BAT
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
        if not self.readable or self.footer is None:
            return
        if self.footer.disk_type == 2:
            if self.size:
                yield 0, self.size
            return
        bs = self.block_size
        for block, sector in enumerate(self.bat):
            if sector != s.UNUSED_BAT and block not in self.bat_unreadable:
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
            if block in self.bat_unreadable:
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
        if self.bat_cut > len(self.bat):
            lo = len(self.bat) * bs
            yield lo, min(self.size, self.bat_cut * bs) - lo

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
