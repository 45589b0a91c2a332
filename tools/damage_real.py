"""Round two of the damage campaign: damage as storage, copies and crashes really leave it.

Imported by ``damage_campaign.py`` (``more_variants(dc)`` gets that module, for its byte
helpers and ``Variant``). Where each kind of damage was seen:

- zeroed ranges: a power loss or a failing array returns zeroed 4 KiB pages or whole 1 MiB
  stripes (the first MiB holding both VHDX headers and region tables: "No valid VHDX header
  found", cloud-hypervisor/cloud-hypervisor#6844; a 60 TB fixed VHDX whose metadata was damaged,
  blog.nuvotex.de/fixing-corrupt-vhdx-manually); a copy or download tool that preallocates
  the target and is interrupted leaves the tail zeros, footer included (microsoft/WSL#12600:
  a truncated ext4.vhdx, 0x80070570);
- bit flips in structure fields: a single bit of a BAT entry, a state, a region length, a
  metadata item length, the VHD dynamic header's max table entries; a footer or its copy
  with a wrong cookie or checksum (the footer copy at offset 0 is what "Fixed size virtual
  hard disks only have one copy of", blogs.msdn.microsoft.com/virtual_pc_guy 2009-01-07);
- a VHDX log that must be replayed (Windows' own, DiscUtils' vhdx-log-replay test image:
  DiscUtils/DiscUtils#27; qemu only writes one when it crashes mid-write, and refuses to read
  it read-only: GoogleCloudPlatform/compute-image-tools#1133) and one whose replay would
  write beyond the file;
- differencing VHD disks with a damaged sector bitmap and broken parent locators or name.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

KiB = 1024
MiB = 1024 * KiB
PUBLIC = "corpus/public"


def zero(path: Path, off: int, n: int) -> None:
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(bytes(n))


def flip(path: Path, off: int, bit: int) -> None:
    with open(path, "r+b") as f:
        f.seek(off + bit // 8)
        b = f.read(1)[0]
        f.seek(off + bit // 8)
        f.write(bytes([b ^ (1 << (bit % 8))]))


def more_variants(dc: ModuleType) -> list[Any]:
    V = dc.Variant
    rd, wr = dc.rd, dc.wr

    # ------------------------------------------------------------------ VHDX zeroed ranges
    def z_first_mib(p: Path) -> None:
        zero(p, 0, MiB)

    def z_header(index: int):
        return lambda p: zero(p, (64, 128)[index] * KiB, 64 * KiB)

    def z_region(p: Path) -> None:
        zero(p, 192 * KiB, 64 * KiB)

    def z_bat_page(p: Path) -> None:
        zero(p, dc.Vhdx.open(p).bat, 4 * KiB)

    def z_metadata(p: Path) -> None:
        v = dc.Vhdx.open(p)
        zero(p, v.meta, MiB)

    def z_data_page(p: Path) -> None:
        v = dc.Vhdx.open(p)
        _, off = v.entry(0)
        zero(p, off + 64 * KiB, 4 * KiB)

    # ------------------------------------------------------------------ VHDX bit flips
    def f_bat_offset(p: Path) -> None:
        v = dc.Vhdx.open(p)
        flip(p, v.bat + 8 * v.bat_index(3), 20 + 7)  # FileOffsetMB + 128

    def f_bat_state_bad(p: Path) -> None:
        flip(p, dc.Vhdx.open(p).bat, 0)  # 6 (FULLY_PRESENT) -> 7: no such state

    def f_bat_state_zero(p: Path) -> None:
        flip(p, dc.Vhdx.open(p).bat, 2)  # 6 (FULLY_PRESENT) -> 2 (ZERO): a valid state

    def f_region_len_one(p: Path) -> None:
        _flip_bat_length(p, tables=(192 * KiB,), fix_crc=False)

    def f_region_len_both(p: Path) -> None:
        _flip_bat_length(p, tables=(192 * KiB, 256 * KiB), fix_crc=True)

    def _flip_bat_length(p: Path, tables: tuple[int, ...], fix_crc: bool) -> None:
        for off in tables:
            rt = bytearray(rd(p, off, 64 * KiB))
            for i in range(struct.unpack_from("<I", rt, 8)[0]):
                e = 16 + 32 * i
                if uuid.UUID(bytes_le=bytes(rt[e : e + 16])) == dc.BAT_GUID:
                    length = struct.unpack_from("<I", rt, e + 24)[0]
                    struct.pack_into("<I", rt, e + 24, length ^ (1 << 20))  # 1 MiB -> 0
            wr(p, off, bytes(rt))
        if fix_crc:
            dc.vhdx_region_fix(p)

    def f_meta_len(guid: uuid.UUID):
        def damage(p: Path) -> None:
            at, _, _ = dc.Vhdx.open(p).item(guid)
            flip(p, at + 20, 30)  # length + 1 GiB

        return damage

    # ------------------------------------------------------------------ VHDX log
    def _log_target(p: Path, make: Any) -> None:
        from hvrescue.vdisk.vhdx.writer import _log_entry

        hs = dc.vhdx_headers(p)
        log_off = struct.unpack_from("<Q", hs[0], 72)[0]
        guid = uuid.uuid4()
        size = os.path.getsize(p)
        wr(p, log_off, _log_entry(guid, 10, [make(p, size)], size))
        for i, h in enumerate(hs):
            h[48:64] = guid.bytes_le
            dc.vhdx_put_header(p, i, h)

    def log_valid(p: Path) -> None:  # the first sector of block 0 rewritten by the log
        _log_target(p, lambda p, size: (dc.Vhdx.open(p).entry(0)[1], b"\xee" * 4096))

    def log_beyond(p: Path) -> None:
        _log_target(p, lambda p, size: (1 << 40, b"\xee" * 4096))

    def ext_log_beyond(p: Path) -> None:
        """The last entry of Windows' log made to write its BAT sector at 1 TiB."""
        from hvrescue.vdisk.crc import crc32c_with_field_zeroed

        h = max(dc.vhdx_headers(p), key=lambda h: struct.unpack_from("<Q", h, 8)[0])
        pos, end = struct.unpack_from("<Q", h, 72)[0], 0
        last = None
        while rd(p, pos, 4) == b"loge" and pos < (1 << 30):
            last, end = pos, pos + struct.unpack_from("<I", rd(p, pos + 8, 4))[0]
            pos = end
        assert last is not None
        entry = bytearray(rd(p, last, end - last))
        struct.pack_into("<Q", entry, 64 + 16, 1 << 40)
        struct.pack_into("<I", entry, 4, crc32c_with_field_zeroed(bytes(entry), 4))
        wr(p, last, bytes(entry))

    # ------------------------------------------------------------------ VHD dynamic
    def vz_footer_copy(p: Path) -> None:
        zero(p, 0, 512)

    def vz_dyn_header(p: Path) -> None:
        dh, _, _ = dc.vhd_dyn(p)
        zero(p, dh, 1024)

    def vz_tail(p: Path) -> None:  # a preallocated copy that stopped 2 MiB short
        size = os.path.getsize(p)
        zero(p, size - 2 * MiB - 512, 2 * MiB + 512)

    def v_footer(off_of: Any, field: int, mask: int):
        def damage(p: Path) -> None:
            flip(p, off_of(p) + field, mask)

        return damage

    def end(p: Path) -> int:
        return os.path.getsize(p) - 512

    def start(p: Path) -> int:
        return 0

    def v_max_entries_small(p: Path) -> None:
        dh, _, _ = dc.vhd_dyn(p)
        hdr = bytearray(rd(p, dh, 1024))
        struct.pack_into(">I", hdr, 28, 1)
        wr(p, dh, bytes(dc.vhd_fix(hdr, 36)))

    def v_max_entries_flip(p: Path) -> None:  # 4 -> 4 + 2**19, checksum left as it was
        dh, _, _ = dc.vhd_dyn(p)
        flip(p, dh + 28, 11)

    def v_bat_offset_bit(p: Path) -> None:
        _, table, _ = dc.vhd_dyn(p)
        flip(p, table, 7)  # entry 0 (big-endian) + 2**31 sectors: 1 TiB further

    def v_bat_offset_bit_low(p: Path) -> None:
        _, table, _ = dc.vhd_dyn(p)
        flip(p, table + 2, 7)  # entry 0 + 2**15 sectors: 16 MiB further, past the end

    # ------------------------------------------------------------------ VHD differencing
    def _dyn_edit(p: Path, edit: Any) -> None:
        dh, _, _ = dc.vhd_dyn(p)
        hdr = bytearray(rd(p, dh, 1024))
        edit(hdr)
        wr(p, dh, bytes(dc.vhd_fix(hdr, 36)))

    def _locator(hdr: bytearray, code: bytes) -> int:
        for i in range(8):
            if hdr[576 + 24 * i : 580 + 24 * i] == code:
                return 576 + 24 * i
        raise AssertionError(code)

    def loc_len_huge(p: Path) -> None:
        _dyn_edit(p, lambda h: struct.pack_into(">II", h, _locator(h, b"W2ru") + 4, 2**31, 2**31))

    def loc_off_huge(p: Path) -> None:
        _dyn_edit(p, lambda h: struct.pack_into(">Q", h, _locator(h, b"W2ru") + 16, 1 << 62))

    def loc_garbage(p: Path) -> None:
        dh, _, _ = dc.vhd_dyn(p)
        hdr = rd(p, dh, 1024)
        for i in range(8):
            at = 576 + 24 * i
            if hdr[at : at + 4] in (b"W2ru", b"W2ku"):
                length, _, off = struct.unpack_from(">IIQ", hdr, at + 8)
                wr(p, off, (b"\x00\xd8\xff\xfe" * length)[:length])  # unpaired surrogates

    def parent_name_bad(p: Path) -> None:
        def edit(h: bytearray) -> None:
            name = b"\xd8\x00" + "parent.vhd".encode("utf-16-be") + b"\xdc\x01"
            h[64:576] = name.ljust(512, b"\0")  # unpaired surrogates around the name

        _dyn_edit(p, edit)

    def vhd_sbm_zeroed(p: Path) -> None:
        zero(p, dc.vhd_bat(p, 0) * 512, 512)

    def vhd_sbm_cut(p: Path) -> None:
        dc.truncate(p, dc.vhd_bat(p, 0) * 512 + 200)

    def hand_sbm_zeroed(p: Path) -> None:
        zero(p, dc.vhd_bat(p, 1) * 512, 512)

    def hand_sbm_cut(p: Path) -> None:
        dc.truncate(p, dc.vhd_bat(p, 1) * 512 + 200)

    # ------------------------------------------------------------------ VHDX differencing
    def sbm_entry(p: Path) -> tuple[int, int]:
        v = dc.Vhdx.open(p)
        return v.bat + 8 * v.chunk_ratio, v.entry(v.chunk_ratio)[1]

    def x_sbm_zeroed(p: Path) -> None:
        zero(p, sbm_entry(p)[1], MiB)

    def x_sbm_beyond(p: Path) -> None:
        at, off = sbm_entry(p)
        wr(p, at, struct.pack("<Q", ((off // MiB + 64) << 20) | 6))

    return [
        V("vhdx-zero-first-mib", "vhdx", z_first_mib, note="headers and region tables"),
        V("vhdx-zero-header-1", "vhdx", z_header(0), note="twin valid; content the same"),
        V("vhdx-zero-header-2", "vhdx", z_header(1), note="twin valid; content the same"),
        V("vhdx-zero-region-table-1", "vhdx", z_region, note="twin valid; content the same"),
        V(
            "vhdx-zero-bat-page",
            "vhdx",
            z_bat_page,
            visible=False,
            note="blocks read unallocated, as qemu reads them; the data left behind is reported",
            expect="orphan-data",
        ),
        V("vhdx-zero-metadata", "vhdx", z_metadata),
        V(
            "vhdx-zero-data-page",
            "vhdx",
            z_data_page,
            visible=False,
            note="undetectable by design: nothing may claim the range is damaged or intact",
        ),
        V("vhdx-flip-bat-offset", "vhdx", f_bat_offset),
        V("vhdx-flip-bat-state-7", "vhdx", f_bat_state_bad),
        V(
            "vhdx-flip-bat-state-zero",
            "vhdx",
            f_bat_state_zero,
            visible=False,
            note="a valid state: undetectable by design",
        ),
        V("vhdx-flip-region-length-one", "vhdx", f_region_len_one, note="CRC left; twin valid"),
        V("vhdx-flip-region-length-both", "vhdx", f_region_len_both, note="CRCs recomputed"),
        V("vhdx-flip-meta-len-vsize", "vhdx", f_meta_len(dc.VIRTUAL_DISK_SIZE)),
        V("vhdx-flip-meta-len-fileparams", "vhdx", f_meta_len(dc.FILE_PARAMETERS)),
        V("vhdx-log-replay-valid", "vhdx", log_valid, visible=False, note="must be replayed"),
        V("vhdx-log-replay-beyond-file", "vhdx", log_beyond),
        V("ext-win-log-intact", "ext-win-log", dc._v_intact, visible=False),
        V("ext-win-log-beyond-file", "ext-win-log", ext_log_beyond),
        V("vhd-dyn-zero-footer-copy", "vhd-dynamic", vz_footer_copy, note="footer valid"),
        V("vhd-dyn-zero-dyn-header", "vhd-dynamic", vz_dyn_header),
        V("vhd-dyn-zero-tail", "vhd-dynamic", vz_tail, note="preallocated copy cut short"),
        V("vhd-dyn-footer-cookie-bad", "vhd-dynamic", v_footer(end, 7, 0), note="copy valid"),
        V("vhd-dyn-footer-checksum-bad", "vhd-dynamic", v_footer(end, 64, 3), note="copy valid"),
        V("vhd-dyn-copy-cookie-bad", "vhd-dynamic", v_footer(start, 7, 0), note="footer valid"),
        V("vhd-dyn-copy-checksum-bad", "vhd-dynamic", v_footer(start, 64, 3), note="footer valid"),
        V("vhd-dyn-max-entries-small", "vhd-dynamic", v_max_entries_small),
        V("vhd-dyn-max-entries-flip", "vhd-dynamic", v_max_entries_flip, note="checksum wrong"),
        V("vhd-dyn-bat-offset-top-bit", "vhd-dynamic", v_bat_offset_bit),
        V("vhd-dyn-bat-offset-bit", "vhd-dynamic", v_bat_offset_bit_low),
        V("ext-ocaml-zero-tail", "ext-ocaml-dynamic", vz_tail),
        V("vhd-diff-loc-length-huge", "vhd-chain-loc", loc_len_huge),
        V("vhd-diff-loc-offset-huge", "vhd-chain-loc", loc_off_huge),
        V("vhd-diff-loc-garbage", "vhd-chain-loc", loc_garbage),
        V("vhd-diff-parent-name-bad-utf16", "vhd-chain-loc", parent_name_bad),
        V("ext-win-diff-loc-length-huge", "ext-win-diff", loc_len_huge),
        V(
            "vhd-diff-bitmap-zeroed",
            "vhd-chain",
            vhd_sbm_zeroed,
            visible=False,
            note="the child's sectors fall through to the parent: undetectable by design",
        ),
        V("vhd-diff-bitmap-cut", "vhd-chain", vhd_sbm_cut),
        V("vhd-hand-intact", "vhd-diff-hand", dc._v_intact, visible=False),
        V(
            "vhd-hand-bitmap-zeroed",
            "vhd-diff-hand",
            hand_sbm_zeroed,
            visible=False,
            note="the child's 64 KiB fall through to the parent: undetectable by design",
        ),
        V("vhd-hand-bitmap-cut", "vhd-diff-hand", hand_sbm_cut),
        V("vhd-hand-loc-length-huge", "vhd-diff-hand", loc_len_huge),
        V("vhd-hand-loc-offset-huge", "vhd-diff-hand", loc_off_huge),
        V("vhd-hand-loc-garbage", "vhd-diff-hand", loc_garbage),
        V("vhd-hand-parent-name-bad-utf16", "vhd-diff-hand", parent_name_bad),
        V(
            "chain-sbm-zeroed",
            "vhdx-chain-partial",
            x_sbm_zeroed,
            visible=False,
            note="the child's sectors fall through to the parent: undetectable by design",
        ),
        V("chain-sbm-beyond-eof", "vhdx-chain-partial", x_sbm_beyond),
    ]


def build_base(kind: str, folder: Path, shared: Path) -> Path | None:
    """The bases round two adds; None for a kind it does not know."""
    if kind == "ext-win-log":  # Windows 10 left its log unreplayed (DiscUtils' test image)
        path = folder / "log.vhdx"
        with gzip.open(shared / PUBLIC / "discutils" / "vhdx-log-replay.vhdx.gz") as f:
            path.write_bytes(f.read())
        return path
    if kind == "ext-win-diff":  # Windows' differencing VHD with W2ku/W2ru (parent absent)
        path = folder / "fat-differential.vhd"
        shutil.copyfile(shared / PUBLIC / "dfvfs" / path.name, path)
        os.chmod(path, 0o644)
        return path
    if kind == "vhd-chain-loc":  # dfvfs' child given W2ru/W2ku locators by our reparent
        for name in ("image.vhd", "image-differential.vhd"):
            shutil.copyfile(shared / PUBLIC / "dfvfs" / name, folder / f"src-{name}")
        out = folder / "image-differential.vhd"
        parent = folder / "image.vhd"
        os.rename(folder / "src-image.vhd", parent)
        subprocess.run(
            [
                *(sys.executable, "-m", "hvrescue", "-q", "reparent", "--parent", str(parent)),
                *(str(folder / "src-image-differential.vhd"), str(out)),
            ],
            capture_output=True,
            timeout=120,
        )  # exit 1: written, with the findings the dfvfs parent has
        assert out.exists(), "reparent wrote no child"
        (folder / "src-image-differential.vhd").unlink()
        for p in (parent, out):
            os.chmod(p, 0o644)
        return out
    if kind == "vhd-diff-hand":
        return _vhd_diff_by_spec(folder)
    if kind == "vhdx-chain-partial":  # the child wrote 64 KiB inside a block: a bitmap counts
        from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

        base_id = uuid.uuid4()
        write_vhdx(
            str(folder / "base.vhdx"),
            VhdxSpec(virtual_size=8 * MiB, block_size=MiB, data_write_guid=base_id),
            {0: b"\x11" * (4 * MiB)},
        )
        child = folder / "child.avhdx"
        write_vhdx(
            str(child),
            VhdxSpec(
                virtual_size=8 * MiB,
                block_size=MiB,
                parent=ParentSpec(base_id, relative_path=".\\base.vhdx"),
            ),
            {2 * MiB + 128 * KiB: b"\x22" * (64 * KiB)},
        )
        return child
    return None


def _vhd_diff_by_spec(folder: Path) -> Path:
    """A differencing VHD built by hand per the VHD spec (Oct 2006) over a dynamic VHD qemu
    wrote (8 MiB, 2 MiB blocks; qemu cannot write a differencing VHD): the child holds 64 KiB
    of 0x22 at 2 MiB + 128 KiB, its sector bitmap says so, W2ru/W2ku name the parent."""
    from hvrescue.vdisk.vhd.structures import checksum

    parent = folder / "parent.vhd"
    subprocess.run(
        [
            *("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on"),
            *(str(parent), str(8 * MiB)),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["qemu-io", "-f", "vpc", "-c", "write -P 0x11 0 4M", str(parent)],
        check=True,
        capture_output=True,
    )
    pfoot = parent.read_bytes()[-512:]
    block, entries = 2 * MiB, 4
    rel = ".\\parent.vhd".encode("utf-16-le")
    absolute = "C:\\VMs\\parent.vhd".encode("utf-16-le")
    loc_at, bat_at, data_at = 3 * 512, 4 * 512, 6 * 512  # W2ru, BAT, block 1 (W2ku at 5)
    foot = bytearray(pfoot)
    struct.pack_into(">Q", foot, 16, 512)  # data offset: the dynamic header
    struct.pack_into(">I", foot, 60, 4)  # differencing
    foot[68:84] = uuid.uuid4().bytes
    struct.pack_into(">I", foot, 64, checksum(bytes(foot), 64))
    dyn = bytearray(1024)
    struct.pack_into(">8sQQIII", dyn, 0, b"cxsparse", 2**64 - 1, bat_at, 0x00010000, entries, block)
    dyn[40:56] = pfoot[68:84]  # the parent's unique id
    dyn[56:60] = pfoot[24:28]  # and its time stamp
    name = "parent.vhd".encode("utf-16-be")
    dyn[64 : 64 + len(name)] = name
    struct.pack_into(">4sIIIQ", dyn, 576, b"W2ru", 512, len(rel), 0, loc_at)
    struct.pack_into(">4sIIIQ", dyn, 576 + 24, b"W2ku", 512, len(absolute), 0, 5 * 512)
    struct.pack_into(">I", dyn, 36, checksum(bytes(dyn), 36))
    bat = bytearray(b"\xff" * 512)
    struct.pack_into(">I", bat, 4, data_at // 512)  # block 1 at sector 12
    bitmap = bytearray(512)
    first = (128 * KiB) // 512  # sectors 256..383 of the block are the child's
    for sec in range(first, first + (64 * KiB) // 512):
        bitmap[sec >> 3] |= 0x80 >> (sec & 7)  # the VHD bitmap is MSB first
    child = folder / "child.vhd"
    with open(child, "wb") as f:
        f.write(foot)
        f.write(dyn)
        f.write(rel.ljust(512, b"\0"))
        f.write(bat)
        f.write(absolute.ljust(512, b"\0"))
        f.write(bitmap)
        f.write(bytes(128 * KiB) + b"\x22" * (64 * KiB) + bytes(block - 192 * KiB))
        f.write(foot)
    return child
