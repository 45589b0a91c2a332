"""MS-VHDX on-disk structures, declared in one place (MS-VHDX v1.0, sections cited per item).

Parsing only: bytes in, plain values out. Validation lives in ``image.py`` and ``log.py``.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from hvrescue.vdisk import signatures

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

FILE_ID_OFFSET = 0
HEADER_OFFSETS = signatures.VHDX_HEADER_OFFSETS
REGION_TABLE_OFFSETS = signatures.VHDX_REGION_TABLE_OFFSETS
HEADER_SIZE = signatures.VHDX_HEADER_SIZE
REGION_TABLE_SIZE = 64 * KiB
HEADER_AREA = 1 * MiB

FILE_SIGNATURE = signatures.VHDX_FILE_SIGNATURE
HEADER_SIGNATURE = signatures.VHDX_HEADER_SIGNATURE
REGION_SIGNATURE = signatures.VHDX_REGION_SIGNATURE
METADATA_SIGNATURE = signatures.VHDX_METADATA_SIGNATURE
LOG_ENTRY_SIGNATURE = signatures.VHDX_LOG_ENTRY_SIGNATURE
LOG_DESC_SIGNATURE = b"desc"
LOG_ZERO_SIGNATURE = b"zero"
LOG_DATA_SIGNATURE = b"data"

MAX_REGION_ENTRIES = 2047
MAX_METADATA_ENTRIES = 2047
MAX_VIRTUAL_SIZE = 64 * TiB
LOG_SECTOR = 4 * KiB

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
KNOWN_REGIONS = {BAT_GUID: "bat", METADATA_GUID: "metadata"}

# 2.6.2 Known metadata items.
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83_DATA = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_METADATA = {
    FILE_PARAMETERS: "file_parameters",
    VIRTUAL_DISK_SIZE: "virtual_disk_size",
    PAGE83_DATA: "page83_data",
    LOGICAL_SECTOR_SIZE: "logical_sector_size",
    PHYSICAL_SECTOR_SIZE: "physical_sector_size",
    PARENT_LOCATOR: "parent_locator",
}
VHDX_PARENT_LOCATOR_TYPE = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")

# 2.5.1 BAT entry states.
PAYLOAD_NOT_PRESENT = 0
PAYLOAD_UNDEFINED = 1
PAYLOAD_ZERO = 2
PAYLOAD_UNMAPPED = 3
PAYLOAD_FULLY_PRESENT = 6
PAYLOAD_PARTIALLY_PRESENT = 7
SB_NOT_PRESENT = 0
SB_PRESENT = 6
PAYLOAD_STATE_NAMES = {
    0: "not_present",
    1: "undefined",
    2: "zero",
    3: "unmapped",
    6: "fully_present",
    7: "partially_present",
}
SB_STATE_NAMES = {0: "not_present", 6: "present"}

ZERO_GUID = uuid.UUID(int=0)


def guid(data: bytes, offset: int = 0) -> uuid.UUID:
    """GUIDs are stored in the Windows mixed-endian layout (RFC 4122 fields little-endian)."""
    return uuid.UUID(bytes_le=bytes(data[offset : offset + 16]))


def guid_str(value: uuid.UUID) -> str:
    return "{" + str(value) + "}"


@dataclass(frozen=True)
class FileIdentifier:
    """2.2.1 File Type Identifier."""

    signature: bytes
    creator: str

    @classmethod
    def parse(cls, data: bytes) -> FileIdentifier:
        creator = data[8 : 8 + 512].decode("utf-16-le", errors="replace")
        return cls(bytes(data[:8]), creator.split("\0", 1)[0])


_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")


@dataclass(frozen=True)
class Header:
    """2.2.2 Header."""

    signature: bytes
    checksum: int
    sequence_number: int
    file_write_guid: uuid.UUID
    data_write_guid: uuid.UUID
    log_guid: uuid.UUID
    log_version: int
    version: int
    log_length: int
    log_offset: int

    @classmethod
    def parse(cls, data: bytes) -> Header:
        sig, crc, seq, fw, dw, lg, lver, ver, llen, loff = _HEADER.unpack_from(data, 0)
        return cls(sig, crc, seq, guid(fw), guid(dw), guid(lg), lver, ver, llen, loff)


_REGION_HEADER = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")


@dataclass(frozen=True)
class RegionEntry:
    guid: uuid.UUID
    file_offset: int
    length: int
    required: bool

    @property
    def name(self) -> str:
        return KNOWN_REGIONS.get(self.guid, guid_str(self.guid))


@dataclass(frozen=True)
class RegionTable:
    """2.2.3 Region Table."""

    signature: bytes
    checksum: int
    entry_count: int
    entries: tuple[RegionEntry, ...]

    @classmethod
    def parse(cls, data: bytes) -> RegionTable:
        sig, crc, count, _ = _REGION_HEADER.unpack_from(data, 0)
        entries = []
        # The count is bounded before use: the table is 64 KiB, so at most 2047 entries fit.
        for i in range(min(count, MAX_REGION_ENTRIES)):
            g, off, length, flags = _REGION_ENTRY.unpack_from(data, 16 + 32 * i)
            entries.append(RegionEntry(guid(g), off, length, bool(flags & 1)))
        return cls(sig, crc, count, tuple(entries))


_META_HEADER = struct.Struct("<8sHH20s")
_META_ENTRY = struct.Struct("<16sIIII")


@dataclass(frozen=True)
class MetadataEntry:
    item_id: uuid.UUID
    offset: int
    length: int
    is_user: bool
    is_virtual_disk: bool
    is_required: bool

    @property
    def name(self) -> str:
        return KNOWN_METADATA.get(self.item_id, guid_str(self.item_id))


@dataclass(frozen=True)
class MetadataTable:
    """2.6.1 Metadata Table."""

    signature: bytes
    entry_count: int
    entries: tuple[MetadataEntry, ...]

    @classmethod
    def parse(cls, data: bytes) -> MetadataTable:
        sig, _, count, _ = _META_HEADER.unpack_from(data, 0)
        entries = []
        for i in range(min(count, MAX_METADATA_ENTRIES)):
            g, off, length, flags, _r = _META_ENTRY.unpack_from(data, 32 + 32 * i)
            entries.append(
                MetadataEntry(
                    guid(g), off, length, bool(flags & 1), bool(flags & 2), bool(flags & 4)
                )
            )
        return cls(sig, count, tuple(entries))


@dataclass(frozen=True)
class ParentLocator:
    """2.6.2.6 Parent Locator: a type GUID and UTF-16 key/value pairs."""

    locator_type: uuid.UUID
    entries: dict[str, str]
    problems: tuple[str, ...]

    @classmethod
    def parse(cls, data: bytes) -> ParentLocator:
        problems: list[str] = []
        if len(data) < 20:
            return cls(ZERO_GUID, {}, ("too-short",))
        ltype = guid(data, 0)
        (count,) = struct.unpack_from("<H", data, 18)
        entries: dict[str, str] = {}
        max_count = (len(data) - 20) // 12
        if count > max_count:
            problems.append("count-beyond-item")
            count = max_count
        for i in range(count):
            koff, voff, klen, vlen = struct.unpack_from("<IIHH", data, 20 + 12 * i)
            if koff + klen > len(data) or voff + vlen > len(data) or klen == 0:
                problems.append(f"entry-{i}-out-of-bounds")
                continue
            key = data[koff : koff + klen].decode("utf-16-le", errors="replace")
            value = data[voff : voff + vlen].decode("utf-16-le", errors="replace")
            if key in entries:
                problems.append(f"duplicate-key:{key}")
            entries[key] = value
        return cls(ltype, entries, tuple(problems))


_LOG_ENTRY = struct.Struct("<4sIIIQII16sQQ")
LOG_ENTRY_HEADER_SIZE = 64
_LOG_DESC = struct.Struct("<4sIQQQ")


@dataclass(frozen=True)
class LogEntryHeader:
    """2.3.1.1 Log entry header."""

    signature: bytes
    checksum: int
    entry_length: int
    tail: int
    sequence_number: int
    descriptor_count: int
    log_guid: uuid.UUID
    flushed_file_offset: int
    last_file_offset: int

    @classmethod
    def parse(cls, data: bytes) -> LogEntryHeader:
        sig, crc, elen, tail, seq, dcount, _r, lg, flushed, last = _LOG_ENTRY.unpack_from(data, 0)
        return cls(sig, crc, elen, tail, seq, dcount, guid(lg), flushed, last)


@dataclass(frozen=True)
class LogDescriptor:
    """2.3.1.2 Zero descriptor / 2.3.1.3 Data descriptor."""

    signature: bytes
    trailing_bytes: int  # data descriptors: the last 4 bytes of the sector
    leading_bytes: int  # data: the first 8 bytes; zero descriptors: ZeroLength
    file_offset: int
    sequence_number: int

    @classmethod
    def parse(cls, data: bytes | memoryview, offset: int) -> LogDescriptor:
        sig, trailing, leading, foff, seq = _LOG_DESC.unpack_from(data, offset)
        return cls(sig, trailing, leading, foff, seq)


def descriptor_sectors(count: int) -> int:
    """Sectors holding the entry header plus ``count`` 32-byte descriptors."""
    return (LOG_ENTRY_HEADER_SIZE + 32 * count + LOG_SECTOR - 1) // LOG_SECTOR


def chunk_ratio(logical_sector_size: int, block_size: int) -> int:
    """2.5 Chunk ratio: payload blocks described by one 1 MiB sector bitmap block."""
    return (1 << 23) * logical_sector_size // block_size


def parse_guid_text(text: str) -> uuid.UUID | None:
    """A GUID as Windows writes it in text ("{...}"), or None if it is not one."""
    try:
        return uuid.UUID(text.strip().strip("{}"))
    except ValueError:
        return None
