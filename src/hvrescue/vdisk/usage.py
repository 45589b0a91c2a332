"""What Get-VHD reports of a disk's layout and people paste: ``FragmentationPercentage``,
``MinimumSize`` and ``Alignment`` (docs/formats/get-vhd.md says where each definition comes
from and what Microsoft leaves undocumented).

Everything is computed from the BAT (and, for the minimum size, the guest's partition table
read through the chain), so the cost follows the blocks the file holds, not the virtual size:
all-zero stretches of a VHDX BAT are skipped in bulk. Blocks whose place in the file is not
known (past the end of the file, overlapping another block or a structure, an unreadable BAT
entry) are left out of every figure and counted in ``undefined_blocks``; the image reports
them as findings of its own.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.vdisk.vhdx import structures as vhdx_s

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from hvrescue.vdisk.detect import AnyImage
    from hvrescue.vdisk.vhd import VhdImage

# Get-VHD's Alignment: 1 when every data block starts at a multiple of this in the file.
ALIGNMENT = 4096
MAX_GPT_ENTRIES = 16384  # the GPT allows more than 128; bound what is read by this
MAX_EBR = 128  # logical partitions followed along the EBR chain
_PRESENT = (vhdx_s.PAYLOAD_FULLY_PRESENT, vhdx_s.PAYLOAD_PARTIALLY_PRESENT)


@dataclass(frozen=True)
class Usage:
    """Get-VHD's numbers for one file, and what they were computed from."""

    fragmentation_percentage: int
    minimum_size: int | None
    alignment: int
    data_blocks: int  # blocks whose data lies in this file, counted
    fragmented_blocks: int  # of those, not right after the previous one in the file
    misaligned_blocks: int  # of those, whose data does not start on a 4 KiB boundary
    undefined_blocks: int  # BAT entries left out: their place in the file is not known
    minimum_size_from: str  # "gpt", "mbr", or why it is unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "fragmentation_percentage": self.fragmentation_percentage,
            "minimum_size": self.minimum_size,
            "alignment": self.alignment,
            "usage": {
                "data_blocks": self.data_blocks,
                "fragmented_blocks": self.fragmented_blocks,
                "misaligned_blocks": self.misaligned_blocks,
                "undefined_blocks": self.undefined_blocks,
                "minimum_size_from": self.minimum_size_from,
            },
        }


# ---------------------------------------------------------------- where the blocks are
def _is_vhd(image: AnyImage) -> TypeIs[VhdImage]:
    """``isinstance(image, VhdImage)`` without importing the VHD reader to ask: an image of
    it exists only once its module is imported (a VHDX's `info` never imports it)."""
    module = sys.modules.get("hvrescue.vdisk.vhd.image")
    return module is not None and isinstance(image, module.VhdImage)


def placements(image: AnyImage) -> tuple[list[tuple[int, int]], int]:
    """``([(block, file offset of its data)], undefined)`` in ascending block order: the data
    blocks this file holds, and how many BAT entries point where no block can be known to be.
    A fixed VHD is one run of data from offset 0 and has no blocks."""
    if not image.readable:
        return [], 0
    if _is_vhd(image):
        return _vhd_placements(image)
    out: list[tuple[int, int]] = []
    undefined = 0
    for block, index, entry in image._payload_entries():
        if entry & 7 not in _PRESENT:
            continue
        block_file = (entry >> 20) << 20
        if index in image.overlapping or index in image.bat_unreadable:
            undefined += 1
        elif not image._holds(block_file):
            undefined += 1  # past the end of the file (MS-VHDX 2.5.1.1 FileOffsetMB)
        else:
            out.append((block, block_file))
    return out, undefined


def _vhd_placements(image: VhdImage) -> tuple[list[tuple[int, int]], int]:
    from hvrescue.vdisk.vhd import structures as vhd_s

    if image.footer is None or image.footer.disk_type == 2:
        return [], 0
    out: list[tuple[int, int]] = []
    undefined = 0
    limit = image.data_end
    for block, sector in enumerate(image.bat):
        if sector == vhd_s.UNUSED_BAT:
            continue
        start = sector * vhd_s.SECTOR
        if (
            block in image.bat_unreadable
            or block in image.overlapping
            or start + image.bitmap_size >= limit
        ):
            undefined += 1
            continue
        # The block's data follows its sector bitmap (VHD specification, "Block Allocation
        # Table"): that is where the guest's sectors are, and what alignment is about.
        out.append((block, start + image.bitmap_size))
    return out, undefined


def _stride(image: AnyImage) -> int:
    """How far apart two blocks' data are when the second directly follows the first."""
    if _is_vhd(image):
        return image.bitmap_size + image.block_size
    return image.block_size


def fragmentation(image: AnyImage, placed: list[tuple[int, int]]) -> tuple[int, int]:
    """``(percentage, fragmented blocks)``: of the data blocks in virtual order, the share
    whose data does not start where the previous one's ends in the file (the first block is
    in place), rounded down to a whole percent; 0 without blocks (a fixed disk)."""
    if not placed:
        return 0, 0
    stride = _stride(image)
    fragmented = 0
    previous: int | None = None
    for _block, at in placed:
        if previous is not None and at != previous + stride:
            fragmented += 1
        previous = at
    return fragmented * 100 // len(placed), fragmented


def alignment(placed: list[tuple[int, int]]) -> tuple[int, int]:
    """``(Get-VHD's Alignment, misaligned blocks)``: 1 when every data block starts at a
    multiple of 4 KiB in the file (VHDX blocks always do: their offsets are whole MiB; a
    fixed VHD's data starts at 0), else 0."""
    misaligned = sum(1 for _b, at in placed if at % ALIGNMENT)
    return (0 if misaligned else 1), misaligned


# ---------------------------------------------------------------- the guest's partition table
def minimum_size(
    path: str, search: list[str] | None = None, leaf: AnyImage | None = None
) -> tuple[int | None, str]:
    """``(bytes, from)``: the end of the last partition of the guest's table (MBR with its
    logical partitions, or GPT), read through the whole chain, or ``(None, why)``: the chain
    is incomplete or unreadable (``chain-incomplete``), the sectors of the table are
    undefined (``undefined``), there is no partition table (``no-partition-table``), or the
    table names partitions past the end of the disk (``table-past-end``)."""
    from hvrescue.vdisk.chain import resolve_chain
    from hvrescue.vdisk.disk import Disk

    if leaf is None:
        try:
            disk = Disk.open(path, search)
        except HvrescueError:
            return None, "chain-incomplete"
        with disk:
            return _table_end(disk)
    # The caller's open leaf is read, not opened again; only the parents are closed here.
    chain = resolve_chain(path, search, leaf=leaf)
    try:
        return _table_end(Disk(chain))
    except HvrescueError:
        return None, "chain-incomplete"
    finally:
        for layer in chain.layers[1:]:
            layer.close()
        for link in chain.links:
            if link.parent is not None and link.parent not in chain.layers:
                link.parent.close()


class _Undefined(Exception):
    """A sector of the partition table reads as undefined content."""


def _read(disk: Any, offset: int, length: int) -> bytes:
    data, gaps = disk.read_checked(offset, length)
    if gaps:
        raise _Undefined
    return bytes(data) + bytes(length - len(data))


def _table_end(disk: Any) -> tuple[int | None, str]:
    sector = disk.logical_sector_size or 512
    try:
        mbr = _read(disk, 0, 512)
        if mbr[510:512] == b"\x55\xaa" and not _boot_sector(mbr):
            protective = any(mbr[446 + 16 * i + 4] == 0xEE for i in range(4))
            if not protective:
                end = _mbr_end(disk, mbr, sector)
                return _checked(disk, end, "mbr")
        end = _gpt_end(disk, 1, sector)
        if end is None and disk.size > sector:
            end = _gpt_end(disk, disk.size // sector - 1, sector)  # the backup header
        if end is not None:
            return _checked(disk, end, "gpt")
    except _Undefined:
        return None, "undefined"
    return None, "no-partition-table"


def _checked(disk: Any, end: int | None, scheme: str) -> tuple[int | None, str]:
    if end is None or end == 0:
        return None, "no-partition-table"
    if end > disk.size:
        return None, "table-past-end"
    return end, scheme


def _boot_sector(sector0: bytes) -> bool:
    """A filesystem's own boot sector (NTFS, FAT, exFAT) also ends in 55 AA."""
    return sector0[3:11] in (b"NTFS    ", b"MSDOS5.0", b"mkfs.fat", b"EXFAT   ") or (
        sector0[82:90] == b"FAT32   " or sector0[54:62] in (b"FAT16   ", b"FAT12   ")
    )


def _mbr_entries(raw: bytes) -> Iterator[tuple[int, int, int]]:
    for i in range(4):
        entry = raw[446 + 16 * i : 462 + 16 * i]
        start, count = struct.unpack_from("<II", entry, 8)
        if entry[4] and count:
            yield entry[4], start, count


def _mbr_end(disk: Any, mbr: bytes, sector: int) -> int | None:
    end = 0
    for ptype, start, count in _mbr_entries(mbr):
        end = max(end, (start + count) * sector)
        if ptype in (0x05, 0x0F, 0x85):
            end = max(end, _logical_end(disk, start, sector))
    return end or None


def _logical_end(disk: Any, ext_start: int, sector: int) -> int:
    end = 0
    ebr_lba = ext_start
    seen: set[int] = set()
    while ebr_lba and ebr_lba not in seen and len(seen) < MAX_EBR:
        seen.add(ebr_lba)
        if ebr_lba * sector + 512 > disk.size:
            break
        ebr = _read(disk, ebr_lba * sector, 512)
        if ebr[510:512] != b"\x55\xaa":
            break
        entries = list(_mbr_entries(ebr))
        nxt = 0
        for ptype, start, count in entries[:2]:
            if ptype in (0x05, 0x0F):
                nxt = ext_start + start
            else:
                end = max(end, (ebr_lba + start + count) * sector)
        ebr_lba = nxt
    return end


def _gpt_end(disk: Any, lba: int, sector: int) -> int | None:
    """The end of the last partition of the GPT whose header is at ``lba`` (UEFI 2.x, 5.3),
    when the header and its entry array are intact."""
    if (lba + 1) * sector > disk.size:
        return None
    hdr = _read(disk, lba * sector, sector)
    if hdr[:8] != b"EFI PART":
        return None
    (header_size,) = struct.unpack_from("<I", hdr, 12)
    if not 92 <= header_size <= sector:
        return None
    check = bytearray(hdr[:header_size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != struct.unpack_from("<I", hdr, 16)[0]:
        return None
    entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
    if not 128 <= entry_size <= 4096 or entry_size % 8 or count > MAX_GPT_ENTRIES:
        return None
    if (entries_lba * sector) + count * entry_size > disk.size:
        return None
    table = _read(disk, entries_lba * sector, count * entry_size)
    if zlib.crc32(table) != struct.unpack_from("<I", hdr, 88)[0]:
        return None
    end = 0
    for i in range(count):
        raw = table[i * entry_size : i * entry_size + 48]
        if raw[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", raw, 32)
        if last >= first:
            end = max(end, (last + 1) * sector)
    return end


# ---------------------------------------------------------------- all of it
def usage(image: AnyImage, search: list[str] | None = None) -> Usage:
    """Get-VHD's FragmentationPercentage, MinimumSize and Alignment for ``image``'s file (the
    minimum size through its chain, parents found as ``chain`` finds them)."""
    placed, undefined = placements(image)
    percent, fragmented = fragmentation(image, placed)
    aligned, misaligned = alignment(placed)
    if image.readable:
        size, basis = minimum_size(image.path, search, leaf=image)
    else:
        size, basis = None, "chain-incomplete"
    return Usage(percent, size, aligned, len(placed), fragmented, misaligned, undefined, basis)
