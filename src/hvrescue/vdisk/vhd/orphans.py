"""VHD file space that holds data although no BAT entry or structure refers to it.

As for VHDX (:mod:`hvrescue.vdisk.vhdx.orphans`): a BAT sector torn or zeroed (entries turned
to 0xFFFFFFFF, "unused") makes its blocks read as zeros, in every reader, and nothing in the
table looks wrong. What betrays it is the block left behind in the file: its sector bitmap
(all ones in a dynamic disk) and data. Every stretch of the data area (past the BAT, before
the footer) that no block, locator or structure covers is probed in block-sized steps (the
first 4 KiB of each, the cost bounded by MAX_PROBES); what holds data is reported, never read
as the lost block: which virtual block it was is not known. Bytes 0x00 and 0xFF are not data
here: Windows pads its BAT with 0xFF up to a 4 KiB boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hvrescue.findings import Severity
from hvrescue.vdisk.vhd import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd.image import VhdImage

PROBE = 4096
MAX_PROBES = 65536
# Bytes that are no data: zeros, and the 0xFF Windows pads its BAT with to a 4 KiB boundary
# (a lost block's all-ones bitmap alone is not counted: its data is probed with it).
PAD = b"\0\xff"


def check_orphans(img: VhdImage, hdr: s.DynamicHeader, spans: list[tuple[int, int]]) -> None:
    """``spans``: the file extents of the blocks the BAT gives (start, end)."""
    start = hdr.table_offset + 4 * len(img.bat)
    start = -(-start // s.SECTOR) * s.SECTOR
    end = img.data_end
    doff = img.footer.data_offset if img.footer else 0
    held = [(0, s.FOOTER_SIZE), (doff, doff + s.DYNAMIC_HEADER_SIZE), *spans]
    for loc in hdr.locators:
        length = max(loc.data_length, s.SECTOR)
        held.append((loc.data_offset, loc.data_offset + -(-length // s.SECTOR) * s.SECTOR))
    step = max(s.SECTOR, img.bitmap_size + img.block_size)
    found = probes = 0
    first = -1
    for lo, hi in _gaps(sorted(held), start, end):
        for pos in range(lo, hi, step):
            if probes >= MAX_PROBES:
                break
            probes += 1
            if img.source.read(pos, min(PROBE, hi - pos), tolerant=True).translate(None, PAD):
                found += 1
                first = pos if first < 0 else first
    if found:
        img.sink.add(
            "vhd.bat.orphan-data",
            Severity.INFO,
            first,
            units=found,
            file_offset=first,
        )


def _gaps(held: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The stretches of [start, end) that no extent of ``held`` (sorted) covers."""
    out: list[tuple[int, int]] = []
    pos = start
    for lo, hi in held:
        if lo > pos:
            out.append((pos, min(lo, end)))
        pos = max(pos, hi)
        if pos >= end:
            break
    if pos < end:
        out.append((pos, end))
    return [(a, b) for a, b in out if b > a]
