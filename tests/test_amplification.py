"""Work is bounded by the data a file holds, not by the numbers it claims (issue 12, item 2).

Crafted disks: BAT entries that all point at one block, entries that overlap the header or the
BAT, a fixed VHD claiming 520 GiB in 2 MB, degenerate sizes and block sizes. Every command
finishes well within a minute, names the damage, never writes more than the file holds, and
leaves its input untouched. Images are made by qemu-img/qemu-io (an independent writer) or by
the project's VHDX writer, then damaged here by patching bytes; the expected undefined ranges
are worked out here from the patched layout, and qemu-img's own reading is the oracle for the
blocks that are not damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from hvrescue.errors import UndefinedContentError
from hvrescue.vdisk import disk as disk_module
from hvrescue.vdisk.disk import Disk, gap_ranges, merge_ranges
from hvrescue.vdisk.vhdx import structures as vs
from hvrescue.vdisk.vhdx.writer import BAT_OFFSET, METADATA_OFFSET, VhdxSpec, write_vhdx
from tests.builders import patch, read_at
from tests.helpers import Evidence

MiB = 1024 * 1024
GiB = 1024 * MiB
TIMEOUT = 60  # seconds: every command on every crafted disk ends well within it
QEMU = shutil.which("qemu-img") and shutil.which("qemu-io")
needs_qemu = pytest.mark.skipif(not QEMU, reason="qemu-img and qemu-io (qemu-utils) are needed")


# ------------------------------------------------------------------ helpers
def run(*args: str | Path) -> tuple[int, Any, str]:
    """The real CLI with a hard timeout; inputs (Path arguments) must stay byte-identical."""
    snap = Evidence([a for a in args if isinstance(a, Path) and a.exists()])
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="", COLUMNS="200")
    env.pop("HVRESCUE_LANG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    snap.assert_untouched()
    assert "Traceback" not in proc.stderr and "Internal error" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else None
    return proc.returncode, data, proc.stderr


def vhd_checksum(raw: bytes | bytearray, at: int) -> int:
    """The VHD checksum (ones' complement of the byte sum without the field), from the spec."""
    return ~(sum(raw) - sum(raw[at : at + 4])) & 0xFFFFFFFF


def qemu_vhd(path: Path, size: str, subformat: str, writes: list[tuple[int, int, int]]) -> None:
    """A VHD made by qemu-img, with ``(offset, length, pattern byte)`` written by qemu-io."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "vpc", "-o", f"subformat={subformat}", str(path), size],
        check=True,
    )
    for offset, length, pattern in writes:
        subprocess.run(
            ["qemu-io", "-f", "vpc", "-c", f"write -P {pattern} {offset} {length}", str(path)],
            check=True,
            capture_output=True,
        )


def vhd_layout(path: Path) -> dict[str, Any]:
    """Footer and dynamic header fields read straight from the file (big-endian, per spec)."""
    raw = path.read_bytes()
    footer = raw[-512:]
    out: dict[str, Any] = {"size": struct.unpack(">Q", footer[48:56])[0], "file": len(raw)}
    data_offset = struct.unpack(">Q", footer[16:24])[0]
    if data_offset != 0xFFFFFFFFFFFFFFFF:
        hdr = raw[data_offset : data_offset + 1024]
        table = struct.unpack(">Q", hdr[16:24])[0]
        entries, block = struct.unpack(">II", hdr[28:36])
        out.update(
            header=data_offset,
            table=table,
            entries=entries,
            block=block,
            bitmap=-(-(block // 512 // 8) // 512) * 512,
            bat=list(struct.unpack(f">{entries}I", raw[table : table + 4 * entries])),
        )
    return out


def set_vhd_bat(path: Path, table: int, entries: dict[int, int]) -> None:
    for index, sector in entries.items():
        patch(path, table + 4 * index, struct.pack(">I", sector))


def set_footer_size(path: Path, size: int) -> None:
    """Current and original size in the footer at the end (and its copy at the start of a
    dynamic disk), checksums made right so that only the size is wrong."""
    length = path.stat().st_size
    raw = read_at(path, length - 512, 512)
    offsets = [length - 512] + ([0] if read_at(path, 0, 8) == b"conectix" else [])
    fixed = bytearray(raw)
    struct.pack_into(">QQ", fixed, 40, size, size)
    struct.pack_into(">I", fixed, 64, vhd_checksum(fixed, 64))
    for at in offsets:
        patch(path, at, bytes(fixed))


def set_vhd_header_field(path: Path, at: int, fmt: str, value: int) -> None:
    """A dynamic header field (offset within the header), its checksum made right."""
    layout = vhd_layout(path)
    hdr = bytearray(read_at(path, layout["header"], 1024))
    struct.pack_into(fmt, hdr, at, value)
    struct.pack_into(">I", hdr, 36, vhd_checksum(hdr, 36))
    patch(path, layout["header"], bytes(hdr))


def qemu_raw(path: Path, fmt: str, out: Path) -> bytes:
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out)], check=True)
    return out.read_bytes()


def expected_vhd_overlaps(layout: dict[str, Any]) -> set[int]:
    """Blocks whose file extent (bitmap + block) meets another block's or a structure's: every
    pair is worked out here, quadratically, apart from the engine's sweep."""
    extent = layout["bitmap"] + layout["block"]
    blocks = [(i, e * 512) for i, e in enumerate(layout["bat"]) if e != 0xFFFFFFFF]
    structures = [
        (0, 512),
        (layout["header"], layout["header"] + 1024),
        (layout["table"], layout["table"] + 4 * layout["entries"]),
    ]
    out: set[int] = set()
    for i, a in blocks:
        if any(a < hi and lo < a + extent for lo, hi in structures):
            out.add(i)
        for j, b in blocks:
            if i != j and a < b + extent and b < a + extent:
                out.add(i)
    return out


def block_ranges(blocks: set[int], block: int, size: int) -> list[tuple[int, int]]:
    return list(merge_ranges(sorted((b * block, min(block, size - b * block)) for b in blocks)))


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def map_bad_ranges(path: Path) -> list[tuple[int, int]]:
    """The ``-`` ranges of a GNU ddrescue map, read as ddrescue would."""
    out = []
    lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
    for line in lines[1:]:
        pos, size, status = line.split()[:3]
        if status == "-":
            out.append((int(pos, 16), int(size, 16)))
    return out


# ------------------------------------------------------------------ one block, many entries
@pytest.fixture
def one_block_vhd(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An 8 GiB dynamic VHD of ~2 MB in which entries 0-99 all point at block 0's data, and
    block 200 holds its own data: the file "holds" 200 MiB through its BAT, 4 MiB in fact."""
    path = tmp_path / "one.vhd"
    qemu_vhd(path, "8G", "dynamic", [(0, 2 * MiB, 0xAB), (200 * 2 * MiB, 2 * MiB, 0x5C)])
    layout = vhd_layout(path)
    set_vhd_bat(path, layout["table"], {i: layout["bat"][0] for i in range(1, 100)})
    return path, vhd_layout(path)


@needs_qemu
def test_merge_refuses_bat_entries_pointing_at_one_block_naming_them(one_block_vhd, tmp_path):
    path, layout = one_block_vhd
    out = tmp_path / "out.vhdx"
    rc, data, stderr = run("merge", "--json", path, out)
    assert rc == 2 and not out.exists() and not Path(str(out) + ".map").exists()
    assert data["error"]["key"] == "error.merge.overlap"
    params = data["error"]["params"]
    assert params["entries"] == 100
    assert "one.vhd: 1↔0 @" in params["overlaps"]
    assert [(u["offset"], u["length"], u["cause"]) for u in params["undefined"]] == [
        (0, 100 * layout["block"], "overlap")
    ]
    rc, _data, stderr = run("merge", path, out)
    assert rc == 2 and "--allow-gaps" in stderr and "1↔0" in stderr


@needs_qemu
@pytest.mark.parametrize("fmt", ["vhdx", "raw"])
def test_merge_with_allow_gaps_writes_at_most_what_the_file_holds(one_block_vhd, tmp_path, fmt):
    path, layout = one_block_vhd
    out = tmp_path / f"out.{fmt}"
    rc, data, _ = run("merge", "--json", "--allow-gaps", "--format", fmt, path, out)
    assert rc == 1 and data["status"] == "written-with-gaps"
    # One block of data really is in the file besides the overlapping ones: that is all.
    assert data["blocks_written"] == 1 and data["data_bytes"] <= 2 * MiB
    assert allocated_bytes(out) <= path.stat().st_size + 8 * MiB
    assert map_bad_ranges(Path(data["map"])) == [(0, 100 * layout["block"])]
    if fmt == "vhdx":
        with Disk.open(str(out)) as d:
            got, zeros = d.read(200 * 2 * MiB, 2 * MiB), d.read(0, 2 * MiB)
    else:
        got, zeros = read_at(out, 200 * 2 * MiB, 2 * MiB), read_at(out, 0, 2 * MiB)
    assert got == b"\x5c" * 2 * MiB and zeros == bytes(2 * MiB)


@needs_qemu
def test_check_deep_of_one_block_vhd_ends_at_once_with_the_findings(one_block_vhd):
    path, layout = one_block_vhd
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1
    codes = {f["code"] for f in data["findings"]}
    assert {"vhd.bat.overlap", "disk.undefined"} <= codes
    undefined = [(u["offset"], u["length"], u["cause"]) for u in data["files"][0]["undefined"]]
    assert undefined == [(0, 100 * layout["block"], "overlap")]


@needs_qemu
def test_all_entries_at_one_block_refuse_hash_unless_allowed(tmp_path):
    """All 4,097 entries of an 8 GiB VHD at one block: 8 GiB of overlap in a 2 MB file."""
    path = tmp_path / "all.vhd"
    qemu_vhd(path, "8G", "dynamic", [(0, 2 * MiB, 0xAB)])
    layout = vhd_layout(path)
    set_vhd_bat(path, layout["table"], {i: layout["bat"][0] for i in range(layout["entries"])})
    rc, data, _ = run("hash", "--json", path)
    assert rc == 2 and data["error"]["key"] == "error.hash.undefined-span"
    assert data["error"]["params"]["bytes"] == layout["size"]
    assert data["error"]["params"]["causes"] == "overlap"
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1 and data["files"][0]["undefined"][0]["length"] == layout["size"]
    out = tmp_path / "out.vhdx"
    rc, data, _ = run("merge", "--json", "--allow-gaps", path, out)
    assert rc == 1 and data["blocks_written"] == 0
    assert allocated_bytes(out) <= 8 * MiB
    rc, data, _ = run("salvage", "--json", path, tmp_path / "s.raw", "--map", tmp_path / "s.map")
    assert rc == 1 and allocated_bytes(tmp_path / "s.raw") <= 4 * MiB
    assert map_bad_ranges(tmp_path / "s.map") == [(0, layout["size"])]


def test_hash_refusal_and_consent_in_the_library(tmp_path, monkeypatch):
    """The bound and the consent, on a small disk with the floor lowered: refused without
    ``allow_gaps``, and with it the digest of the content with zeros in the undefined range."""
    path = tmp_path / "d.vhdx"
    rnd = random.Random(5)
    blocks = {o * MiB: rnd.randbytes(2 * MiB) for o in (0, 6, 10)}
    write_vhdx(str(path), VhdxSpec(virtual_size=16 * MiB, block_size=2 * MiB), blocks)
    second = struct.unpack("<Q", read_at(path, BAT_OFFSET + 8 * 3, 8))[0]
    patch(path, BAT_OFFSET, struct.pack("<Q", second))  # block 0 at block 3's data
    monkeypatch.setattr(disk_module, "HASH_UNDEFINED_FLOOR", 0)
    monkeypatch.setattr(disk_module, "HASH_UNDEFINED_FACTOR", 0)
    with Disk.open(str(path)) as d:
        with pytest.raises(UndefinedContentError) as info:
            d.sha256()
        assert info.value.key == "error.hash.undefined-span"
        gaps: list[Any] = []
        digest = d.sha256(gaps=gaps, allow_gaps=True)
    expected = bytearray(16 * MiB)  # blocks 0 and 3 overlap: both undefined, zeros
    expected[10 * MiB : 12 * MiB] = blocks[10 * MiB]
    assert digest == hashlib.sha256(expected).hexdigest()
    assert gap_ranges(gaps) == [(0, 2 * MiB), (6 * MiB, 2 * MiB)]
    assert {g.cause for g in gaps} == {"overlap"}


# ------------------------------------------------------------------ overlaps, against qemu
@needs_qemu
@pytest.mark.parametrize("seed", range(3))
def test_vhd_overlaps_are_exactly_the_blocks_sharing_file_space(tmp_path, seed):
    """Random entries moved onto other blocks (or a sector or seven into them), the footer
    copy, the header or the BAT: the blocks undefined for ``overlap`` are exactly those whose
    file extents meet another (worked out here); any other undefined range is in a moved block
    (its bitmap is now data); every other byte reads as qemu-img reads it; and what
    ``extents`` names never exceeds the file."""
    rnd = random.Random(seed)
    path = tmp_path / "d.vhd"
    qemu_vhd(path, "40M", "dynamic", [(i * 2 * MiB, 2 * MiB, 1 + i) for i in range(20)])
    layout = vhd_layout(path)
    moves = {}
    for index in rnd.sample(range(20), 5):
        target = rnd.choice(["block", "block", "footer", "header", "bat"])
        if target == "block":
            moves[index] = layout["bat"][rnd.randrange(20)] + rnd.choice([0, 1, 7])
        else:
            where = {"footer": 0, "header": layout["header"], "bat": layout["table"]}[target]
            moves[index] = where // 512
    set_vhd_bat(path, layout["table"], moves)
    layout = vhd_layout(path)
    bs = layout["block"]
    expected = block_ranges(expected_vhd_overlaps(layout), bs, layout["size"])
    oracle = qemu_raw(path, "vpc", tmp_path / "oracle.raw")
    with Disk.open(str(path)) as d:
        undefined = d.undefined()
        assert sum(n for _lo, n in d.extents()) <= path.stat().st_size
        data, gaps = d.read_checked(0, d.size)
    assert gap_ranges(g for g in undefined if g.cause == "overlap") == expected
    others = [g for g in undefined if g.cause != "overlap"]
    assert all(g.offset // bs in moves and g.cause != "beyond-eof" for g in others)
    assert gap_ranges(gaps) == gap_ranges(undefined)
    pos = 0
    for lo, n in gap_ranges(undefined):
        assert data[pos:lo] == oracle[pos:lo]
        assert data[lo : lo + n] == bytes(n)
        pos = lo + n
    assert data[pos:] == oracle[pos : len(data)]


@needs_qemu
@pytest.mark.parametrize("target", ["footer-copy", "dynamic-header", "bat"])
def test_vhd_entry_overlapping_a_structure_is_a_finding(tmp_path, target):
    path = tmp_path / "d.vhd"
    qemu_vhd(path, "16M", "dynamic", [(i * 2 * MiB, 2 * MiB, 9) for i in range(8)])
    layout = vhd_layout(path)
    where = {"footer-copy": 0, "dynamic-header": layout["header"], "bat": layout["table"]}
    set_vhd_bat(path, layout["table"], {5: where[target] // 512})
    layout = vhd_layout(path)
    overlapping = expected_vhd_overlaps(layout)
    assert 5 in overlapping and len(overlapping) < 8
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1
    others = {
        (f["params"]["block"], f["params"]["other"])
        for f in data["findings"]
        if f["code"] == "vhd.bat.overlap"
    }
    assert (5, target) in others
    undefined = [(u["offset"], u["length"]) for u in data["files"][0]["undefined"]]
    assert undefined == block_ranges(overlapping, layout["block"], layout["size"])
    assert {u["cause"] for u in data["files"][0]["undefined"]} == {"overlap"}


@needs_qemu
def test_vhd_blocks_far_past_the_end_cost_nothing(tmp_path):
    """Every entry of an 8 GiB VHD at its own place about 1 TiB past the end of a 2 MB file:
    nothing is read or made room for; all of it is undefined (beyond-eof)."""
    path = tmp_path / "far.vhd"
    qemu_vhd(path, "8G", "dynamic", [])
    layout = vhd_layout(path)
    far = (1 << 40) // 512
    step = (layout["bitmap"] + layout["block"]) // 512
    set_vhd_bat(path, layout["table"], {i: far + i * step for i in range(layout["entries"])})
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1
    undefined = [(u["offset"], u["length"], u["cause"]) for u in data["files"][0]["undefined"]]
    assert undefined == [(0, layout["size"], "beyond-eof")]
    assert run("hash", "--json", path)[0] == 2
    rc, data, _ = run("merge", "--json", "--allow-gaps", path, tmp_path / "m.vhdx")
    assert rc == 1 and data["blocks_written"] == 0
    rc, _data, _ = run("repair", "--allow-gaps", path, tmp_path / "r.vhd")
    assert rc in (0, 1) and (tmp_path / "r.vhd").stat().st_size <= path.stat().st_size + MiB


# ------------------------------------------------------------------ VHDX
def vhdx_with_entries(path: Path, virtual: int, block: int, data: dict[int, bytes]) -> int:
    """A dynamic VHDX of ours; returns block 0's BAT entry."""
    write_vhdx(str(path), VhdxSpec(virtual_size=virtual, block_size=block), data)
    return int(struct.unpack("<Q", read_at(path, BAT_OFFSET, 8))[0])


def test_vhdx_entries_at_one_offset_are_bounded_everywhere(tmp_path):
    """A 64 GiB VHDX with 1 MiB blocks whose first 30,000 payload entries all point at block 0:
    30 GB "held" in a 5 MB file."""
    path = tmp_path / "d.vhdx"
    first = vhdx_with_entries(path, 64 * GiB, MiB, {0: b"\x11" * MiB, 40_000 * MiB: b"\x22" * MiB})
    cr = vs.chunk_ratio(512, MiB)
    raw = bytearray(read_at(path, BAT_OFFSET, 8 * (30_000 + 30_000 // cr + 1)))
    for block in range(30_000):
        struct.pack_into("<Q", raw, 8 * (block + block // cr), first)
    patch(path, BAT_OFFSET, bytes(raw))
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1 and any(f["code"] == "vhdx.bat.overlap" for f in data["findings"])
    undefined = [(u["offset"], u["length"], u["cause"]) for u in data["files"][0]["undefined"]]
    assert undefined == [(0, 30_000 * MiB, "overlap")]
    rc, data, _ = run("hash", "--json", path)
    assert rc == 2 and data["error"]["key"] == "error.hash.undefined-span"
    out = tmp_path / "m.vhdx"
    rc, data, _ = run("merge", "--json", path, out)
    assert rc == 2 and data["error"]["key"] == "error.merge.overlap" and not out.exists()
    rc, data, _ = run("merge", "--json", "--allow-gaps", path, out)
    assert rc == 1 and data["blocks_written"] == 1
    assert allocated_bytes(out) <= path.stat().st_size + 8 * MiB
    with Disk.open(str(out)) as d:
        assert d.read(40_000 * MiB, MiB) == b"\x22" * MiB
        assert d.read(0, MiB) == bytes(MiB)


def test_vhdx_entry_in_the_header_area_or_metadata_is_undefined(tmp_path):
    path = tmp_path / "d.vhdx"
    rnd = random.Random(2)
    content = {i * 2 * MiB: rnd.randbytes(2 * MiB) for i in range(8)}
    vhdx_with_entries(path, 16 * MiB, 2 * MiB, content)
    patch(path, BAT_OFFSET + 8 * 1, struct.pack("<Q", 0 | vs.PAYLOAD_FULLY_PRESENT))
    patch(path, BAT_OFFSET + 8 * 4, struct.pack("<Q", METADATA_OFFSET | vs.PAYLOAD_FULLY_PRESENT))
    with Disk.open(str(path)) as d:
        assert gap_ranges(d.undefined()) == [(2 * MiB, 2 * MiB), (8 * MiB, 2 * MiB)]
        assert {g.cause for g in d.undefined()} == {"overlap"}
        data = d.read(0, d.size)
    for offset, block in content.items():
        if offset not in (2 * MiB, 8 * MiB):
            assert data[offset : offset + 2 * MiB] == block


def test_vhdx_claiming_64_tib_with_a_short_bat_is_one_range(tmp_path):
    """The virtual size raised to 64 TiB after the fact: the BAT holds entries for 16 MiB, the
    rest is undefined as one range, found without walking 64 million blocks."""
    path = tmp_path / "d.vhdx"
    vhdx_with_entries(path, 16 * MiB, MiB, {0: b"\x33" * MiB})
    table = read_at(path, METADATA_OFFSET, 64 * 1024)
    count = struct.unpack_from("<H", table, 10)[0]
    for i in range(count):
        item = uuid.UUID(bytes_le=table[32 + 32 * i : 48 + 32 * i])
        if item == vs.VIRTUAL_DISK_SIZE:
            at = struct.unpack_from("<I", table, 48 + 32 * i)[0]
            patch(path, METADATA_OFFSET + at, struct.pack("<Q", vs.MAX_VIRTUAL_SIZE))
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1 and any(f["code"] == "vhdx.bat.too-small" for f in data["findings"])
    # The BAT region (1 MiB) holds 131,072 entries; the first block without one:
    cr = vs.chunk_ratio(512, MiB)
    first = next(b for b in range(200_000) if b + b // cr >= MiB // 8)
    assert [(u["offset"], u["length"]) for u in data["files"][0]["undefined"]] == [
        (first * MiB, (64 << 40) - first * MiB)
    ]
    rc, data, _ = run("hash", "--json", path)
    assert rc == 2 and data["error"]["key"] == "error.hash.undefined-span"


# ------------------------------------------------------------------ fixed VHD sizes
@pytest.fixture
def fixed_vhd(tmp_path: Path):
    def make(claimed: int) -> Path:
        path = tmp_path / f"fixed-{claimed}.vhd"
        qemu_vhd(path, "2M", "fixed", [(0, MiB, 0x77)])
        set_footer_size(path, claimed)
        return path

    return make


@needs_qemu
def test_fixed_vhd_claiming_520_gib_costs_its_2_mb(fixed_vhd, tmp_path):
    path = fixed_vhd(520 * GiB)
    held = path.stat().st_size - 512
    rc, data, _ = run("check", "--deep", "--json", path)
    assert rc == 1 and any(f["code"] == "file.truncated" for f in data["findings"])
    undefined = [(u["offset"], u["length"]) for u in data["files"][0]["undefined"]]
    assert undefined == [(held, 520 * GiB - held)]
    rc, data, _ = run("hash", "--json", path)
    assert rc == 2 and data["error"]["params"]["bytes"] == 520 * GiB - held
    for fmt in ("vhdx", "raw"):
        out = tmp_path / f"m.{fmt}"
        rc, data, _ = run("merge", "--json", "--allow-gaps", "--format", fmt, path, out)
        assert rc == 1 and data["status"] == "written-with-gaps"
        # At most the file's data, in whole output blocks (32 MiB here: no base block size).
        bound = held + data["block_size"]
        assert data["data_bytes"] <= bound and allocated_bytes(out) <= bound + 8 * MiB
        assert map_bad_ranges(Path(data["map"])) == [(held, 520 * GiB - held)]
    rc, _data, _ = run("salvage", path, tmp_path / "s.raw", "--map", tmp_path / "s.map")
    assert rc == 1 and allocated_bytes(tmp_path / "s.raw") <= held + MiB
    assert map_bad_ranges(tmp_path / "s.map") == [(held, 520 * GiB - held)]


@needs_qemu
def test_fixed_vhd_with_current_size_zero_is_a_finding_in_every_command(fixed_vhd, tmp_path):
    path = fixed_vhd(0)
    rc, data, _ = run("check", "--json", path)
    assert rc == 1
    (hit,) = [f for f in data["findings"] if f["code"] == "vhd.footer.invalid"]
    assert hit["severity"] == "critical" and hit["params"]["problem"] == "current-size"
    assert run("info", "--json", path)[0] in (0, 1)
    assert run("hash", "--json", path)[0] == 2
    for args in (
        ("merge", path, tmp_path / "m.vhdx"),
        ("merge", "--format", "raw", path, tmp_path / "m.raw"),
        ("salvage", path, tmp_path / "s.raw", "--map", tmp_path / "s.map"),
    ):
        assert run(*args)[0] == 2
        assert not any(p.name.startswith(("m.", "s.")) for p in tmp_path.iterdir())
    rc, _data, _ = run("repair", path, tmp_path / "r.vhd")
    assert rc in (1, 2)


# ------------------------------------------------------------------ degenerate geometry
def _vhd_block_size(value: int):
    def damage(path: Path) -> None:
        set_vhd_header_field(path, 32, ">I", value)

    return damage


def _vhd_max_entries(value: int):
    def damage(path: Path) -> None:
        set_vhd_header_field(path, 28, ">I", value)

    return damage


def _vhd_size(value: int):
    return lambda path: set_footer_size(path, value)


DEGENERATE_VHD = {
    "block-size-0": _vhd_block_size(0),
    "block-size-2GiB": _vhd_block_size(1 << 31),
    "block-size-3MiB": _vhd_block_size(3 * MiB),
    "max-entries-huge": _vhd_max_entries(0xFFFFFFFF),
    "max-entries-0": _vhd_max_entries(0),
    "size-odd": _vhd_size(10 * MiB + 100),
    "size-2-pow-63": _vhd_size(1 << 63),
    "size-0": _vhd_size(0),
}


def _all_commands(path: Path, tmp_path: Path) -> dict[str, int]:
    """Every command that reads the disk: exit codes, each under the timeout, no traceback,
    and no output left by one that refused."""
    rcs = {}
    for name, args in {
        "info": ("info", "--json", path),
        "check": ("check", "--deep", "--json", path),
        "hash": ("hash", "--json", path),
        "merge": ("merge", "--json", path, tmp_path / "m.vhdx"),
        "merge-gaps": ("merge", "--json", "--allow-gaps", path, tmp_path / "g.vhdx"),
        "salvage": ("salvage", "--json", path, tmp_path / "s.raw", "--map", tmp_path / "s.map"),
        "repair": ("repair", "--json", path, tmp_path / f"r{path.suffix}"),
    }.items():
        rcs[name] = run(*args)[0]
        assert rcs[name] in (0, 1, 2), (name, rcs[name])
        outs = [args[-1]] if name != "salvage" else [tmp_path / "s.raw", tmp_path / "s.map"]
        if rcs[name] == 2 and name not in ("info", "check", "hash"):
            assert not any(Path(o).exists() for o in outs), name
    return rcs


# The cases whose damage only makes the file unreadable run under -m slow (each runs seven
# commands); those that stay readable with absurd numbers run always.
ALWAYS = {"size-0", "size-2-pow-63", "max-entries-0", "size-odd"}


@needs_qemu
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(d, marks=() if d in ALWAYS else pytest.mark.slow)
        for d in sorted(DEGENERATE_VHD)
    ],
)
def test_degenerate_vhd_geometry_never_crashes(tmp_path, damage):
    path = tmp_path / "d.vhd"
    qemu_vhd(path, "10M", "dynamic", [(0, MiB, 0x42)])
    DEGENERATE_VHD[damage](path)
    rcs = _all_commands(path, tmp_path)
    # A table declaring more entries than the size needs reads as the size says: no damage.
    assert rcs["check"] == (0 if damage == "max-entries-huge" else 1)
    for path_out in tmp_path.glob("[mg].vhdx"):
        assert allocated_bytes(path_out) <= 8 * MiB


def _vhdx_size(value: int):
    def damage(path: Path) -> None:
        table = read_at(path, METADATA_OFFSET, 64 * 1024)
        for i in range(struct.unpack_from("<H", table, 10)[0]):
            if uuid.UUID(bytes_le=table[32 + 32 * i : 48 + 32 * i]) == vs.VIRTUAL_DISK_SIZE:
                at = struct.unpack_from("<I", table, 48 + 32 * i)[0]
                patch(path, METADATA_OFFSET + at, struct.pack("<Q", value))

    return damage


@pytest.mark.parametrize(
    "value",
    [0, pytest.param(1000, marks=pytest.mark.slow), 16 * MiB + 4095, 1 << 62],
)
def test_degenerate_vhdx_virtual_size_never_crashes(tmp_path, value):
    path = tmp_path / "d.vhdx"
    vhdx_with_entries(path, 16 * MiB, MiB, {0: b"\x44" * MiB})
    _vhdx_size(value)(path)
    rcs = _all_commands(path, tmp_path)
    assert rcs["check"] == 1
    assert rcs["hash"] == 2 and rcs["merge"] == 2 and rcs["salvage"] == 2
