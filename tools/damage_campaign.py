#!/usr/bin/env python3
"""Damage campaign: damaged variants of disks other software wrote, run through the disk commands.

Bases are written by qemu-img/qemu-io (VHDX, VHD dynamic and fixed) and, for differencing
disks (which qemu cannot write as VHDX/VHD), by hvrescue's own writer; the variants are the
damage the existing tests do not cover (see the VARIANTS table; round two's, damage as storage,
copies and crashes leave it, are in damage_real.py). Each variant is run through ``info``,
``check --json``, ``chain --json``, ``hash --json``, ``merge --json`` (to VHDX and to raw) and,
where this hvrescue has it, ``convert --json`` as separate processes; the invariants:

- no traceback, no hang (60 s), peak memory below 500 MB (GNU time %M);
- exit codes as documented (0/1/2);
- ``check`` is never clean on a variant whose damage changes what a reader would see;
- a content hash that differs from an oracle (qemu-img, pyvhdi) reading the variant without
  error is a bug unless hvrescue reports damaged ranges;
- ``merge`` (and ``convert``) never writes a verified copy over undefined content, its output
  hashes as the input does, a refusal leaves no output and says why, nothing is left under a
  temporary name; the input is byte-identical with the same mtime after every command.

Usage: python3 tools/damage_campaign.py [--work DIR] [--only NAME[,NAME]] [--json]
The module is importable: tests build single variants with ``build_base``/``VARIANTS``.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path

from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhd.structures import checksum as vhd_checksum

sys.path.insert(0, str(Path(__file__).resolve().parent))
import damage_real  # round two's variants, beside this file

KiB = 1024
MiB = 1024 * KiB
VSIZE = 8 * MiB
TIMEOUT = 60
MAX_RSS_KB = 500 * 1024

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
META_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")


# ---------------------------------------------------------------------------- byte helpers


def rd(path: Path, off: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def wr(path: Path, off: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


# ---------------------------------------------------------------------------- VHDX layout


@dataclass
class Vhdx:
    path: Path
    bat: int
    bat_len: int
    meta: int
    meta_items: dict[uuid.UUID, tuple[int, int, int]]  # guid -> (entry offset, item off, len)
    block_size: int
    chunk_ratio: int

    @classmethod
    def open(cls, path: Path) -> Vhdx:
        rt = rd(path, 192 * KiB, 64 * KiB)
        count = struct.unpack_from("<I", rt, 8)[0]
        regions = {}
        for i in range(min(count, 2047)):
            e = rt[16 + 32 * i : 48 + 32 * i]
            regions[uuid.UUID(bytes_le=e[:16])] = struct.unpack_from("<QI", e, 16)
        meta, _ = regions[META_GUID]
        bat, bat_len = regions[BAT_GUID]
        mt = rd(path, meta, 64 * KiB)
        items = {}
        for i in range(struct.unpack_from("<H", mt, 10)[0]):
            at = 32 + 32 * i
            guid = uuid.UUID(bytes_le=mt[at : at + 16])
            off, length = struct.unpack_from("<II", mt, at + 16)
            items[guid] = (meta + at, meta + off, length)
        fp = items[FILE_PARAMETERS]
        block_size = struct.unpack("<I", rd(path, fp[1], 4))[0]
        chunk_ratio = (2**23 * 512) // block_size
        return cls(path, bat, bat_len, meta, items, block_size, chunk_ratio)

    def bat_index(self, block: int) -> int:
        return block + block // self.chunk_ratio

    def entry(self, index: int) -> tuple[int, int]:
        v = struct.unpack("<Q", rd(self.path, self.bat + 8 * index, 8))[0]
        return v & 7, (v >> 20) * MiB

    def set_entry(self, index: int, state: int, offset: int) -> None:
        wr(self.path, self.bat + 8 * index, struct.pack("<Q", (offset // MiB) << 20 | state))

    def item(self, guid: uuid.UUID) -> tuple[int, int, int]:
        return self.meta_items[guid]


def vhdx_headers(path: Path) -> list[bytearray]:
    return [bytearray(rd(path, off, 4 * KiB)) for off in (64 * KiB, 128 * KiB)]


def vhdx_put_header(path: Path, index: int, h: bytearray, good_crc: bool = True) -> None:
    crc = crc32c_with_field_zeroed(bytes(h), 4)
    struct.pack_into("<I", h, 4, crc if good_crc else crc ^ 0x5A5A5A5A)
    wr(path, (64, 128)[index] * KiB, bytes(h))


def vhdx_region_fix(path: Path) -> None:
    for off in (192 * KiB, 256 * KiB):
        rt = rd(path, off, 64 * KiB)
        wr(path, off + 4, struct.pack("<I", crc32c_with_field_zeroed(rt, 4)))


# ---------------------------------------------------------------------------- VHD layout


def vhd_footer(path: Path) -> tuple[int, bytearray]:
    size = os.path.getsize(path)
    return size - 512, bytearray(rd(path, size - 512, 512))


def vhd_fix(buf: bytearray, field: int) -> bytearray:
    struct.pack_into(">I", buf, field, vhd_checksum(bytes(buf), field))
    return buf


def vhd_dyn(path: Path) -> tuple[int, int, int]:
    """(dynamic header offset, BAT offset, max table entries) of a dynamic VHD."""
    _, foot = vhd_footer(path)
    dh = struct.unpack_from(">Q", foot, 16)[0]
    hdr = rd(path, dh, 1024)
    table = struct.unpack_from(">Q", hdr, 16)[0]
    entries = struct.unpack_from(">I", hdr, 28)[0]
    return dh, table, entries


def vhd_bat(path: Path, index: int) -> int:
    _, table, _ = vhd_dyn(path)
    return struct.unpack(">I", rd(path, table + 4 * index, 4))[0]


# ---------------------------------------------------------------------------- bases


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


SHARED = Path(os.environ.get("HVRESCUE_SHARED") or Path(__file__).resolve().parents[2] / "shared")
# Disks other software wrote, from ../shared/corpus/external (PROVENANCE.md there).
EXTERNAL = {
    "ext-ocaml-dynamic": "vhdshell-test-fdisk/test-fdisk.vhd.gz",  # OCaml vhd-tool
    "ext-win-fixed": "nodevhd-fixed/fixed.vhd.gz",  # Windows, via node-vhd's test data
}
QEMU_WRITES = ("write -P 0x5a 0 1M", "write -P 0x33 3M 512k", "write -P 0x7e 6M 4k")


def build_base(kind: str, folder: Path) -> Path:
    """A base disk written by other software (qemu) or, for chains, by hvrescue's writer."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "vhdx":
        path = folder / "disk.vhdx"
        run(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vhdx",
            "-o",
            "block_size=1M,log_size=1M",
            str(path),
            str(VSIZE),
        )
    elif kind in ("vhd-dynamic", "vhd-fixed"):
        path = folder / "disk.vhd"
        sub = kind.split("-")[1]
        run(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            f"subformat={sub},force_size=on",
            str(path),
            str(VSIZE),
        )
    elif kind == "vhdx-5g":  # past one chunk (4 GiB): its BAT holds a sector bitmap entry
        path = folder / "disk.vhdx"
        run(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vhdx",
            "-o",
            "block_size=32M",
            str(path),
            str(4 * 1024 * MiB + 64 * MiB),
        )
    elif kind == "vhdx-chain":
        return _build_chain(folder)
    elif kind == "vhd-chain":  # dfvfs' legacy VHD chain (PROVENANCE.md in corpus/public/dfvfs)
        for name in ("image.vhd", "image-differential.vhd"):
            shutil.copyfile(SHARED / "corpus" / "public" / "dfvfs" / name, folder / name)
            os.chmod(folder / name, 0o644)
        return folder / "image-differential.vhd"
    elif kind in EXTERNAL:
        import gzip

        src = SHARED / "corpus" / "external" / EXTERNAL[kind]
        path = folder / src.name.removesuffix(".gz")
        with gzip.open(src) as f, open(path, "wb") as out:
            shutil.copyfileobj(f, out)
        return path
    else:
        found = damage_real.build_base(kind, folder, SHARED)
        if found is None:
            raise ValueError(kind)
        return found
    args = ["qemu-io", "-f", "vpc" if kind.startswith("vhd-") else "vhdx"]
    for w in QEMU_WRITES:
        args += ["-c", w]
    run(*args, str(path))
    return path


def _build_chain(folder: Path, parent_size: int = VSIZE) -> Path:
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    base_id = uuid.uuid4()
    base = folder / "base.vhdx"
    write_vhdx(
        str(base),
        VhdxSpec(virtual_size=parent_size, block_size=MiB, data_write_guid=base_id),
        {0: b"\x11" * MiB},
    )
    child = folder / "child.avhdx"
    parent = ParentSpec(base_id, relative_path=".\\base.vhdx")
    write_vhdx(
        str(child),
        VhdxSpec(virtual_size=VSIZE, block_size=MiB, parent=parent),
        {2 * MiB: b"\x22" * MiB},
    )
    return child


# ---------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    base: str
    damage: Callable[[Path], Path | None]
    visible: bool = True  # the damage changes what a reader sees: check must not be clean
    note: str = ""
    expect: str = ""  # text a finding of ``check --json`` must contain (code, problem, kind)


def _v_trunc_bat(p: Path) -> None:
    truncate(p, Vhdx.open(p).bat + 4)


def _v_trunc_data(p: Path) -> None:
    v = Vhdx.open(p)
    _, off = v.entry(v.bat_index(3))
    truncate(p, off + 256 * KiB)


def _v_trunc_meta(p: Path) -> None:
    truncate(p, Vhdx.open(p).meta + 100)


def _v_header_seq_badcrc(p: Path) -> None:
    hs = vhdx_headers(p)
    seq = max(struct.unpack_from("<Q", h, 8)[0] for h in hs) + 5
    h = hs[1]
    struct.pack_into("<Q", h, 8, seq)
    h[48:64] = uuid.uuid4().bytes_le  # the newer, broken header names a log
    vhdx_put_header(p, 1, h, good_crc=False)


def _v_log_beyond_eof(p: Path) -> None:
    size = os.path.getsize(p)
    guid = uuid.uuid4().bytes_le
    for i, h in enumerate(vhdx_headers(p)):
        h[48:64] = guid
        struct.pack_into("<IQ", h, 68, MiB, (size // MiB + 4) * MiB)
        vhdx_put_header(p, i, h)


def _v_log_wrong_guid(p: Path) -> None:
    from hvrescue.vdisk.vhdx.writer import _log_entry

    hs = vhdx_headers(p)
    log_off = struct.unpack_from("<Q", hs[0], 72)[0]
    # A log entry replacing the first sector of block 0, written under another log GUID.
    v = Vhdx.open(p)
    _, blk0 = v.entry(0)
    entry = _log_entry(uuid.uuid4(), 10, [(blk0, b"\xee" * 4096)], os.path.getsize(p))
    wr(p, log_off, entry)
    guid = uuid.uuid4().bytes_le
    for i, h in enumerate(hs):
        h[48:64] = guid
        vhdx_put_header(p, i, h)


def _v_meta_overlap(p: Path) -> None:
    v = Vhdx.open(p)
    at, _, _ = v.item(VIRTUAL_DISK_SIZE)
    _, fp_off, _ = v.item(FILE_PARAMETERS)
    wr(p, at + 16, struct.pack("<I", fp_off - v.meta))  # virtual size read from file params


def _v_meta_over_bat(p: Path) -> None:
    v = Vhdx.open(p)
    for off in (192 * KiB, 256 * KiB):
        rt = bytearray(rd(p, off, 64 * KiB))
        for i in range(struct.unpack_from("<I", rt, 8)[0]):
            e = 16 + 32 * i
            if uuid.UUID(bytes_le=bytes(rt[e : e + 16])) == META_GUID:
                struct.pack_into("<Q", rt, e + 16, v.bat)
        wr(p, off, bytes(rt))
    vhdx_region_fix(p)


def _v_bat_into_headers(p: Path) -> None:
    Vhdx.open(p).set_entry(0, 6, 0)


def _v_bat_into_meta(p: Path) -> None:
    v = Vhdx.open(p)
    v.set_entry(0, 6, v.meta)


def _v_bat_dup(p: Path) -> None:
    v = Vhdx.open(p)
    _, off = v.entry(v.bat_index(3))
    v.set_entry(v.bat_index(5), 6, off)


def _v_bat_state4(p: Path) -> None:
    v = Vhdx.open(p)
    _, off = v.entry(0)
    v.set_entry(0, 4, off)


def _v_sbm_nondiff(p: Path) -> None:
    v = Vhdx.open(p)
    size = os.path.getsize(p)
    truncate(p, size + MiB)
    v.set_entry(v.chunk_ratio, 6, size)


def _v_vsize_odd(p: Path) -> None:
    v = Vhdx.open(p)
    wr(p, v.item(VIRTUAL_DISK_SIZE)[1], struct.pack("<Q", VSIZE + 100))


def _v_lss4096_vsize(p: Path) -> None:
    v = Vhdx.open(p)
    wr(p, v.item(LOGICAL_SECTOR_SIZE)[1], struct.pack("<I", 4096))
    wr(p, v.item(VIRTUAL_DISK_SIZE)[1], struct.pack("<Q", VSIZE + 512))


def _v_lss4096_oddblock(p: Path) -> None:
    v = Vhdx.open(p)
    wr(p, v.item(LOGICAL_SECTOR_SIZE)[1], struct.pack("<I", 4096))
    wr(p, v.item(FILE_PARAMETERS)[1], struct.pack("<I", 3 * MiB))


def _v_vhd_trunc_bat(p: Path) -> None:
    _, table, _ = vhd_dyn(p)
    truncate(p, table + 2)


def _v_vhd_trunc_data(p: Path) -> None:
    truncate(p, vhd_bat(p, 1) * 512 + 512 + 300 * KiB)


def _v_vhd_no_footer_copy(p: Path) -> None:
    truncate(p, os.path.getsize(p) - 512)


def _v_vhd_half_footer(p: Path) -> None:
    truncate(p, os.path.getsize(p) - 200)


def _v_vhd_bat_count_huge(p: Path) -> None:
    dh, _, _ = vhd_dyn(p)
    hdr = bytearray(rd(p, dh, 1024))
    struct.pack_into(">I", hdr, 28, 0x7FFFFFFF)
    wr(p, dh, bytes(vhd_fix(hdr, 36)))


def _v_vhd_bat_dup(p: Path) -> None:
    """The second allocated block made to point at the first one's sectors."""
    dh, table, entries = vhd_dyn(p)
    _, foot = vhd_footer(p)
    block = struct.unpack(">I", rd(p, dh + 32, 4))[0]
    needed = -(-struct.unpack_from(">Q", foot, 48)[0] // block)
    used = [i for i in range(min(entries, needed)) if vhd_bat(p, i) != 0xFFFFFFFF]
    other = used[1] if len(used) > 1 else (1 if used[0] == 0 else 0)
    wr(p, table + 4 * other, struct.pack(">I", vhd_bat(p, used[0])))


def _v_vhd_bat_into_header(p: Path) -> None:
    _, table, _ = vhd_dyn(p)
    wr(p, table, struct.pack(">I", 1))


def _v_vhd_fixed_size_big(p: Path) -> None:
    end, foot = vhd_footer(p)
    struct.pack_into(">QQ", foot, 40, VSIZE * 4, VSIZE * 4)
    wr(p, end, bytes(vhd_fix(foot, 64)))


def _v_vhd_fixed_trunc(p: Path) -> None:
    _, foot = vhd_footer(p)
    truncate(p, 4 * MiB)
    with open(p, "ab") as f:
        f.write(bytes(foot))  # a copy cut short, its footer appended again by hand


def _v_chain_parent_size(p: Path) -> None:
    folder = p.parent
    from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

    ident = _chain_parent_id(p)
    (folder / "base.vhdx").unlink()
    write_vhdx(
        str(folder / "base.vhdx"),
        VhdxSpec(virtual_size=4 * MiB, block_size=MiB, data_write_guid=ident),
        {0: b"\x11" * MiB},
    )


def _v_chain_parent_id(p: Path) -> None:
    folder = p.parent
    from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

    (folder / "base.vhdx").unlink()
    write_vhdx(
        str(folder / "base.vhdx"),
        VhdxSpec(virtual_size=VSIZE, block_size=MiB, data_write_guid=uuid.uuid4()),
        {0: b"\x11" * MiB},
    )


def _v_chain_loop(p: Path) -> None:
    """base.vhdx replaced by a differencing disk whose parent is the child: a loop."""
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    folder = p.parent
    ident = _chain_parent_id(p)
    child_id = _data_write_guid(p)
    (folder / "base.vhdx").unlink()
    parent = ParentSpec(child_id, relative_path=".\\child.avhdx")
    write_vhdx(
        str(folder / "base.vhdx"),
        VhdxSpec(virtual_size=VSIZE, block_size=MiB, data_write_guid=ident, parent=parent),
        {},
    )


def _chain_parent_id(p: Path) -> uuid.UUID:
    """The identity the child names: the base's data write GUID, as built."""
    return _data_write_guid(p.parent / "base.vhdx")


def _data_write_guid(p: Path) -> uuid.UUID:
    hs = vhdx_headers(p)
    best = max(hs, key=lambda h: struct.unpack_from("<Q", h, 8)[0])
    return uuid.UUID(bytes_le=bytes(best[32:48]))


def _v_trunc_at_block(p: Path) -> None:
    v = Vhdx.open(p)
    _, off = v.entry(v.bat_index(6))
    truncate(p, off)  # the last block lost whole, as a copy cut at a block boundary


def _v_log_over_metadata(p: Path) -> None:
    v = Vhdx.open(p)
    guid = uuid.uuid4().bytes_le
    for i, h in enumerate(vhdx_headers(p)):
        h[48:64] = guid
        struct.pack_into("<IQ", h, 68, MiB, v.meta)
        vhdx_put_header(p, i, h)


def _v_headers_same_seq(p: Path) -> None:
    hs = vhdx_headers(p)
    seq = max(struct.unpack_from("<Q", h, 8)[0] for h in hs)
    for i, h in enumerate(hs):
        struct.pack_into("<Q", h, 8, seq)
        h[32:48] = uuid.uuid4().bytes_le  # each copy names another data write GUID
        vhdx_put_header(p, i, h)


def _v_vhd_fixed_cut_no_footer(p: Path) -> None:
    truncate(p, os.path.getsize(p) // 2)


def _v_vhd_block_size_odd(p: Path) -> None:
    dh, _, _ = vhd_dyn(p)
    hdr = bytearray(rd(p, dh, 1024))
    struct.pack_into(">I", hdr, 32, 3 * MiB)
    wr(p, dh, bytes(vhd_fix(hdr, 36)))


def _v_vhd_footer_copy_differs(p: Path) -> None:
    """The copy at offset 0 is valid and names another size than the footer at the end."""
    head = bytearray(rd(p, 0, 512))
    struct.pack_into(">QQ", head, 40, VSIZE // 2, VSIZE // 2)
    wr(p, 0, bytes(vhd_fix(head, 64)))


def _vhd_patch_footers(path: Path, edit: Callable[[bytearray], None]) -> None:
    """Apply ``edit`` to the footer and to its copy at offset 0, checksums fixed."""
    for off in (0, os.path.getsize(path) - 512):
        foot = bytearray(rd(path, off, 512))
        if foot[:8] == b"conectix":
            edit(foot)
            wr(path, off, bytes(vhd_fix(foot, 64)))


def _v_vhd_parent_id(p: Path) -> None:
    _vhd_patch_footers(p.parent / "image.vhd", lambda f: f.__setitem__(slice(68, 84), bytes(16)))


def _v_vhd_parent_smaller(p: Path) -> None:
    def half(f: bytearray) -> None:
        size = struct.unpack_from(">Q", f, 48)[0]
        struct.pack_into(">QQ", f, 40, size // 2, size // 2)

    _vhd_patch_footers(p.parent / "image.vhd", half)


def _v_vhd_parent_gone(p: Path) -> None:
    (p.parent / "image.vhd").unlink()


def _v_intact(p: Path) -> None:
    return None


VARIANTS: list[Variant] = [
    Variant("vhdx-intact", "vhdx", _v_intact, visible=False),
    Variant("vhdx-trunc-in-bat", "vhdx", _v_trunc_bat),
    Variant("vhdx-trunc-in-data", "vhdx", _v_trunc_data),
    Variant("vhdx-trunc-in-metadata", "vhdx", _v_trunc_meta),
    Variant("vhdx-trunc-at-block", "vhdx", _v_trunc_at_block),
    Variant("vhdx-log-over-metadata", "vhdx", _v_log_over_metadata),
    Variant(
        "vhdx-headers-same-seq-differ",
        "vhdx",
        _v_headers_same_seq,
        visible=False,
        note="ambiguous which copy is current; content the same",
        expect="same-sequence-differs",
    ),
    Variant("vhdx-header-newer-badcrc", "vhdx", _v_header_seq_badcrc, note="twin is valid"),
    Variant("vhdx-log-beyond-eof", "vhdx", _v_log_beyond_eof),
    Variant(
        "vhdx-log-wrong-guid",
        "vhdx",
        _v_log_wrong_guid,
        visible=False,
        note="an entry under another GUID is not part of the log (MS-VHDX 2.3.3)",
    ),
    Variant("vhdx-meta-items-overlap", "vhdx", _v_meta_overlap, expect="overlap:"),
    Variant("vhdx-meta-region-over-bat", "vhdx", _v_meta_over_bat),
    Variant("vhdx-bat-into-headers", "vhdx", _v_bat_into_headers),
    Variant("vhdx-bat-into-metadata", "vhdx", _v_bat_into_meta),
    Variant("vhdx-bat-duplicate", "vhdx", _v_bat_dup),
    Variant("vhdx-bat-state4", "vhdx", _v_bat_state4),
    Variant(
        "vhdx-sbm-nondiff",
        "vhdx-5g",
        _v_sbm_nondiff,
        visible=False,
        note="content unchanged; a warning is expected",
        expect="sector-bitmap-without-parent",
    ),
    Variant("vhdx-vsize-not-sector-multiple", "vhdx", _v_vsize_odd),
    Variant("vhdx-lss4096-vsize-512", "vhdx", _v_lss4096_vsize),
    Variant("vhdx-lss4096-block-3mib", "vhdx", _v_lss4096_oddblock),
    Variant("vhd-dyn-intact", "vhd-dynamic", _v_intact, visible=False),
    Variant("vhd-dyn-trunc-in-bat", "vhd-dynamic", _v_vhd_trunc_bat),
    Variant("vhd-dyn-trunc-in-data", "vhd-dynamic", _v_vhd_trunc_data),
    Variant("vhd-dyn-no-footer-copy", "vhd-dynamic", _v_vhd_no_footer_copy),
    Variant("vhd-dyn-half-footer", "vhd-dynamic", _v_vhd_half_footer),
    Variant(
        "vhd-dyn-bat-count-huge",
        "vhd-dynamic",
        _v_vhd_bat_count_huge,
        expect="max-table-entries-beyond-eof",
    ),
    Variant("vhd-dyn-bat-duplicate", "vhd-dynamic", _v_vhd_bat_dup),
    Variant("vhd-dyn-bat-into-header", "vhd-dynamic", _v_vhd_bat_into_header),
    Variant("vhd-dyn-block-size-3mib", "vhd-dynamic", _v_vhd_block_size_odd),
    Variant("vhd-dyn-footer-copy-differs", "vhd-dynamic", _v_vhd_footer_copy_differs),
    Variant("ext-ocaml-intact", "ext-ocaml-dynamic", _v_intact, visible=False),
    Variant("ext-ocaml-trunc-in-bat", "ext-ocaml-dynamic", _v_vhd_trunc_bat),
    Variant("ext-ocaml-no-footer-copy", "ext-ocaml-dynamic", _v_vhd_no_footer_copy),
    Variant(
        "ext-ocaml-bat-count-huge",
        "ext-ocaml-dynamic",
        _v_vhd_bat_count_huge,
        expect="max-table-entries-beyond-eof",
    ),
    Variant("ext-ocaml-bat-duplicate", "ext-ocaml-dynamic", _v_vhd_bat_dup),
    Variant("ext-win-fixed-size-beyond-file", "ext-win-fixed", _v_vhd_fixed_size_big),
    Variant("ext-win-fixed-cut-no-footer", "ext-win-fixed", _v_vhd_fixed_cut_no_footer),
    Variant("vhd-fixed-intact", "vhd-fixed", _v_intact, visible=False),
    Variant("vhd-fixed-size-beyond-file", "vhd-fixed", _v_vhd_fixed_size_big),
    Variant("vhd-fixed-cut-footer-readded", "vhd-fixed", _v_vhd_fixed_trunc),
    Variant("vhd-chain-intact", "vhd-chain", _v_intact, visible=False),
    Variant("vhd-chain-parent-id-mismatch", "vhd-chain", _v_vhd_parent_id),
    Variant("vhd-chain-parent-smaller", "vhd-chain", _v_vhd_parent_smaller, expect="size"),
    Variant("vhd-chain-parent-missing", "vhd-chain", _v_vhd_parent_gone),
    Variant("chain-intact-relative-only", "vhdx-chain", _v_intact, visible=False),
    Variant("chain-parent-wrong-size", "vhdx-chain", _v_chain_parent_size, expect="size-mismatch"),
    Variant("chain-parent-id-mismatch", "vhdx-chain", _v_chain_parent_id),
    Variant("chain-loop", "vhdx-chain", _v_chain_loop),
]


VARIANTS += damage_real.more_variants(sys.modules[__name__])


def make_variant(v: Variant, folder: Path) -> Path:
    path = build_base(v.base, folder)
    v.damage(path)
    return path


# ---------------------------------------------------------------------------- running


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    rss_kb: int
    timed_out: bool = False

    def json(self) -> dict:
        try:
            data = json.loads(self.stdout)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def hvrescue(*args: str) -> Outcome:
    fd, timefile = tempfile.mkstemp(suffix=".time")
    os.close(fd)
    env = dict(os.environ, LANG="C.UTF-8", COLUMNS="200")
    env.pop("HVRESCUE_LANG", None)
    cmd = [sys.executable, "-m", "hvrescue", "-q", *args]
    if shutil.which("time") or os.path.exists("/usr/bin/time"):
        cmd = ["/usr/bin/time", "-f", "%M", "-o", timefile, *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        os.unlink(timefile)
        return Outcome(None, str(e.stdout or ""), str(e.stderr or ""), 0, timed_out=True)
    try:
        rss = int(Path(timefile).read_text().strip().splitlines()[-1])
    except (ValueError, IndexError):
        rss = 0
    os.unlink(timefile)
    return Outcome(p.returncode, p.stdout, p.stderr, rss)


def state(paths: list[Path]) -> dict[Path, tuple[str, int]]:
    out = {}
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        out[p] = (h.hexdigest(), p.stat().st_mtime_ns)
    return out


def oracle_qemu(path: Path, fmt: str, tmp: Path) -> str | None:
    raw = tmp / "oracle.raw"
    try:
        subprocess.run(
            ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(raw)],
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raw.unlink(missing_ok=True)  # what qemu-img wrote before it failed
        if fmt != "vhdx" or "replay" not in str(getattr(e, "stderr", b"")):
            return None
        return _oracle_qemu_replayed(path, tmp)
    h = hashlib.sha256()
    with open(raw, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    raw.unlink()
    return h.hexdigest()


def _oracle_qemu_replayed(path: Path, tmp: Path) -> str | None:
    """qemu reads a VHDX whose log needs replay only read-write: replay it on a copy."""
    copy = tmp / ("oracle-copy" + path.suffix)
    shutil.copyfile(path, copy)
    try:
        subprocess.run(
            ["qemu-img", "check", "-q", "-r", "leaks", "-f", "vhdx", str(copy)],
            capture_output=True,
            timeout=TIMEOUT,
        )
        return oracle_qemu(copy, "vhdx", tmp)
    except subprocess.TimeoutExpired:
        return None
    finally:
        copy.unlink()


def oracle_pyvhdi(path: Path) -> str | None:
    if path.suffix.lower() != ".vhd":
        return None
    code = (
        "import hashlib,sys,pyvhdi\nf=pyvhdi.file();f.open(sys.argv[1]);h=hashlib.sha256()\n"
        "n=f.get_media_size();o=0\nwhile o<n:\n b=f.read_buffer_at_offset(min(1<<20,n-o),o)\n"
        " assert b\n h.update(b);o+=len(b)\nprint(h.hexdigest())"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def reports_damage(data: dict) -> bool:
    return bool(data.get("unreadable") or data.get("undefined") or data.get("findings"))


def run_variant(v: Variant, work: Path) -> tuple[dict[str, str], list[str]]:
    folder = work / v.name
    if folder.exists():
        shutil.rmtree(folder)
    path = make_variant(v, folder)
    inputs = sorted(x for x in folder.iterdir() if x.is_file())
    before = state(inputs)
    outdir = work / (v.name + ".out")
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir()
    row: dict[str, str] = {}
    bad: list[str] = []
    outs: dict[str, Outcome] = {}
    cmds = {
        "info": ["info", str(path)],
        "check": ["check", "--json", str(path)],
        "chain": ["chain", "--json", str(path)],
        "hash": ["hash", "--json", str(path)],
        "merge": ["merge", "--json", str(path), str(outdir / "merged.vhdx")],
    }
    # A raw image is the other conversion there is (no ``convert`` command yet): its bytes are
    # the virtual content, hashed here without hvrescue.
    cmds["merge-raw"] = ["merge", "--json", "--format", "raw", str(path), str(outdir / "out.raw")]
    if has_convert():
        cmds["convert"] = ["convert", "--json", str(path), str(outdir / "converted.vhdx")]
    for name, args in cmds.items():
        o = outs[name] = hvrescue(*args)
        row[name] = "TIMEOUT" if o.timed_out else f"rc={o.rc}"
        if o.timed_out:
            bad.append(f"{name}: hang (> {TIMEOUT} s)")
        if "Traceback" in o.stderr:
            bad.append(f"{name}: traceback: {o.stderr.strip().splitlines()[-1]}")
        if o.rss_kb > MAX_RSS_KB:
            bad.append(f"{name}: peak memory {o.rss_kb // 1024} MB")
        if o.rc not in (0, 1, 2, None):
            bad.append(f"{name}: undocumented exit code {o.rc}")
        if state(inputs) != before:
            bad.append(f"{name}: an input changed")
            before = state(inputs)
    row["rss"] = f"{max(o.rss_kb for o in outs.values()) // 1024}MB"
    check = outs["check"].json()
    if check:
        row["check"] += f" {check.get('status')}"
    if v.expect and v.expect not in json.dumps(check.get("findings", [])):
        bad.append(f"check: no finding mentions {v.expect!r}")
    if v.visible and (outs["check"].rc == 0 or check.get("status") in ("clean", "healthy")):
        bad.append("check: clean on a damaged variant")
    h = outs["hash"].json()
    ours = h.get("sha256") if outs["hash"].rc == 0 else None
    if ours:
        row["hash"] += " " + ours[:8]
    elif h.get("sha256"):  # hashed with the undefined ranges as zeros, and says so
        row["hash"] += f" gaps:{len(h.get('undefined') or []) + len(h.get('unreadable') or [])}"
        if not (h.get("undefined") or h.get("unreadable")) or h.get("complete"):
            bad.append("hash: a digest that is not the content's, no range reported")
    else:
        row["hash"] += " refused"
    fmt = "vhdx" if path.suffix.lower() in (".vhdx", ".avhdx") else "vpc"
    peers = {"qemu": oracle_qemu(path, fmt, outdir)}
    if fmt == "vpc":
        peers["pyvhdi"] = oracle_pyvhdi(path)
    row["oracles"] = " ".join(f"{k}={(d or 'error')[:8]}" for k, d in peers.items())
    for peer, theirs in peers.items():
        if ours and theirs and ours != theirs and not reports_damage(h):
            bad.append(f"hash: {ours[:12]} differs from {peer} {theirs[:12]}, no range reported")
    m = outs["merge"].json()
    row["merge"] += f" {m.get('status', '')}".rstrip()
    merged = outdir / "merged.vhdx"
    if outs["merge"].rc == 0:
        if outs["hash"].rc != 0:
            bad.append("merge: verified copy written where hash refuses the content")
        if merged.exists():
            mh = hvrescue("hash", "--json", str(merged)).json().get("sha256")
            if ours and mh != ours:
                bad.append(f"merge: output hashes {str(mh)[:12]}, input {ours[:12]}")
    if outs["merge"].rc == 2 and merged.exists():
        bad.append("merge: refused but left its output")
    row["merge-raw"] += f" {outs['merge-raw'].json().get('status', '')}".rstrip()
    bad += _written_ok("merge-raw", outs["merge-raw"], outdir / "out.raw", ours, hashed=h)
    if "convert" in outs:
        row["convert"] += f" {outs['convert'].json().get('status', '')}".rstrip()
        bad += _written_ok("convert", outs["convert"], outdir / "converted.vhdx", ours, hashed=h)
    leftovers = sorted(
        x.name
        for x in outdir.iterdir()
        if x.name not in ("merged.vhdx", "converted.vhdx", "out.raw")
        and not x.name.endswith(".map")
    )
    if leftovers:
        bad.append(f"output folder holds {leftovers} (a temporary name left behind?)")
    return row, bad


def _written_ok(name: str, o: Outcome, out: Path, ours: str | None, hashed: dict) -> list[str]:
    """The invariants of a command that writes a new disk from the variant."""
    bad = []
    if o.rc == 0:
        if not ours:
            bad.append(f"{name}: a clean copy written where hash refuses the content")
        if out.exists():
            if out.suffix == ".raw":
                theirs = state([out])[out][0]
            else:
                theirs = hvrescue("hash", "--json", str(out)).json().get("sha256")
            if ours and theirs != ours:
                bad.append(f"{name}: output hashes {str(theirs)[:12]}, input {ours[:12]}")
        else:
            bad.append(f"{name}: exit 0 without its output")
    elif o.rc == 2:
        if out.exists():
            bad.append(f"{name}: refused but left its output")
        if not (o.stderr.strip() or o.json()):
            bad.append(f"{name}: refused without saying why")
    elif (
        o.rc == 1
        and out.exists()
        and not (hashed.get("undefined") or hashed.get("unreadable"))
        and not o.json().get("findings")
        and "gap" not in o.stdout + o.stderr
    ):
        bad.append(f"{name}: exit 1 with no finding or gap reported")
    return bad


_CONVERT: list[bool] = []


def has_convert() -> bool:
    """Whether this hvrescue has a ``convert`` command (it is run like ``merge`` if so)."""
    if not _CONVERT:
        _CONVERT.append(hvrescue("convert", "--help").rc == 0)
    return _CONVERT[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args(argv)
    work = ns.work or Path(tempfile.mkdtemp(prefix="hvr-campaign-"))
    work.mkdir(parents=True, exist_ok=True)
    only = {x for x in ns.only.split(",") if x}
    results = {}
    for v in VARIANTS:
        if only and v.name not in only:
            continue
        row, bad = run_variant(v, work)
        results[v.name] = {"row": row, "violations": bad}
        if not ns.json:
            cells = " | ".join(
                f"{row.get(c, '')}"
                for c in (
                    *("info", "check", "chain", "hash", "merge", "merge-raw", "convert"),
                    *("oracles", "rss"),
                )
            )
            print(f"{v.name:34} | {cells}", flush=True)
    return report(results, ns.json)


def report(results: dict[str, dict], as_json: bool) -> int:
    """Print the campaign's results (JSON, or the violations) and give its exit code."""
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        print("\nViolations:")
        for name, r in results.items():
            for b in r["violations"]:
                print(f"  {name}: {b}")
    return 1 if any(r["violations"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
