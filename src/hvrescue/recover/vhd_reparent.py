"""`reparent` for VHD differencing disks: a copy whose dynamic header names the new parent.

The parent locator data (W2ru relative, W2ku absolute, UTF-16LE) is written after the last data
block, where the footer was, and the footer follows it; the header's locator entries, parent
unicode name (UTF-16BE), parent unique id (only changed with --ignore-id-mismatch) and parent
time stamp (the new parent's footer time, which Hyper-V compares) are rewritten, and its
checksum recomputed. Blocks stay where they are.
"""

from __future__ import annotations

import ntpath
import os
import struct
import uuid

from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.platform import pwrite, set_size
from hvrescue.recover.guard import ContentGuard
from hvrescue.recover.rewrite import Change, guard_map
from hvrescue.recover.vhd_fix import (
    HEADER_CHECKSUM_AT,
    HEADER_SIZE,
    _copy,
    _data_end,
    _with_checksum,
)
from hvrescue.vdisk.vhd import structures as s
from hvrescue.vdisk.vhd.image import VhdImage

SECTOR = 512


def reparent_vhd(
    path: str,
    out: str,
    *,
    parent_identity: str,
    parent_timestamp: int,
    relative: str,
    absolute: str | None,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
) -> list[Change]:
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    img = VhdImage.open(path)
    try:
        if img.footer is None or img.header is None or img.footer.disk_type != 4:
            raise InputError("error.reparent.not-differencing", path=path)
        src = img.source
        hdr_off = img.footer.data_offset
        header = bytearray(src.read(hdr_off, HEADER_SIZE, tolerant=True))
        old = {e["platform"]: e.get("path", "") for e in img.locators}
        old_name, old_id = img.header.parent_name, str(img.header.parent_unique_id)
        data_end = max(_data_end(img), hdr_off + HEADER_SIZE)
        end = -(-data_end // SECTOR) * SECTOR
        blobs: list[tuple[bytes, bytes]] = [(b"W2ru", relative.encode("utf-16-le"))]
        if absolute:
            blobs.append((b"W2ku", absolute.encode("utf-16-le")))
        for i in range(8):
            struct.pack_into(">4sIIIQ", header, 576 + 24 * i, b"\0" * 4, 0, 0, 0, 0)
        placed: list[tuple[int, bytes]] = []
        pos = end
        for i, (code, blob) in enumerate(blobs):
            space = -(-len(blob) // SECTOR) or 1
            struct.pack_into(">4sIIIQ", header, 576 + 24 * i, code, space, len(blob), 0, pos)
            placed.append((pos, blob))
            pos += space * SECTOR
        name = ntpath.basename(relative).encode("utf-16-be")[:512]
        header[64 : 64 + 512] = name + bytes(512 - len(name))
        new_id = uuid.UUID(parent_identity.strip("{}"))
        header[40:56] = new_id.bytes
        struct.pack_into(">I", header, 56, parent_timestamp & 0xFFFFFFFF)
        struct.pack_into(">I", header, HEADER_CHECKSUM_AT, s.checksum(bytes(header), 36))
        footer = src.read(src.size - s.FOOTER_SIZE, s.FOOTER_SIZE, tolerant=True)
        if footer[:8] != s.FOOTER_COOKIE:
            footer = src.read(0, s.FOOTER_SIZE, tolerant=True)
        fixed_footer = False
        if struct.unpack_from(">I", footer, 64)[0] != s.checksum(footer, 64):
            footer = _with_checksum(footer, 64)
            fixed_footer = True
        # The copy is cut or extended to the data's end: blocks the file was cut inside would
        # become zeros, so they (and read errors) refuse the copy unless allowed.
        guard = ContentGuard(img, allow_gaps)
        with atomic_output(out, check=lambda _tmp: guard_map(guard, out, argv)) as fd:
            _copy(src, fd, guard)
            set_size(fd, end)
            pwrite(fd, bytes(header), hdr_off)
            for offset, blob in placed:
                pwrite(fd, blob + bytes(-len(blob) % SECTOR or 0), offset)
            pwrite(fd, footer, pos)
            pwrite(fd, footer, 0)
            set_size(fd, pos + s.FOOTER_SIZE)
        changes = [
            Change(
                "rewrite.parent-locator",
                {
                    "old": "; ".join(f"{k}={v}" for k, v in old.items()) + f"; name={old_name}",
                    "new": f"W2ru={relative}" + (f"; W2ku={absolute}" if absolute else ""),
                },
            )
        ]
        if fixed_footer:
            changes.append(Change("repair.vhd.footer-checksum", {}))
        if str(new_id) != old_id:
            changes.append(Change("rewrite.parent-id", {"old": old_id, "new": str(new_id)}))
        if guard.gaps:
            changes.append(Change("rewrite.written-with-gaps", guard.summary(out)))
        return changes
    finally:
        img.close()
