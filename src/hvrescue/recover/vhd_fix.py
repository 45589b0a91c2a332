"""`repair` for VHD: a copy whose footer (at the end, and its copy at the start of a dynamic
disk) and dynamic header are whole again, their checksums right.

The footer is taken from whichever copy is intact (cookie and checksum), else from one with a
good cookie whose checksum is recomputed. It goes where the footer belongs: over a damaged one,
or after the last block when the file was cut short.
"""

from __future__ import annotations

import os
import struct

from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.io.source import ReadOnlySource
from hvrescue.platform import make_sparse, pwrite, set_size
from hvrescue.recover.guard import ContentGuard
from hvrescue.recover.rewrite import MAX_EXTEND, Change, guard_map
from hvrescue.vdisk.vhd import structures as s
from hvrescue.vdisk.vhd.image import VhdImage

CHUNK = 4 * 1024 * 1024
FOOTER_CHECKSUM_AT = 64
HEADER_CHECKSUM_AT = 36
HEADER_SIZE = 1024


def _with_checksum(raw: bytes, at: int) -> bytes:
    fixed = bytearray(raw)
    struct.pack_into(">I", fixed, at, s.checksum(bytes(fixed), at))
    return bytes(fixed)


def _intact(raw: bytes) -> bool:
    return raw[:8] == s.FOOTER_COOKIE and struct.unpack_from(">I", raw, 64)[0] == s.checksum(
        raw, 64
    )


def repair_vhd(
    path: str, out: str, allow_gaps: bool = False, argv: list[str] | None = None
) -> list[Change]:
    """Write ``out``; what was changed. Blocks the file was cut inside get room as zeros in the
    copy, so they (and read errors) refuse the repair unless ``allow_gaps``."""
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    img = VhdImage.open(path)
    try:
        if img.footer is None:
            raise InputError("error.repair.no-footer", path=path)
        src = img.source
        size = src.size
        # Where the parser found the footer: the last 512 bytes, or Virtual PC's 511 (its
        # reserved last byte, zero, is not in the file: the copy gets it back).
        end_at = img.footer_offset if img.footer_offset is not None else size - s.FOOTER_SIZE
        end_at = max(0, end_at)
        end_raw = src.read(end_at, s.FOOTER_SIZE, tolerant=True)
        short = len(end_raw) == s.FOOTER_SIZE - 1 and end_raw[:8] == s.FOOTER_COOKIE
        if short:
            end_raw += b"\0"
        copy_raw = src.read(0, s.FOOTER_SIZE, tolerant=True) if size >= 1024 else b""
        candidates = [r for r in (end_raw, copy_raw) if len(r) == s.FOOTER_SIZE]
        good = next((r for r in candidates if _intact(r)), None)
        changes: list[Change] = []
        if good is None:
            base = next((r for r in candidates if r[:8] == s.FOOTER_COOKIE), None)
            if base is None:  # the footer the parser used could not be read again
                raise InputError("error.repair.no-footer", path=path)
            good = _with_checksum(base, FOOTER_CHECKSUM_AT)
            changes.append(Change("repair.vhd.footer-checksum", {}))
        dynamic = img.footer.disk_type in (3, 4)
        # Where the footer goes: over the old one when its cookie is there or nothing follows
        # the data; after the data when the file was cut short.
        data_end = _data_end(img) if dynamic else img.size
        if end_raw[:8] == s.FOOTER_COOKIE or size - s.FOOTER_SIZE >= data_end:
            footer_at = end_at if end_raw[:8] == s.FOOTER_COOKIE else size - s.FOOTER_SIZE
        else:
            footer_at = max(size, data_end)
            changes.append(Change("repair.vhd.footer-appended", {"offset": footer_at}))
        if (end_raw != good or short) and footer_at == end_at:
            changes.append(Change("repair.vhd.footer-rewritten", {"offset": footer_at}))
        header_fix: bytes | None = None
        if dynamic:
            if copy_raw != good:
                changes.append(Change("repair.vhd.footer-copy-rewritten", {}))
            offset = img.footer.data_offset
            raw = src.read(offset, HEADER_SIZE, tolerant=True)
            if raw[:8] == b"cxsparse" and len(raw) == HEADER_SIZE:
                stored = struct.unpack_from(">I", raw, HEADER_CHECKSUM_AT)[0]
                if stored != s.checksum(raw, HEADER_CHECKSUM_AT):
                    header_fix = _with_checksum(raw, HEADER_CHECKSUM_AT)
                    changes.append(Change("repair.vhd.header-checksum", {"offset": offset}))
        guard = ContentGuard(img, allow_gaps)
        with atomic_output(out, check=lambda _tmp: guard_map(guard, out, argv)) as fd:
            _copy(src, fd, guard)
            if dynamic:
                pwrite(fd, good, 0)
                if header_fix is not None:
                    pwrite(fd, header_fix, img.footer.data_offset)
            pwrite(fd, good, footer_at)
            set_size(fd, footer_at + s.FOOTER_SIZE)
        if guard.gaps:
            changes.append(Change("rewrite.written-with-gaps", guard.summary(out)))
        return changes
    finally:
        img.close()


def _data_end(img: VhdImage) -> int:
    """Where the data ends: past the BAT and the last block. Blocks that overlap others, or lie
    absurdly far past the end of the file (more than MAX_EXTEND), get no room: the copy would
    be mostly a hole made for a pointer, and they stay undefined in it (the check says so)."""
    end = 0
    if img.header is not None:
        end = img.header.table_offset + 4 * len(img.bat)
        end = -(-end // 512) * 512
    limit = img.source.size + MAX_EXTEND
    for block, entry in enumerate(img.bat):
        if entry == 0xFFFFFFFF or block in img.overlapping:
            continue
        block_end = entry * 512 + img.bitmap_size + img.block_size
        if block_end <= limit:
            end = max(end, block_end)
    return end


def _copy(src: ReadOnlySource, fd: int, guard: ContentGuard) -> None:
    """The file's bytes, holes kept; read errors go through the guard (refused, or listed)."""
    segments = src.data_segments()
    if any(not is_data for _, _, is_data in segments):
        make_sparse(fd)  # else NTFS writes zeros into every hole skipped here
    for offset, length, is_data in segments:
        if not is_data:
            continue
        pos, end = offset, offset + length
        while pos < end:
            n = min(CHUNK, end - pos)
            pwrite(fd, guard.read(pos, n), pos)
            pos += n
