"""ls / extract on NTFS and FAT volumes inside MBR and GPT disks, converted to VHDX and chained.

The guests are built without Windows: mkntfs + ntfs-3g (FUSE) fill an NTFS partition, mkfs.fat +
mtools an EFI system partition, sfdisk writes the partition table, qemu-img converts the raw disk
into the base VHDX and the project's writer adds a differencing child with later changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hvrescue.fs.extract import safe_name
from tests.builders import make_guest_raw, ntfs_tools, raw_to_vhdx_chain, update_ntfs
from tests.helpers import run_cli

T_NOTES = 1_600_000_000_123_456_700  # 2020-09-13T12:26:40.1234567Z
T_SYSTEM = 1_500_000_000_000_000_000
ZONE = b"[ZoneTransfer]\r\nZoneId=3\r\n"


def _fuse_works(tmp: Path) -> bool:
    img = tmp / "probe.img"
    with open(img, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    try:
        subprocess.run(["mkntfs", "-F", "-Q", "-q", str(img)], check=True, capture_output=True)
        (tmp / "m").mkdir()
        subprocess.run(["ntfs-3g", str(img), str(tmp / "m")], check=True, capture_output=True)
        subprocess.run(["umount", str(tmp / "m")], check=True, capture_output=True)
        return True
    except (subprocess.CalledProcessError, OSError):
        return False


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not ntfs_tools() or not shutil.which("qemu-img"):
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools, fdisk and qemu-utils")
    folder = tmp_path_factory.mktemp("guest")
    if not _fuse_works(folder):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    rnd = __import__("random").Random(11)
    files = {
        "Windows/System32/config/SYSTEM": rnd.randbytes(600_000),
        "Windows/notes.txt": b"hello from the guest\r\n",
        "Windows/日本語フォルダー/ファイル.txt": "中身".encode(),
        "CON": b"a reserved device name",
        "evil\\..\\..\\outside.txt": b"backslashes are separators on Windows",
        "trailing dot.": b"trailing dot",
        "Program Files/EDR/edrdrv.sys": rnd.randbytes(70_000),
    }
    times = {"Windows/notes.txt": T_NOTES, "Windows/System32/config/SYSTEM": T_SYSTEM}
    streams = {"Windows/notes.txt": {"Zone.Identifier": ZONE}}
    esp = {"EFI/Microsoft/Boot/BCD": rnd.randbytes(20_000)}
    out: dict = {"files": dict(files), "esp": esp}
    for scheme in ("gpt", "mbr"):
        sub = folder / scheme
        raw1 = make_guest_raw(sub, scheme, files, times, streams, esp if scheme == "gpt" else None)
        later = {"Windows/Temp/after-checkpoint.bin": rnd.randbytes(200_000)}
        raw2 = sub / "v2.raw"
        update_ntfs(raw1, raw2, later, sub / "mnt2")
        base, child = raw_to_vhdx_chain(raw1, raw2, sub)
        out[scheme] = {"base": base, "child": child, "later": later}
        raw1.unlink()
        raw2.unlink()
    return out


def test_partitions_of_gpt_and_mbr_disks(guest):
    r = run_cli("ls", guest["gpt"]["child"], "--json", evidence=[guest["gpt"]["child"]])
    assert r.rc == 0
    parts = r.json()["partitions"]
    assert [(p["index"], p["scheme"], p["type"], p["filesystem"]) for p in parts] == [
        (1, "gpt", "efi-system", "fat16"),
        (2, "gpt", "basic-data", "ntfs"),
    ]
    assert parts[0]["offset"] == 1024 * 1024
    r = run_cli("ls", guest["mbr"]["child"], "--json")
    [part] = r.json()["partitions"]
    assert (part["scheme"], part["type"], part["filesystem"], part["bootable"]) == (
        "mbr",
        "ntfs/exfat",
        "ntfs",
        True,
    )


def test_listing_shows_files_times_and_streams(guest):
    r = run_cli("ls", guest["gpt"]["child"], "2:/Windows", "--json")
    assert r.rc == 0
    entries = {e["name"]: e for e in r.json()["entries"]}
    assert {"notes.txt", "System32", "Temp", "日本語フォルダー"} <= set(entries)
    notes = entries["notes.txt"]
    assert notes["size"] == len(guest["files"]["Windows/notes.txt"])
    assert notes["modified"] == "2020-09-13T12:26:40.123456Z"
    assert notes["streams"] == [{"name": "Zone.Identifier", "size": len(ZONE)}]
    # The MBR disk has one filesystem: a plain path needs no partition number.
    r = run_cli("ls", guest["mbr"]["child"], "/Program Files/EDR", "--json")
    assert [e["name"] for e in r.json()["entries"]] == ["edrdrv.sys"]
    # GPT has two: the path must say which, and the error says how.
    r = run_cli("ls", guest["gpt"]["child"], "/Windows", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.fs.which-partition"
    r = run_cli("ls", guest["gpt"]["child"], "2:/No/Such", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.fs.no-such-path"


@pytest.mark.parametrize("scheme", ["gpt", "mbr"])
def test_extract_returns_every_file_with_its_bytes_and_times(guest, tmp_path: Path, scheme):
    disk = guest[scheme]
    dest = tmp_path / "out"
    part = "2" if scheme == "gpt" else "1"
    r = run_cli(
        "extract",
        disk["child"],
        f"{part}:/",
        "--to",
        dest,
        "--streams",
        "--json",
        evidence=[disk["child"], disk["base"]],
    )
    assert r.rc == 0, r.stdout + r.stderr
    root = dest / f"p{part}"
    expected = dict(guest["files"])
    expected.update(disk["later"])  # written after the checkpoint: only the child has it
    safe = {
        "CON": "_CON",
        "evil\\..\\..\\outside.txt": "evil_.._.._outside.txt",
        "trailing dot.": "trailing dot_",
    }
    for rel, data in expected.items():
        target = root / safe.get(rel, rel)
        assert target.read_bytes() == data, rel
    assert (root / "Windows/notes.txt").stat().st_mtime_ns == T_NOTES  # NTFS keeps 100 ns
    assert (root / "Windows/System32/config/SYSTEM").stat().st_mtime_ns == T_SYSTEM
    assert (root / "Windows/notes.txt.stream-Zone.Identifier").read_bytes() == ZONE
    # Nothing was written outside DEST, and NTFS metadata files stay out unless asked for.
    assert not (tmp_path / "outside.txt").exists()
    assert not any(p.name.startswith("$") for p in root.iterdir())
    manifest = json.loads((dest / "extract-manifest.json").read_text(encoding="utf-8"))
    by_source = {f["source"]: f for f in manifest["files"]}
    notes = by_source[f"{part}:/Windows/notes.txt"]
    assert notes["sha256"] == hashlib.sha256(expected["Windows/notes.txt"]).hexdigest()
    assert notes["modified"] == "2020-09-13T12:26:40.123456Z"
    assert notes["streams"][0]["sha256"] == hashlib.sha256(ZONE).hexdigest()
    assert by_source[f"{part}:/CON"]["renamed"] is True
    assert len(manifest["files"]) == len(expected)


def test_extract_from_the_esp_and_never_overwrite(guest, tmp_path: Path):
    disk = guest["gpt"]["child"]
    dest = tmp_path / "out"
    r = run_cli("extract", disk, "1:/EFI/Microsoft/Boot/BCD", "--to", dest)
    assert r.rc == 0
    bcd = dest / "p1/EFI/Microsoft/Boot/BCD"
    assert bcd.read_bytes() == guest["esp"]["EFI/Microsoft/Boot/BCD"]
    bcd.write_bytes(b"changed by the user")
    r = run_cli("extract", disk, "1:/EFI/Microsoft/Boot/BCD", "--to", dest, "--json")
    assert r.rc == 1 and r.json()["skipped"][0]["reason"] == "exists"
    assert bcd.read_bytes() == b"changed by the user"
    assert (dest / "extract-manifest-2.json").exists()


def test_the_base_alone_lacks_what_came_after_the_checkpoint(guest, tmp_path: Path):
    r = run_cli("ls", guest["gpt"]["base"], "2:/Windows", "--json")
    assert "Temp" not in {e["name"] for e in r.json()["entries"]}


@pytest.mark.parametrize(
    "name,expected",
    [
        ("..", "___"),  # "_.." would lose its dots on Windows
        (".", "__"),
        ("a/b", "a_b"),
        ("a\\..\\b", "a_.._b"),
        ("con", "_con"),
        ("LPT1.txt", "_LPT1.txt"),
        ("nul .txt", "_nul .txt"),
        ("x:stream", "x_stream"),
        ("bell\x07", "bell_"),
        ("dots...", "dots___"),
        ("ok name.txt", "ok name.txt"),
        ("日本語.txt", "日本語.txt"),
        ("", "_"),
    ],
)
def test_safe_names(name: str, expected: str):
    assert safe_name(name) == expected
    assert "/" not in safe_name(name) and "\\" not in safe_name(name)


def test_long_names_are_shortened_uniquely():
    a, b = safe_name("x" * 300), safe_name("x" * 299 + "y")
    assert a != b and len(a.encode()) <= 255 and len(b.encode()) <= 255


def _start_mount(disk: Path, mnt: Path) -> subprocess.Popen[str]:
    """`hvrescue mount DISK MNT` in the background, once its view is there (skip without FUSE)."""
    import sys
    import time

    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    mnt.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hvrescue", "mount", str(disk), str(mnt)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (mnt / "disk.raw").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("FUSE mount refused here: " + proc.communicate()[1][-300:])
        time.sleep(0.1)
    return proc


def test_mount_shows_the_flattened_disk_and_unmounts_on_ctrl_c(guest, tmp_path: Path):
    import signal

    from tests.helpers import Evidence

    disk = guest["gpt"]["child"]
    snap = Evidence([disk, guest["gpt"]["base"]])
    mnt = tmp_path / "mnt"
    proc = _start_mount(disk, mnt)
    try:
        assert sorted(p.name for p in mnt.iterdir()) == ["disk.raw", "p1.raw", "p2.raw"]
        whole = hashlib.sha256((mnt / "disk.raw").read_bytes()).hexdigest()
        hashed = run_cli("hash", disk, "--json").json()["sha256"]
        assert whole == hashed
        with pytest.raises(OSError):
            (mnt / "disk.raw").write_bytes(b"x")
        # The partition file is a filesystem image other tools open directly.
        ls = subprocess.run(["ntfsls", str(mnt / "p2.raw")], capture_output=True, text=True)
        if ls.returncode == 0:
            assert "Windows" in ls.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not os.path.ismount(mnt)
    snap.assert_untouched()


def _damage_block_of(tmp_path: Path, base: Path, guest_path: str) -> tuple[Path, int]:
    """A copy of ``base`` whose BAT entry for the block holding the first data run of
    ``guest_path`` points past the end of the file; (the copy, that block's virtual offset)."""
    import struct

    from hvrescue.fs import open_path
    from hvrescue.vdisk.disk import Disk
    from hvrescue.vdisk.vhdx.image import VhdxImage
    from tests.builders import patch

    damaged = tmp_path / "damaged.vhdx"
    shutil.copyfile(base, damaged)
    with Disk.open(str(damaged)) as d:
        volume, inner = open_path(d, "2:" + guest_path)
        runs = volume.data_runs(volume.stat(inner))
    assert runs, "the file's data must lie in runs of its own"
    img = VhdxImage.open(str(damaged))
    try:
        block = runs[0][0] // img.block_size
        index = block + block // img.chunk_ratio
        at = img.regions["bat"].file_offset + 8 * index
        far = ((damaged.stat().st_size >> 20) + 64) << 20 | 6
    finally:
        img.close()
    patch(damaged, at, struct.pack("<Q", far))
    return damaged, block * img.block_size


def test_files_in_undefined_ranges_are_never_handed_out_as_whole(guest, tmp_path: Path):
    damaged, _vblock = _damage_block_of(
        tmp_path, guest["gpt"]["base"], "/Windows/System32/config/SYSTEM"
    )
    listing = run_cli("ls", damaged, "2:/Windows/System32/config", "--json", evidence=[damaged])
    assert listing.rc == 1
    [system] = [e for e in listing.json()["entries"] if e["name"] == "SYSTEM"]
    assert system["complete"] is False
    assert {g["cause"] for g in system["undefined"]} == {"beyond-eof"}
    fine = run_cli("ls", damaged, "2:/Windows", "--json").json()["entries"]
    assert all(e.get("complete", True) for e in fine if e["name"] == "notes.txt")
    out = tmp_path / "out"
    result = run_cli(
        "extract",
        damaged,
        "2:/Windows/System32/config/SYSTEM",
        "2:/Windows/notes.txt",
        "--to",
        out,
        "--json",
        evidence=[damaged],
    )
    assert result.rc == 1
    data = result.json()
    assert [i["source"] for i in data["incomplete"]] == ["2:/Windows/System32/config/SYSTEM"]
    assert not (out / "p2/Windows/System32/config/SYSTEM").exists()
    assert (out / "p2/Windows/System32/config/SYSTEM.incomplete").exists()
    manifest = json.loads(Path(data["manifests"][0]).read_text())
    records = {r["source"]: r for r in manifest["files"]}
    assert records["2:/Windows/System32/config/SYSTEM"]["complete"] is False
    assert records["2:/Windows/System32/config/SYSTEM"]["undefined"]
    assert "complete" not in records["2:/Windows/notes.txt"]  # whole: nothing to say
    assert (out / "p2/Windows/notes.txt").read_bytes() == guest["files"]["Windows/notes.txt"]


def test_mount_answers_undefined_ranges_with_eio(guest, tmp_path: Path):
    import errno
    import signal

    damaged, vblock = _damage_block_of(
        tmp_path, guest["gpt"]["base"], "/Windows/System32/config/SYSTEM"
    )
    mnt = tmp_path / "mnt"
    proc = _start_mount(damaged, mnt)
    try:
        with open(mnt / "disk.raw", "rb") as f:
            f.seek(vblock - 4096)
            assert len(f.read(4096)) == 4096  # what precedes the damage reads
            f.seek(vblock)
            with pytest.raises(OSError) as caught:
                f.read(4096)
            assert caught.value.errno == errno.EIO
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert not os.path.ismount(mnt)


def test_a_filesystem_in_an_undefined_block_is_refused_with_its_cause(guest, tmp_path: Path):
    """The block holding the NTFS boot sector has an invalid BAT state: the filesystem cannot
    be opened, and the error names the undefined range that is why."""
    import struct

    from hvrescue.fs.partitions import partitions
    from hvrescue.vdisk.disk import Disk
    from hvrescue.vdisk.vhdx.image import VhdxImage
    from tests.builders import patch

    damaged = tmp_path / "boot.vhdx"
    shutil.copyfile(guest["gpt"]["base"], damaged)
    with Disk.open(str(damaged)) as d:
        start = next(p for p in partitions(d) if p.index == 2).offset
    img = VhdxImage.open(str(damaged))
    try:
        block = start // img.block_size
        index = block + block // img.chunk_ratio
        at = img.regions["bat"].file_offset + 8 * index
        entry = int(img.bat[index]) if img.bat is not None else 0
    finally:
        img.close()
    patch(damaged, at, struct.pack("<Q", (entry & ~7) | 5))  # state 5: not defined
    r = run_cli("extract", damaged, "2:/Windows", "--to", tmp_path / "out", "--json")
    assert r.rc == 2
    met = r.json()["error"]["params"]["undefined_met"]
    assert any(
        g["cause"] == "invalid-state" and g["offset"] <= start < g["offset"] + g["length"]
        for g in met
    )
    listing = run_cli("ls", damaged, "--json")
    assert listing.rc == 1 and listing.json()["undefined_met"]
