"""VMGS guest state and VHD Set files: `info` on samples built here from the published layout
(microsoft/openvmm's vmgs_format, see docs/formats/vmgs.md) by a builder independent of the
reader, in the containers Hyper-V uses (a VHDX made by qemu-img, and by our writer with 4 KiB
sectors), and on damaged copies: damage is findings, never a traceback."""

from __future__ import annotations

import binascii
import json
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvrescue.evidence.classify import BINARY, classify
from hvrescue.hyperv.vhds import read_vhds
from hvrescue.hyperv.vmgs import read_vmgs
from hvrescue.preserve.plan import _role_by_name
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.helpers import Evidence, run_cli

BLOCK = 4096
CAPACITY = 4 * 1024 * 1024  # VMGS_DEFAULT_CAPACITY


# ------------------------------------------------------------------ an independent builder
def vmgs_header(
    sequence: int,
    table_block: int,
    *,
    version: int = 0x00030000,
    algorithm: int = 0,
    keys: int = 0,
    signature: bytes = b"GUESTRTS",
    corrupt_crc: bool = False,
) -> bytes:
    """VmgsHeader (168 bytes): signature, version, checksum (CRC-32 of the header with the
    checksum zeroed), sequence, header size, file table offset and size (blocks), encryption
    algorithm, two 64-byte encrypted metadata keys, a reserved u32."""
    fields = struct.pack(
        "<8sIIIIII", signature, version, 0, sequence, 168, table_block, 1
    ) + struct.pack("<HH", algorithm, 0)
    key_area = b"".join(
        bytes(12) + bytes(4) + bytes(16) + (b"\x5a" * 32 if i < keys else bytes(32))
        for i in range(2)
    )
    raw = bytearray(fields + key_area + bytes(4))
    assert len(raw) == 168
    crc = binascii.crc32(bytes(raw)) ^ (0xDEAD if corrupt_crc else 0)
    raw[12:16] = struct.pack("<I", crc)
    return bytes(raw)


def vmgs_image(
    files: dict[int, bytes],
    *,
    sector: int = 512,
    sequences: tuple[int, int] = (1, 2),
    encrypted: tuple[int, ...] = (),
    algorithm: int = 0,
    entries: dict[int, tuple[int, int, int]] | None = None,
    **header_args,
) -> bytes:
    """A VMGS as openvmm lays it out: header 1 at 0, header 2 one sector later, the active
    header's file table (64 entries of 64 bytes) in a block of its own, each file in blocks
    after it. ``entries`` writes raw (offset block, allocation blocks, valid bytes) as given."""
    image = bytearray(CAPACITY)
    table = bytearray(BLOCK)
    block = 5
    for file_id, data in files.items():
        blocks = max(1, -(-len(data) // BLOCK))
        attributes = 0x3 if file_id in encrypted else 0
        tag = b"\x77" * 16 if file_id in encrypted else bytes(16)
        entry = struct.pack("<IIQ", block, blocks, len(data)) + bytes(12) + tag
        table[file_id * 64 : file_id * 64 + 48] = entry + struct.pack("<I", attributes)
        image[block * BLOCK : block * BLOCK + len(data)] = data
        block += blocks
    for file_id, (offset, blocks, valid) in (entries or {}).items():
        table[file_id * 64 : file_id * 64 + 16] = struct.pack("<IIQ", offset, blocks, valid)
    image[4 * BLOCK : 5 * BLOCK] = table
    # The older header points at a stale table (block 2), the newer at the live one (block 4).
    older, newer = (0, 1) if sequences[1] == (sequences[0] + 1) & 0xFFFFFFFF else (1, 0)
    offsets = (0, sector)
    image[offsets[older] : offsets[older] + 168] = vmgs_header(
        sequences[older], 2, algorithm=algorithm, **header_args
    )
    image[offsets[newer] : offsets[newer] + 168] = vmgs_header(
        sequences[newer], 4, algorithm=algorithm, **header_args
    )
    return bytes(image)


GUEST_FILES = {1: b"NVRAM" * 300, 3: b"\x01TPM" * 3000, 6: b"key-protector" * 8}


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def names(report) -> list[str]:
    return [f.name for f in report.files]


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


# ------------------------------------------------------------------ reading
def test_raw_vmgs_lists_the_active_file_table(tmp_path: Path):
    report = read_vmgs(str(write(tmp_path / "g.vmgs", vmgs_image(GUEST_FILES))))
    assert report.container == "raw" and report.findings == []
    assert report.active == 1 and report.header is not None and report.header.sequence == 2
    assert names(report) == ["BIOS_NVRAM", "TPM_NVRAM", "KEY_PROTECTOR"]
    tpm = report.files[1]
    assert (tpm.offset, tpm.size, tpm.allocated) == (6 * BLOCK, 12000, 3 * BLOCK)
    data = report.as_dict()
    assert data["vtpm_present"] is True and data["key_protector_present"] is True
    assert data["encrypted"] is False and data["version"] == "3.0"
    assert data["active_header"] == 2  # numbered 1 and 2, as openvmm's messages do


def test_vmgs_inside_a_vhdx_made_by_qemu_img_is_read_through_the_disk_engine(tmp_path: Path):
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    raw = write(tmp_path / "g.raw", vmgs_image({1: b"nv" * 10}))
    vmgs = tmp_path / "282874FC-59D6-4F30-BC04-5FDD909C82E0.vmgs"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(raw), str(vmgs)], check=True
    )
    assert vmgs.read_bytes()[:8] == b"vhdxfile"
    report = read_vmgs(str(vmgs))
    assert report.container == "vhdx" and report.findings == []
    assert names(report) == ["BIOS_NVRAM"]
    assert report.as_dict()["vtpm_present"] is False


def test_second_header_follows_the_logical_sector_of_a_4k_vhdx(tmp_path: Path):
    image = vmgs_image(GUEST_FILES, sector=4096)
    data = {0: image[: 8 * BLOCK], 8 * BLOCK: image[8 * BLOCK : 16 * BLOCK]}
    vmgs = tmp_path / "g.vmgs"
    write_vhdx(str(vmgs), VhdxSpec(virtual_size=CAPACITY, logical_sector_size=4096), data)
    report = read_vmgs(str(vmgs))
    assert report.sector_size == 4096 and report.headers[1].offset == 4096
    assert report.active == 1 and names(report) == ["BIOS_NVRAM", "TPM_NVRAM", "KEY_PROTECTOR"]


@pytest.mark.parametrize(("sequences", "active"), [((5, 4), 0), ((4, 5), 1), ((0, 0xFFFFFFFF), 0)])
def test_the_newer_header_by_sequence_is_active(tmp_path: Path, sequences, active):
    report = read_vmgs(str(write(tmp_path / "g.vmgs", vmgs_image({}, sequences=sequences))))
    assert report.active == active, report.findings


def test_a_bad_checksum_leaves_the_other_header_in_charge(tmp_path: Path):
    image = bytearray(vmgs_image(GUEST_FILES))
    image[512 + 40] ^= 0xFF  # inside the newer header's key area: its CRC no longer matches
    report = read_vmgs(str(write(tmp_path / "g.vmgs", bytes(image))))
    assert report.active == 0  # the older copy, with its (stale, empty) table
    assert "vmgs.header.checksum" in codes(report) and report.files == []


def test_no_valid_header_is_critical(tmp_path: Path):
    image = vmgs_image(GUEST_FILES, corrupt_crc=True)
    report = read_vmgs(str(write(tmp_path / "g.vmgs", image)))
    assert report.active is None and not report.readable
    assert {"vmgs.header.checksum", "vmgs.header.none-valid"} <= codes(report)
    assert report.as_dict()["vtpm_present"] is None  # unknown, not "absent"


def test_sequences_that_do_not_follow_each_other_are_refused(tmp_path: Path):
    image = bytearray(vmgs_image(GUEST_FILES))
    image[512 : 512 + 168] = vmgs_header(9, 4)  # header 1 has 1: neither follows the other
    report = read_vmgs(str(write(tmp_path / "g.vmgs", bytes(image))))
    assert report.active is None and "vmgs.header.sequence" in codes(report)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes(CAPACITY), "vmgs.empty"),
        (b"hello world, not a guest state\n" * 400, "vmgs.not-vmgs"),
        (bytes(512) + b"EFI PART" + bytes(8192), "vmgs.v1-format"),
    ],
    ids=["zeros", "text", "v1-gpt"],
)
def test_what_is_not_a_v3_vmgs_is_said(tmp_path: Path, data: bytes, code: str):
    report = read_vmgs(str(write(tmp_path / "g.vmgs", data)))
    assert code in codes(report) and report.files == [] and not report.readable


def test_truncated_and_huge_values_become_findings(tmp_path: Path):
    head = vmgs_image(GUEST_FILES)[:700]
    report = read_vmgs(str(write(tmp_path / "short.vmgs", head)))
    assert "vmgs.truncated" in codes(report) and not report.readable
    huge = vmgs_image(
        {1: b"x"},
        entries={3: (7, 0xFFFFFFFF, 1), 6: (8, 1, 1 << 62), 9: (0xFFFFFFFF, 1, 1)},
    )
    report = read_vmgs(str(write(tmp_path / "huge.vmgs", huge)))
    assert names(report) == ["BIOS_NVRAM"]
    found = {(f.code, f.params.get("name")) for f in report.findings}
    assert ("vmgs.file.out-of-range", "TPM_NVRAM") in found
    assert ("vmgs.file.size-invalid", "KEY_PROTECTOR") in found
    assert ("vmgs.file.out-of-range", "CUSTOM_UEFI") in found
    image = bytearray(vmgs_image({}))
    image[512 : 512 + 168] = vmgs_header(2, 0xFFFFFFF0)
    report = read_vmgs(str(write(tmp_path / "table.vmgs", bytes(image))))
    assert "vmgs.file-table.unreadable" in codes(report)


def test_encryption_is_reported(tmp_path: Path):
    image = vmgs_image(GUEST_FILES, encrypted=(3,), algorithm=1, keys=2)
    report = read_vmgs(str(write(tmp_path / "g.vmgs", image)))
    data = report.as_dict()
    assert data["encryption"] == "aes-gcm" and data["encrypted"] is True
    assert [f["encrypted"] for f in data["files"]] == [False, True, False]
    assert data["headers"][1]["metadata_keys"] == 2


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, 6 * BLOCK), st.binary(min_size=1, max_size=64)), max_size=6
    ),
    size=st.integers(0, 8 * BLOCK),
)
def test_damaged_vmgs_never_raises(tmp_path: Path, cuts, size: int):
    image = bytearray(vmgs_image(GUEST_FILES))
    for offset, data in cuts:
        image[offset : offset + len(data)] = data
    report = read_vmgs(str(write(tmp_path / "fuzz.vmgs", bytes(image[: size or None]))))
    for f in report.files:
        assert f.offset + f.allocated <= report.capacity and f.size <= f.allocated
    json.dumps(report.as_dict())


def test_info_vmgs_through_the_cli_leaves_the_file_untouched(tmp_path: Path):
    vmgs = write(tmp_path / "g.vmgs", vmgs_image(GUEST_FILES))
    evidence = Evidence([vmgs])
    r = run_cli("info", vmgs, "--json", evidence=[vmgs])
    assert r.rc == 0, r.stderr
    data = r.json()
    assert data["format"] == "vmgs" and data["vtpm_present"] is True
    assert [f["name"] for f in data["files"]] == ["BIOS_NVRAM", "TPM_NVRAM", "KEY_PROTECTOR"]
    text = run_cli("--lang", "ja", "info", vmgs, evidence=[vmgs])
    assert text.rc == 0 and "TPM_NVRAM" in text.stdout and "vtpm_present" in text.stdout
    bad = write(tmp_path / "bad.vmgs", vmgs_image(GUEST_FILES, corrupt_crc=True))
    r = run_cli("info", bad, "--json", evidence=[bad])
    assert r.rc == 0 and "Traceback" not in r.stderr
    assert "vmgs.header.none-valid" in {f["code"] for f in r.json()["findings"]}
    evidence.assert_untouched()


# ------------------------------------------------------------------ VHD Sets
def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def vhd_set(folder: Path, name: str = "SharedData", with_data: bool = True) -> tuple[Path, Path]:
    """A VHD Set as public write-ups describe one: a small `.vhds` (about 260 KB) beside the
    `.avhdx` holding the data. Its inner layout is not public, so the bytes here are opaque
    except for the file name written in it in UTF-16, the way Windows stores paths."""
    folder.mkdir(parents=True, exist_ok=True)
    snapshot = f"{name}_9C7B3E2A-5D1F-4A6B-8E0C-2F4D6A8B0C1E.avhdx"
    body = bytearray(b"\xa5" * (260 * 1024))
    path_text = f"C:\\ClusterStorage\\Volume1\\Shared\\{snapshot}\0"
    body[0x1234 : 0x1234 + 2 * len(path_text)] = utf16(path_text)
    vhds = folder / f"{name}.vhds"
    vhds.write_bytes(bytes(body))
    avhdx = folder / snapshot
    if with_data:
        write_vhdx(str(avhdx), VhdxSpec(virtual_size=64 * 1024 * 1024), {0: b"\x33" * 4096})
    return vhds, avhdx


def test_vhds_lists_the_names_in_it_and_the_snapshot_files_beside_it(tmp_path: Path):
    vhds, avhdx = vhd_set(tmp_path / "Shared")
    report = read_vhds(str(vhds))
    data = report.as_dict()
    assert data["layout"] == "not-understood" and data["size"] == 260 * 1024
    assert [r["text"] for r in data["names_in_file"]] == [
        f"C:\\ClusterStorage\\Volume1\\Shared\\{avhdx.name}"
    ]
    assert data["names_in_file"][0]["offset"] == 0x1234
    assert data["names_in_file"][0]["found_beside"] is True
    assert [s["name"] for s in data["snapshot_files_beside"]] == [avhdx.name]
    assert data["snapshot_files_beside"][0]["format"] == "vhdx"
    assert codes(report) == {"vhds.layout-unknown"}


def test_vhds_says_when_a_named_snapshot_file_is_missing(tmp_path: Path):
    vhds, _avhdx = vhd_set(tmp_path / "Shared", with_data=False)
    report = read_vhds(str(vhds))
    assert "vhds.named-file-missing" in codes(report)
    assert report.siblings == []
    empty = write(tmp_path / "empty.vhds", b"")
    assert codes(read_vhds(str(empty))) == {"vhds.empty"}


def test_info_vhds_through_the_cli(tmp_path: Path):
    vhds, avhdx = vhd_set(tmp_path / "Shared")
    r = run_cli("info", vhds, "--json", evidence=[vhds, avhdx])
    assert r.rc == 0, r.stderr
    data = r.json()
    assert data["format"] == "vhds" and data["layout"] == "not-understood"
    assert data["snapshot_files_beside"][0]["id"] is not None
    assert run_cli("info", vhds, evidence=[vhds, avhdx]).rc == 0


def test_a_vhd_set_file_is_never_taken_for_a_disk():
    head = b"vhdxfile" + bytes(100)
    assert classify("x/Shared.vhds", head, 260 * 1024).kind == BINARY
    assert classify("x/Shared.vhds", head, 260 * 1024).format == "vhds"
    assert _role_by_name("D:\\CSV\\Shared.vhds") == "vhd-set"
    assert _role_by_name(f"D:\\CSV\\Shared_{uuid.uuid4()}.avhdx") == "differencing-disk"


def test_check_vmgs_exits_by_the_damage_it_finds(tmp_path: Path):
    good = write(tmp_path / "good.vmgs", vmgs_image(GUEST_FILES))
    bad = write(tmp_path / "bad.vmgs", vmgs_image(GUEST_FILES, corrupt_crc=True))
    assert run_cli("check", good, "--json", evidence=[good]).rc == 0
    r = run_cli("check", bad, "--json", evidence=[bad])
    assert r.rc == 1 and r.json()["status"] == "findings"
    assert "vmgs.header.none-valid" in {f["code"] for f in r.json()["findings"]}
    assert run_cli("check", tmp_path / "absent.vmgs").rc == 2
