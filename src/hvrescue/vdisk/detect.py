"""Recognise a virtual-disk file by content (and by name only when the content is too damaged)."""

from __future__ import annotations

import os

from hvrescue.errors import HvrescueError, NotADiskError
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.vhd import VhdImage
from hvrescue.vdisk.vhd import structures as vhd_s
from hvrescue.vdisk.vhdx import VhdxImage
from hvrescue.vdisk.vhdx import structures as vhdx_s

VHDX_SUFFIXES = (".vhdx", ".avhdx")
VHD_SUFFIXES = (".vhd", ".avhd")
DISK_SUFFIXES = VHDX_SUFFIXES + VHD_SUFFIXES

AnyImage = VhdxImage | VhdImage


def sniff(source: ReadOnlySource) -> str | None:
    """'vhdx', 'vhd' or None, from signatures alone."""
    size = source.size
    if size == 0:
        return None
    head = source.read(0, 8, tolerant=True)
    if head == vhdx_s.FILE_SIGNATURE:
        return "vhdx"
    if head == vhd_s.FOOTER_COOKIE:
        return "vhd"
    for off in (size - vhd_s.FOOTER_SIZE, size - 511):
        if off >= 0 and source.read(off, 8, tolerant=True) == vhd_s.FOOTER_COOKIE:
            return "vhd"
    for off in vhdx_s.HEADER_OFFSETS:
        if source.read(off, 4, tolerant=True) == vhdx_s.HEADER_SIGNATURE:
            return "vhdx"
    for off in vhdx_s.REGION_TABLE_OFFSETS:
        if source.read(off, 4, tolerant=True) == vhdx_s.REGION_SIGNATURE:
            return "vhdx"
    return None


def open_image(path: str) -> AnyImage:
    """Open ``path`` read-only as a VHDX or VHD image. Raises NotADiskError if it is neither."""
    source = ReadOnlySource(path)
    kind = sniff(source)
    if kind is None:
        suffix = os.path.splitext(path)[1].lower()
        if suffix in VHDX_SUFFIXES:
            kind = "vhdx"
        elif suffix in VHD_SUFFIXES:
            kind = "vhd"
    if kind == "vhdx":
        return VhdxImage(source)
    if kind == "vhd":
        return VhdImage(source)
    size = source.size
    source.close()
    if size == 0:
        raise NotADiskError("error.not-a-disk.empty", path=path)
    raise NotADiskError("error.not-a-disk", path=path)


def probe_identity(path: str) -> tuple[str, str | None, int | None] | None:
    """Cheap identity of a candidate parent: (format, identity, timestamp), headers only."""
    try:
        source = ReadOnlySource(path, retries=1)
    except (HvrescueError, OSError):
        # An unreadable candidate is simply not a match; the search goes on.
        return None
    try:
        kind = sniff(source)
        if kind == "vhdx":
            return "vhdx", _vhdx_identity(source), None
        if kind == "vhd":
            for off in (source.size - vhd_s.FOOTER_SIZE, 0):
                raw = source.read(off, vhd_s.FOOTER_SIZE, tolerant=True)
                if raw[:8] == vhd_s.FOOTER_COOKIE and len(raw) == vhd_s.FOOTER_SIZE:
                    footer = vhd_s.Footer.parse(raw)
                    return "vhd", "{" + str(footer.unique_id) + "}", footer.timestamp
            return "vhd", None, None
        return None
    finally:
        source.close()


def _vhdx_identity(source: ReadOnlySource) -> str | None:
    from hvrescue.vdisk.crc import crc32c_with_field_zeroed

    best: vhdx_s.Header | None = None
    for off in vhdx_s.HEADER_OFFSETS:
        raw = source.read(off, vhdx_s.HEADER_SIZE, tolerant=True)
        if len(raw) < vhdx_s.HEADER_SIZE or raw[:4] != vhdx_s.HEADER_SIGNATURE:
            continue
        hdr = vhdx_s.Header.parse(raw)
        if crc32c_with_field_zeroed(raw, 4) != hdr.checksum:
            continue
        if best is None or hdr.sequence_number > best.sequence_number:
            best = hdr
    return vhdx_s.guid_str(best.data_write_guid) if best else None
