"""Write a new VHDX file (dynamic or differencing) from sector-aligned data.

Used to build examples and test chains (4096-byte logical sectors, differencing disks with
sector bitmaps, dirty logs); the merge and repair commands will build on it. Output is written
sparse through :func:`hvrescue.io.atomic.atomic_output`, never over an existing file.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from hvrescue.io.atomic import atomic_output
from hvrescue.platform import make_sparse, pwrite, set_size
from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhdx import structures as s

LOG_OFFSET = 1 * s.MiB
LOG_LENGTH = 1 * s.MiB
METADATA_OFFSET = 2 * s.MiB
METADATA_LENGTH = 1 * s.MiB
BAT_OFFSET = 3 * s.MiB


@dataclass
class ParentSpec:
    linkage: uuid.UUID
    relative_path: str | None = None
    absolute_win32_path: str | None = None
    volume_path: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class VhdxSpec:
    virtual_size: int
    block_size: int = 2 * s.MiB
    logical_sector_size: int = 512
    physical_sector_size: int = 4096
    parent: ParentSpec | None = None
    data_write_guid: uuid.UUID = field(default_factory=uuid.uuid4)
    file_write_guid: uuid.UUID = field(default_factory=uuid.uuid4)
    disk_id: uuid.UUID = field(default_factory=uuid.uuid4)
    creator: str = "hvrescue"
    # Leave the BAT update in a log entry that was never applied, as a crashed host does.
    pending_log: bool = False
    log_guid: uuid.UUID = field(default_factory=uuid.uuid4)


def _header(spec: VhdxSpec, seq: int, log_guid: uuid.UUID) -> bytes:
    raw = bytearray(s.HEADER_SIZE)
    struct.pack_into(
        "<4sIQ16s16s16sHHIQ",
        raw,
        0,
        s.HEADER_SIGNATURE,
        0,
        seq,
        spec.file_write_guid.bytes_le,
        spec.data_write_guid.bytes_le,
        log_guid.bytes_le,
        0,
        1,
        LOG_LENGTH,
        LOG_OFFSET,
    )
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    return bytes(raw)


def _region_table(bat_length: int) -> bytes:
    raw = bytearray(s.REGION_TABLE_SIZE)
    struct.pack_into("<4sIII", raw, 0, s.REGION_SIGNATURE, 0, 2, 0)
    struct.pack_into("<16sQII", raw, 16, s.BAT_GUID.bytes_le, BAT_OFFSET, bat_length, 1)
    struct.pack_into(
        "<16sQII", raw, 48, s.METADATA_GUID.bytes_le, METADATA_OFFSET, METADATA_LENGTH, 1
    )
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    return bytes(raw)


def _parent_locator(parent: ParentSpec) -> bytes:
    pairs = [("parent_linkage", "{" + str(parent.linkage) + "}")]
    for key in ("relative_path", "volume_path", "absolute_win32_path"):
        value = getattr(parent, key)
        if value:
            pairs.append((key, value))
    pairs += list(parent.extra.items())
    head = bytearray(20 + 12 * len(pairs))
    head[0:16] = s.VHDX_PARENT_LOCATOR_TYPE.bytes_le
    struct.pack_into("<HH", head, 16, 0, len(pairs))
    blob = bytearray()
    base = len(head)
    for i, (k, v) in enumerate(pairs):
        kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
        koff = base + len(blob)
        blob += kb
        voff = base + len(blob)
        blob += vb
        struct.pack_into("<IIHH", head, 20 + 12 * i, koff, voff, len(kb), len(vb))
    return bytes(head + blob)


def _metadata(spec: VhdxSpec) -> bytes:
    items: list[tuple[uuid.UUID, bytes, int]] = [
        (s.FILE_PARAMETERS, struct.pack("<II", spec.block_size, 2 if spec.parent else 0), 4),
        (s.VIRTUAL_DISK_SIZE, struct.pack("<Q", spec.virtual_size), 6),
        (s.PAGE83_DATA, spec.disk_id.bytes_le, 6),
        (s.LOGICAL_SECTOR_SIZE, struct.pack("<I", spec.logical_sector_size), 6),
        (s.PHYSICAL_SECTOR_SIZE, struct.pack("<I", spec.physical_sector_size), 6),
    ]
    if spec.parent:
        items.append((s.PARENT_LOCATOR, _parent_locator(spec.parent), 4))
    raw = bytearray(METADATA_LENGTH)
    struct.pack_into("<8sHH", raw, 0, s.METADATA_SIGNATURE, 0, len(items))
    offset = 64 * s.KiB
    for i, (item, data, flags) in enumerate(items):
        struct.pack_into("<16sIIII", raw, 32 + 32 * i, item.bytes_le, offset, len(data), flags, 0)
        raw[offset : offset + len(data)] = data
        offset += -(-len(data) // 4096) * 4096 or 4096
    return bytes(raw)


def _log_entry(
    log_guid: uuid.UUID, seq: int, writes: list[tuple[int, bytes]], file_size: int
) -> bytes:
    """One log entry holding full 4 KiB sector ``writes`` (2.3.1)."""
    dsec = s.descriptor_sectors(len(writes))
    total = (dsec + len(writes)) * s.LOG_SECTOR
    raw = bytearray(total)
    struct.pack_into(
        "<4sIIIQII16sQQ",
        raw,
        0,
        s.LOG_ENTRY_SIGNATURE,
        0,
        total,
        0,
        seq,
        len(writes),
        0,
        log_guid.bytes_le,
        file_size,
        file_size,
    )
    for i, (off, sector) in enumerate(writes):
        lead, trail = (
            struct.unpack_from("<Q", sector, 0)[0],
            struct.unpack_from("<I", sector, 4092)[0],
        )
        struct.pack_into("<4sIQQQ", raw, 64 + 32 * i, s.LOG_DESC_SIGNATURE, trail, lead, off, seq)
        d = (dsec + i) * s.LOG_SECTOR
        struct.pack_into("<4sI", raw, d, s.LOG_DATA_SIGNATURE, seq >> 32)
        raw[d + 8 : d + 4092] = sector[8:4092]
        struct.pack_into("<I", raw, d + 4092, seq & 0xFFFFFFFF)
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    return bytes(raw)


def write_vhdx(path: str, spec: VhdxSpec, data: dict[int, bytes] | None = None) -> None:
    """Create ``path`` holding ``data`` ({virtual offset: bytes}, sector-aligned)."""
    data = data or {}
    lss, bs = spec.logical_sector_size, spec.block_size
    cr = s.chunk_ratio(lss, bs)
    blocks = -(-spec.virtual_size // bs)
    entries = -(-blocks // cr) * (cr + 1) if spec.parent else blocks + (blocks - 1) // cr
    bat_length = -(-entries * 8 // s.MiB) * s.MiB
    bat = [0] * entries
    next_free = BAT_OFFSET + bat_length
    placed: dict[int, int] = {}  # block -> file offset
    bitmaps: dict[int, bytearray] = {}  # chunk -> 1 MiB bitmap
    bitmap_at: dict[int, int] = {}
    writes: list[tuple[int, bytes]] = []
    for voff in sorted(data):
        payload = data[voff]
        if voff % lss or len(payload) % lss or voff + len(payload) > spec.virtual_size:
            raise ValueError("writes must be sector-aligned and inside the disk")
        pos = 0
        while pos < len(payload):
            v = voff + pos
            block, within = divmod(v, bs)
            n = min(bs - within, len(payload) - pos)
            if block not in placed:
                placed[block] = next_free
                next_free += bs
            writes.append((placed[block] + within, payload[pos : pos + n]))
            if spec.parent:
                chunk = block // cr
                bitmap = bitmaps.setdefault(chunk, bytearray(s.MiB))
                first = (block % cr) * (bs // lss) + within // lss
                for bit in range(first, first + n // lss):
                    bitmap[bit >> 3] |= 1 << (bit & 7)
            pos += n
    for chunk in sorted(bitmaps):
        bitmap_at[chunk] = next_free
        next_free += s.MiB
    for block, foff in placed.items():
        state = s.PAYLOAD_FULLY_PRESENT
        if spec.parent:
            bitmap = bitmaps[block // cr]
            first = (block % cr) * (bs // lss) // 8
            seg = bitmap[first : first + bs // lss // 8]
            if seg.count(0xFF) != len(seg):
                state = s.PAYLOAD_PARTIALLY_PRESENT
        bat[block + block // cr] = foff | state
    for chunk, foff in bitmap_at.items():
        bat[chunk * (cr + 1) + cr] = foff | s.SB_PRESENT
    bat_bytes = struct.pack(f"<{entries}Q", *bat) + bytes(bat_length - entries * 8)
    log_guid = spec.log_guid if spec.pending_log else s.ZERO_GUID
    with atomic_output(path) as fd:
        make_sparse(fd)  # the BAT region and unwritten blocks stay holes
        ident = bytearray(64 * s.KiB)
        ident[0:8] = s.FILE_SIGNATURE
        creator = spec.creator.encode("utf-16-le")[:512]
        ident[8 : 8 + len(creator)] = creator
        pwrite(fd, bytes(ident), 0)
        pwrite(fd, _header(spec, 1, log_guid), s.HEADER_OFFSETS[0])
        pwrite(fd, _header(spec, 2, log_guid), s.HEADER_OFFSETS[1])
        table = _region_table(bat_length)
        pwrite(fd, table, s.REGION_TABLE_OFFSETS[0])
        pwrite(fd, table, s.REGION_TABLE_OFFSETS[1])
        pwrite(fd, _metadata(spec), METADATA_OFFSET)
        if spec.pending_log:
            # The BAT in place stays empty; only the log knows where the data is.
            changed = [
                (BAT_OFFSET + i, bat_bytes[i : i + s.LOG_SECTOR])
                for i in range(0, len(bat_bytes), s.LOG_SECTOR)
                if bat_bytes[i : i + s.LOG_SECTOR].count(0) != s.LOG_SECTOR
            ]
            pwrite(fd, _log_entry(log_guid, 1, changed, next_free), LOG_OFFSET)
        else:
            pwrite(fd, bat_bytes, BAT_OFFSET)
        for foff, payload in writes:
            pwrite(fd, payload, foff)
        for chunk, foff in bitmap_at.items():
            pwrite(fd, bytes(bitmaps[chunk]), foff)
        set_size(fd, next_free)
