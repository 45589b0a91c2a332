"""New VHDX files made from an existing one: log applied (`replay-log`), parent locator pointed
elsewhere (`reparent`), damaged twins rebuilt (`repair`).

The input is read through the engine (so the copy holds the file as it is after log replay) and
written to a new file under a temporary name. Then, in the copy only: both headers are written
fresh from the valid one (log GUID cleared, sequence numbers advanced, a new FileWriteGuid as
Hyper-V sets on every open for write; DataWriteGuid kept, since the virtual content is the same),
both region tables from the valid one, and for `reparent` the metadata region is laid out again
with the new parent locator. Every change is returned as a record for the user.
"""

from __future__ import annotations

import ntpath
import os
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.platform import make_sparse, pwrite, set_size
from hvrescue.recover.guard import ContentGuard
from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.image import VhdxImage

CHUNK = 4 * s.MiB
# A BAT entry may point this far past the end of file before repair stops extending the file
# and marks the block as holding nothing instead.
MAX_EXTEND = 64 * s.GiB


@dataclass
class Change:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}


def pack_header(
    seq: int,
    file_write: uuid.UUID,
    data_write: uuid.UUID,
    log_guid: uuid.UUID,
    log_version: int,
    version: int,
    log_length: int,
    log_offset: int,
) -> bytes:
    raw = bytearray(s.HEADER_SIZE)
    struct.pack_into(
        "<4sIQ16s16s16sHHIQ",
        raw,
        0,
        s.HEADER_SIGNATURE,
        0,
        seq,
        file_write.bytes_le,
        data_write.bytes_le,
        log_guid.bytes_le,
        log_version,
        version,
        log_length,
        log_offset,
    )
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    return bytes(raw)


def pack_region_table(entries: tuple[s.RegionEntry, ...]) -> bytes:
    raw = bytearray(s.REGION_TABLE_SIZE)
    struct.pack_into("<4sIII", raw, 0, s.REGION_SIGNATURE, 0, len(entries), 0)
    for i, e in enumerate(entries):
        struct.pack_into(
            "<16sQII", raw, 16 + 32 * i, e.guid.bytes_le, e.file_offset, e.length, int(e.required)
        )
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    return bytes(raw)


def pack_locator(pairs: list[tuple[str, str]]) -> bytes:
    head = bytearray(20 + 12 * len(pairs))
    head[0:16] = s.VHDX_PARENT_LOCATOR_TYPE.bytes_le
    struct.pack_into("<HH", head, 16, 0, len(pairs))
    blob = bytearray()
    for i, (k, v) in enumerate(pairs):
        kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
        koff = len(head) + len(blob)
        blob += kb
        voff = len(head) + len(blob)
        blob += vb
        struct.pack_into("<IIHH", head, 20 + 12 * i, koff, voff, len(kb), len(vb))
    return bytes(head + blob)


def _open(path: str) -> VhdxImage:
    img = VhdxImage.open(path)
    if img.header is None:
        img.close()
        raise InputError("error.rewrite.no-header", path=path)
    if "bat" not in img.regions or "metadata" not in img.regions or img.metadata_table is None:
        img.close()
        raise InputError("error.rewrite.no-region-table", path=path)
    return img


def _copy_replayed(img: VhdxImage, fd: int, size: int, guard: ContentGuard) -> None:
    """The file's bytes after log replay, holes of the source kept as holes."""
    segments = img.source.data_segments(0, min(size, img.source.size))
    make_sparse(fd)  # holes are skipped below, and the log may grow the file past the source
    covered = 0
    for offset, length, is_data in segments:
        covered = offset + length
        if not is_data and img.overlay.empty:
            continue
        pos, end = offset, offset + length
        while pos < end:
            n = min(CHUNK, end - pos)
            data = guard.read(pos, n)
            if is_data or data.count(0) != len(data):
                pwrite(fd, data, pos)
            pos += n
    # Beyond the source's end only the log can have put data (LastFileOffset grew the file),
    # and only in the sectors it writes: those are visited, not every byte up to a size the
    # log claims (the rest is the new file's sparse zeros).
    sector = s.LOG_SECTOR
    for key in img.overlay.touched_offsets:
        if key + sector <= covered or key >= size:
            continue
        lo = max(key, covered)
        hi = min(key + sector, size)
        data = guard.read(lo, hi - lo)
        if data.count(0) != len(data):
            pwrite(fd, data, lo)
    set_size(fd, size)


def _metadata_region(img: VhdxImage, locator: bytes | None) -> bytes:
    """The metadata region laid out anew: every item kept, the parent locator replaced."""
    region = img.regions["metadata"]
    table = img.metadata_table
    assert table is not None
    items: list[tuple[s.MetadataEntry, bytes]] = []
    for entry in table.entries:
        data = (
            b"" if entry.length == 0 else img._raw(region.file_offset + entry.offset, entry.length)
        )
        if locator is not None and entry.item_id == s.PARENT_LOCATOR:
            data = locator
        items.append((entry, data))
    raw = bytearray(region.length)
    struct.pack_into("<8sHH", raw, 0, s.METADATA_SIGNATURE, 0, len(items))
    offset = 64 * s.KiB
    for i, (entry, data) in enumerate(items):
        flags = int(entry.is_user) | int(entry.is_virtual_disk) << 1 | int(entry.is_required) << 2
        item_offset = offset if data else 0
        if offset + len(data) > len(raw):
            raise InputError("error.rewrite.metadata-full", path=img.path)
        struct.pack_into(
            "<16sIIII", raw, 32 + 32 * i, entry.item_id.bytes_le, item_offset, len(data), flags, 0
        )
        raw[offset : offset + len(data)] = data
        if data:
            offset += -(-len(data) // 4096) * 4096
    return bytes(raw)


@dataclass
class NewParent:
    linkage: str  # "{guid}", the parent's DataWriteGuid
    relative_path: str
    absolute_path: str
    volume_path: str | None = None


def rewrite_vhdx(
    path: str,
    out: str,
    *,
    parent: NewParent | None = None,
    repair: bool = False,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
) -> list[Change]:
    """Write ``out``: ``path`` with its log applied and cleared, and optionally a new parent
    locator or repairs. Returns what was changed.

    A source with undefined content (see :class:`ContentGuard`) is refused unless
    ``allow_gaps``: its copy would hold zeros there (``repair`` gives cut blocks room) or carry
    the damage on under a name that looks whole."""
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    img = _open(path)
    changes: list[Change] = []
    try:
        hdr = img.header
        assert hdr is not None
        size = img.file_size
        if img.log_scan is not None and img.log_scan.needs_replay:
            changes.append(Change("rewrite.log-applied", {"entries": len(img.log_scan.active)}))
        elif hdr.log_guid != s.ZERO_GUID:
            changes.append(Change("rewrite.log-cleared", {}))
        bat_fixes: list[tuple[int, int]] = []
        guard = ContentGuard(img, allow_gaps)
        if repair:
            size, bat_fixes = _repair_bat(img, size, changes)
        with atomic_output(out, check=lambda _tmp: guard_map(guard, out, argv)) as fd:
            _copy_replayed(img, fd, size, guard)
            file_write = uuid.uuid4()
            seq = hdr.sequence_number
            for i, offset in enumerate(s.HEADER_OFFSETS):
                raw = pack_header(
                    seq + 1 + i,
                    file_write,
                    hdr.data_write_guid,
                    s.ZERO_GUID,
                    0,
                    hdr.version,
                    hdr.log_length,
                    hdr.log_offset,
                )
                pwrite(fd, raw, offset)
            for i, (_off, header, problems) in enumerate(img.headers):
                if header is None or problems:
                    changes.append(Change("rewrite.header-rebuilt", {"copy": i + 1}))
            valid = [t for _o, t, p in img.region_tables if t is not None and not p]
            table_bytes = pack_region_table(
                valid[0].entries if valid else tuple(img.regions.values())
            )
            for i, offset in enumerate(s.REGION_TABLE_OFFSETS):
                pwrite(fd, table_bytes, offset)
                damaged = i >= len(img.region_tables) or (
                    img.region_tables[i][1] is None or bool(img.region_tables[i][2])
                )
                if damaged:
                    changes.append(Change("rewrite.region-table-rebuilt", {"copy": i + 1}))
            bat_region = img.regions["bat"]
            for index, value in bat_fixes:
                pwrite(fd, struct.pack("<Q", value), bat_region.file_offset + 8 * index)
            if parent is not None:
                pairs = [("parent_linkage", parent.linkage)]
                old = dict(img.parent_locator.entries) if img.parent_locator else {}
                pairs.append(("relative_path", parent.relative_path))
                if parent.volume_path:
                    pairs.append(("volume_path", parent.volume_path))
                if parent.absolute_path:
                    pairs.append(("absolute_win32_path", parent.absolute_path))
                meta_region = img.regions["metadata"]
                pwrite(fd, _metadata_region(img, pack_locator(pairs)), meta_region.file_offset)
                changes.append(
                    Change(
                        "rewrite.parent-locator",
                        {
                            "old": "; ".join(f"{k}={v}" for k, v in old.items()),
                            "new": "; ".join(f"{k}={v}" for k, v in pairs),
                        },
                    )
                )
        if guard.gaps:
            changes.append(Change("rewrite.written-with-gaps", guard.summary(out)))
        return changes
    finally:
        img.close()


def _repair_bat(
    img: VhdxImage, size: int, changes: list[Change]
) -> tuple[int, list[tuple[int, int]]]:
    """Blocks that point past the end of file: the file is extended with zeros to hold them (what
    the engine reads there), unless the pointer is absurd, then the entry is cleared."""
    fixes: list[tuple[int, int]] = []
    if img.bat is None or not img.block_size:
        return size, fixes
    end_needed = size
    cr = img.chunk_ratio
    for index in range(len(img.bat)):
        entry = int(img.bat[index])
        state = entry & 7
        offset = (entry >> 20) << 20
        is_bitmap = cr and (index + 1) % (cr + 1) == 0
        length = s.MiB if is_bitmap else img.block_size
        if offset == 0 or state not in (6, 7):
            continue
        if offset + length <= size:
            continue
        if offset + length - size > MAX_EXTEND:
            replacement = 0 if img.has_parent else 2  # NOT_PRESENT / ZERO
            fixes.append((index, replacement))
            changes.append(
                Change("rewrite.bat-entry-cleared", {"index": index, "file_offset": offset})
            )
            continue
        end_needed = max(end_needed, offset + length)
        changes.append(Change("rewrite.file-extended", {"index": index, "file_offset": offset}))
    return end_needed, fixes


def relative_windows_path(from_dir: str, to_path: str) -> str:
    """``to_path`` relative to ``from_dir`` in Windows form (``.\\a.vhdx``, ``..\\x\\a.vhdx``)."""
    rel = os.path.relpath(to_path, from_dir)
    parts = rel.split(os.sep)
    text = ntpath.join(*parts)
    return text if text.startswith("..") else ".\\" + text


def guard_map(guard: ContentGuard, out: str, argv: list[str] | None) -> None:
    """Before the output gets its name: the map of its gaps beside it (if any)."""
    guard.write_map(out, argv or ["hvrescue", out])
