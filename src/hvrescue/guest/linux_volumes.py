"""What a Linux guest's volumes say about themselves, read from their own superblocks: the
identity ``/etc/fstab`` names them by (UUID, LABEL; swap areas, FAT, NTFS too), the state the
kernel left an ext2/3/4 filesystem in (clean, needs journal recovery, errors recorded) and the
free space an ext or XFS filesystem really has (the group descriptors and AG headers, which are
kept current, rather than the superblock totals, which are written lazily).

Layouts: ext4's ``struct ext4_super_block`` and ``ext4_group_desc`` (the kernel's
fs/ext4/ext4.h), XFS's ``xfs_dsb`` and ``xfs_agf`` (fs/xfs/libxfs/xfs_format.h), the swap
header of mm/swapfile.c (``SWAPSPACE2``). Every count read here is bounded before use."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from typing import Any, Protocol

EXT_MAGIC = 0xEF53
EXT_STATE_CLEAN, EXT_STATE_ERRORS, EXT_STATE_ORPHANS = 0x1, 0x2, 0x4
EXT_INCOMPAT_RECOVER, EXT_INCOMPAT_64BIT, EXT_INCOMPAT_META_BG = 0x4, 0x80, 0x10
MAX_GROUPS = 1 << 20  # group descriptors read for free space (64 MiB of them at most)
MAX_AGS = 1 << 16
# The filesystem is "full" when what ordinary users can still write is below 1 % of its size
# and below 1 GiB: writes are about to fail with "No space left on device" (ENOSPC).
FULL_FRACTION = 100
FULL_CAP = 1 << 30


class Source(Protocol):
    size: int

    def read(self, offset: int, length: int) -> bytes: ...


def _when(seconds: int) -> str | None:
    if seconds <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _uuid(raw: bytes) -> str | None:
    if len(raw) != 16 or not any(raw):
        return None
    return str(uuid.UUID(bytes=raw))


def swap_identity(source: Source) -> dict[str, Any] | None:
    """A Linux swap area (its signature ends the first page, 4 KiB on x86)."""
    head = source.read(0, 4096)
    if len(head) < 4096 or head[4086:4096] not in (b"SWAPSPACE2", b"SWAP-SPACE"):
        return None
    return {"uuid": _uuid(head[1036:1052]), "label": _text(head[1052:1068]) or None}


def identity(source: Source, filesystem: str | None) -> dict[str, Any]:
    """``uuid`` and ``label`` as blkid shows them (what fstab's UUID= and LABEL= name)."""
    head = source.read(0, 4096)
    out: dict[str, Any] = {"uuid": None, "label": None}
    if filesystem in ("ext2", "ext3", "ext4") and len(head) >= 2048:
        out.update(
            uuid=_uuid(head[1024 + 0x68 : 1024 + 0x78]),
            label=_text(head[1024 + 0x78 : 1024 + 0x88]) or None,
        )
    elif filesystem == "xfs" and len(head) >= 0x78:
        out.update(uuid=_uuid(head[0x20:0x30]), label=_text(head[0x6C:0x78]) or None)
    elif filesystem == "fat32" and len(head) >= 0x52:
        out.update(uuid=_fat_serial(head, 0x43), label=_fat_label(head[0x47:0x52]))
    elif filesystem in ("fat12", "fat16") and len(head) >= 0x36:
        out.update(uuid=_fat_serial(head, 0x27), label=_fat_label(head[0x2B:0x36]))
    elif filesystem == "ntfs" and len(head) >= 0x50:
        out["uuid"] = f"{struct.unpack_from('<Q', head, 0x48)[0]:016X}"
    elif filesystem is None:
        swap = swap_identity(source)
        if swap is not None:
            out.update(swap, filesystem="swap")
    if out["label"] == "":
        out["label"] = None
    return out


def _fat_serial(head: bytes, at: int) -> str:
    serial = struct.unpack_from("<I", head, at)[0]
    return f"{serial >> 16:04X}-{serial & 0xFFFF:04X}"


def _fat_label(raw: bytes) -> str | None:
    text = raw.decode("latin-1").strip()
    return None if text in ("", "NO NAME") else text


# ---------------------------------------------------------------------------- ext2/3/4
def ext_state(sb: bytes) -> dict[str, Any] | None:
    """The state recorded in an ext superblock (1024 bytes) as the kernel and e2fsck left it."""
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    state, _errors_behaviour = struct.unpack_from("<HH", sb, 0x3A)
    mtime, wtime, mnt_count, max_mnt = struct.unpack_from("<IIHh", sb, 0x2C)
    lastcheck = struct.unpack_from("<I", sb, 0x40)[0]
    incompat = struct.unpack_from("<I", sb, 0x60)[0]
    error_count = struct.unpack_from("<I", sb, 0x194)[0]
    needs_recovery = bool(incompat & EXT_INCOMPAT_RECOVER)
    if state & EXT_STATE_ERRORS or error_count:
        word = "errors"
    elif needs_recovery or not state & EXT_STATE_CLEAN:
        word = "not-clean"
    else:
        word = "clean"
    out: dict[str, Any] = {
        "state": word,
        "state_flags": state,
        "needs_recovery": needs_recovery,
        "orphans": bool(state & EXT_STATE_ORPHANS),
        "error_count": error_count,
        "last_mounted": _text(sb[0x88:0xC8]) or None,
        "mount_time": _when(mtime),
        "write_time": _when(wtime),
        "mount_count": mnt_count,
        "max_mount_count": max_mnt,
        "last_check": _when(lastcheck),
    }
    if error_count:
        first_time, first_ino, first_block = struct.unpack_from("<IIQ", sb, 0x198)
        last_time, last_ino, last_line, last_block = struct.unpack_from("<IIIQ", sb, 0x1CC)
        out.update(
            first_error_time=_when(first_time),
            first_error_function=_text(sb[0x1A8:0x1C8]) or None,
            first_error_line=struct.unpack_from("<I", sb, 0x1C8)[0],
            first_error_inode=first_ino,
            first_error_block=first_block,
            last_error_time=_when(last_time),
            last_error_function=_text(sb[0x1E0:0x200]) or None,
            last_error_line=last_line,
            last_error_inode=last_ino,
            last_error_block=last_block,
        )
    return out


def ext_space(source: Source) -> dict[str, Any] | None:
    """Size, free and reserved bytes: the free blocks summed over the group descriptors."""
    sb = source.read(1024, 1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    log_bs = struct.unpack_from("<I", sb, 0x18)[0]
    if log_bs > 6:
        return None
    bs = 1024 << log_bs
    incompat = struct.unpack_from("<I", sb, 0x60)[0]
    wide = bool(incompat & EXT_INCOMPAT_64BIT)
    blocks, reserved, free_sb = struct.unpack_from("<III", sb, 0x04)
    if wide:
        hi_blocks, hi_reserved, hi_free = struct.unpack_from("<III", sb, 0x150)
        blocks |= hi_blocks << 32
        reserved |= hi_reserved << 32
        free_sb |= hi_free << 32
    first_data = struct.unpack_from("<I", sb, 0x14)[0]
    per_group = struct.unpack_from("<I", sb, 0x20)[0]
    desc_size = struct.unpack_from("<H", sb, 0xFE)[0] if wide else 32
    if not per_group or blocks <= first_data or desc_size < 32 or desc_size > 1024:
        return None
    groups = -(-(blocks - first_data) // per_group)
    free, method = free_sb, "superblock"
    if groups <= MAX_GROUPS and not incompat & EXT_INCOMPAT_META_BG:
        gdt_at = (first_data + 1) * bs
        table = source.read(gdt_at, groups * desc_size)
        if len(table) == groups * desc_size:
            total = 0
            for g in range(groups):
                at = g * desc_size
                count = struct.unpack_from("<H", table, at + 0x0C)[0]
                if wide and desc_size >= 64:
                    count |= struct.unpack_from("<H", table, at + 0x2C)[0] << 16
                total += count
            if total <= blocks:
                free, method = total, "group-descriptors"
    # Counts a damaged superblock gives are kept within the filesystem's size.
    return _space(blocks * bs, min(free, blocks) * bs, min(reserved, blocks) * bs, method)


# ---------------------------------------------------------------------------- XFS
def xfs_space(source: Source) -> dict[str, Any] | None:
    """Size and free bytes: each allocation group's free blocks and free list (its AGF)."""
    sb = source.read(0, 512)
    if len(sb) < 0xD0 or sb[:4] != b"XFSB":
        return None
    bs = struct.unpack_from(">I", sb, 0x04)[0]
    dblocks = struct.unpack_from(">Q", sb, 0x08)[0]
    agblocks, agcount = struct.unpack_from(">II", sb, 0x54)
    sectsize = struct.unpack_from(">H", sb, 0x66)[0]
    fdblocks = struct.unpack_from(">Q", sb, 0x90)[0]
    if not 512 <= bs <= 65536 or not agblocks or not 0 < agcount <= MAX_AGS or sectsize < 512:
        return None
    total, method = 0, "allocation-groups"
    for ag in range(agcount):
        agf = source.read(ag * agblocks * bs + sectsize, 64)
        if len(agf) < 64 or agf[:4] != b"XAGF":
            total, method = fdblocks, "superblock"
            break
        flcount, freeblks = struct.unpack_from(">II", agf, 0x30)
        total += freeblks + flcount
    return _space(dblocks * bs, min(total, dblocks) * bs, 0, method)


def _space(size: int, free: int, reserved: int, method: str) -> dict[str, Any]:
    available = max(0, free - reserved)
    used_percent = round(100.0 * (size - free) / size, 1) if size else None
    available_percent = round(100.0 * available / size, 2) if size else None
    full = size > 0 and available < min(size // FULL_FRACTION, FULL_CAP)
    return {
        "size_bytes": size,
        "free_bytes": free,
        "reserved_bytes": reserved,
        "available_bytes": available,
        "used_percent": used_percent,
        "available_percent": available_percent,
        "full": full,
        "space_from": method,
    }
