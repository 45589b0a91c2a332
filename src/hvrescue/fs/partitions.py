"""Partition tables of a virtual disk: MBR (with extended partitions) and GPT (primary header,
then the backup when the primary is damaged), read from a :class:`Disk`, bounded and checked."""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

MAX_GPT_ENTRIES = 1024
MAX_LOGICAL = 128
ESP_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
MSR_GUID = uuid.UUID("E3C9E316-0B5C-4DB8-817D-F92DF00215AE")
BASIC_DATA_GUID = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
RECOVERY_GUID = uuid.UUID("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC")
GPT_NAMES = {
    ESP_GUID: "efi-system",
    MSR_GUID: "microsoft-reserved",
    BASIC_DATA_GUID: "basic-data",
    RECOVERY_GUID: "windows-recovery",
}
MBR_NAMES = {
    0x07: "ntfs/exfat",
    0x0B: "fat32",
    0x0C: "fat32-lba",
    0x06: "fat16",
    0x27: "recovery",
    0xEF: "efi-system",
    0x83: "linux",
}


class Readable(Protocol):
    size: int
    logical_sector_size: int

    def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True)
class Partition:
    index: int  # 1-based, as the user names it
    scheme: str  # "mbr", "gpt", or "none" (a filesystem on the whole disk)
    offset: int
    size: int
    type: str
    name: str = ""
    guid: str | None = None
    bootable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "scheme": self.scheme,
            "offset": self.offset,
            "size": self.size,
            "type": self.type,
            "name": self.name,
            "guid": self.guid,
            "bootable": self.bootable,
        }


def _gpt_at(disk: Readable, lba: int, sector: int) -> list[Partition] | None:
    hdr = disk.read(lba * sector, sector)
    if len(hdr) < 92 or hdr[:8] != b"EFI PART":
        return None
    (header_size,) = struct.unpack_from("<I", hdr, 12)
    if not 92 <= header_size <= sector:
        return None
    crc = struct.unpack_from("<I", hdr, 16)[0]
    check = bytearray(hdr[:header_size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != crc:
        return None
    entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
    if entry_size < 128 or entry_size > 4096 or count > MAX_GPT_ENTRIES:
        return None
    table = disk.read(entries_lba * sector, count * entry_size)
    if zlib.crc32(table) != struct.unpack_from("<I", hdr, 88)[0]:
        return None
    out: list[Partition] = []
    for i in range(count):
        raw = table[i * entry_size : (i + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=bytes(raw[0:16]))
        if type_guid.int == 0:
            continue
        first, last = struct.unpack_from("<QQ", raw, 32)
        if last < first or last * sector >= disk.size:
            continue
        name = bytes(raw[56:128]).decode("utf-16-le", errors="replace").split("\0", 1)[0]
        out.append(
            Partition(
                i + 1,
                "gpt",
                first * sector,
                (last - first + 1) * sector,
                GPT_NAMES.get(type_guid, str(type_guid)),
                name,
                str(uuid.UUID(bytes_le=bytes(raw[16:32]))),
            )
        )
    return out


def _mbr(disk: Readable, sector: int, mbr: bytes) -> list[Partition]:
    out: list[Partition] = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 462 + 16 * i]
        ptype = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if ptype == 0 or count == 0:
            continue
        if ptype in (0x05, 0x0F, 0x85):
            out += _logical(disk, sector, start, len(out))
            continue
        out.append(
            Partition(
                i + 1,
                "mbr",
                start * sector,
                count * sector,
                MBR_NAMES.get(ptype, f"0x{ptype:02x}"),
                bootable=entry[0] == 0x80,
            )
        )
    return [p for p in out if p.offset + p.size <= disk.size or p.offset < disk.size]


def _logical(disk: Readable, sector: int, ext_start: int, _n: int) -> list[Partition]:
    out: list[Partition] = []
    ebr_lba = ext_start
    seen: set[int] = set()
    index = 5
    while ebr_lba and ebr_lba not in seen and len(out) < MAX_LOGICAL:
        seen.add(ebr_lba)
        ebr = disk.read(ebr_lba * sector, 512)
        if len(ebr) < 512 or ebr[510:512] != b"\x55\xaa":
            break
        first = ebr[446:462]
        start, count = struct.unpack_from("<II", first, 8)
        if first[4] and count:
            out.append(
                Partition(
                    index,
                    "mbr",
                    (ebr_lba + start) * sector,
                    count * sector,
                    MBR_NAMES.get(first[4], f"0x{first[4]:02x}"),
                )
            )
            index += 1
        nxt = ebr[462:478]
        nstart = struct.unpack_from("<I", nxt, 8)[0]
        ebr_lba = ext_start + nstart if nxt[4] in (0x05, 0x0F) and nstart else 0
    return out


def partitions(disk: Readable) -> list[Partition]:
    """The partitions of ``disk``; a disk without a table is one partition (``none``)."""
    sector = disk.logical_sector_size or 512
    mbr = disk.read(0, 512)
    protective = len(mbr) == 512 and mbr[510:512] == b"\x55\xaa" and mbr[450] == 0xEE
    if protective or mbr[510:512] != b"\x55\xaa":
        gpt = _gpt_at(disk, 1, sector)
        if gpt is None and disk.size > sector:
            gpt = _gpt_at(disk, disk.size // sector - 1, sector)  # the backup header
        if gpt is not None:
            return gpt
    if len(mbr) == 512 and mbr[510:512] == b"\x55\xaa" and not _looks_like_boot_sector(mbr):
        found = _mbr(disk, sector, mbr)
        if found:
            return found
    return [Partition(1, "none", 0, disk.size, "whole-disk")]


def _looks_like_boot_sector(sector0: bytes) -> bool:
    """A filesystem's own boot sector (NTFS, FAT) also ends in 55 AA: not a partition table."""
    return sector0[3:11] in (b"NTFS    ", b"MSDOS5.0", b"mkfs.fat", b"EXFAT   ") or (
        sector0[82:90] == b"FAT32   " or sector0[54:62] in (b"FAT16   ", b"FAT12   ")
    )
