"""`info` and `chain` on files that are not disks, and damaged structures summarised.

A file is a disk only when a signature of its format is somewhere in it; its name alone does not
make it one. A real disk with its first MiB destroyed is still recognised (by its log or
metadata table at a 1 MiB boundary) and reported as damaged.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from hvrescue.errors import NotADiskError
from hvrescue.vdisk.detect import open_image
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import MiB, patch
from tests.helpers import codes, run_cli

KINDS = {
    "empty": b"",
    "text": b"These are my notes about the VM, not a disk.\n" * 40,
    "random": os.urandom(3 * MiB + 123),
}


@pytest.mark.parametrize("suffix", [".vhdx", ".avhdx", ".vhd", ".bin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_info_and_chain_refuse_a_file_that_is_not_a_disk(tmp_path: Path, kind: str, suffix: str):
    path = tmp_path / f"{kind}{suffix}"
    path.write_bytes(KINDS[kind])
    expected = "file.empty" if kind == "empty" else "file.not-a-disk"
    for command in ("info", "chain"):
        r = run_cli(command, "--json", path)
        assert r.rc == 2, (command, r.stdout[:500])
        data = r.json()
        assert data["status"] == "error"
        assert codes(data) == {expected}
        assert data["error"]["key"].startswith("error.not-a-disk")
        text = run_cli(command, path)
        assert text.rc == 2
        assert expected in text.stderr
        assert len((text.stdout + text.stderr).splitlines()) < 15  # a message, not a dump
    # check agrees: the same code, and "could not run"
    r = run_cli("check", "--json", path)
    assert r.rc == 2 and expected in codes(r.json())


def test_a_disk_named_file_without_signature_explains_the_fixed_vhd_case(tmp_path: Path):
    path = tmp_path / "cut.vhd"
    path.write_bytes(bytes(4 * MiB))  # what a fixed VHD cut before its footer looks like
    r = run_cli("info", path)
    assert r.rc == 2
    assert "fixed VHD" in r.stderr.replace("\n", " ")


def test_vhdx_with_its_first_mib_destroyed_is_still_a_damaged_vhdx(tmp_path: Path):
    path = tmp_path / "wiped.vhdx"
    write_vhdx(str(path), VhdxSpec(virtual_size=16 * MiB), {0: b"\x42" * MiB})
    patch(path, 0, bytes(MiB))  # identifier, both headers, both region tables gone
    image = open_image(str(path))
    try:
        assert image.format == "vhdx" and not image.readable
    finally:
        image.close()
    r = run_cli("check", "--json", path)
    assert r.rc == 1
    found = codes(r.json())
    assert "vhdx.region-table.none-valid" in found and "file.not-a-disk" not in found
    assert run_cli("info", path).rc == 0


def test_qemu_vhdx_with_its_first_mib_destroyed_is_recognised(tmp_path: Path):
    import shutil

    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img")
    path = tmp_path / "q.vhdx"
    subprocess.run(
        ["qemu-img", "create", "-f", "vhdx", str(path), "64M"], check=True, capture_output=True
    )
    patch(path, 0, bytes(MiB))
    assert open_image(str(path)).format == "vhdx"


def test_open_image_raises_not_a_disk_for_random_bytes_named_vhdx(tmp_path: Path):
    path = tmp_path / "random.vhdx"
    path.write_bytes(KINDS["random"])
    with pytest.raises(NotADiskError) as caught:
        open_image(str(path))
    assert caught.value.key == "error.not-a-disk.no-signature"


def test_damaged_region_table_is_summarised_not_dumped(tmp_path: Path):
    path = tmp_path / "garbage-table.vhdx"
    write_vhdx(str(path), VhdxSpec(virtual_size=16 * MiB), {0: b"\x42" * MiB})
    # Both region tables: the signature kept, 2047 garbage entries declared and present.
    table = bytearray(os.urandom(s.REGION_TABLE_SIZE))
    table[0:4] = s.REGION_SIGNATURE
    struct.pack_into("<I", table, 8, s.MAX_REGION_ENTRIES)
    for off in s.REGION_TABLE_OFFSETS:
        patch(path, off, bytes(table))
    r = run_cli("info", "--json", path)
    data = r.json()
    for region in data["region_tables"]:
        assert region["entry_count"] == s.MAX_REGION_ENTRIES
        assert 0 < len(region["entries"]) <= 4
        assert not region["valid"]
    text = run_cli("info", path)
    assert text.rc == r.rc
    assert len(text.stdout.splitlines()) < 200  # was tens of thousands of rows
