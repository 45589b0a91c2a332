"""Every structure of a VHDX file as plain data, for `hvrescue info`.

Lists read from the file (region table entries, metadata entries, log entries, parent locator
pairs) are summarised: their count and the first ``LIST_LIMIT`` of them (``DAMAGED_LIMIT`` of
a table that failed validation). A damaged table can declare thousands of garbage entries; a
person needs to see that, not read them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from hvrescue.vdisk.vhdx import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage

LIST_LIMIT = 16
# A table that failed validation: what its first entries look like is all that helps.
DAMAGED_LIMIT = 4
T = TypeVar("T")


def first(items: Sequence[T], limit: int = LIST_LIMIT) -> Sequence[T]:
    return items[:limit]


def describe(img: VhdxImage) -> dict[str, Any]:
    hdrs = []
    for offset, hdr, problems in img.headers:
        hdrs.append(
            {
                "offset": offset,
                "valid": not problems,
                "problems": list(first(problems)),
                "problem_count": len(problems),
                "current": img.header is hdr and hdr is not None,
                **(
                    {}
                    if hdr is None
                    else {
                        "sequence_number": hdr.sequence_number,
                        "file_write_guid": s.guid_str(hdr.file_write_guid),
                        "data_write_guid": s.guid_str(hdr.data_write_guid),
                        "log_guid": s.guid_str(hdr.log_guid),
                        "log_version": hdr.log_version,
                        "version": hdr.version,
                        "log_offset": hdr.log_offset,
                        "log_length": hdr.log_length,
                        "checksum": f"0x{hdr.checksum:08x}",
                    }
                ),
            }
        )
    tables = []
    for offset, table, problems in img.region_tables:
        tables.append(
            {
                "offset": offset,
                "valid": not problems,
                "problems": list(first(problems)),
                "problem_count": len(problems),
                "entry_count": None if table is None else table.entry_count,
                "entries": []
                if table is None
                else [
                    {
                        "guid": s.guid_str(e.guid),
                        "name": e.name,
                        "file_offset": e.file_offset,
                        "length": e.length,
                        "required": e.required,
                    }
                    for e in first(table.entries, DAMAGED_LIMIT if problems else LIST_LIMIT)
                ],
            }
        )
    meta_entries = []
    if img.metadata_table is not None:
        meta_entries = [
            {
                "item": e.name,
                "offset": e.offset,
                "length": e.length,
                "is_user": e.is_user,
                "is_virtual_disk": e.is_virtual_disk,
                "is_required": e.is_required,
            }
            for e in first(img.metadata_table.entries)
        ]
    log: dict[str, Any] = {"present": False}
    if img.log_scan is not None:
        log = {
            "present": True,
            "valid_entries": len(img.log_scan.entries),
            "invalid_entries": len(img.log_scan.invalid_entries),
            "active_entries": len(img.log_scan.active),
            "active_sequence": [
                {
                    "position": e.position,
                    "sequence_number": e.header.sequence_number,
                    "entry_length": e.header.entry_length,
                    "tail": e.header.tail,
                    "descriptors": e.header.descriptor_count,
                    "flushed_file_offset": e.header.flushed_file_offset,
                    "last_file_offset": e.header.last_file_offset,
                }
                for e in first(img.log_scan.active)
            ],
            "replayed_sectors": len(img.overlay.touched_offsets),
        }
    return {
        "format": "vhdx",
        "file_size": img.source.size,
        "creator": img.identifier.creator if img.identifier else None,
        "identifier_valid": bool(img.identifier and img.identifier.signature == s.FILE_SIGNATURE),
        "headers": hdrs,
        "current_header": None if img.header_index is None else img.header_index + 1,
        "region_tables": tables,
        "log": log,
        "metadata": {
            "entry_count": None if img.metadata_table is None else img.metadata_table.entry_count,
            "entries": meta_entries,
            "items": dict(img.metadata),
        },
        "parent_locator": None
        if img.parent_locator is None
        else {
            "type": s.guid_str(img.parent_locator.locator_type),
            "entry_count": len(img.parent_locator.entries),
            "entries": dict(first(list(img.parent_locator.entries.items()))),
        },
        "virtual_size": img.size,
        "block_size": img.block_size,
        "logical_sector_size": img.logical_sector_size,
        "physical_sector_size": img.physical_sector_size,
        "chunk_ratio": img.chunk_ratio,
        "differencing": img.has_parent,
        "bat": {
            "entries": 0 if img.bat is None else len(img.bat),
            "entries_needed": img.bat_entries_needed if img.chunk_ratio else None,
            "states": dict(sorted(img.bat_counts.items())),
            "overlapping": len(img.overlapping),
        },
    }
