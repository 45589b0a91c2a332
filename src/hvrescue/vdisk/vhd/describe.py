"""Every structure of a VHD file as plain data, for `hvrescue info`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hvrescue.vdisk.vhd import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd.image import VhdImage


def describe(img: VhdImage) -> dict[str, Any]:
    f = img.footer

    def footer_dict(ft: s.Footer | None) -> dict[str, Any] | None:
        if ft is None:
            return None
        return {
            "cookie": ft.cookie.decode("latin-1"),
            "features": ft.features,
            "version": f"0x{ft.version:08x}",
            "data_offset": ft.data_offset,
            "timestamp": ft.timestamp,
            "timestamp_unix": ft.timestamp + s.VHD_EPOCH,
            "creator_app": ft.creator_app,
            "creator_version": f"0x{ft.creator_version:08x}",
            "creator_host": ft.creator_host,
            "original_size": ft.original_size,
            "current_size": ft.current_size,
            "geometry": {
                "cylinders": ft.cylinders,
                "heads": ft.heads,
                "sectors_per_track": ft.sectors_per_track,
                "size": ft.chs_size,
            },
            "disk_type": s.DISK_TYPES.get(ft.disk_type, ft.disk_type),
            "checksum": f"0x{ft.checksum:08x}",
            "checksum_ok": ft.checksum_ok,
            "unique_id": "{" + str(ft.unique_id) + "}",
            "saved_state": ft.saved_state,
        }

    h = img.header
    return {
        "format": "vhd",
        "file_size": img.source.size,
        "footer": footer_dict(f),
        "footer_offset": img.footer_offset,
        "footer_copy": footer_dict(img.footer_copy),
        "dynamic_header": None
        if h is None
        else {
            "table_offset": h.table_offset,
            "version": f"0x{h.version:08x}",
            "max_table_entries": h.max_table_entries,
            "block_size": h.block_size,
            "checksum": f"0x{h.checksum:08x}",
            "checksum_ok": h.checksum_ok,
            "parent_unique_id": "{" + str(h.parent_unique_id) + "}",
            "parent_timestamp": h.parent_timestamp,
            "parent_name": h.parent_name,
        },
        "parent_locators": img.locators,
        "virtual_size": img.size,
        "block_size": img.block_size,
        "logical_sector_size": img.logical_sector_size,
        "differencing": img.is_differencing,
        "bat": {
            "entries": len(img.bat),
            "allocated": img.allocated_blocks,
            "overlapping": len(img.overlapping),
        },
    }
