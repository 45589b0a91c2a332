"""Read errors from a real filesystem (FUSE returning EIO for chosen ranges): every command that
reads content reports exactly the injected ranges, to the sector, or refuses; nothing over them
is called complete, verified or clean; a retry after the faults are gone fills every one.

The faults: one 512-byte sector, 10 MiB from 3 MiB (across the 4 MiB chunks the commands read
in), and the first sector of a VHDX's BAT (metadata: the blocks it maps become undefined, never
zeros). A fixed VHD has its data at virtual offset = file offset, so virtual ranges (salvage's
map, hash's undefined ranges) and file ranges (preserve, check) are the same numbers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import faultfs
from tests.builders import make_fat
from tests.faultfs import FaultyFS
from tests.helpers import Result, run_cli

faulty = faultfs.faulty  # the fixture: fault-injecting FUSE mounts

MiB = 1024 * 1024
SECTOR = 512
SIZE = 24 * MiB
CROSSING = (3 * MiB, 10 * MiB)  # crosses the 4, 8 and 12 MiB chunk boundaries
ONE_SECTOR = (17 * MiB + 3 * SECTOR, SECTOR)
INJECTED = [CROSSING, ONE_SECTOR]
# Causes of undefined ranges that a read error gives: of the data itself, or of the metadata
# (BAT, bitmap) that maps it.
READ_CAUSES = ("read-error", "metadata-unreadable")


def content(size: int, seed: int = 11) -> bytes:
    """Random bytes: a zero-filled range in a copy cannot pass for the original."""
    return random.Random(seed).randbytes(size)


def qemu_img(*args: str | Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def fixed_vhd(folder: Path, data: bytes, name: str = "disk.vhd") -> Path:
    raw = folder.parent / (name + ".raw")
    raw.write_bytes(data)
    out = folder / name
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, out)
    raw.unlink()
    assert out.stat().st_size == len(data) + 512  # data at file offset = virtual offset
    return out


def dynamic_vhdx(folder: Path, data: bytes, name: str = "disk.vhdx") -> Path:
    raw = folder.parent / (name + ".raw")
    raw.write_bytes(data)
    out = folder / name
    qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, out)
    raw.unlink()
    return out


def merged(ranges: list[tuple[int, int]] | list[list[int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for off, n in sorted((int(o), int(k)) for o, k in ranges):
        if out and out[-1][0] + out[-1][1] >= off:
            out[-1][1] = max(out[-1][0] + out[-1][1], off + n) - out[-1][0]
        else:
            out.append([off, n])
    return [(o, n) for o, n in out]


def sectors(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The sectors that ``ranges`` touch: a read of 24 bytes of a bad sector reports 24 bytes,
    and is exact to the sector."""
    out = []
    for off, n in ranges:
        lo, hi = off // SECTOR * SECTOR, -(-(off + n) // SECTOR) * SECTOR
        out.append((lo, hi - lo))
    return merged(out)


def zero_filled(data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for off, n in ranges:
        out[off : off + n] = bytes(n)
    return bytes(out)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ddrescue_map(path: Path) -> list[tuple[int, int, str]]:
    """(offset, length, status) of each block line of a GNU ddrescue map."""
    lines = [
        line.split()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [(int(a, 0), int(b, 0), s) for a, b, s, *_ in lines[1:]]


def bad_in_map(path: Path) -> list[tuple[int, int]]:
    return merged([(o, n) for o, n, s in ddrescue_map(path) if s != "+"])


def reported_by_hash(out: dict[str, Any], disk: Path) -> tuple[list, list]:
    """(file ranges under "unreadable", virtual read-error ranges under "undefined")."""
    files = [
        (u["offset"], u["length"])
        for u in out.get("unreadable") or []
        if Path(u["path"]).name == disk.name
    ]
    virtual = [
        (u["offset"], u["length"])
        for u in out.get("undefined") or []
        if isinstance(u, dict) and u.get("cause") in READ_CAUSES
    ]
    return sectors(files), sectors(virtual)


def read_errors(out: dict[str, Any], disk: Path) -> list[tuple[int, int]]:
    """The io.read-error findings of `check --json` on ``disk``, as (offset, length)."""
    return sectors(
        [
            (f["offset"], f["params"]["length"])
            for f in out["findings"]
            if f["code"] == "io.read-error" and Path(f["path"]).name == disk.name
        ]
    )


def names_ranges(r: Result, ranges: list[tuple[int, int]]) -> bool:
    text = r.stdout + r.stderr
    return all(str(o) in text or f"{o:#x}" in text or f"{o:x}" in text for o, _n in ranges)


@pytest.fixture
def vhd_mount(faulty: FaultyFS, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """(the fixed VHD through the faulty filesystem, the original folder, its virtual content)."""
    src = tmp_path / "evidence"
    src.mkdir()
    data = content(SIZE)
    fixed_vhd(src, data)
    mnt = faulty.mount(src)
    return mnt / "disk.vhd", src, data


# ------------------------------------------------------------------ the harness itself
def _read_at(fd: int, n: int, offset: int) -> bytes:
    """A positioned read that also works where os has no pread (the Windows simulation)."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)


def test_faulty_filesystem_fails_exactly_the_chosen_sectors_and_heals(
    faulty: FaultyFS,
    tmp_path: Path,
):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = content(6 * MiB, seed=3)
    (src / "sub" / "f.bin").write_bytes(data)
    mnt = faulty.mount(src)
    disk = mnt / "sub" / "f.bin"
    st, orig = disk.stat(), (src / "sub" / "f.bin").stat()
    assert (st.st_size, st.st_mtime_ns) == (orig.st_size, orig.st_mtime_ns)
    faulty.set_faults({"sub/f.bin": [(4 * MiB - SECTOR, SECTOR)]})
    fd = os.open(disk, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            _read_at(fd, SECTOR, 4 * MiB - SECTOR)
        with pytest.raises(OSError):
            _read_at(fd, 1, 4 * MiB - 1)
        # The neighbours on both sides read.
        assert _read_at(fd, SECTOR, 4 * MiB - 2 * SECTOR) == data[4 * MiB - 1024 : 4 * MiB - 512]
        assert _read_at(fd, SECTOR, 4 * MiB) == data[4 * MiB : 4 * MiB + SECTOR]
        faulty.clear()
        assert _read_at(fd, 2 * MiB, 3 * MiB) == data[3 * MiB : 5 * MiB]
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        (mnt / "new").write_bytes(b"x")
    assert sorted(p.name for p in src.rglob("*")) == ["f.bin", "sub"]


# ------------------------------------------------------------------ preserve / verify
@pytest.mark.slow  # ~50 s; test_preserve and test_links cover resume, the other fault tests reads
def test_preserve_records_every_unreadable_sector_and_resume_fills_them_once_readable(
    faulty: FaultyFS,
    vhd_mount: tuple[Path, Path, bytes],
    tmp_path: Path,
):
    disk, src, data = vhd_mount
    original = (src / "disk.vhd").read_bytes()
    assert original[:SIZE] == data
    mnt = disk.parent
    faulty.set_faults({"disk.vhd": INJECTED})
    dest = tmp_path / "copy"
    r = run_cli("preserve", mnt, dest, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    out = r.json()
    assert out["status"] == "incomplete" and out["complete"] is False
    rel = f"{mnt.name}/disk.vhd"
    entry = {f["path"]: f for f in out["files"]}[rel]
    assert merged(entry["unreadable"]) == INJECTED
    copy = dest / rel
    expected = zero_filled(original, INJECTED)
    assert copy.read_bytes() == expected  # zeros exactly there, the original everywhere else
    assert entry["sha256"] == sha(expected)
    assert copy.stat().st_mtime_ns == (src / "disk.vhd").stat().st_mtime_ns
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["complete"] is False
    assert merged({f["path"]: f for f in manifest["files"]}[rel]["unreadable"]) == INJECTED
    with open(dest / "manifest.csv", encoding="utf-8-sig", newline="") as f:
        row = {r["path"]: r for r in csv.DictReader(f)}[rel]
    assert row["unreadable"] == ";".join(f"{o}+{n}" for o, n in INJECTED)
    text = run_cli("preserve", mnt, tmp_path / "copy-text", evidence=[src])
    assert text.rc == 1
    for off, n in INJECTED:
        assert f"{n} bytes at offset {off}" in text.stdout

    # verify: the copy is as recorded, but it is not the evidence: never a pass.
    r = run_cli("verify", dest, "--json", evidence=[copy])
    assert r.rc == 1, r.stdout
    v = r.json()
    assert v["status"] == "incomplete" and v["complete"] is False and v["failed"] == []
    assert [(i["path"], merged(i["unreadable"])) for i in v["incomplete"]] == [(rel, INJECTED)]
    assert {f["path"]: f["status"] for f in v["files"]}[rel] == "incomplete"
    r = run_cli("verify", dest, evidence=[copy])
    assert r.rc == 1 and "incomplete" in r.stdout

    # A retry while the faults stand reads them again and says so: still incomplete.
    r = run_cli("preserve", mnt, dest, "--resume", "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    again = r.json()
    assert again["status"] == "incomplete" and again["recovered_bytes"] == 0
    assert again["retried_bytes"] == sum(n for _o, n in INJECTED)
    assert merged({f["path"]: f for f in again["files"]}[rel]["unreadable"]) == INJECTED
    assert copy.read_bytes() == expected

    # Healed: the retry fills every range and only then says complete.
    faulty.clear()
    r = run_cli("preserve", mnt, dest, "--resume", "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    done = r.json()
    assert done["status"] == "complete" and done["complete"] is True
    assert done["recovered_bytes"] == done["retried_bytes"] == sum(n for _o, n in INJECTED)
    healed = {f["path"]: f for f in done["files"]}[rel]
    assert healed["unreadable"] == [] and healed["sha256"] == sha(original)
    assert copy.read_bytes() == original
    assert copy.stat().st_mtime_ns == (src / "disk.vhd").stat().st_mtime_ns
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["complete"] is True and len(manifest["retries"]) == 1
    assert {f["path"]: f for f in manifest["files"]}[rel] == healed
    r = run_cli("verify", dest, "--json", evidence=[copy])
    assert r.rc == 0 and r.json()["status"] == "ok"


# ------------------------------------------------------------------ hash / check
def test_hash_reports_exactly_the_unreadable_ranges_and_is_whole_once_healed(
    faulty: FaultyFS,
    vhd_mount: tuple[Path, Path, bytes],
):
    disk, src, data = vhd_mount
    faulty.set_faults({"disk.vhd": INJECTED})
    r = run_cli("hash", disk, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    out = r.json()
    assert out["complete"] is False
    files, virtual = reported_by_hash(out, disk)
    assert INJECTED in (files, virtual), out
    faulty.clear()
    r = run_cli("hash", disk, "--json", evidence=[src])
    assert r.rc == 0, r.stdout
    assert r.json()["complete"] is True and r.json()["sha256"] == sha(data)


def test_check_deep_finds_each_unreadable_range_exactly(
    faulty: FaultyFS,
    vhd_mount: tuple[Path, Path, bytes],
):
    disk, src, _data = vhd_mount
    faulty.set_faults({"disk.vhd": INJECTED})
    r = run_cli("check", disk, "--deep", "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    out = r.json()
    assert out["status"] == "findings"
    assert read_errors(out, disk) == INJECTED
    faulty.clear()
    r = run_cli("check", disk, "--deep", "--json", evidence=[src])
    assert r.rc == 0 and r.json()["status"] == "clean", r.stdout


# ------------------------------------------------------------------ salvage
def test_salvage_maps_exactly_the_unreadable_ranges_and_a_rerun_fills_them(
    faulty: FaultyFS,
    vhd_mount: tuple[Path, Path, bytes],
    tmp_path: Path,
):
    disk, src, data = vhd_mount
    faulty.set_faults({"disk.vhd": INJECTED})
    out, mapfile = tmp_path / "out" / "disk.raw", tmp_path / "out" / "disk.map"
    out.parent.mkdir()
    r = run_cli("salvage", disk, out, "--map", mapfile, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    assert r.json()["complete"] is False
    assert merged(r.json()["bad"]) == INJECTED
    assert bad_in_map(mapfile) == INJECTED
    assert out.read_bytes() == zero_filled(data, INJECTED)
    faulty.clear()
    r = run_cli("salvage", disk, out, "--map", mapfile, "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    assert r.json()["complete"] is True and r.json()["bad"] == []
    assert bad_in_map(mapfile) == []
    assert out.read_bytes() == data


# ------------------------------------------------------------------ merge
def test_merge_refuses_unreadable_ranges_and_writes_them_only_as_declared_gaps(
    faulty: FaultyFS,
    vhd_mount: tuple[Path, Path, bytes],
    tmp_path: Path,
):
    disk, src, data = vhd_mount
    faulty.set_faults({"disk.vhd": INJECTED})
    folder = tmp_path / "merged"
    folder.mkdir()
    out = folder / "out.vhdx"
    r = run_cli("merge", disk, out, "--json", evidence=[src])
    assert r.rc == 2, r.stdout + r.stderr
    assert names_ranges(r, INJECTED), r.stdout + r.stderr
    assert list(folder.iterdir()) == []  # nothing written, nothing left behind

    r = run_cli("merge", disk, out, "--allow-gaps", "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    assert r.json()["status"] == "written-with-gaps"
    maps = [p for p in folder.iterdir() if p != out and "map" in p.name.lower()]
    assert len(maps) == 1, sorted(p.name for p in folder.iterdir())
    assert bad_in_map(maps[0]) == INJECTED
    # Read back by an independent reader: zeros in the gaps, the chain's content elsewhere.
    raw = tmp_path / "merged.raw"
    qemu_img("convert", "-f", "vhdx", "-O", "raw", out, raw)
    assert raw.read_bytes() == zero_filled(data, INJECTED)


# ------------------------------------------------------------------ extract
def test_extract_reports_a_file_whose_data_is_unreadable(faulty: FaultyFS, tmp_path: Path):
    if not all(shutil.which(t) for t in ("mkfs.fat", "mcopy", "sfdisk")):
        pytest.skip("mkfs.fat, mcopy and sfdisk are needed (Debian dosfstools, mtools, fdisk)")
    big, small = content(300 * 1024, seed=5), b"fine\n" * 100
    part = tmp_path / "part.img"
    make_fat(part, 32 * MiB, {"BIG.BIN": big, "SMALL.TXT": small})
    raw = bytearray(34 * MiB)
    layout = b"label: dos\nstart=2048, size=65536, type=6\n"
    table = tmp_path / "table.raw"
    table.write_bytes(bytes(raw))
    subprocess.run(["sfdisk", "-q", str(table)], input=layout, check=True, capture_output=True)
    raw[:] = table.read_bytes()
    raw[MiB : MiB + 32 * MiB] = part.read_bytes()
    at = bytes(raw).find(big[:4096])
    assert at > 0 and at % SECTOR == 0 and bytes(raw[at : at + len(big)]) == big
    src = tmp_path / "evidence"
    src.mkdir()
    fixed_vhd(src, bytes(raw))
    mnt = faulty.mount(src)
    bad = (at + 100 * SECTOR, SECTOR)
    faulty.set_faults({"disk.vhd": [bad]})
    to = tmp_path / "out"
    args = ("extract", mnt / "disk.vhd", "1:/BIG.BIN", "1:/SMALL.TXT", "--to", to, "--json")
    r = run_cli(*args, evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    out = r.json()
    files = {_guest_name(f["source"]): f for f in out["files"]}
    skipped = {Path(s["source"]).name.upper() for s in out["skipped"]}
    # The untouched file comes out whole; the damaged one is reported, never claimed whole.
    assert files["SMALL.TXT"]["sha256"] == sha(small)
    assert "SMALL.TXT" not in skipped
    flagged = files.get("BIG.BIN")
    assert "BIG.BIN" in skipped or (flagged is not None and not _claimed_whole(flagged)), out
    if flagged is not None and isinstance(flagged.get("undefined"), list):
        # Named exactly: virtual offsets, which are file offsets in a fixed VHD.
        assert sectors([(u["offset"], u["length"]) for u in flagged["undefined"]]) == [bad]
    manifest = json.loads(Path(out["manifests"][0]).read_text(encoding="utf-8"))
    recorded = {_guest_name(f["source"]): f for f in manifest["files"]}
    assert "BIG.BIN" not in recorded or not _claimed_whole(recorded["BIG.BIN"])
    if "BIG.BIN" in recorded:
        assert recorded["BIG.BIN"]["sha256"] != sha(big) or not _claimed_whole(recorded["BIG.BIN"])


def _guest_name(source: str) -> str:
    """``BIG.BIN`` from ``1:/BIG.BIN`` (the name in the guest, whatever the copy is called)."""
    return source.rsplit("/", 1)[-1].upper()


def _claimed_whole(record: dict[str, Any]) -> bool:
    flags = [record.get(k) for k in ("unreadable", "undefined", "damaged", "incomplete")]
    return not any(flags) and record.get("complete", True) is not False


# ------------------------------------------------------------------ a VHDX metadata sector
@pytest.fixture
def vhdx_mount(faulty: FaultyFS, tmp_path: Path) -> tuple[Path, Path, bytes, int]:
    """(a dynamic VHDX through the faulty filesystem, its folder, its content, its BAT offset)."""
    src = tmp_path / "evidence"
    src.mkdir()
    data = content(SIZE, seed=7)
    vhdx = dynamic_vhdx(src, data)
    info = run_cli("info", vhdx, "--json").json()
    bat = next(e for e in info["region_tables"][0]["entries"] if e["name"] == "bat")
    assert info["bat"]["states"]["fully_present"] * info["block_size"] >= SIZE
    return faulty.mount(src) / "disk.vhdx", src, data, int(bat["file_offset"])


def test_unreadable_first_bat_sector_is_never_an_all_zero_disk(
    faulty: FaultyFS,
    vhdx_mount: tuple[Path, Path, bytes, int],
    tmp_path: Path,
):
    disk, src, data, bat = vhdx_mount
    injected = [(bat, SECTOR)]
    faulty.set_faults({"disk.vhdx": injected})
    # Every block of this disk is mapped by an entry in that sector: all of it is undefined.
    governed = [(0, SIZE)]

    r = run_cli("hash", disk, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    out = r.json()
    assert out["complete"] is False
    files, virtual = reported_by_hash(out, disk)
    assert files == injected or virtual == governed, out

    r = run_cli("check", disk, "--json", evidence=[src])
    assert r.rc == 1 and r.json()["status"] != "clean", r.stdout
    assert read_errors(r.json(), disk) == injected

    out_dir = tmp_path / "salvaged"
    out_dir.mkdir()
    image, mapfile = out_dir / "disk.raw", out_dir / "disk.map"
    r = run_cli("salvage", disk, image, "--map", mapfile, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    assert r.json()["complete"] is False
    assert bad_in_map(mapfile) == governed

    merged_dir = tmp_path / "merged"
    merged_dir.mkdir()
    r = run_cli("merge", disk, merged_dir / "out.vhdx", "--json", evidence=[src])
    assert r.rc == 2, r.stdout + r.stderr
    assert list(merged_dir.iterdir()) == []

    dest = tmp_path / "copy"
    r = run_cli("preserve", disk.parent, dest, "--json", evidence=[src])
    assert r.rc == 1, r.stdout + r.stderr
    entry = {Path(f["path"]).name: f for f in r.json()["files"]}["disk.vhdx"]
    assert merged(entry["unreadable"]) == injected

    faulty.clear()
    r = run_cli("salvage", disk, image, "--map", mapfile, "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    assert bad_in_map(mapfile) == [] and image.read_bytes() == data
    r = run_cli("hash", disk, "--json", evidence=[src])
    assert r.rc == 0 and r.json()["sha256"] == sha(data), r.stdout
    r = run_cli("preserve", disk.parent, dest, "--resume", "--json", evidence=[src])
    assert r.rc == 0 and r.json()["status"] == "complete", r.stdout + r.stderr
    assert (dest / disk.parent.name / "disk.vhdx").read_bytes() == (src / "disk.vhdx").read_bytes()


def test_unreadable_folder_records_are_said_by_ls_and_extract(faulty: FaultyFS, tmp_path: Path):
    """A read error in a folder's own records hides what it lists: `ls` and `extract` say
    which disk range they met, exactly, and never exit 0 as if the listing were whole."""
    if not all(shutil.which(t) for t in ("mkfs.fat", "mcopy", "sfdisk", "mmd")):
        pytest.skip("mkfs.fat, mcopy, mmd and sfdisk are needed (Debian dosfstools, mtools, fdisk)")
    part = tmp_path / "part.img"
    make_fat(part, 32 * MiB, {"DIR/SUB.TXT": b"inside\n", "TOP.TXT": b"top\n"})
    raw = bytearray(34 * MiB)
    table = tmp_path / "table.raw"
    table.write_bytes(bytes(raw))
    layout = b"label: dos\nstart=2048, size=65536, type=6\n"
    subprocess.run(["sfdisk", "-q", str(table)], input=layout, check=True, capture_output=True)
    raw[:] = table.read_bytes()
    raw[MiB : MiB + 32 * MiB] = part.read_bytes()
    entry = bytes(raw).find(b"SUB     TXT")  # the folder's record of its file
    assert entry > MiB
    src = tmp_path / "evidence"
    src.mkdir()
    fixed_vhd(src, bytes(raw))
    mnt = faulty.mount(src)
    bad = (entry - entry % SECTOR, SECTOR)
    faulty.set_faults({"disk.vhd": [bad]})
    listing = run_cli("ls", mnt / "disk.vhd", "1:/DIR", "--json", evidence=[src])
    assert listing.rc == 1, listing.stdout + listing.stderr
    met = listing.json()["undefined_met"]
    assert sectors([(g["offset"], g["length"]) for g in met]) == [bad]
    assert {g["cause"] for g in met} == {"read-error"}
    out = tmp_path / "out"
    result = run_cli("extract", mnt / "disk.vhd", "1:/DIR", "--to", out, "--json", evidence=[src])
    assert result.rc == 1, result.stdout + result.stderr
    data = result.json()
    assert sectors([(g["offset"], g["length"]) for g in data["undefined_met"]]) == [bad]
    manifest = json.loads(Path(data["manifests"][0]).read_text(encoding="utf-8"))
    assert manifest["undefined_met"]
    faulty.clear()
    healed = run_cli("ls", mnt / "disk.vhd", "1:/DIR", "--json", evidence=[src])
    assert healed.rc == 0 and [e["name"] for e in healed.json()["entries"]] == ["SUB.TXT"]
