"""Damaged files get the right finding codes and severities, through the CLI, never a traceback;
a structure recoverable from its second copy is used and the content still reads right."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.writer import BAT_OFFSET, METADATA_OFFSET, VhdxSpec, write_vhdx
from tests.builders import fix_region_crc, patch, read_at
from tests.helpers import codes, run_cli

MiB = 1024 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> tuple[Path, str]:
    rnd = __import__("random").Random(3)
    data = {0: rnd.randbytes(MiB), 9 * MiB: rnd.randbytes(3 * MiB)}
    path = tmp_path / "disk.vhdx"
    write_vhdx(str(path), VhdxSpec(virtual_size=32 * MiB, block_size=2 * MiB), data)
    raw = bytearray(32 * MiB)
    for off, d in data.items():
        raw[off : off + len(d)] = d
    return path, hashlib.sha256(raw).hexdigest()


def flip(path: Path, offset: int, bit: int = 0) -> None:
    byte = read_at(path, offset, 1)[0]
    patch(path, offset, bytes([byte ^ (1 << bit)]))


def findings(path: Path, *extra: str) -> tuple[int, dict]:
    result = run_cli("check", "--json", path, *extra)
    return result.rc, result.json()


def by_code(data: dict, code: str) -> list[dict]:
    return [f for f in data["findings"] if f["code"] == code]


@pytest.mark.parametrize("copy", [0, 1])
@pytest.mark.parametrize("where", [0, 20, 40, 70])
def test_one_header_bit_flip_is_a_warning_and_the_twin_is_used(disk, copy: int, where: int):
    path, expected = disk
    flip(path, s.HEADER_OFFSETS[copy] + where, 3)
    rc, data = findings(path)
    assert rc == 1
    hits = by_code(data, "vhdx.header.checksum")
    assert hits and hits[0]["severity"] == "warning" and hits[0]["offset"] == s.HEADER_OFFSETS[copy]
    assert run_cli("hash", "--json", path).json()["sha256"] == expected


def test_both_headers_damaged_is_critical(disk):
    path, _ = disk
    flip(path, s.HEADER_OFFSETS[0] + 16)
    flip(path, s.HEADER_OFFSETS[1] + 16)
    rc, data = findings(path)
    assert rc == 1
    assert by_code(data, "vhdx.header.none-valid")[0]["severity"] == "critical"


@pytest.mark.parametrize("copy", [0, 1])
def test_one_region_table_flip_uses_the_other(disk, copy: int):
    path, expected = disk
    flip(path, s.REGION_TABLE_OFFSETS[copy] + 20, 5)
    rc, data = findings(path)
    assert rc == 1
    hit = by_code(data, "vhdx.region-table.checksum")
    assert hit and hit[0]["severity"] == "warning"
    assert run_cli("hash", "--json", path).json()["sha256"] == expected


def test_both_region_tables_damaged_is_critical(disk):
    path, _ = disk
    for off in s.REGION_TABLE_OFFSETS:
        flip(path, off + 20)
    rc, data = findings(path)
    assert rc == 1
    assert by_code(data, "vhdx.region-table.none-valid")[0]["severity"] == "critical"
    assert run_cli("hash", "--json", path).rc == 2


def test_region_overlap_is_invalid(disk):
    path, expected = disk
    # Point the metadata region of table 1 onto the BAT, with a valid checksum.
    patch(path, s.REGION_TABLE_OFFSETS[0] + 48 + 16, struct.pack("<Q", BAT_OFFSET))
    fix_region_crc(path, 0)
    _rc, data = findings(path)
    hit = by_code(data, "vhdx.region-table.invalid")
    assert hit and "overlap" in hit[0]["params"]["problem"]
    assert run_cli("hash", "--json", path).json()["sha256"] == expected


def test_bat_entry_beyond_eof_is_an_error(disk):
    path, _ = disk
    entry = (400 * MiB) | s.PAYLOAD_FULLY_PRESENT
    patch(path, BAT_OFFSET + 8 * 3, struct.pack("<Q", entry))
    rc, data = findings(path)
    assert rc == 1
    hit = by_code(data, "vhdx.bat.entry-beyond-eof")
    assert hit and hit[0]["severity"] == "error" and hit[0]["offset"] == BAT_OFFSET + 24


def test_bat_overlap_is_an_error(disk):
    path, _ = disk
    first = struct.unpack("<Q", read_at(path, BAT_OFFSET, 8))[0]
    patch(path, BAT_OFFSET + 8 * 2, struct.pack("<Q", first))  # two blocks, one place
    _rc, data = findings(path)
    assert by_code(data, "vhdx.bat.overlap")[0]["severity"] == "error"
    patch(path, BAT_OFFSET + 8 * 2, struct.pack("<Q", METADATA_OFFSET | 6))
    assert by_code(findings(path)[1], "vhdx.bat.overlap")


def test_bat_invalid_state(disk):
    path, _ = disk
    patch(path, BAT_OFFSET + 8 * 5, struct.pack("<Q", 5))
    hit = by_code(findings(path)[1], "vhdx.bat.invalid-state")
    assert hit and hit[0]["params"]["state"] == 5
    patch(path, BAT_OFFSET + 8 * 5, struct.pack("<Q", (40 * MiB) | 7))  # partial, no parent
    assert by_code(findings(path)[1], "vhdx.bat.invalid-state")


def test_truncated_file(disk):
    path, _ = disk
    os.truncate(path, os.path.getsize(path) - 3 * MiB)
    rc, data = findings(path)
    assert rc == 1
    found = codes(data)
    assert "vhdx.bat.entry-beyond-eof" in found


def test_truncated_to_header_area(disk):
    path, _ = disk
    os.truncate(path, 100 * 1024)
    _rc, data = findings(path)
    assert "file.truncated" in codes(data)
    assert by_code(data, "file.truncated")[0]["severity"] == "critical"


@pytest.mark.parametrize("name", ["empty.vhdx", "empty.avhdx", "empty.vhd"])
def test_empty_disk_file(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(b"")
    rc, data = findings(path)
    assert rc == 2 and data["status"] == "error"  # nothing of a disk to check
    assert by_code(data, "file.empty")[0]["severity"] == "critical"


def test_not_a_disk_and_missing_path_exit_2(tmp_path: Path):
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"hello" * 1000)
    rc, data = findings(junk)
    assert rc == 2 and data["status"] == "error"
    assert "file.not-a-disk" in codes(data)
    assert run_cli("check", "--json", tmp_path / "nope.vhdx").rc == 2
    assert run_cli("info", "--json", junk).rc == 2
    assert run_cli("hash", tmp_path).rc == 2


def test_metadata_missing_item(disk):
    path, _ = disk
    table = read_at(path, METADATA_OFFSET, 64 * 1024)
    for i in range(5):
        if table[32 + 32 * i : 48 + 32 * i] == s.VIRTUAL_DISK_SIZE.bytes_le:
            patch(path, METADATA_OFFSET + 32 + 32 * i, os.urandom(16))
    _rc, data = findings(path)
    hit = by_code(data, "vhdx.metadata.missing-item")
    assert hit and hit[0]["params"]["item"] == "virtual_disk_size"
    assert hit[0]["severity"] == "critical"


def test_metadata_invalid_block_size(disk):
    path, _ = disk
    table = read_at(path, METADATA_OFFSET, 64 * 1024)
    for i in range(5):
        if table[32 + 32 * i : 48 + 32 * i] == s.FILE_PARAMETERS.bytes_le:
            off = struct.unpack_from("<I", table, 32 + 32 * i + 16)[0]
            patch(path, METADATA_OFFSET + off, struct.pack("<I", 3 * MiB))
    assert by_code(findings(path)[1], "vhdx.metadata.invalid")


def test_corrupt_log_entry(tmp_path: Path):
    path = tmp_path / "dirty.vhdx"
    write_vhdx(str(path), VhdxSpec(virtual_size=16 * MiB, pending_log=True), {0: b"\x42" * MiB})
    flip(path, MiB + 4096 + 100)  # inside the entry's data sector
    _rc, data = findings(path)
    assert "vhdx.log.corrupt" in codes(data)
    assert "vhdx.log.replay-needed" not in codes(data)


def test_vhd_footer_damage(corpus_file):
    path = corpus_file("dissect-hypervisor/dynamic.vhd")
    size = os.path.getsize(path)
    flip(path, size - 512 + 40)
    rc, data = findings(path)
    assert rc == 1
    hit = by_code(data, "vhd.footer.checksum")
    assert hit and hit[0]["offset"] == size - 512
    assert "vhd.footer.mismatch" in codes(data)
    # The copy at the start is intact and stands in.
    assert run_cli("hash", "--json", path).json()["sha256"].startswith("ecff2ef6")


def test_vhd_header_checksum_and_bat_beyond_eof(corpus_file):
    path = corpus_file("dissect-hypervisor/dynamic.vhd")
    header = read_at(path, 0, 512)
    data_offset = struct.unpack_from(">Q", header, 16)[0]
    flip(path, data_offset + 40)
    assert "vhd.header.checksum" in codes(findings(path)[1])
    table_offset = struct.unpack_from(">Q", read_at(path, data_offset, 24), 16)[0]
    patch(path, table_offset, struct.pack(">I", 0x7FFFFFF0))
    assert by_code(findings(path)[1], "vhd.bat.entry-beyond-eof")[0]["severity"] == "error"


def test_vhd_truncated_fixed(corpus_file):
    path = corpus_file("dissect-hypervisor/fixed.vhd")
    os.truncate(path, 4 * MiB)
    # A fixed VHD has no footer copy: cut before its footer, no VHD signature is left in it,
    # and it is the raw disk without the footer. Named .vhd, it is not taken for a disk.
    rc, data = findings(path)
    assert rc == 2
    assert "file.not-a-disk" in codes(data)
    assert data["files"][0]["error"]["key"] == "error.not-a-disk.no-signature"
