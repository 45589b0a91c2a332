"""VHD on-disk structures (Virtual Hard Disk Image Format Specification, Oct 2006). Big-endian."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from hvrescue.vdisk import signatures

FOOTER_SIZE = signatures.VHD_FOOTER_SIZE
DYNAMIC_HEADER_SIZE = 1024
FOOTER_COOKIE = signatures.VHD_FOOTER_COOKIE
DYNAMIC_COOKIE = signatures.VHD_DYNAMIC_COOKIE
FIXED_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
UNUSED_BAT = 0xFFFFFFFF
SECTOR = 512
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix time

DISK_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}
MAX_BLOCK_SIZE = 256 * 1024 * 1024
MAX_LOCATOR_DATA = 64 * 1024

_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
_DYNAMIC = struct.Struct(">8sQQIIII16sI4s512s")
_LOCATOR = struct.Struct(">4sIIIQ")


def checksum(data: bytes, field_offset: int) -> int:
    """Ones' complement of the byte sum, the checksum field itself excluded."""
    total = sum(data[:field_offset]) + sum(data[field_offset + 4 :])
    return (~total) & 0xFFFFFFFF


@dataclass(frozen=True)
class Footer:
    cookie: bytes
    features: int
    version: int
    data_offset: int
    timestamp: int
    creator_app: str
    creator_version: int
    creator_host: str
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors_per_track: int
    disk_type: int
    checksum: int
    unique_id: uuid.UUID
    saved_state: int
    checksum_ok: bool

    @classmethod
    def parse(cls, data: bytes) -> Footer:
        (
            cookie,
            features,
            version,
            data_offset,
            ts,
            app,
            app_ver,
            host,
            orig,
            cur,
            cyl,
            heads,
            spt,
            dtype,
            crc,
            uid,
            saved,
        ) = _FOOTER.unpack_from(data, 0)
        return cls(
            cookie,
            features,
            version,
            data_offset,
            ts,
            app.decode("latin-1"),
            app_ver,
            host.decode("latin-1"),
            orig,
            cur,
            cyl,
            heads,
            spt,
            dtype,
            crc,
            uuid.UUID(bytes=uid),
            saved,
            checksum(data[:FOOTER_SIZE], 64) == crc,
        )

    @property
    def chs_size(self) -> int:
        return self.cylinders * self.heads * self.sectors_per_track * SECTOR


@dataclass(frozen=True)
class ParentLocatorEntry:
    index: int
    platform_code: str
    data_space: int
    data_length: int
    data_offset: int


@dataclass(frozen=True)
class DynamicHeader:
    cookie: bytes
    data_offset: int
    table_offset: int
    version: int
    max_table_entries: int
    block_size: int
    checksum: int
    parent_unique_id: uuid.UUID
    parent_timestamp: int
    parent_name: str
    locators: tuple[ParentLocatorEntry, ...]
    checksum_ok: bool

    @classmethod
    def parse(cls, data: bytes) -> DynamicHeader:
        (cookie, doff, toff, ver, maxent, bsize, crc, puid, pts, _r, pname) = _DYNAMIC.unpack_from(
            data, 0
        )
        locs = []
        for i in range(8):
            code, space, length, _res, off = _LOCATOR.unpack_from(data, 576 + 24 * i)
            if code != b"\0\0\0\0":
                locs.append(ParentLocatorEntry(i, code.decode("latin-1"), space, length, off))
        name = pname.decode("utf-16-be", errors="replace").split("\0", 1)[0]
        return cls(
            cookie,
            doff,
            toff,
            ver,
            maxent,
            bsize,
            crc,
            uuid.UUID(bytes=puid),
            pts,
            name,
            tuple(locs),
            checksum(data[:DYNAMIC_HEADER_SIZE], 36) == crc,
        )


def geometry_for(size: int) -> tuple[int, int, int]:
    """CHS per the VHD specification's appendix algorithm for a disk of ``size`` bytes."""
    total = size // SECTOR
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = (cth + 1023) // 1024
        if heads < 4:
            heads = 4
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt
