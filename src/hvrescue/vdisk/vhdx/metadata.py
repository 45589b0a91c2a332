"""MS-VHDX 2.6 metadata table and known items, validated into findings."""

from __future__ import annotations

import struct
import uuid
from typing import TYPE_CHECKING, Any

from hvrescue.findings import Severity
from hvrescue.vdisk.vhdx import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage


MAX_METADATA_REGION = 64 * s.MiB


def parse_metadata(img: VhdxImage) -> bool:
    region = img.regions.get("metadata")
    if region is None:
        return False
    length = min(region.length, MAX_METADATA_REGION, max(0, img.file_size - region.file_offset))
    raw = img.read_file(region.file_offset, length)
    if len(raw) < 64 * s.KiB:
        raw += bytes(64 * s.KiB - len(raw))  # the table itself; a short file reads as zeros
    table = s.MetadataTable.parse(raw)
    img.metadata_table = table
    base = region.file_offset
    if table.signature != s.METADATA_SIGNATURE:
        img.sink.add("vhdx.metadata.invalid", Severity.CRITICAL, base, problem="signature")
        return False
    if table.entry_count > s.MAX_METADATA_ENTRIES:
        img.sink.add(
            "vhdx.metadata.invalid",
            Severity.ERROR,
            base,
            problem="entry-count",
            count=table.entry_count,
        )
    items: dict[uuid.UUID, bytes] = {}
    for entry in table.entries:
        if entry.item_id in items:
            img.sink.add(
                "vhdx.metadata.invalid", Severity.ERROR, base, problem=f"duplicate:{entry.name}"
            )
            continue
        if entry.length and (entry.offset < 64 * s.KiB or entry.offset + entry.length > length):
            img.sink.add(
                "vhdx.metadata.invalid",
                Severity.ERROR,
                base + entry.offset,
                problem=f"out-of-region:{entry.name}",
            )
            continue
        if entry.item_id not in s.KNOWN_METADATA:
            if entry.is_required:
                img.sink.add(
                    "vhdx.metadata.invalid",
                    Severity.ERROR,
                    base + entry.offset,
                    problem=f"unknown-required:{entry.name}",
                )
            continue
        items[entry.item_id] = raw[entry.offset : entry.offset + entry.length]
    if not _no_overlap(img, table, base, items):
        return False
    return metadata_items(img, items, base, table)


ESSENTIAL = (s.FILE_PARAMETERS, s.VIRTUAL_DISK_SIZE, s.LOGICAL_SECTOR_SIZE)


def _no_overlap(
    img: VhdxImage, table: s.MetadataTable, base: int, items: dict[uuid.UUID, bytes]
) -> bool:
    """2.6.1.2: items must not share bytes. Two that do hold one value for both, so which one
    is right cannot be known: critical (the disk is not read) when an item needed to read the
    disk is involved, an error otherwise. False when the disk must not be read."""
    spans = sorted(
        (e.offset, e.offset + e.length, e.item_id, e.name)
        for e in table.entries
        if e.item_id in items and e.length
    )
    ok = True
    end, owner, owner_name = 0, None, ""
    for start, stop, item, name in spans:
        if start < end:
            essential = item in ESSENTIAL or owner in ESSENTIAL
            img.sink.add(
                "vhdx.metadata.invalid",
                Severity.CRITICAL if essential else Severity.ERROR,
                base + start,
                problem=f"overlap:{owner_name}/{name}",
            )
            ok = ok and not essential
        if stop > end:
            end, owner, owner_name = stop, item, name
    return ok


def item_offset(table: s.MetadataTable, base: int, item: uuid.UUID) -> int:
    for entry in table.entries:
        if entry.item_id == item:
            return base + entry.offset
    return base


def metadata_items(
    img: VhdxImage, items: dict[uuid.UUID, bytes], base: int, table: s.MetadataTable
) -> bool:
    def bad(
        item: uuid.UUID, problem: str, sev: Severity = Severity.CRITICAL, **params: Any
    ) -> None:
        img.sink.add(
            "vhdx.metadata.invalid",
            sev,
            item_offset(table, base, item),
            item=s.KNOWN_METADATA[item],
            problem=problem,
            **params,
        )

    essential_ok = True
    for item in (s.FILE_PARAMETERS, s.VIRTUAL_DISK_SIZE, s.LOGICAL_SECTOR_SIZE):
        if item not in items:
            img.sink.add(
                "vhdx.metadata.missing-item",
                Severity.CRITICAL,
                base,
                item=s.KNOWN_METADATA[item],
            )
            essential_ok = False
    for item in (s.PHYSICAL_SECTOR_SIZE, s.PAGE83_DATA):
        if item not in items:
            img.sink.add(
                "vhdx.metadata.missing-item", Severity.ERROR, base, item=s.KNOWN_METADATA[item]
            )
    if s.FILE_PARAMETERS in items:
        data = items[s.FILE_PARAMETERS]
        if len(data) < 8:
            bad(s.FILE_PARAMETERS, "length")
            essential_ok = False
        else:
            bsize, flags = struct.unpack_from("<II", data)
            img.leave_blocks_allocated = bool(flags & 1)
            img.has_parent = bool(flags & 2)
            img.metadata["block_size"] = bsize
            img.metadata["leave_blocks_allocated"] = img.leave_blocks_allocated
            img.metadata["has_parent"] = img.has_parent
            if bsize < s.MiB or bsize > 256 * s.MiB or bsize & (bsize - 1):
                bad(s.FILE_PARAMETERS, "block-size", value=bsize)
                essential_ok = False
            else:
                img.block_size = bsize
    # 2.6.2.4/2.6.2.5: both sector sizes are 512 or 4096; only the logical one is needed to read.
    for item, attr, severity in (
        (s.LOGICAL_SECTOR_SIZE, "logical_sector_size", Severity.CRITICAL),
        (s.PHYSICAL_SECTOR_SIZE, "physical_sector_size", Severity.ERROR),
    ):
        if item not in items:
            continue
        data = items[item]
        value = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
        img.metadata[attr] = value
        if value in (512, 4096):
            setattr(img, attr, value)
        else:
            bad(item, "value", severity, value=value)
            essential_ok = essential_ok and severity is not Severity.CRITICAL
    if s.VIRTUAL_DISK_SIZE in items:
        data = items[s.VIRTUAL_DISK_SIZE]
        value = struct.unpack_from("<Q", data)[0] if len(data) >= 8 else 0
        img.metadata["virtual_disk_size"] = value
        if value == 0 or value > s.MAX_VIRTUAL_SIZE or value % img.logical_sector_size:
            bad(s.VIRTUAL_DISK_SIZE, "value", value=value)
            essential_ok = False
        else:
            img.size = value
    if s.PAGE83_DATA in items:
        data = items[s.PAGE83_DATA]
        if len(data) < 16:
            bad(s.PAGE83_DATA, "length", Severity.ERROR)
        else:
            img.metadata["virtual_disk_id"] = s.guid_str(s.guid(data))
    if img.has_parent:
        if s.PARENT_LOCATOR not in items:
            img.sink.add("vhdx.metadata.missing-item", Severity.ERROR, base, item="parent_locator")
        else:
            parse_parent_locator(img, items[s.PARENT_LOCATOR], base, table)
    elif s.PARENT_LOCATOR in items:
        img.sink.add(
            "vhdx.metadata.invalid",
            Severity.WARNING,
            item_offset(table, base, s.PARENT_LOCATOR),
            item="parent_locator",
            problem="without-has-parent",
        )
    if not essential_ok:
        return False
    img.chunk_ratio = s.chunk_ratio(img.logical_sector_size, img.block_size)
    img.data_blocks = -(-img.size // img.block_size)
    img.readable = True
    return True


def parse_parent_locator(img: VhdxImage, data: bytes, base: int, table: s.MetadataTable) -> None:
    loc = s.ParentLocator.parse(data)
    img.parent_locator = loc
    offset = item_offset(table, base, s.PARENT_LOCATOR)
    for problem in loc.problems:
        img.sink.add(
            "vhdx.metadata.invalid",
            Severity.ERROR,
            offset,
            item="parent_locator",
            problem=problem,
        )
    if loc.locator_type != s.VHDX_PARENT_LOCATOR_TYPE:
        img.sink.add(
            "vhdx.metadata.invalid",
            Severity.ERROR,
            offset,
            item="parent_locator",
            problem="locator-type",
            value=s.guid_str(loc.locator_type),
        )
    linkage = loc.entries.get("parent_linkage")
    if linkage is None:
        img.sink.add(
            "vhdx.metadata.missing-item",
            Severity.ERROR,
            offset,
            item="parent_locator.parent_linkage",
        )
    elif s.parse_guid_text(linkage) is None:
        img.sink.add(
            "vhdx.metadata.invalid",
            Severity.ERROR,
            offset,
            item="parent_locator",
            problem="parent_linkage",
            value=linkage,
        )
    if not any(k in loc.entries for k in ("relative_path", "volume_path", "absolute_win32_path")):
        img.sink.add(
            "vhdx.metadata.missing-item", Severity.ERROR, offset, item="parent_locator.path"
        )
