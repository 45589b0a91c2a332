"""The VHD Block Allocation Table: read it (bounded by what the virtual size needs and what the
file holds) and validate every entry: blocks past the end of the file, and blocks whose file
space overlaps another block or a structure (footer copy, dynamic header, BAT).

A block that overlaps anything is undefined (cause ``overlap``, see
:func:`hvrescue.vdisk.layer.find_overlaps`): both blocks of a pair, since which one the bytes
belong to cannot be known."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from hvrescue.findings import Severity
from hvrescue.vdisk.layer import find_overlaps
from hvrescue.vdisk.vhd import structures as s
from hvrescue.vdisk.vhd.orphans import check_orphans

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd.image import VhdImage

STRUCTURE_NAMES = {-1: "footer-copy", -2: "dynamic-header", -3: "bat"}


def parse_bat(img: VhdImage, hdr: s.DynamicHeader) -> None:
    size = img.source.size
    doff = img.footer.data_offset if img.footer else 0  # where the dynamic header is
    blocks = -(-img.size // img.block_size)
    if hdr.max_table_entries < blocks:
        img.sink.add(
            "vhd.header.invalid",
            Severity.ERROR,
            doff,
            problem="max-table-entries",
            value=hdr.max_table_entries,
            needed=blocks,
        )
    elif hdr.table_offset + hdr.max_table_entries * 4 > size:
        # More entries than the size needs is allowed, but not a table that runs past the end
        # of the file: other readers (qemu) refuse it; the entries the size needs still read.
        img.sink.add(
            "vhd.header.invalid",
            Severity.WARNING,
            doff,
            problem="max-table-entries-beyond-eof",
            value=hdr.max_table_entries,
            needed=blocks,
        )
    # Bound the BAT by what the virtual size needs and what the file can hold.
    entries = min(hdr.max_table_entries, blocks)
    if hdr.table_offset + entries * 4 > size:
        img.sink.add(
            "file.truncated",
            Severity.ERROR,
            hdr.table_offset,
            size=size,
            expected=hdr.table_offset + entries * 4,
            structure="bat",
        )
        cut_at = entries
        entries = max(0, min(entries, (size - hdr.table_offset) // 4))
        img.bat_cut = cut_at
    raw_bat, bad = img.source.read_checked(hdr.table_offset, entries * 4)
    raw_bat += bytes(entries * 4 - len(raw_bat))
    for r in bad:
        img._add(
            "io.read-error",
            Severity.ERROR,
            r.offset,
            length=r.length,
            errno=r.errno,
            structure="bat",
        )
        first = (r.offset - hdr.table_offset) // 4
        last = (r.offset + r.length - hdr.table_offset - 1) // 4
        img.bat_unreadable.update(range(max(0, first), min(entries, last + 1)))
    img.bat = struct.unpack(f">{entries}I", raw_bat)
    validate_bat(img, hdr)


def validate_bat(img: VhdImage, hdr: s.DynamicHeader) -> None:
    limit = img.data_end
    spans: list[tuple[int, int, int | str]] = []
    needed_end = 0
    for block, sector in enumerate(img.bat):
        if sector == s.UNUSED_BAT or block in img.bat_unreadable:
            continue
        img.allocated_blocks += 1
        start = sector * s.SECTOR
        need = img.bitmap_size + min(img.block_size, img.size - block * img.block_size)
        if start + need > limit:
            img._add(
                "vhd.bat.entry-beyond-eof",
                Severity.ERROR,
                hdr.table_offset + 4 * block,
                block=block,
                file_offset=start,
                length=need,
                file_size=limit,
            )
        needed_end = max(needed_end, start + need)
        spans.append((start, start + img.bitmap_size + img.block_size, block))
    if needed_end > limit:
        img.sink.add(
            "file.truncated",
            Severity.ERROR,
            limit,
            size=img.source.size,
            expected=needed_end + s.FOOTER_SIZE,
            structure="blocks",
        )
    doff = img.footer.data_offset if img.footer else 0
    fixed: list[tuple[int, int, int | str]] = [
        (0, s.FOOTER_SIZE, STRUCTURE_NAMES[-1]),
        (doff, doff + s.DYNAMIC_HEADER_SIZE, STRUCTURE_NAMES[-2]),
        (hdr.table_offset, hdr.table_offset + len(img.bat) * 4, STRUCTURE_NAMES[-3]),
    ]
    check_orphans(img, hdr, [(a, b) for a, b, _ in spans])
    marked, pairs, count = find_overlaps(fixed + spans)
    img.overlapping = marked
    img.overlaps = pairs
    for at, who, other in pairs:
        img._add("vhd.bat.overlap", Severity.ERROR, at, block=who, other=str(other))
    if count > len(pairs):
        img._counts["vhd.bat.overlap"] = img._counts.get("vhd.bat.overlap", 0) + count - len(pairs)
