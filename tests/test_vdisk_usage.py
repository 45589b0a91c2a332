"""Get-VHD's FragmentationPercentage, MinimumSize and Alignment in `info`, each checked against
an independent reader: where qemu-img (VHD) or dissect.hypervisor (VHDX) says each block's data
lies, and the partition table sfdisk wrote."""

from __future__ import annotations

import itertools
import json
import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvrescue.vdisk.detect import open_image
from hvrescue.vdisk.usage import usage
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import raw_to_vhdx_chain
from tests.helpers import run_cli
from tests.oracle import qemu_img

MiB = 1024 * 1024


def qemu_io(fmt: str, path: Path, *writes: tuple[int, int, int]) -> None:
    """Write ``(pattern, offset, length)`` in the order given (so blocks land in that order)."""
    exe = shutil.which("qemu-io")
    if exe is None:
        pytest.skip("qemu-io (Debian qemu-utils) is not installed")
    cmds: list[str] = []
    for pattern, offset, length in writes:
        cmds += ["-c", f"write -P {pattern} {offset} {length}"]
    subprocess.run([exe, "-f", fmt, *cmds, str(path)], check=True, capture_output=True)


def create(fmt: str, path: Path, size: str, *opts: str) -> None:
    args = [qemu_img(), "create", "-q", "-f", fmt]
    if opts:
        args += ["-o", ",".join(opts)]
    subprocess.run([*args, str(path), size], check=True)


def oracle_fragmentation(placed: list[int], stride: int) -> int:
    """The definition of docs/formats/get-vhd.md on file offsets in virtual block order."""
    if not placed:
        return 0
    bad = sum(1 for a, b in itertools.pairwise(placed) if b != a + stride)
    return bad * 100 // len(placed)


def qemu_vhd_blocks(path: Path, block: int) -> list[int]:
    """File offsets of each data block of a VHD, in virtual order, from `qemu-img map`."""
    out = subprocess.run(
        [qemu_img(), "map", "--output=json", "-f", "vpc", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    offsets: list[int] = []
    for ext in json.loads(out):
        if not ext.get("data") or "offset" not in ext:
            continue
        for pos in range(0, ext["length"], block):
            if (ext["start"] + pos) % block == 0:
                offsets.append(ext["offset"] + pos)
    return offsets


def dissect_vhdx_blocks(path: Path) -> tuple[list[int], int]:
    vhdx = pytest.importorskip("dissect.hypervisor.disk.vhdx")
    with open(path, "rb") as fh:
        disk = vhdx.VHDX(fh)
        blocks = -(-disk.size // disk.block_size)
        found = []
        for b in range(blocks):
            entry = disk.bat.pb(b)
            if entry.state in (6, 7):
                found.append(entry.file_offset_mb * MiB)
        return found, disk.block_size


def info_json(path: Path) -> dict:
    r = run_cli("info", path, "--json")
    assert r.rc == 0, r.stderr
    return r.json()


# ---------------------------------------------------------------- fragmentation and alignment
def test_vhd_written_out_of_order_is_fragmented_and_unaligned_as_qemu_maps_it(tmp_path: Path):
    path = tmp_path / "d.vhd"
    create("vpc", path, "64M", "subformat=dynamic")
    # Blocks 10, 0, 20, 21 are allocated in that order: 0 after 10, 20 after 0 are out of
    # place; 21 follows 20.
    qemu_io(
        "vpc", path, (1, 20 * MiB, MiB), (2, 0, 4096), (3, 40 * MiB, 2 * MiB), (4, 42 * MiB, MiB)
    )
    image = open_image(str(path))
    try:
        got = usage(image)
        stride = image.bitmap_size + image.block_size  # type: ignore[union-attr]
        block = image.block_size
    finally:
        image.close()
    offsets = qemu_vhd_blocks(path, block)
    assert len(offsets) == got.data_blocks == 4
    assert got.fragmentation_percentage == oracle_fragmentation(offsets, stride) == 50
    expected_alignment = 0 if any(o % 4096 for o in offsets) else 1
    assert got.alignment == expected_alignment == 0  # qemu's VHD blocks follow a 512-byte bitmap
    data = info_json(path)
    assert (data["fragmentation_percentage"], data["alignment"]) == (50, 0)


def test_vhd_written_front_to_back_is_not_fragmented(tmp_path: Path):
    path = tmp_path / "d.vhd"
    create("vpc", path, "64M", "subformat=dynamic")
    qemu_io("vpc", path, (1, 0, 2 * MiB), (2, 2 * MiB, 2 * MiB), (3, 8 * MiB, MiB))
    data = info_json(path)
    offsets = qemu_vhd_blocks(path, 2 * MiB)
    assert data["usage"]["data_blocks"] == len(offsets) == 3
    assert data["fragmentation_percentage"] == oracle_fragmentation(offsets, 2 * MiB + 512) == 0


def test_vhdx_fragmentation_follows_the_bat_as_dissect_reads_it(tmp_path: Path):
    path = tmp_path / "d.vhdx"
    create("vhdx", path, "256M", "block_size=1M")
    qemu_io(
        "vhdx",
        path,
        *[(i + 1, b * MiB, MiB) for i, b in enumerate([200, 3, 4, 5, 100, 0, 1, 250])],
    )
    offsets, block = dissect_vhdx_blocks(path)
    data = info_json(path)
    assert data["usage"]["data_blocks"] == len(offsets) == 8
    assert data["fragmentation_percentage"] == oracle_fragmentation(offsets, block)
    assert data["fragmentation_percentage"] > 0
    assert data["alignment"] == 1  # VHDX payload blocks sit at whole MiB
    assert data["logical_sector_size"] == 512 and data["physical_sector_size"] in (512, 4096)


def test_fixed_vhd_is_aligned_and_unfragmented(tmp_path: Path):
    path = tmp_path / "f.vhd"
    create("vpc", path, "8M", "subformat=fixed")
    data = info_json(path)
    assert (data["fragmentation_percentage"], data["alignment"]) == (0, 1)
    assert data["usage"]["data_blocks"] == 0


def test_a_64_tib_sparse_vhdx_is_read_from_its_bat(tmp_path: Path):
    path = tmp_path / "huge.vhdx"
    create("vhdx", path, "64T")
    qemu_io("vhdx", path, (7, 40 * 2**40, MiB), (8, 0, MiB))
    assert path.stat().st_size < 1024 * MiB
    data = info_json(path)
    assert data["virtual_size"] == 64 * 2**40
    assert data["usage"]["data_blocks"] == 2
    # The block of 40 TiB was written first: the block at 0 does not follow it.
    assert data["fragmentation_percentage"] == 50
    assert data["minimum_size"] is None
    assert data["usage"]["minimum_size_from"] == "no-partition-table"


def test_a_bat_entry_past_the_end_is_reported_and_not_counted(tmp_path: Path):
    path = tmp_path / "d.vhd"
    create("vpc", path, "64M", "subformat=dynamic")
    qemu_io("vpc", path, (1, 0, MiB), (2, 2 * MiB, MiB))
    raw = path.read_bytes()
    (table_offset,) = struct.unpack_from(">Q", raw, 512 + 16)
    damaged = bytearray(raw)
    struct.pack_into(">I", damaged, table_offset + 4 * 9, 0x00F00000)  # block 9: far past EOF
    path.write_bytes(bytes(damaged))
    data = info_json(path)
    codes = {f["code"] for f in data["findings"]}
    assert "vhd.bat.entry-beyond-eof" in codes
    assert data["usage"]["data_blocks"] == 2
    assert data["usage"]["undefined_blocks"] == 1
    assert data["fragmentation_percentage"] == 0


# ---------------------------------------------------------------- minimum size
def sfdisk(raw: Path, script: str) -> int:
    """Write a partition table with sfdisk; the end of its last partition in bytes."""
    exe = shutil.which("sfdisk")
    if exe is None:
        pytest.skip("sfdisk (util-linux) is not installed")
    subprocess.run([exe, "-q", str(raw)], input=script, text=True, check=True, capture_output=True)
    table = json.loads(
        subprocess.run([exe, "--json", str(raw)], check=True, capture_output=True, text=True).stdout
    )["partitiontable"]
    sector = table.get("sectorsize", 512)
    return max((p["start"] + p["size"]) * sector for p in table["partitions"])


def convert(raw: Path, fmt: str, out: Path) -> Path:
    opts = ["-o", "subformat=dynamic,force_size=on"] if fmt == "vpc" else []
    subprocess.run(
        [qemu_img(), "convert", "-f", "raw", "-O", fmt, *opts, str(raw), str(out)], check=True
    )
    return out


@pytest.mark.parametrize("fmt,suffix", [("vhdx", "vhdx"), ("vpc", "vhd")])
def test_minimum_size_is_the_end_of_the_last_gpt_partition(tmp_path: Path, fmt: str, suffix: str):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"")
    with open(raw, "r+b") as f:
        f.truncate(96 * MiB)
    end = sfdisk(raw, "label: gpt\nstart=2048, size=20480, type=U\nsize=40960, type=L\n")
    assert end < 96 * MiB - 34 * 512
    data = info_json(convert(raw, fmt, tmp_path / f"disk.{suffix}"))
    assert data["minimum_size"] == end
    assert data["usage"]["minimum_size_from"] == "gpt"


def test_minimum_size_counts_the_logical_partitions_of_an_mbr(tmp_path: Path):
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(128 * MiB)
    script = (
        "label: dos\n"
        "start=2048, size=8192, type=83\n"
        "start=16384, size=131072, type=5\n"
        "start=18432, size=16384, type=83\n"
        "start=40960, size=20480, type=7\n"
    )
    end = sfdisk(raw, script)
    data = info_json(convert(raw, "vhdx", tmp_path / "disk.vhdx"))
    # The extended container reaches further than its last logical partition: the table
    # cannot shrink below it.
    assert data["minimum_size"] == end == (16384 + 131072) * 512
    assert data["usage"]["minimum_size_from"] == "mbr"


def test_minimum_size_of_a_child_reads_the_table_through_its_chain(tmp_path: Path):
    v1, v2 = tmp_path / "v1.raw", tmp_path / "v2.raw"
    for raw in (v1, v2):
        with open(raw, "wb") as f:
            f.truncate(64 * MiB)
    end1 = sfdisk(v1, "label: gpt\nstart=2048, size=20480, type=U\n")
    shutil.copyfile(v1, v2)
    end2 = sfdisk(v2, "label: gpt\nstart=2048, size=20480, type=U\nsize=40960, type=L\n")
    folder = tmp_path / "vm"
    folder.mkdir()
    base, child = raw_to_vhdx_chain(v1, v2, folder)
    assert info_json(base)["minimum_size"] == end1
    assert info_json(child)["minimum_size"] == end2 > end1
    base.unlink()
    broken = info_json(child)
    assert broken["minimum_size"] is None
    assert broken["usage"]["minimum_size_from"] == "chain-incomplete"


def test_no_partition_table_gives_no_minimum_size(tmp_path: Path):
    raw = tmp_path / "fs.raw"
    with open(raw, "wb") as f:
        f.truncate(32 * MiB)
    if shutil.which("mkfs.vfat") is None:
        pytest.skip("mkfs.vfat is not installed")
    subprocess.run(["mkfs.vfat", "-F", "32", str(raw)], check=True, capture_output=True)
    data = info_json(convert(raw, "vhdx", tmp_path / "fs.vhdx"))
    assert data["minimum_size"] is None
    assert data["usage"]["minimum_size_from"] == "no-partition-table"


def test_info_text_shows_the_three_numbers(tmp_path: Path):
    path = tmp_path / "d.vhd"
    create("vpc", path, "64M", "subformat=dynamic")
    qemu_io("vpc", path, (1, 20 * MiB, MiB), (2, 0, 4096))
    r = run_cli("info", path)
    assert r.rc == 0
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in r.stdout.splitlines()
        if line.count("│") >= 3
    }
    assert rows["fragmentation_percentage"] == "50"
    assert rows["alignment"] == "0"
    assert "minimum_size" in rows


# ---------------------------------------------------------------- damaged partition tables
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    head=st.binary(min_size=1024, max_size=1024),
    gpt=st.booleans(),
    entries=st.one_of(st.just(128), st.integers(min_value=0, max_value=2**32 - 1)),
    last=st.one_of(
        st.integers(min_value=34, max_value=65535), st.integers(min_value=0, max_value=2**64 - 1)
    ),
)
def test_a_damaged_partition_table_never_raises(tmp_path: Path, head, gpt, entries, last):
    """Random first sectors, a GPT header whose counts and CRCs may lie: the minimum size is a
    number inside the disk or None with a reason, never an exception or a huge read."""
    sector0 = bytearray(head[:512])
    sector1 = bytearray(head[512:])
    if gpt:
        sector0[510:512] = b"\x55\xaa"
        sector0[450] = 0xEE
        sector1[0:8] = b"EFI PART"
        struct.pack_into("<IIQII", sector1, 12, 92, 0, 1, 0, 0)
        struct.pack_into("<QII", sector1, 72, 2, entries, 128)
        entry = bytearray(128)
        entry[0] = 1
        struct.pack_into("<QQ", entry, 32, 34, last)
        table = bytes(entry) + bytes(127 * 128)
        struct.pack_into("<I", sector1, 88, zlib.crc32(table) if entries == 128 else 0)
        check = bytearray(sector1[:92])
        check[16:20] = bytes(4)
        struct.pack_into("<I", sector1, 16, zlib.crc32(check))
        data = {0: bytes(sector0) + bytes(sector1) + table}
    else:
        data = {0: bytes(sector0) + bytes(sector1)}
    path = tmp_path / f"t{uuid.uuid4().hex}.vhdx"
    write_vhdx(str(path), VhdxSpec(virtual_size=32 * MiB), data)
    image = open_image(str(path))
    try:
        got = usage(image)
    finally:
        image.close()
        path.unlink()
    if got.minimum_size is None:
        assert got.minimum_size_from in {"no-partition-table", "table-past-end", "undefined"}
    else:
        assert 0 < got.minimum_size <= 32 * MiB
