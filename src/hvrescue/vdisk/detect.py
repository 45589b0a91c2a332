"""Recognise a virtual-disk file by content: a signature of the format must be in it somewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError, NotADiskError
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk import signatures as sig

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd import VhdImage
    from hvrescue.vdisk.vhdx import VhdxImage

    AnyImage = VhdxImage | VhdImage

VHDX_SUFFIXES = (".vhdx", ".avhdx")
VHD_SUFFIXES = (".vhd", ".avhd")
DISK_SUFFIXES = VHDX_SUFFIXES + VHD_SUFFIXES


def __getattr__(name: str) -> Any:
    """``AnyImage`` (both readers) imported on first use: recognising a file reads signatures
    alone, and opening one imports only its own format's reader."""
    if name == "AnyImage":
        from hvrescue.vdisk.vhd import VhdImage
        from hvrescue.vdisk.vhdx import VhdxImage

        return VhdxImage | VhdImage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sniff(source: ReadOnlySource) -> str | None:
    """'vhdx', 'vhd' or None, from signatures alone."""
    size = source.size
    if size == 0:
        return None
    head = source.read(0, 8, tolerant=True)
    if head == sig.VHDX_FILE_SIGNATURE:
        return "vhdx"
    if head == sig.VHD_FOOTER_COOKIE:
        return "vhd"
    for off in (size - sig.VHD_FOOTER_SIZE, size - 511):
        if off >= 0 and source.read(off, 8, tolerant=True) == sig.VHD_FOOTER_COOKIE:
            return "vhd"
    for off in sig.VHDX_HEADER_OFFSETS:
        if source.read(off, 4, tolerant=True) == sig.VHDX_HEADER_SIGNATURE:
            return "vhdx"
    for off in sig.VHDX_REGION_TABLE_OFFSETS:
        if source.read(off, 4, tolerant=True) == sig.VHDX_REGION_SIGNATURE:
            return "vhdx"
    return None


# Regions of a VHDX (log, metadata, BAT) start at multiples of 1 MiB (MS-VHDX 2.2.3); the log
# and the metadata table begin with a signature. Looking for them at the first MiB boundaries
# recognises a VHDX whose first MiB (identifier, headers, region tables) was overwritten.
_MIB = 1024 * 1024
_DEEP_MIB_POSITIONS = 256


def sniff_deep(source: ReadOnlySource) -> str | None:
    """Like :func:`sniff`, and also any VHDX or VHD signature that survives elsewhere: a log
    entry or metadata table at a 1 MiB boundary, a VHD dynamic header at its usual place."""
    kind = sniff(source)
    if kind is not None or source.size == 0:
        return kind
    size = source.size
    if size >= 1024 and source.read(512, 8, tolerant=True) == sig.VHD_DYNAMIC_COOKIE:
        return "vhd"
    for k in range(1, min(size // _MIB + 1, _DEEP_MIB_POSITIONS + 1)):
        head = source.read(k * _MIB, 8, tolerant=True)
        if head == sig.VHDX_METADATA_SIGNATURE or head[:4] == sig.VHDX_LOG_ENTRY_SIGNATURE:
            return "vhdx"
    return None


def open_image(path: str) -> AnyImage:
    """Open ``path`` read-only as a VHDX or VHD image. Raises NotADiskError if it is neither.

    A file is taken for a disk only when some signature of the format is present in it (the
    identifier, a header, a region table, a log entry or the metadata table; the VHD footer,
    its copy or the dynamic header), however damaged the rest is. The name alone says only
    which format a damaged file was meant to be: an empty file, text or random bytes named
    ``.vhdx`` are not disks, and describing them as damaged disks would bury the user in
    garbage structures."""
    source = ReadOnlySource(path)
    try:
        kind = sniff_deep(source)
    except BaseException:
        source.close()
        raise
    if kind == "vhdx":
        from hvrescue.vdisk.vhdx import VhdxImage

        return VhdxImage(source)
    if kind == "vhd":
        from hvrescue.vdisk.vhd import VhdImage

        return VhdImage(source)
    size = source.size
    source.close()
    if size == 0:
        raise NotADiskError("error.not-a-disk.empty", path=path)
    if path.lower().endswith(DISK_SUFFIXES):
        raise NotADiskError("error.not-a-disk.no-signature", path=path)
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
            for off in (source.size - sig.VHD_FOOTER_SIZE, 0):
                raw = source.read(off, sig.VHD_FOOTER_SIZE, tolerant=True)
                if raw[:8] == sig.VHD_FOOTER_COOKIE and len(raw) == sig.VHD_FOOTER_SIZE:
                    from hvrescue.vdisk.vhd.structures import Footer

                    footer = Footer.parse(raw)
                    return "vhd", "{" + str(footer.unique_id) + "}", footer.timestamp
            return "vhd", None, None
        return None
    finally:
        source.close()


def _vhdx_identity(source: ReadOnlySource) -> str | None:
    from hvrescue.vdisk.crc import crc32c_with_field_zeroed
    from hvrescue.vdisk.vhdx import structures as vhdx_s

    best: vhdx_s.Header | None = None
    for off in sig.VHDX_HEADER_OFFSETS:
        raw = source.read(off, sig.VHDX_HEADER_SIZE, tolerant=True)
        if len(raw) < sig.VHDX_HEADER_SIZE or raw[:4] != sig.VHDX_HEADER_SIGNATURE:
            continue
        hdr = vhdx_s.Header.parse(raw)
        if crc32c_with_field_zeroed(raw, 4) != hdr.checksum:
            continue
        if best is None or hdr.sequence_number > best.sequence_number:
            best = hdr
    return vhdx_s.guid_str(best.data_write_guid) if best else None
