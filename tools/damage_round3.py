#!/usr/bin/env python3
"""Damage campaign, round three: other writers, other damage.

Rounds one and two (``damage_campaign.py``, ``damage_real.py``) damaged disks qemu wrote with
one set of options. Round three takes other writers and other options: ``qemu-img create`` and
``convert`` to VHD with CHS rounding (no ``force_size``) and fixed/dynamic subformats, VHDX
with 8 and 256 MiB blocks, ``block_state_zero=off``, a 4 MiB log, ``subformat=fixed``, 4 KiB
logical sectors (patched in: qemu 7.2 has no ``logical_sector_size``), a BAT of more than one
4 KiB page; Windows' own disks from ../shared/corpus/external (gunzipped into the work folder).
The damage is what the earlier rounds left out: cross-linked blocks on those writers, a BAT
entry into the log or the BAT itself, a block exactly one block past the end of the file or
partly past it, files cut 1, 511 and 4095 bytes short, a torn BAT page, two valid headers
with different sequence numbers and log GUIDs, a log entry with a huge descriptor count, a
metadata table of 2047 entries, parent locators with only a relative, UNC or other host's
drive-letter path, the VHD saved-state flag, a VHD block whose bitmap is in the file and its
data past the end, a footer copy disagreeing with the footer, a sparse hole inside a block.

Every variant is run through ``info``, ``check`` (and ``check --deep``), ``chain``, ``hash``,
``merge`` (VHDX, raw, raw with ``--allow-gaps``, and into a folder that does not exist),
``salvage`` and ``repair`` as separate processes, with round one's invariants (no traceback,
internal error, hang or memory blow-up; documented exit codes; ``check`` not clean on visible
damage and never exit 0 while a warning stands; inputs byte-identical with their mtime) and:

- ``hash`` agrees with every peer that reads the variant without error (qemu-img, libvhdi
  through pyvhdi, dissect.hypervisor) unless hvrescue reports the damage, and outside the
  ranges hvrescue calls undefined the salvaged image equals each peer's byte for byte (peers
  that do not replay a VHDX log, or read a differencing disk alone, are not asked);
- where the variant says which ranges are undefined, ``check --json`` names exactly those,
  and ``hash --json`` and ``check --deep`` the same ones;
- ``salvage``, ``merge --allow-gaps`` and ``hash`` agree: their images hash as ``hash`` does,
  exit 0 only when ``hash`` found the content complete, and the ddrescue map's bad ranges are
  the undefined ones; ``repair`` and ``merge`` write a clean, verified copy only of complete
  content, and refuse without leaving an output.

What round three found wrong (fixed; tests/test_damage_round3.py): the VHD saved-state flag
was not reported; a log writing into the header section or into itself was replayed with no
word; ``repair`` of a VHD ending in a 511-byte footer stopped with an internal error; a VHD
BAT sector lost (torn) left its blocks' data unreported; a footer copy disagreeing with the
footer did not say which one was read; a full 256 MiB log took about 1 GiB of memory to
replay (``check``, ``hash``), more in ``info`` and ``repair``, which parsed the file twice.

Usage: python3 tools/damage_round3.py [--work DIR] [--only NAME[,NAME]] [--quick] [--no-peers]
       [--json]     (--quick leaves out the variants on large disks, marked slow_only)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import damage_campaign as dc  # round one's helpers (and round two's, through it)

KiB, MiB = 1024, 1024 * 1024
rd, wr, truncate = dc.rd, dc.wr, dc.truncate
EXTERNAL = dc.SHARED / "corpus" / "external"
PEER_TIMEOUT = 120


# ---------------------------------------------------------------------------- bases


def qemu(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=300)


def _qemu_vhdx(folder: Path, opts: str, size: int, writes: tuple[str, ...]) -> Path:
    path = folder / "disk.vhdx"
    qemu("qemu-img", "create", "-q", "-f", "vhdx", "-o", opts, str(path), str(size))
    args = ["qemu-io", "-f", "vhdx"]
    for w in writes:
        args += ["-c", w]
    qemu(*args, str(path))
    return path


def _qemu_vpc(folder: Path, opts: str, size: int, writes: tuple[str, ...]) -> Path:
    path = folder / "disk.vhd"
    qemu("qemu-img", "create", "-q", "-f", "vpc", "-o", opts, str(path), str(size))
    args = ["qemu-io", "-f", "vpc"]
    for w in writes:
        args += ["-c", w]
    qemu(*args, str(path))
    return path


def _raw_pattern(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, byte, n in ((0, 0x5A, MiB), (3 * MiB, 0x33, 512 * KiB), (size - 4096, 0x7E, 4096)):
            f.seek(off)
            f.write(bytes([byte]) * n)


def _gunzip(src: Path, dest: Path) -> Path:
    with gzip.open(src) as f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out, 1 << 20)
    return dest


W8 = ("write -P 0x5a 0 1M", "write -P 0x33 20M 3M", "write -P 0x7e 60M 4k")
W1 = dc.QEMU_WRITES


def build_base(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "q-vhdx-8m":
        return _qemu_vhdx(folder, "block_size=8M,log_size=1M", 64 * MiB, W8)
    if kind == "q-vhdx-256m":
        return _qemu_vhdx(
            folder, "block_size=256M", 600 * MiB, ("write -P 0x5a 0 1M", "write -P 0x44 300M 64k")
        )
    if kind == "q-vhdx-nozero":
        return _qemu_vhdx(folder, "block_size=1M,block_state_zero=off", 8 * MiB, W1)
    if kind == "q-vhdx-log4":
        return _qemu_vhdx(folder, "block_size=1M,log_size=4M", 8 * MiB, W1)
    if kind == "q-vhdx-fixed":
        return _qemu_vhdx(folder, "block_size=1M,subformat=fixed", 8 * MiB, W1)
    if kind == "q-vhdx-4k":  # qemu 7.2 cannot write 4 KiB logical sectors: patched in
        path = _qemu_vhdx(folder, "block_size=1M,log_size=1M", 8 * MiB, W1)
        v = dc.Vhdx.open(path)
        wr(path, v.item(dc.LOGICAL_SECTOR_SIZE)[1], struct.pack("<I", 4096))
        return path
    if kind == "q-vhdx-2pages":  # 1 GiB of 1 MiB blocks: the BAT spans three 4 KiB pages
        return _qemu_vhdx(
            folder,
            "block_size=1M",
            1024 * MiB,
            ("write -P 0x5a 0 1M", "write -P 0x61 100M 1M", "write -P 0x62 700M 1M"),
        )
    if kind == "q-vpc-dyn-chs":  # no force_size: qemu rounds 10 MiB to a CHS geometry
        return _qemu_vpc(folder, "subformat=dynamic", 10 * MiB, W1)
    if kind == "q-vpc-fixed-chs":
        return _qemu_vpc(folder, "subformat=fixed", 10 * MiB, W1)
    if kind in ("q-vpc-conv-dyn", "q-vpc-conv-fixed"):
        raw = folder / "src.raw"
        _raw_pattern(raw, 8 * MiB)
        path = folder / "disk.vhd"
        sub = kind.rsplit("-", 1)[1].replace("dyn", "dynamic")
        qemu(
            *("qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc"),
            *("-o", f"subformat={sub},force_size=on", str(raw), str(path)),
        )
        raw.unlink()
        return path
    if kind in ("q-vhdx-conv-nozero", "q-vhdx-conv-fixed"):
        raw = folder / "src.raw"
        _raw_pattern(raw, 8 * MiB)
        path = folder / "disk.vhdx"
        opts = "block_size=1M," + (
            "block_state_zero=off" if kind.endswith("nozero") else "subformat=fixed"
        )
        qemu(
            "qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", "-o", opts, str(raw), str(path)
        )
        raw.unlink()
        return path
    if kind == "q-vhdx-log256":  # the largest log hvrescue reads into memory
        return _qemu_vhdx(
            folder, "block_size=1M,log_size=256M", 512 * MiB, ("write -P 0x5a 0 300M",)
        )
    if kind == "ext-win-xfs5":  # Windows 10's VHDX (DiscUtils' test data), 10 GiB, 32 MiB blocks
        return _gunzip(EXTERNAL / "discutils-xfs5" / "xfs5.vhdx.gz", folder / "xfs5.vhdx")
    if kind == "ext-win-dyn":  # Windows' dynamic VHD (node-vhd's test data), 512 MiB
        return _gunzip(EXTERNAL / "nodevhd-dynamic" / "dynamic.vhd.gz", folder / "dynamic.vhd")
    if kind == "q-vhdx-odd-size":  # 8.5 MiB: the last 1 MiB block is half inside the disk
        return _qemu_vhdx(
            folder, "block_size=1M", 8 * MiB + 512 * KiB, (*W1, "write -P 0x7f 8M 512k")
        )
    if kind == "chain-4k":  # hvrescue's writer: 4 KiB logical sectors, a partial block
        return _chain_4k(folder)
    if kind.startswith("loc-"):
        return _chain_with_locator(folder, kind.removeprefix("loc-"))
    return dc.build_base(kind, folder)


def _chain_with_locator(folder: Path, how: str) -> Path:
    """A VHDX chain (hvrescue's writer: qemu writes no differencing VHDX) whose child's
    locator holds only one path: ``relative``, ``unc`` or ``otherhost`` (another host's drive
    letter); ``absolute-moved``: both, the parent moved into a subfolder."""
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    base_id = uuid.uuid4()
    parent_dir = folder / "parents" if how == "moved" else folder
    parent_dir.mkdir(parents=True, exist_ok=True)
    write_vhdx(
        str(parent_dir / "base.vhdx"),
        VhdxSpec(virtual_size=8 * MiB, block_size=MiB, data_write_guid=base_id),
        {0: b"\x11" * MiB},
    )
    spec = {
        "relative": ParentSpec(base_id, relative_path=".\\base.vhdx"),
        "unc": ParentSpec(base_id, absolute_win32_path="\\\\fileserver\\vms$\\web01\\base.vhdx"),
        "otherhost": ParentSpec(base_id, absolute_win32_path="E:\\Hyper-V\\web01\\base.vhdx"),
        "moved": ParentSpec(
            base_id,
            relative_path=".\\base.vhdx",
            absolute_win32_path="C:\\ClusterStorage\\Volume1\\web01\\base.vhdx",
        ),
    }[how]
    child = folder / "child.avhdx"
    write_vhdx(
        str(child),
        VhdxSpec(virtual_size=8 * MiB, block_size=MiB, parent=spec),
        {2 * MiB: b"\x22" * MiB},
    )
    return child


def _chain_4k(folder: Path) -> Path:
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    base_id = uuid.uuid4()
    write_vhdx(
        str(folder / "base.vhdx"),
        VhdxSpec(8 * MiB, block_size=MiB, logical_sector_size=4096, data_write_guid=base_id),
        {0: b"\x11" * (4 * MiB)},
    )
    child = folder / "child.avhdx"
    write_vhdx(
        str(child),
        VhdxSpec(
            8 * MiB,
            block_size=MiB,
            logical_sector_size=4096,
            parent=ParentSpec(base_id, relative_path=".\\base.vhdx"),
        ),
        {2 * MiB + 128 * KiB: b"\x22" * (64 * KiB)},
    )
    return child


# ---------------------------------------------------------------------------- damage


def _entry_of(v: dc.Vhdx, block: int) -> tuple[int, int]:
    return v.entry(v.bat_index(block))


def bat_cross_link(a: int, b: int) -> Callable[[Path], None]:
    """Block ``b``'s entry made to point at block ``a``'s file space (both FULLY_PRESENT)."""

    def damage(p: Path) -> None:
        v = dc.Vhdx.open(p)
        _, off = _entry_of(v, a)
        v.set_entry(v.bat_index(b), 6, off)

    return damage


def bat_into(what: str, block: int = 0) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        v = dc.Vhdx.open(p)
        if what == "log":
            h = dc.vhdx_headers(p)[0]
            off = struct.unpack_from("<Q", h, 72)[0]
        elif what == "bat":
            off = v.bat
        else:
            raise ValueError(what)
        v.set_entry(v.bat_index(block), 6, off)

    return damage


def bat_one_block_past_eof(p: Path) -> None:
    """An unallocated block given the file space right after the end of the file."""
    v = dc.Vhdx.open(p)
    size = os.path.getsize(p)
    end = -(-size // MiB) * MiB
    v.set_entry(v.bat_index(1), 6, end)


def bat_partly_past_eof(p: Path) -> None:
    """A block starting in the file's last MiB (added as zeros) and running past its end."""
    v = dc.Vhdx.open(p)
    size = -(-os.path.getsize(p) // MiB) * MiB
    truncate(p, size + MiB)
    v.set_entry(v.bat_index(1), 6, size)


def cut_short(n: int) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        truncate(p, os.path.getsize(p) - n)

    return damage


def torn_bat_stale_page(p: Path) -> None:
    """The BAT's second 4 KiB page as it was before the update: block 100's entry lost (its
    data left in the file), block 700's (third page) pointing at block 0's file space."""
    v = dc.Vhdx.open(p)
    wr(p, v.bat + 4 * KiB, bytes(4 * KiB))
    _, off0 = _entry_of(v, 0)
    v.set_entry(v.bat_index(700), 6, off0)


def torn_bat_garbage(p: Path) -> None:
    """Half of the BAT's first page written, the rest of the sector garbage (a torn write)."""
    v = dc.Vhdx.open(p)
    import random

    wr(p, v.bat + 2048, random.Random(3).randbytes(2048))


def headers_two_logs(p: Path) -> None:
    """Both headers valid, the older one naming a log GUID whose entry is in the log (a write
    of block 0's first 4 KiB), the newer one another log GUID: the newer one is current, so
    nothing is replayed (MS-VHDX 2.2.2.1, 2.3.3)."""
    from hvrescue.vdisk.vhdx.writer import _log_entry

    hs = dc.vhdx_headers(p)
    seqs = [struct.unpack_from("<Q", h, 8)[0] for h in hs]
    old, new = (0, 1) if seqs[0] < seqs[1] else (1, 0)
    log_off = struct.unpack_from("<Q", hs[0], 72)[0]
    guid = uuid.uuid4()
    _, blk0 = _entry_of(dc.Vhdx.open(p), 0)
    wr(p, log_off, _log_entry(guid, 10, [(blk0, b"\xee" * 4096)], os.path.getsize(p)))
    hs[old][48:64] = guid.bytes_le
    hs[new][48:64] = uuid.uuid4().bytes_le
    struct.pack_into("<Q", hs[new], 8, max(seqs) + 2)
    for i in (0, 1):
        dc.vhdx_put_header(p, i, hs[i])


def headers_two_logs_newer_replays(p: Path) -> None:
    """As :func:`headers_two_logs`, but the newer header names the log that has the entry."""
    headers_two_logs(p)
    hs = dc.vhdx_headers(p)
    seqs = [struct.unpack_from("<Q", h, 8)[0] for h in hs]
    old, new = (0, 1) if seqs[0] < seqs[1] else (1, 0)
    hs[old][48:64], hs[new][48:64] = bytes(hs[new][48:64]), bytes(hs[old][48:64])
    for i in (0, 1):
        dc.vhdx_put_header(p, i, hs[i])


def log_descriptor_count_huge(p: Path) -> None:
    """A valid-looking log entry (CRC right) whose descriptor count is 2^32 - 1."""
    from hvrescue.vdisk.crc import crc32c_with_field_zeroed
    from hvrescue.vdisk.vhdx.writer import _log_entry

    hs = dc.vhdx_headers(p)
    log_off = struct.unpack_from("<Q", hs[0], 72)[0]
    guid = uuid.uuid4()
    _, blk0 = _entry_of(dc.Vhdx.open(p), 0)
    entry = bytearray(_log_entry(guid, 10, [(blk0, b"\xee" * 4096)], os.path.getsize(p)))
    struct.pack_into("<I", entry, 24, 0xFFFFFFFF)  # DescriptorCount
    struct.pack_into("<I", entry, 4, crc32c_with_field_zeroed(bytes(entry), 4))
    wr(p, log_off, bytes(entry))
    for i, h in enumerate(hs):
        h[48:64] = guid.bytes_le
        dc.vhdx_put_header(p, i, h)


def log_entry_length_huge(p: Path) -> None:
    """A log entry whose EntryLength is 4 GiB - 4 KiB (more than the log), CRC over 4 KiB."""
    from hvrescue.vdisk.crc import crc32c_with_field_zeroed
    from hvrescue.vdisk.vhdx.writer import _log_entry

    hs = dc.vhdx_headers(p)
    log_off = struct.unpack_from("<Q", hs[0], 72)[0]
    guid = uuid.uuid4()
    _, blk0 = _entry_of(dc.Vhdx.open(p), 0)
    entry = bytearray(_log_entry(guid, 10, [(blk0, b"\xee" * 4096)], os.path.getsize(p)))
    struct.pack_into("<I", entry, 8, 0xFFFFF000)
    struct.pack_into("<I", entry, 4, crc32c_with_field_zeroed(bytes(entry), 4))
    wr(p, log_off, bytes(entry))
    for i, h in enumerate(hs):
        h[48:64] = guid.bytes_le
        dc.vhdx_put_header(p, i, h)


def log_write_at(where: str) -> Callable[[Path], None]:
    """A valid log entry (the current header's log GUID) whose one data sector is written into
    header 2 (``header``), region table 1 (``region``) or the log itself (``log``)."""
    from hvrescue.vdisk.vhdx.writer import _log_entry

    def damage(p: Path) -> None:
        hs = dc.vhdx_headers(p)
        log_off = struct.unpack_from("<Q", hs[0], 72)[0]
        target = {"header": 128 * KiB, "region": 192 * KiB, "log": log_off + 64 * KiB}[where]
        guid = uuid.uuid4()
        wr(p, log_off, _log_entry(guid, 10, [(target, b"\xee" * 4096)], os.path.getsize(p)))
        for i, h in enumerate(hs):
            h[48:64] = guid.bytes_le
            dc.vhdx_put_header(p, i, h)

    return damage


def log_full(p: Path) -> None:
    """One valid log entry as long as a 256 MiB log can hold: 65,000 data sectors."""
    from hvrescue.vdisk.vhdx.writer import _log_entry

    hs = dc.vhdx_headers(p)
    log_off = struct.unpack_from("<Q", hs[0], 72)[0]
    _, blk0 = _entry_of(dc.Vhdx.open(p), 0)
    guid = uuid.uuid4()
    writes = [(blk0 + i * 4096, bytes([i & 0xFF]) * 4096) for i in range(65000)]
    wr(p, log_off, _log_entry(guid, 10, writes, os.path.getsize(p)))
    for i, h in enumerate(hs):
        h[48:64] = guid.bytes_le
        dc.vhdx_put_header(p, i, h)


def metadata_2047(p: Path) -> None:
    """The metadata table full: 2047 entries, the known ones first, then optional user items
    (each 4 bytes, in the region's free space)."""
    v = dc.Vhdx.open(p)
    table = bytearray(rd(p, v.meta, 64 * KiB))
    count = struct.unpack_from("<H", table, 10)[0]
    top = max(struct.unpack_from("<II", table, 32 + 32 * i + 16)[0] for i in range(count))
    free = -(-(top + 64) // 4096) * 4096  # past every known item
    for i in range(count, 2047):
        at = 32 + 32 * i
        table[at : at + 16] = uuid.UUID(int=(0xA5 << 120) | i).bytes_le
        struct.pack_into("<III", table, at + 16, free + 4 * i, 4, 0)  # flags 0: optional
    struct.pack_into("<H", table, 10, 2047)
    wr(p, v.meta, bytes(table))


def metadata_count_huge(p: Path) -> None:
    v = dc.Vhdx.open(p)
    wr(p, v.meta + 10, struct.pack("<H", 0xFFFF))


def metadata_vsize_odd_4k(p: Path) -> None:
    """4 KiB logical sectors and a virtual size 512 bytes past a whole 4 KiB sector."""
    v = dc.Vhdx.open(p)
    wr(p, v.item(dc.VIRTUAL_DISK_SIZE)[1], struct.pack("<Q", 8 * MiB - 512))


def sparse_hole(p: Path) -> None:
    """64 KiB inside block 0's data punched out of the file (reads as zeros: not damage)."""
    v = dc.Vhdx.open(p)
    _, off = _entry_of(v, 0)
    subprocess.run(
        ["fallocate", "--punch-hole", "--offset", str(off + 256 * KiB), "--length", "65536", p],
        check=True,
    )


def parent_cut(n: int, name: str = "base.vhdx") -> Callable[[Path], None]:
    """The chain's parent cut ``n`` bytes short (its last block loses its end)."""

    def damage(p: Path) -> None:
        parent = p.parent / name
        truncate(parent, os.path.getsize(parent) - n)

    return damage


# ------------------------------------------------------------------ VHD damage


def vhd_torn_bat(first: int, count: int) -> Callable[[Path], None]:
    """BAT entries [first, first+count) as they were before the blocks were allocated
    (0xFFFFFFFF): the sector of the table that held them was not written."""

    def damage(p: Path) -> None:
        _, table, _ = dc.vhd_dyn(p)
        wr(p, table + 4 * first, b"\xff" * 4 * count)

    return damage


def vhd_locator_only(text: str) -> Callable[[Path], None]:
    """The hand-built differencing VHD left with one locator, W2ku, holding ``text`` (a UNC
    path, another host's drive letter), and that path as the parent's name."""

    def damage(p: Path) -> None:
        dh, _, _ = dc.vhd_dyn(p)
        hdr = bytearray(rd(p, dh, 1024))
        data = text.encode("utf-16-le")
        for i in range(8):
            at = 576 + 24 * i
            code = bytes(hdr[at : at + 4])
            if code == b"W2ru":
                hdr[at : at + 24] = bytes(24)
            elif code == b"W2ku":
                struct.pack_into(">I", hdr, at + 8, len(data))
                wr(p, struct.unpack_from(">Q", hdr, at + 16)[0], data.ljust(512, b"\0"))
        hdr[64:576] = text.encode("utf-16-be").ljust(512, b"\0")
        wr(p, dh, bytes(dc.vhd_fix(hdr, 36)))

    return damage


def vhd_last_block_short(p: Path) -> None:
    """A copy that lost the last 3 sectors before the footer, the footer put back by hand."""
    end, foot = dc.vhd_footer(p)
    truncate(p, end - 1536)
    with open(p, "ab") as f:
        f.write(bytes(foot))


def vhd_saved_state(p: Path) -> None:
    dc._vhd_patch_footers(p, lambda f: f.__setitem__(84, 1))


def vhd_bitmap_in_file_data_past_eof(p: Path) -> None:
    """Block 2 given an all-ones sector bitmap in the file's last sector before the footer
    (added there): the bitmap reads, the data lies where the footer is and past it."""
    _, table, _ = dc.vhd_dyn(p)
    end, foot = dc.vhd_footer(p)
    wr(p, end, b"\xff" * 512 + bytes(foot))
    wr(p, table + 4 * 2, struct.pack(">I", end // 512))


def vhd_copy_differs(field: str) -> Callable[[Path], None]:
    """The footer copy at offset 0 valid, disagreeing with the footer at the end."""

    def damage(p: Path) -> None:
        head = bytearray(rd(p, 0, 512))
        if field == "unique-id":
            head[68:84] = uuid.uuid4().bytes
        elif field == "disk-type":
            struct.pack_into(">I", head, 60, 4)  # differencing
        elif field == "data-offset":
            struct.pack_into(">Q", head, 16, 0xFFFFFFFFFFFFFFFF)  # fixed
        wr(p, 0, bytes(dc.vhd_fix(head, 64)))

    return damage


def vhd_creator_vpc_size_beyond_chs(p: Path) -> None:
    """Virtual PC as creator and a current size 1 MiB past its CHS geometry: Virtual PC and
    qemu size such a disk by CHS, Hyper-V by the size field."""

    def edit(f: bytearray) -> None:
        f[28:32] = b"vpc "
        cur = struct.unpack_from(">Q", f, 48)[0]
        struct.pack_into(">QQ", f, 40, cur + MiB, cur + MiB)

    dc._vhd_patch_footers(p, edit)


def vhd_cross_link_win(p: Path) -> None:
    dc._v_vhd_bat_dup(p)


def vhd_bat_into_bat(p: Path) -> None:
    _, table, _ = dc.vhd_dyn(p)
    used = next(i for i in range(64) if dc.vhd_bat(p, i) != 0xFFFFFFFF)
    wr(p, table + 4 * used, struct.pack(">I", table // 512))


def vhd_block_past_eof_exact(p: Path) -> None:
    """An unused block given the sectors that start at the footer (the end of the data)."""
    _, table, _ = dc.vhd_dyn(p)
    end, _ = dc.vhd_footer(p)
    free = next(i for i in range(64) if dc.vhd_bat(p, i) == 0xFFFFFFFF)
    wr(p, table + 4 * free, struct.pack(">I", end // 512))


# ---------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    base: str
    damage: Callable[[Path], object]
    visible: bool = True  # what a reader sees is not what the writer wrote: check not clean
    note: str = ""
    expect: str = ""  # text a finding of ``check --json`` must contain
    clean: bool = False  # check must be clean (exit 0)
    # The ranges ``hash --json`` must list as undefined, exactly: (offset, length, cause);
    # a callable gets the damaged file's path.
    gaps: Callable[[Path], list[tuple[int, int, str]]] | list[tuple[int, int, str]] | None = None
    search: bool = False  # give --search FOLDER to the chain commands
    slow_only: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def _intact(p: Path) -> None:
    return None


def _last_block_gap(n: int, block_size: int, vsize: int) -> Callable[[Path], list]:
    """The last ``n`` bytes of the block the file ends with are cut off (qemu appends blocks
    in the order written: the last write's block is last)."""

    def gaps(p: Path) -> list[tuple[int, int, str]]:
        v = dc.Vhdx.open(p)
        best = max(range(-(-vsize // block_size)), key=lambda b: _entry_of(v, b)[1])
        end = min((best + 1) * block_size, vsize)
        return [(end - n, n, "truncated")]

    return gaps


VARIANTS: list[Variant] = [
    # ---- other writers, intact: every peer reads what hvrescue reads, check clean
    Variant("q-vhdx-8m-intact", "q-vhdx-8m", _intact, visible=False, clean=True),
    Variant("q-vhdx-256m-intact", "q-vhdx-256m", _intact, visible=False, clean=True),
    Variant("q-vhdx-nozero-intact", "q-vhdx-nozero", _intact, visible=False, clean=True),
    Variant("q-vhdx-log4-intact", "q-vhdx-log4", _intact, visible=False, clean=True),
    Variant("q-vhdx-fixed-intact", "q-vhdx-fixed", _intact, visible=False, clean=True),
    Variant("q-vhdx-4k-intact", "q-vhdx-4k", _intact, visible=False, clean=True),
    Variant("q-vhdx-2pages-intact", "q-vhdx-2pages", _intact, visible=False, clean=True),
    Variant("q-vpc-dyn-chs-intact", "q-vpc-dyn-chs", _intact, visible=False),
    Variant("q-vpc-fixed-chs-intact", "q-vpc-fixed-chs", _intact, visible=False),
    Variant("q-vpc-conv-dyn-intact", "q-vpc-conv-dyn", _intact, visible=False, clean=True),
    Variant("q-vpc-conv-fixed-intact", "q-vpc-conv-fixed", _intact, visible=False, clean=True),
    Variant("ext-win-xfs5-intact", "ext-win-xfs5", _intact, visible=False, slow_only=True),
    # ---- cross-linked blocks, BAT entries into structures
    Variant(
        "q-vhdx-8m-cross-link",
        "q-vhdx-8m",
        bat_cross_link(0, 2),
        expect="vhdx.bat.overlap",
        gaps=[(0, 8 * MiB, "overlap"), (16 * MiB, 8 * MiB, "overlap")],
    ),
    Variant(
        "q-vhdx-nozero-cross-link",
        "q-vhdx-nozero",
        bat_cross_link(3, 6),
        expect="vhdx.bat.overlap",
        gaps=[(3 * MiB, MiB, "overlap"), (6 * MiB, MiB, "overlap")],
    ),
    Variant(
        "q-vhdx-fixed-cross-link",
        "q-vhdx-fixed",
        bat_cross_link(0, 3),
        expect="vhdx.bat.overlap",
        gaps=[(0, MiB, "overlap"), (3 * MiB, MiB, "overlap")],
    ),
    Variant(
        "ext-win-xfs5-cross-link",
        "ext-win-xfs5",
        bat_cross_link(0, 2),
        expect="vhdx.bat.overlap",
        slow_only=True,
    ),
    Variant(
        "q-vhdx-bat-into-log",
        "vhdx",
        bat_into("log", 1),
        expect="vhdx.bat.overlap",
        gaps=[(MiB, MiB, "overlap")],
    ),
    Variant(
        "q-vhdx-bat-into-bat",
        "vhdx",
        bat_into("bat", 1),
        expect="vhdx.bat.overlap",
        gaps=[(MiB, MiB, "overlap")],
    ),
    Variant(
        "q-vhdx-8m-bat-into-log",
        "q-vhdx-8m",
        bat_into("log", 1),
        expect="vhdx.bat.overlap",
        note="8 MiB from the log reach block 0 (at 8 MiB): both undefined",
        gaps=[(0, 16 * MiB, "overlap")],
    ),
    Variant(
        "q-vhdx-block-one-past-eof",
        "vhdx",
        bat_one_block_past_eof,
        expect="vhdx.bat.entry-beyond-eof",
        gaps=[(MiB, MiB, "beyond-eof")],
    ),
    Variant(
        "q-vhdx-8m-block-partly-past-eof",
        "q-vhdx-8m",
        bat_partly_past_eof,
        expect="vhdx.bat.entry-beyond-eof",
        gaps=[(9 * MiB, 7 * MiB, "truncated")],
    ),
    # ---- cut at odd sizes
    Variant("q-vhdx-cut-1", "vhdx", cut_short(1), gaps=_last_block_gap(1, MiB, 8 * MiB)),
    Variant("q-vhdx-cut-511", "vhdx", cut_short(511), gaps=_last_block_gap(511, MiB, 8 * MiB)),
    Variant("q-vhdx-cut-4095", "vhdx", cut_short(4095), gaps=_last_block_gap(4095, MiB, 8 * MiB)),
    Variant(
        "q-vhdx-8m-cut-4095",
        "q-vhdx-8m",
        cut_short(4095),
        gaps=_last_block_gap(4095, 8 * MiB, 64 * MiB),
    ),
    Variant(
        "q-vhdx-fixed-cut-511",
        "q-vhdx-fixed",
        cut_short(511),
        gaps=_last_block_gap(511, MiB, 8 * MiB),
    ),
    Variant(
        "q-vpc-dyn-cut-1",
        "vhd-dynamic",
        cut_short(1),
        visible=False,
        note="Virtual PC's 511-byte footer: a valid file",
        gaps=[],
    ),
    Variant(
        "q-vpc-dyn-cut-511",
        "vhd-dynamic",
        cut_short(511),
        expect="vhd.footer.missing",
        note="footer gone, its copy at offset 0 stands in; the blocks are whole",
        gaps=[],
    ),
    Variant(
        "q-vpc-dyn-cut-4095",
        "vhd-dynamic",
        cut_short(4095),
        expect="vhd.footer.missing",
        gaps=[(6 * MiB + 2 * MiB - 3583, 3583, "truncated")],
    ),
    Variant("q-vpc-fixed-cut-1", "vhd-fixed", cut_short(1), visible=False, gaps=[]),
    Variant(
        "q-vpc-fixed-cut-4095",
        "vhd-fixed",
        cut_short(4095),
        expect="not-a-disk",
        note="a fixed VHD has no footer copy: without its footer it is raw data",
    ),
    Variant(
        "ext-win-dyn-cut-4095",
        "ext-win-dyn",
        cut_short(4095),
        expect="vhd.footer.missing",
        slow_only=True,
    ),
    Variant(
        "q-vhdx-256m-cut-4095",
        "q-vhdx-256m",
        cut_short(4095),
        slow_only=True,
        gaps=_last_block_gap(4095, 256 * MiB, 600 * MiB),
    ),
    Variant("q-vhdx-odd-size-intact", "q-vhdx-odd-size", _intact, visible=False, clean=True),
    Variant(
        "q-vhdx-odd-size-cut-4095",
        "q-vhdx-odd-size",
        cut_short(4095),
        gaps=[],
        note="the last block is cut in its half outside the disk: the content is whole",
    ),
    Variant(
        "q-vpc-dyn-chs-cut-4095", "q-vpc-dyn-chs", cut_short(4095), expect="vhd.footer.missing"
    ),
    Variant(
        "chain-parent-cut-4095",
        "loc-relative",
        parent_cut(4095),
        gaps=[(MiB - 4095, 4095, "truncated")],
        note="the child leaves block 0 to the parent",
    ),
    Variant("chain-4k-intact", "chain-4k", _intact, visible=False, clean=True, gaps=[]),
    Variant(
        "chain-4k-parent-cut",
        "chain-4k",
        parent_cut(4095),
        gaps=[(4 * MiB - 4095, 4095, "truncated")],
    ),
    Variant(
        "vhd-hand-parent-cut",
        "vhd-diff-hand",
        parent_cut(4095, "parent.vhd"),
        expect="vhd.footer.missing",
        note="qemu's parent: footer gone (copy used), its last block cut by 3583 bytes",
        gaps=[(4 * MiB - 3583, 3583, "truncated")],
    ),
    Variant(
        "vhd-hand-bitmap-in-file-data-past-eof",
        "vhd-diff-hand",
        vhd_bitmap_in_file_data_past_eof,
        expect="vhd.bat.entry-beyond-eof",
        gaps=[(4 * MiB, 2 * MiB, "truncated")],
    ),
    # ---- torn BAT
    Variant(
        "q-vhdx-torn-bat-stale-page",
        "q-vhdx-2pages",
        torn_bat_stale_page,
        expect="vhdx.bat.overlap",
        gaps=[(0, MiB, "overlap"), (700 * MiB, MiB, "overlap")],
    ),
    Variant("q-vhdx-torn-bat-garbage", "q-vhdx-2pages", torn_bat_garbage),
    # ---- headers and log
    Variant(
        "q-vhdx-headers-two-logs",
        "vhdx",
        headers_two_logs,
        visible=False,
        note="the older header's log is not the current one's: nothing to replay",
        gaps=[],
    ),
    Variant(
        "q-vhdx-headers-two-logs-newer",
        "vhdx",
        headers_two_logs_newer_replays,
        visible=False,
        note="the current header's log is replayed",
        gaps=[],
    ),
    Variant(
        "q-vhdx-log-descriptors-huge", "vhdx", log_descriptor_count_huge, expect="vhdx.log.corrupt"
    ),
    Variant(
        "q-vhdx-log4-entry-length-huge",
        "q-vhdx-log4",
        log_entry_length_huge,
        expect="vhdx.log.corrupt",
    ),
    Variant(
        "q-vhdx-log-into-header",
        "vhdx",
        log_write_at("header"),
        visible=False,
        expect="write-into-header-area",
        gaps=[],
        note="headers are never logged: replayed, header 2 is garbage, header 1 stands",
    ),
    Variant(
        "q-vhdx-log-into-region",
        "vhdx",
        log_write_at("region"),
        visible=False,
        expect="write-into-header-area",
        gaps=[],
    ),
    Variant(
        "q-vhdx-log-into-log",
        "vhdx",
        log_write_at("log"),
        visible=False,
        expect="write-into-log",
        gaps=[],
    ),
    # ---- metadata
    Variant(
        "q-vhdx-metadata-2047",
        "vhdx",
        metadata_2047,
        visible=False,
        clean=True,
        note="a full table of optional items is valid",
    ),
    Variant("q-vhdx-metadata-count-huge", "vhdx", metadata_count_huge, expect="entry-count"),
    Variant("q-vhdx-4k-vsize-odd", "q-vhdx-4k", metadata_vsize_odd_4k),
    # ---- parent locators
    Variant("loc-relative-only", "loc-relative", _intact, visible=False, clean=True, gaps=[]),
    Variant(
        "loc-unc-only",
        "loc-unc",
        _intact,
        visible=False,
        gaps=[],
        note="found beside the child by the path's tail, identity checked",
    ),
    Variant("loc-other-host-drive", "loc-otherhost", _intact, visible=False, gaps=[]),
    Variant(
        "loc-parent-moved",
        "loc-moved",
        _intact,
        search=True,
        visible=False,
        gaps=[],
        note="neither path resolves; --search finds the parent by identity",
    ),
    Variant(
        "loc-parent-moved-no-search",
        "loc-moved",
        _intact,
        expect="parent",
        gaps=[(0, 2 * MiB, "parent-missing"), (3 * MiB, 5 * MiB, "parent-missing")],
    ),
    Variant(
        "vhd-loc-unc-only",
        "vhd-diff-hand",
        vhd_locator_only("\\\\fileserver\\vms$\\legacy\\parent.vhd"),
        visible=False,
        clean=True,
        gaps=[],
    ),
    Variant(
        "vhd-loc-other-host-drive",
        "vhd-diff-hand",
        vhd_locator_only("E:\\Virtual PC\\legacy\\parent.vhd"),
        visible=False,
        clean=True,
        gaps=[],
    ),
    # ---- sparse hole
    Variant("q-vhdx-sparse-hole", "vhdx", sparse_hole, visible=False, clean=True, gaps=[]),
    # ---- VHD
    Variant(
        "q-vpc-saved-state",
        "vhd-dynamic",
        vhd_saved_state,
        visible=False,
        expect="saved-state",
        note="content whole; Virtual PC refuses to change such a disk",
    ),
    Variant(
        "q-vpc-bitmap-in-file-data-past-eof",
        "vhd-dynamic",
        vhd_bitmap_in_file_data_past_eof,
        expect="vhd.bat.entry-beyond-eof",
        gaps=[(4 * MiB, 2 * MiB, "truncated")],
    ),
    Variant(
        "q-vpc-copy-differs-unique-id",
        "vhd-dynamic",
        vhd_copy_differs("unique-id"),
        expect="vhd.footer.mismatch",
        gaps=[],
    ),
    Variant(
        "q-vpc-copy-differs-disk-type",
        "vhd-dynamic",
        vhd_copy_differs("disk-type"),
        expect="vhd.footer.mismatch",
        gaps=[],
    ),
    Variant(
        "q-vpc-copy-differs-data-offset",
        "vhd-dynamic",
        vhd_copy_differs("data-offset"),
        expect="vhd.footer.mismatch",
        gaps=[],
    ),
    Variant(
        "q-vpc-creator-vpc-size-beyond-chs",
        "vhd-dynamic",
        vhd_creator_vpc_size_beyond_chs,
        expect="vhd.geometry.size-mismatch",
    ),
    Variant("q-vpc-bat-into-bat", "vhd-dynamic", vhd_bat_into_bat, expect="vhd.bat.overlap"),
    Variant(
        "q-vpc-block-past-eof-exact",
        "vhd-dynamic",
        vhd_block_past_eof_exact,
        expect="vhd.bat.entry-beyond-eof",
        gaps=[(4 * MiB, 2 * MiB, "beyond-eof")],
    ),
    Variant(
        "q-vpc-conv-dyn-cross-link", "q-vpc-conv-dyn", vhd_cross_link_win, expect="vhd.bat.overlap"
    ),
    Variant(
        "ext-win-dyn-cross-link",
        "ext-win-dyn",
        vhd_cross_link_win,
        expect="vhd.bat.overlap",
        slow_only=True,
    ),
    Variant(
        "q-vpc-torn-bat",
        "vhd-dynamic",
        vhd_torn_bat(3, 1),
        visible=False,
        expect="vhd.bat.orphan-data",
        gaps=[],
        note="block 3 reads as unused, as every reader reads it; its data is left behind",
    ),
    Variant(
        "ext-win-dyn-torn-bat",
        "ext-win-dyn",
        vhd_torn_bat(128, 128),
        visible=False,
        expect="vhd.bat.orphan-data",
        gaps=[],
        slow_only=True,
    ),
    Variant(
        "q-vpc-dyn-chs-saved-state",
        "q-vpc-dyn-chs",
        vhd_saved_state,
        visible=False,
        expect="saved-state",
    ),
    Variant(
        "q-vpc-last-block-3-sectors-short",
        "vhd-dynamic",
        vhd_last_block_short,
        expect="vhd.bat.entry-beyond-eof",
        gaps=[(8 * MiB - 1536, 1536, "truncated")],
    ),
    Variant(
        "q-vhdx-conv-nozero-intact",
        "q-vhdx-conv-nozero",
        _intact,
        visible=False,
        clean=True,
        gaps=[],
    ),
    Variant(
        "q-vhdx-conv-fixed-intact", "q-vhdx-conv-fixed", _intact, visible=False, clean=True, gaps=[]
    ),
    Variant(
        "q-vhdx-conv-fixed-cut-4095",
        "q-vhdx-conv-fixed",
        cut_short(4095),
        gaps=_last_block_gap(4095, MiB, 8 * MiB),
    ),
    Variant(
        "q-vhdx-log-256m-full",
        "q-vhdx-log256",
        log_full,
        visible=False,
        gaps=[],
        expect="vhdx.log.replay-needed",
        slow_only=True,
        note="before round three: 1 GiB of memory to replay it (copies of the entry)",
    ),
]


def make_variant(v: Variant, folder: Path) -> Path:
    path = build_base(v.base, folder)
    v.damage(path)
    return path


# ---------------------------------------------------------------------------- peers


def _sha256_stream(read: Callable[[int], bytes], size: int) -> str:
    h = hashlib.sha256()
    pos = 0
    while pos < size:
        b = read(min(1 << 22, size - pos))
        if not b:
            raise OSError("short read")
        h.update(b)
        pos += len(b)
    return h.hexdigest()


_PEER = r"""
import hashlib, os, sys
kind, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
def dump(read, n):
    h = hashlib.sha256(); o = 0
    with open(out if n <= (1 << 30) else os.devnull, "wb") as f:
        while o < n:
            b = read(min(1 << 22, n - o))
            assert b, "short read"
            h.update(b); f.write(b); o += len(b)
    return h.hexdigest()
if kind == "pyvhdi":
    import pyvhdi
    f = pyvhdi.file(); f.open(path); n = f.get_media_size()
    if f.get_parent_identifier() or not n:
        raise SystemExit(3)
    print(dump(f.read_buffer, n))
else:
    from dissect.hypervisor.disk import vhd, vhdx
    fh = open(path, "rb")
    d = vhdx.VHDX(fh) if path.lower().endswith(("vhdx", "avhdx")) else vhd.VHD(fh)
    if getattr(d, "has_parent", False) or getattr(getattr(d, "footer", None), "disk_type", 0) == 4:
        raise SystemExit(3)
    n = d.size; d.seek(0)
    if not n:
        raise SystemExit(3)
    print(dump(d.read, n))
"""
# Peers' raw images are compared byte by byte outside hvrescue's undefined ranges up to this.
COMPARE_LIMIT = 1024 * MiB


def peer(kind: str, path: Path, raw: Path) -> str | None:
    """The content digest a peer reader gives (its image written to ``raw``), or None when it
    refuses or is absent."""
    try:
        if kind == "qemu":
            fmt = "vhdx" if path.suffix.lower() in (".vhdx", ".avhdx") else "vpc"
            p = subprocess.run(
                ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(raw)],
                capture_output=True,
                timeout=PEER_TIMEOUT,
            )
            if p.returncode != 0:
                raw.unlink(missing_ok=True)
                return None
            return dc.state([raw])[raw][0]
        p = subprocess.run(
            [sys.executable, "-c", _PEER, kind, str(path), str(raw)],
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raw.unlink(missing_ok=True)
        return None
    out = p.stdout.strip()
    if p.returncode == 0 and len(out) == 64:
        return out
    raw.unlink(missing_ok=True)
    return None


def differs_outside(ours: Path, theirs: Path, gaps: list[tuple[int, int, str]]) -> int | None:
    """The first offset outside ``gaps`` where the two images differ (None: they agree)."""
    size = os.path.getsize(ours)
    if os.path.getsize(theirs) != size:
        return min(size, os.path.getsize(theirs))
    holes = sorted((o, o + n) for o, n, _ in gaps)
    step = 1 << 22
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        for pos in range(0, size, step):
            x, y = a.read(step), b.read(step)
            if x == y:
                continue
            for i in range(0, len(x), 512):
                if x[i : i + 512] == y[i : i + 512]:
                    continue
                at = pos + i
                if any(lo <= at and at + 512 <= hi for lo, hi in holes):
                    continue
                for j in range(i, min(i + 512, len(x))):
                    if x[j] != y[j] and not any(lo <= pos + j < hi for lo, hi in holes):
                        return pos + j
    return None


def peers(path: Path, work: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for kind in ("qemu", "pyvhdi", "dissect"):
        raw = work / f"peer-{kind}.raw"
        out[kind] = peer(kind, path, raw)
    return out


# ---------------------------------------------------------------------------- running


def _gap_list(data: dict) -> list[tuple[int, int, str]]:
    return [(g["offset"], g["length"], g["cause"]) for g in data.get("undefined") or []]


def run_variant(v: Variant, work: Path, with_peers: bool = True) -> tuple[dict, list[str]]:
    folder = work / v.name
    if folder.exists():
        shutil.rmtree(folder)
    path = make_variant(v, folder)
    inputs = sorted(x for x in folder.rglob("*") if x.is_file())
    before = dc.state(inputs)
    outdir = work / (v.name + ".out")
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir()
    search = ["--search", str(folder)] if v.search else []
    row: dict[str, str] = {}
    bad: list[str] = []
    outs: dict[str, dc.Outcome] = {}
    out_of = {
        "merge": outdir / "merged" / "merged.vhdx",
        "merge-raw": outdir / "raw" / "out.raw",
        "salvage": outdir / "salvaged.raw",
        "repair": outdir / "repaired" / path.name,
        "merge-gaps": outdir / "gaps" / "out.raw",
    }
    for p in [*out_of.values(), outdir / "peers" / "x"]:
        p.parent.mkdir(exist_ok=True)
    cmds = {
        "info": ["info", "--json", str(path)],
        "check": ["check", "--json", *search, str(path)],
        "check-deep": ["check", "--json", "--deep", *search, str(path)],
        "chain": ["chain", "--json", *search, str(path)],
        "hash": ["hash", "--json", *search, str(path)],
        "merge": ["merge", "--json", *search, str(path), str(out_of["merge"])],
        "merge-raw": [
            "merge",
            "--json",
            "--format",
            "raw",
            *search,
            str(path),
            str(out_of["merge-raw"]),
        ],
        "salvage": [
            "salvage",
            "--json",
            *search,
            str(path),
            str(out_of["salvage"]),
            "--map",
            str(outdir / "salvaged.map"),
        ],
        "repair": ["repair", "--json", str(path), str(out_of["repair"])],
        "merge-gaps": [
            "merge",
            "--json",
            "--format",
            "raw",
            "--allow-gaps",
            *search,
            str(path),
            str(out_of["merge-gaps"]),
        ],
        "merge-nofolder": [
            "merge",
            "--json",
            *search,
            str(path),
            str(outdir / "absent" / "merged.vhdx"),
        ],
    }
    for name, args in cmds.items():
        o = outs[name] = dc.hvrescue(*args)
        row[name] = "TIMEOUT" if o.timed_out else f"rc={o.rc}"
        if o.timed_out:
            bad.append(f"{name}: hang (> {dc.TIMEOUT} s)")
        if "Internal error" in o.stderr + o.stdout:
            bad.append(f"{name}: internal error: {(o.stderr or o.stdout).strip()[-200:]}")
        if "Traceback" in o.stderr:
            bad.append(f"{name}: traceback: {o.stderr.strip().splitlines()[-1]}")
        if o.rss_kb > dc.MAX_RSS_KB:
            bad.append(f"{name}: peak memory {o.rss_kb // 1024} MB")
        if o.rc not in (0, 1, 2, None):
            bad.append(f"{name}: undocumented exit code {o.rc}")
        now = dc.state(inputs)
        if now != before:
            bad.append(f"{name}: an input changed")
            before = now
        if name == "merge-nofolder" and o.rc == 0 and not (outdir / "absent").is_dir():
            bad.append("merge: exit 0 into a folder that does not exist")
        if name in ("info", "check", "chain", "hash") and o.rc in (0, 1) and not o.json():
            bad.append(f"{name}: exit {o.rc} without JSON")
    check = outs["check"].json()
    findings = check.get("findings", [])
    row["check"] += f" {check.get('status')}"
    if v.expect and v.expect not in json.dumps(findings):
        bad.append(f"check: no finding mentions {v.expect!r}")
    if v.visible and (outs["check"].rc == 0 or check.get("status") == "clean"):
        bad.append("check: clean on a damaged variant")
    if v.clean and outs["check"].rc != 0:
        codes = sorted({f["code"] for f in findings if f.get("severity") != "info"})
        bad.append(f"check: not clean on an intact disk ({codes})")
    if outs["check"].rc == 0 and any(
        f.get("severity") in ("warning", "error", "critical") for f in findings
    ):
        bad.append("check: exit 0 while a warning stands")
    h = outs["hash"].json()
    complete = outs["hash"].rc == 0 and h.get("complete") is True
    ours = h.get("sha256") if complete else None
    row["hash"] += f" {str(h.get('sha256'))[:8]}" if h.get("sha256") else " refused"
    if h.get("sha256") and not complete and not (h.get("undefined") or h.get("unreadable")):
        bad.append("hash: incomplete digest without a range")
    if complete and (h.get("undefined") or h.get("unreadable")):
        bad.append("hash: complete with undefined ranges")
    files = check.get("files") or [{}]
    listed = _gap_list(files[0])
    deep = outs["check-deep"].json()
    if deep and outs["check-deep"].rc != outs["check"].rc:
        bad.append(f"check --deep: exit {outs['check-deep'].rc}, check {outs['check'].rc}")
    if deep and sorted(_gap_list((deep.get("files") or [{}])[0])) != sorted(listed):
        bad.append("check --deep: other undefined ranges than check (no read error here)")
    if h.get("sha256") and sorted(_gap_list(h)) != sorted(listed):
        bad.append(f"hash lists undefined {_gap_list(h)}, check {listed}")
    if v.gaps is not None and check:
        want = v.gaps(path) if callable(v.gaps) else v.gaps
        if sorted(listed) != sorted(want):
            bad.append(f"check: undefined {listed}, expected {want}")
    damage_reported = outs["check"].rc != 0
    if with_peers:
        # Peers here read one file: a differencing disk's chain is hvrescue's alone to read.
        layered = v.search or len(h.get("chain") or files[0].get("chain") or []) > 1
        theirs = peers(path, outdir / "peers") if not layered else {}
        row["peers"] = " ".join(f"{k}={(d or '-')[:8]}" for k, d in theirs.items())
        for name, digest in theirs.items():
            if ours and digest and digest != ours and not damage_reported:
                bad.append(f"hash: {ours[:12]} differs from {name} {digest[:12]}, check clean")
        salvaged = out_of["salvage"]
        if salvaged.exists() and outs["salvage"].rc in (0, 1):
            replays = "vhdx.log.replay-needed" in json.dumps(findings)
            for name, digest in theirs.items():
                if replays and name in ("pyvhdi", "dissect"):
                    continue  # they read the file as if no log were pending
                raw = outdir / "peers" / f"peer-{name}.raw"
                if digest and raw.exists() and os.path.getsize(raw) <= COMPARE_LIMIT:
                    at = differs_outside(salvaged, raw, listed)
                    if at is not None:
                        bad.append(f"content differs from {name} at {at:#x}, outside {listed}")
        shutil.rmtree(outdir / "peers", ignore_errors=True)
    bad += _outputs(outs, out_of, h, ours, complete)
    leftovers = sorted(
        str(x.relative_to(outdir))
        for x in outdir.rglob("*")
        if x.is_file()
        and x not in out_of.values()
        and x.parent.name != "absent"
        and not x.name.endswith(".map")
    )
    if leftovers:
        bad.append(f"output folder holds {leftovers} (a temporary name left behind?)")
    return row, bad


def _outputs(
    outs: dict[str, dc.Outcome], out_of: dict[str, Path], h: dict, ours: str | None, complete: bool
) -> list[str]:
    bad: list[str] = []
    for name in ("merge", "merge-raw", "repair"):
        o, out = outs[name], out_of[name]
        if o.rc == 0:
            if not complete and h:
                bad.append(f"{name}: exit 0 where hash finds the content incomplete")
            if not out.exists():
                bad.append(f"{name}: exit 0 without its output")
            elif ours:
                if out.suffix == ".raw":
                    got = dc.state([out])[out][0]
                else:
                    got = dc.hvrescue("hash", "--json", str(out)).json().get("sha256")
                if got != ours:
                    bad.append(f"{name}: output hashes {str(got)[:12]}, input {ours[:12]}")
        elif o.rc == 2:
            if out.exists():
                bad.append(f"{name}: refused but left its output")
            if not (o.stderr.strip() or o.json()):
                bad.append(f"{name}: refused without saying why")
    g, out = outs["merge-gaps"], out_of["merge-gaps"]
    if h.get("sha256") and g.rc in (0, 1):
        if (g.rc == 0) != complete:
            bad.append(f"merge --allow-gaps: exit {g.rc}, hash complete={complete}")
        if not out.exists():
            bad.append("merge --allow-gaps: no output")
        elif dc.state([out])[out][0] != h["sha256"]:
            bad.append("merge --allow-gaps: output differs from what hash hashed")
        if not complete:
            from hvrescue.recover.ddmap import read_map

            mapped = out.parent / (out.name + ".map")
            bad_ranges = (
                [(a, n) for a, n, st in read_map(str(mapped))[1] if st == "-"]
                if mapped.exists()
                else []
            )
            undefined = sorted((x["offset"], x["length"]) for x in h.get("undefined") or [])
            if _merged(bad_ranges) != _merged(undefined):
                bad.append(f"merge --allow-gaps: map {bad_ranges} != undefined {undefined}")
    s = outs["salvage"]
    out = out_of["salvage"]
    if s.rc == 0 and h and not complete and h.get("sha256"):
        bad.append("salvage: exit 0 (all read) where hash reports undefined ranges")
    if s.rc == 1 and complete:
        bad.append("salvage: bad ranges where hash finds the content complete")
    if s.rc in (0, 1) and out.exists() and h.get("sha256"):
        got = dc.state([out])[out][0]
        if got != h["sha256"]:
            bad.append(f"salvage: image hashes {got[:12]}, hash says {h['sha256'][:12]}")
    return bad


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, n in sorted(ranges):
        if out and out[-1][0] + out[-1][1] >= lo:
            out[-1] = (out[-1][0], max(out[-1][0] + out[-1][1], lo + n) - out[-1][0])
        else:
            out.append((lo, n))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ns = ap.parse_args(argv)
    work = ns.work or Path(tempfile.mkdtemp(prefix="hvr-round3-"))
    work.mkdir(parents=True, exist_ok=True)
    only = {x for x in ns.only.split(",") if x}
    results = {}
    for v in VARIANTS:
        if (only and v.name not in only) or (ns.quick and v.slow_only and not only):
            continue
        row, bad = run_variant(v, work, with_peers=not ns.no_peers)
        results[v.name] = {"row": row, "violations": bad}
        if not ns.json:
            print(f"{v.name:36} | " + " | ".join(f"{k}:{x}" for k, x in row.items()), flush=True)
            for b in bad:
                print(f"    !! {b}", flush=True)
        shutil.rmtree(work / v.name, ignore_errors=True)
        shutil.rmtree(work / (v.name + ".out"), ignore_errors=True)
    return dc.report(results, ns.json)


if __name__ == "__main__":
    sys.exit(main())
