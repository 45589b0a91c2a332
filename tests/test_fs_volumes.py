"""The volume addressing contract (`ls DISK --json` lists every volume under "volumes" with
its "id" and "filesystem"; `ls`, `extract`, `mount` take ID:/path), LVM2 logical volumes inside
partitions and on bare disks, and what is not read (mirrors, thin pools) said clearly.

A Linux guest is built as distributions install one: GPT, an XFS /boot partition, an LVM2
physical volume holding an ext4 root and an XFS data volume (lvm2 on a loop device; the
filesystems are written at the offsets lvm2 itself reports)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fs_linux_builders import (
    have,
    loop_mount_works,
    lvm_layout,
    make_ext4,
    make_xfs,
    populate,
    put,
    run,
    to_vhdx,
)
from tests.helpers import CORPUS, run_cli

MiB = 1 << 20
LVM_CORPUS = CORPUS / "fs" / "lvm"


@pytest.fixture(scope="module")
def linux_guest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not have("sfdisk", "pvcreate", "losetup", "mkfs.ext4", "mkfs.xfs", "qemu-img"):
        pytest.skip("needs Debian's fdisk, lvm2, e2fsprogs, xfsprogs and qemu-utils")
    folder = tmp_path_factory.mktemp("linux")
    if not loop_mount_works(folder):
        pytest.skip("loop devices are not allowed here")
    disk = folder / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(1024 * MiB)
    lvm_type = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
    table = (
        "label: gpt\nstart=2048, size=655360, type=L\n"
        f"start=657408, size=1437696, type={lvm_type}\n"
    )
    proc = __import__("subprocess").run(
        ["sfdisk", "-q", str(disk)], input=table, text=True, capture_output=True, check=True
    )
    assert proc.returncode == 0
    pv = folder / "pv.raw"
    with open(pv, "wb") as f:
        f.truncate(1437696 * 512)
    layout = lvm_layout(pv, {"root": 64, "data": 320})
    root_src, data_src, boot_src = folder / "root", folder / "data", folder / "boot"
    populate(root_src, seed=21)
    (data_src / "db").mkdir(parents=True)
    (data_src / "db/table.dat").write_bytes(bytes(range(256)) * 4000)
    (boot_src / "grub").mkdir(parents=True)
    (boot_src / "grub/grub.cfg").write_text("set default=0\n")
    root_img, data_img, boot_img = folder / "root.img", folder / "data.img", folder / "boot.img"
    make_ext4(root_img, 64, root_src)
    make_xfs(data_img, data_src, folder / "mnt")
    make_xfs(boot_img, boot_src, folder / "mnt")
    put(pv, layout["root"][0], root_img)
    put(pv, layout["data"][0], data_img)
    put(disk, 657408 * 512, pv)
    put(disk, 2048 * 512, boot_img)
    vhdx = to_vhdx(disk, folder / "linux.vhdx")
    return {
        "vhdx": vhdx,
        "root": root_src,
        "data": data_src,
        "layout": layout,
        "root_img": root_img,
        "pv": pv,
        "folder": folder,
    }


def test_ls_lists_every_volume_with_its_id_and_filesystem(linux_guest):
    r = run_cli("ls", linux_guest["vhdx"], "--json")
    assert r.rc == 0, r.stderr
    vols = {v["id"]: v for v in r.json()["volumes"]}
    assert {k: v["filesystem"] for k, v in vols.items()} == {
        "1": "xfs",
        "2": "lvm2",
        "2/vg0/root": "ext4",
        "2/vg0/data": "xfs",
    }
    assert vols["2/vg0/root"]["size"] == 64 * MiB
    assert vols["2/vg0/root"]["readable"] and not vols["2"]["readable"]
    # The partition table keeps its own rows (existing contract).
    assert [p["filesystem"] for p in r.json()["partitions"]] == ["xfs", "lvm2"]
    text = run_cli("ls", linux_guest["vhdx"])
    assert "2/vg0/root" in text.stdout and "LVM logical volume" in text.stdout


def test_id_colon_path_reads_each_volume(linux_guest, tmp_path: Path):
    vhdx = linux_guest["vhdx"]
    boot = run_cli("ls", vhdx, "1:/grub", "--json")
    assert [e["name"] for e in boot.json()["entries"]] == ["grub.cfg"]
    root = run_cli("ls", vhdx, "2/vg0/root:/etc", "--json")
    assert root.rc == 0 and root.json()["volume"] == "2/vg0/root"
    assert sorted(e["name"] for e in root.json()["entries"]) == ["fstab", "shadow"]
    out = tmp_path / "out"
    x = run_cli(
        "extract", vhdx, "2/vg0/data:/db", "2/vg0/root:/home/user/big.bin", "--to", out, "--json"
    )
    assert x.rc == 0, x.stderr
    assert (out / "p2_vg0_data/db/table.dat").read_bytes() == bytes(range(256)) * 4000
    big = (linux_guest["root"] / "home/user/big.bin").read_bytes()
    assert (out / "p2_vg0_root/home/user/big.bin").read_bytes() == big
    sources = {f["source"] for f in x.json()["files"]}
    assert sources == {"2/vg0/data:/db/table.dat", "2/vg0/root:/home/user/big.bin"}
    manifests = [json.loads(Path(m).read_text()) for m in x.json()["manifests"]]
    assert sorted(m["volume"] for m in manifests) == ["2/vg0/data", "2/vg0/root"]


def test_volume_errors_are_clear(linux_guest):
    vhdx = linux_guest["vhdx"]
    pv = run_cli("ls", vhdx, "2:/", "--json")
    assert pv.rc == 2 and pv.json()["error"]["key"] == "error.fs.lvm-pv"
    missing = run_cli("ls", vhdx, "2/vg0/home:/", "--json")
    assert missing.rc == 2 and missing.json()["error"]["key"] == "error.fs.no-volume"
    assert "2/vg0/root" in run_cli("ls", vhdx, "2/vg0/home:/").stderr
    several = run_cli("ls", vhdx, "/etc", "--json")
    assert several.rc == 2 and several.json()["error"]["key"] == "error.fs.which-partition"


def test_logical_volume_bytes_match_lvm2_and_libvslvm(linux_guest):
    """The LV read through the disk engine equals the bytes at the offset lvm2 reports, and
    what libvslvm (an independent reader) gives."""
    import pyvslvm

    from hvrescue.fs import discover
    from hvrescue.vdisk.disk import Disk

    pv = linux_guest["pv"]
    handle = pyvslvm.handle()
    handle.open(str(pv))
    handle.open_physical_volume_files([str(pv)])
    oracle = {lv.name: lv for lv in handle.get_volume_group().logical_volumes}
    with Disk.open(str(linux_guest["vhdx"])) as d:
        vols = {v.id: v for v in discover(d)}
        for name in ("root", "data"):
            src = vols[f"2/vg0/{name}"].source
            mine = src.read(0, src.size)
            offset, size = linux_guest["layout"][name]
            with open(pv, "rb") as f:
                f.seek(offset)
                assert mine == f.read(size)
            lv = oracle[name]
            assert mine == lv.read_buffer_at_offset(lv.size, 0)
    handle.close()


def test_undefined_ranges_under_a_logical_volume_reach_its_files(linux_guest, tmp_path: Path):
    from hvrescue.fs import open_path
    from hvrescue.vdisk.disk import Disk
    from hvrescue.vdisk.vhdx.image import VhdxImage
    from tests.builders import patch

    # 1 MiB blocks, so that a block of the file's data holds nothing else.
    damaged = tmp_path / "damaged.vhdx"
    run(
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "vhdx",
        "-o",
        "subformat=dynamic,block_size=1M",
        linux_guest["folder"] / "disk.raw",
        damaged,
    )
    with Disk.open(str(damaged)) as d:
        volume, inner = open_path(d, "2/vg0/root:/home/user/big.bin")
        runs = volume.data_runs(volume.stat(inner))
    assert runs
    img = VhdxImage.open(str(damaged))
    try:
        block = (runs[-1][0] + runs[-1][1] - 1) // img.block_size
        at = img.regions["bat"].file_offset + 8 * (block + block // img.chunk_ratio)
        far = ((damaged.stat().st_size >> 20) + 64) << 20 | 6
    finally:
        img.close()
    patch(damaged, at, struct.pack("<Q", far))
    r = run_cli("ls", damaged, "2/vg0/root:/home/user", "--json", evidence=[damaged])
    assert r.rc == 1
    rows = {e["name"]: e for e in r.json()["entries"]}
    assert rows["big.bin"]["complete"] is False and rows["big.bin"]["undefined"]
    out = tmp_path / "out"
    x = run_cli("extract", damaged, "2/vg0/root:/home/user/big.bin", "--to", out, "--json")
    assert x.rc == 1
    assert [i["source"] for i in x.json()["incomplete"]] == ["2/vg0/root:/home/user/big.bin"]
    assert not (out / "p2_vg0_root/home/user/big.bin").exists()
    assert (out / "p2_vg0_root/home/user/big.bin.incomplete").exists()


def test_mount_view_holds_each_logical_volume(linux_guest):
    from hvrescue.fs.mount import volume_views
    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(linux_guest["vhdx"])) as d:
        views = volume_views(d)
        assert {"disk.raw", "p1.raw", "p2.raw", "p2_vg0_root.raw", "p2_vg0_data.raw"} <= set(views)
        root = views["p2_vg0_root.raw"]
        data, first = root.read_checked(0, root.size)
    assert first is None
    assert data == linux_guest["root_img"].read_bytes()


# ---------------------------------------------------------------- the public LVM images
def _unpack(name: str, tmp: Path) -> Path:
    src = LVM_CORPUS / name
    if not src.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    if not have("qemu-img"):
        pytest.skip("needs qemu-img (Debian qemu-utils)")
    raw = tmp / name.removesuffix(".gz")
    with gzip.open(src, "rb") as fin, open(raw, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return to_vhdx(raw, tmp / (raw.name + ".vhdx"))


def _lv_sha(disk: Path, vid: str) -> str:
    from hvrescue.fs import discover
    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(disk)) as d:
        [vol] = [v for v in discover(d) if v.id == vid]
        return hashlib.sha256(vol.source.read(0, vol.source.size)).hexdigest()


def test_public_lvm_images_read_as_provenance_says(tmp_path: Path):
    from tests.test_fs_linux import expected_listing

    expected = CORPUS / "fs" / "expected"
    lvm = _unpack("dfvfs-lvm.raw.gz", tmp_path)
    r = run_cli("ls", lvm, "--json", evidence=[lvm])
    ids = {v["id"]: v["filesystem"] for v in r.json()["volumes"]}
    assert ids == {"1": "lvm2", "1/test_volume_group/test_logical_volume": "ext2"}
    vid = "1/test_volume_group/test_logical_volume"
    assert _lv_sha(lvm, vid) == "c99d6a59786b5b4fc3b3bde4a769f9c622da883460f1df54f1157d0c7af94209"
    listing = sorted((expected / "lvm-dfvfs-lvm.test_logical_volume.txt").read_text().splitlines())
    assert expected_listing(lvm, vid + ":/") == listing
    two = _unpack("dfvfs-lvmtest.raw.gz", tmp_path)
    assert _lv_sha(two, "1/vg_test/lv_test1") == (
        "c1ac1de79f706fff71bfdb8a4ba58a8317c83abbb2065e54feddd2549875332b"
    )
    assert _lv_sha(two, "1/vg_test/lv_test2") == (
        "1460e32323390412431d0ccf1a90a0f949e3be72454faedabc204c1f470b0dae"
    )
    listing = sorted((expected / "lvm-dfvfs-lvmtest.lv_test1.txt").read_text().splitlines())
    assert expected_listing(two, "1/vg_test/lv_test1:/") == listing
    plain = _unpack("dissect-lvm.bin.gz", tmp_path)
    assert _lv_sha(plain, "1/vg_test/lv_test") == (
        "dffad29594c30648611f56c4122ed557bdfd08bb178ce28d22436009bd7c4a1a"
    )


@pytest.mark.parametrize(
    ("image", "vid", "kind"),
    [
        ("dissect-lvm-thin.bin.gz", "1/lvm-thin/lv-1", "thin"),
        ("dissect-lvm-thin.bin.gz", "1/lvm-thin/data", "thin-pool"),
        ("dissect-lvm-mirror-1.bin.gz", "1/lvm-mirror/mirrormirror", "mirror"),
    ],
)
def test_mirrors_and_thin_volumes_are_reported_not_read(image, vid, kind, tmp_path: Path):
    disk = _unpack(image, tmp_path)
    r = run_cli("ls", disk, "--json", evidence=[disk])
    assert r.rc == 0, r.stderr
    vols = {v["id"]: v for v in r.json()["volumes"]}
    assert vols[vid]["readable"] is False
    assert vols[vid]["problem"] == {
        "key": "error.fs.lvm-unsupported",
        "params": {"volume": vid, "type": kind},
    }
    # Legs and pool internals are parts of another volume, not volumes of their own.
    assert not any(k.endswith(("_mimage_0", "_tdata", "_tmeta")) for k in vols)
    refused = run_cli("ls", disk, f"{vid}:/", "--json")
    assert refused.rc == 2 and refused.json()["error"]["key"] == "error.fs.lvm-unsupported"
    ja = run_cli("ls", disk, f"{vid}:/", env={"HVRESCUE_LANG": "ja"})
    assert kind in ja.stderr and "読み取れません" in ja.stderr


def test_damaged_lvm_metadata_never_crashes(tmp_path: Path):
    """Cut or garbled metadata text: a finding on the volume, never a traceback."""
    from hvrescue.fs import lvm

    good = (
        'vg { id = "x" seqno = 1 extent_size = 8192'
        ' physical_volumes { pv0 { id = "a" pe_start = 2048 } }'
        ' logical_volumes { lv { status = ["VISIBLE"] segment1 { start_extent = 0'
        ' extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } } } }'
    )
    for cut in range(0, len(good), 7):
        with contextlib.suppress(lvm.MetadataError):
            lvm.volume_group(good[:cut])
    with pytest.raises(lvm.MetadataError):
        lvm.parse_metadata("{" * 100)
    # A segment naming a physical volume that is not there is said, with that volume's id.
    pv = lvm.PhysicalVolume("b", 0, 8 * MiB, MiB, good)
    _groups, [lv] = lvm.logical_volumes([pv])
    assert lv.missing_pv == "a" and lv.runs[0].disk_offset is None


class _Bytes:
    """A disk stand-in over bytes (the LVM label reader needs only size and read)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=4096), st.integers(0, 3), st.integers(0, 600))
def test_damaged_lvm_labels_and_metadata_never_crash(noise: bytes, sector: int, at: int):
    from hvrescue.fs import lvm

    head = bytearray(8192)
    head[sector * 512 : sector * 512 + 8] = lvm.LABEL
    head[sector * 512 + 24 : sector * 512 + 32] = lvm.LABEL_TYPE
    head[at : at + len(noise)] = noise[: max(0, 8192 - at)]
    pv = lvm.read_pv(_Bytes(bytes(head)), 0, 8192)  # type: ignore[arg-type]
    if pv is not None and pv.metadata is not None:
        with contextlib.suppress(lvm.MetadataError, RecursionError):
            lvm.logical_volumes([pv])
    with contextlib.suppress(lvm.MetadataError):
        lvm.parse_metadata(noise.decode("latin-1"))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=1024, max_size=1024),
    st.lists(st.binary(min_size=4096, max_size=4096), max_size=6),
)
def test_damaged_journals_never_crash_or_loop(sb: bytes, blocks: list[bytes]):
    from hvrescue.fs import jbd2

    head = bytearray(sb)
    head[0:12] = struct.pack(">III", jbd2.MAGIC, jbd2.SB_V2, 1)
    head[12:32] = struct.pack(">IIIII", 4096, len(blocks) + 2, 1, 7, 1)
    try:
        journal = jbd2.Journal(None, bytes(head))
    except jbd2.JournalError:
        return
    journal.read_block = lambda n: blocks[n - 1] if 0 < n <= len(blocks) else b""
    committed, _revoked, writes = journal._passes()
    assert committed <= len(blocks) and len(writes) <= 64 * (len(blocks) + 2)


def test_fuse_mount_serves_each_logical_volume_to_other_tools(linux_guest, tmp_path: Path):
    """`hvrescue mount`: the logical volume's file is the filesystem e2fsprogs reads."""
    import signal

    from tests.helpers import Evidence
    from tests.test_fs import _start_mount

    disk = linux_guest["vhdx"]
    snap = Evidence([disk])
    mnt = tmp_path / "mnt"
    proc = _start_mount(disk, mnt)
    try:
        names = sorted(p.name for p in mnt.iterdir())
        assert names == ["disk.raw", "p1.raw", "p2.raw", "p2_vg0_data.raw", "p2_vg0_root.raw"]
        view = mnt / "p2_vg0_root.raw"
        assert view.read_bytes() == linux_guest["root_img"].read_bytes()
        listed = run("debugfs", "-R", "ls -p /etc", view).stdout
        assert "/fstab/" in listed and "/shadow/" in listed
        with pytest.raises(OSError):
            view.write_bytes(b"x")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    snap.assert_untouched()


def test_a_striped_volume_over_two_partitions(tmp_path: Path):
    """Two LVM partitions of one disk, one volume group, a logical volume striped over both."""
    from tests.fs_linux_builders import lvm_striped

    if not have("sfdisk", "pvcreate", "losetup", "mkfs.ext4", "qemu-img"):
        pytest.skip("needs Debian's fdisk, lvm2, e2fsprogs and qemu-utils")
    pvs = [tmp_path / "pv1.raw", tmp_path / "pv2.raw"]
    for pv in pvs:
        with open(pv, "wb") as f:
            f.truncate(40 * MiB)
    try:
        chunks = lvm_striped(pvs, 32)
    except __import__("subprocess").CalledProcessError as exc:  # no loop devices here
        pytest.skip(f"lvm2 cannot build on loop devices here: {exc.stderr[-300:]}")
    src = tmp_path / "src"
    populate(src, seed=33)
    image = tmp_path / "striped.img"
    make_ext4(image, 32, src)
    content = image.read_bytes()
    chunk = len(content) // len(chunks)
    for i, (pv, offset) in enumerate(chunks):
        with open(pv, "r+b") as f:
            f.seek(offset)
            f.write(content[i * chunk : (i + 1) * chunk])
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(100 * MiB)
    lvm_type = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
    table = (
        f"label: gpt\nstart=2048, size=81920, type={lvm_type}\n"
        f"start=83968, size=81920, type={lvm_type}\n"
    )
    __import__("subprocess").run(
        ["sfdisk", "-q", str(disk)], input=table, text=True, capture_output=True, check=True
    )
    put(disk, 2048 * 512, pvs[0])
    put(disk, 83968 * 512, pvs[1])
    vhdx = to_vhdx(disk, tmp_path / "striped.vhdx")
    r = run_cli("ls", vhdx, "--json")
    vols = {v["id"]: v["filesystem"] for v in r.json()["volumes"]}
    assert vols == {"1": "lvm2", "2": "lvm2", "1/vg1/striped": "ext4"}
    assert _lv_sha(vhdx, "1/vg1/striped") == hashlib.sha256(content).hexdigest()
    listing = run_cli("ls", vhdx, "1/vg1/striped:/home/user", "--json")
    assert listing.rc == 0, listing.stderr
    big = [e for e in listing.json()["entries"] if e["name"] == "big.bin"]
    assert big and big[0]["size"] == 1_500_000
