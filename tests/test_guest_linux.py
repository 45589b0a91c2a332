"""Linux, WSL and Docker Desktop guests in `guest` and `triage` (issue 17, part 3).

Parsers are checked on text in the layouts real systems write and people repost
(tests/fixtures/guest_linux/README.md says where each was seen), against independent readers
where one exists (the standard library's os-release parser, dumpe2fs, blkid, xfs_db). The
end-to-end tests build disks with the distributions' own tools: a partitionless ext4 VHDX like
WSL's (mkfs.ext4 -d, qemu-img convert) in its real folder layout, with a broken fstab, a dirty
journal, errors recorded, a full disk, a Docker Desktop data disk and one initialized by
Windows; and a RHEL-like guest with a GPT, /boot on ext4 and LVM with an XFS root and swap."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.facts.model import Fact, Provenance
from hvrescue.guest.artefacts.linux_fstab import parse_fstab, spec_kind
from hvrescue.guest.artefacts.linux_logs import scan
from hvrescue.guest.artefacts.linux_os import parse_os_release
from hvrescue.guest.disk_kind import from_name
from hvrescue.guest.linux_volumes import ext_space, ext_state, identity, xfs_space
from hvrescue.guest.reconcile import reconcile_fstab
from tests.fs_linux_builders import (
    dirty_journal,
    have,
    loop_mount_works,
    lvm_layout,
    make_xfs,
    put,
    run,
    to_vhdx,
)
from tests.helpers import CORPUS, run_cli

FIX = Path(__file__).parent / "fixtures" / "guest_linux"
PACKAGE = "CanonicalGroupLimited.Ubuntu22.04LTS_79rhkp1fndgsc"
MISSING = "c3d9e2f1-0a4b-4e7c-8d5f-6b1a2c3d4e5f"


def _needs(*tools: str) -> None:
    if not have(*tools):
        pytest.skip(f"needs {', '.join(tools)} (Debian e2fsprogs, xfsprogs, lvm2, qemu-utils)")


# ---------------------------------------------------------------------------- parsers
def test_anaconda_fstab_is_read_line_by_line_as_libmount_would():
    entries = parse_fstab((FIX / "fstab-anaconda-lvm.txt").read_text())
    assert [e["line"] for e in entries] == [12, 13, 14, 15, 16, 17, 18]
    kinds = [spec_kind(e["spec"]) for e in entries]
    assert kinds[0] == ("lvm", "rhel/root")
    assert kinds[1] == ("uuid", "5e0c1d2a-7b3f-4c6e-9d18-2a4b6c8e0f13")
    assert kinds[2] == ("uuid", "4A1C-9B3E")
    assert kinds[3] == ("lvm", "rhel/swap")
    assert kinds[5] == ("lvm", "vg-docker/lv-docker")  # device-mapper doubles the hyphens
    assert kinds[6][0] == "network"
    assert [e["malformed"] for e in entries] == [False] * 5 + [True, False]  # seven fields
    assert entries[2]["options"] == "umask=0077,shortname=winnt"


def test_debian_fstab_names_devices_every_way():
    entries = parse_fstab((FIX / "fstab-debian.txt").read_text())
    got = [(e["mount_point"], spec_kind(e["spec"])[0]) for e in entries]
    assert got == [
        ("/", "uuid"),
        ("/boot/efi", "uuid"),
        ("none", "uuid"),
        ("/media/cdrom0", "device"),
        ("none", "file"),
        ("/srv/data", "uuid"),  # /dev/disk/by-uuid/...
    ]
    assert spec_kind(entries[5]["spec"])[1] == "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"


def test_a_pasted_non_breaking_space_stays_inside_its_field():
    first = parse_fstab((FIX / "fstab-pasted-nbsp.txt").read_text())[0]
    assert "\u00a0" in first["spec"]  # libmount does not split there: this line cannot mount
    assert first["mount_point"] == "xfs"


@pytest.mark.parametrize("name", ["os-release-rhel9.txt", "os-release-ubuntu.txt"])
def test_os_release_agrees_with_the_standard_library(name: str):
    text = (FIX / name).read_text()
    oracle = platform._parse_os_release(text.splitlines())  # type: ignore[attr-defined]
    ours = parse_os_release(text)
    for key in ("ID", "ID_LIKE", "NAME", "PRETTY_NAME", "VERSION_ID", "VERSION"):
        assert ours.get(key) == oracle.get(key), key


def test_reposted_dmesg_lines_are_still_recognised():
    events, lines = scan((FIX / "dmesg-wsl-reposted.md").read_text())
    text = (FIX / "dmesg-wsl-reposted.md").read_text().splitlines()
    assert lines == len(text)
    got = [(e["category"], e.get("uptime_seconds")) for e in events]
    assert got == [
        ("fs-error", 75.205015),
        ("fs-recovery", 75.207945),
        ("fs-error", 692.744591),
        ("io-error", 415.127466),
        ("io-error", 415.12747),
        ("fs-error", None),  # "Read-only file system" after "> " and spaces
        ("fs-error", 2041.11823),  # a non-breaking space after the time stamp
    ]
    assert events[-1]["message"].startswith("EXT4-fs error (device sdc): ext4_put_super")


def test_syslog_of_a_guest_in_emergency_mode():
    events, _ = scan((FIX / "syslog-emergency.txt").read_text())
    by = {}
    for e in events:
        by.setdefault(e["category"], []).append(e)
    assert len(by["boot"]) == 2 and by["boot"][0]["time_text"] == "Nov 28 06:14:02"
    assert by["boot"][0]["host"] == "web01"
    lines = (FIX / "syslog-emergency.txt").read_text().splitlines()
    expected = [ln.split(" web01 ", 1)[1] for ln in lines if " 06:15:35 " in ln]
    assert [e["message"] for e in by["mount-failure"]] == expected


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (rf"C:\Users\dev\AppData\Local\Packages\{PACKAGE}\LocalState\ext4.vhdx", "wsl-distro"),
        (r"C:\Users\dev\AppData\Local\Docker\wsl\disk\docker_data.vhdx", "docker-desktop-data"),
        (r"C:\Users\dev\AppData\Local\Docker\wsl\data\ext4.vhdx", "docker-desktop-data"),
        (r"C:\Users\dev\AppData\Local\Docker\wsl\main\ext4.vhdx", "docker-desktop-distro"),
        ("/evidence/dev-laptop/ext4.vhdx", "wsl-distro"),
        (r"C:\ProgramData\DockerDesktop\vm-data\DockerDesktop.vhdx", "docker-desktop-vm"),
        (r"D:\Hyper-V\web01\Virtual Hard Disks\web01.vhdx", None),
    ],
)
def test_the_file_name_says_what_kind_of_disk(path: str, kind: str | None):
    hint = from_name(path, "none")
    assert hint["disk_kind"] == kind
    assert hint["distro_package"] == (PACKAGE if "Packages" in path else None)


def _fact(kind: str, disk: str, attrs: dict[str, Any], where: str = "") -> Fact:
    return Fact(kind, attrs, Provenance(f"{disk}!p{where}"))


def test_an_fstab_device_on_another_disk_of_the_vm_is_not_missing():
    entry = {"spec": f"UUID={MISSING.upper()}", "resolved": False, "blocks_boot": True}
    lvm = {"spec": "/dev/mapper/data-lv0", "resolved": False, "blocks_boot": True}
    gone = {"spec": "UUID=00000000-1111-2222-3333-444444444444", "resolved": False}
    facts = [
        _fact("fstab_entry", "os.vhdx", entry, "2:/etc/fstab"),
        _fact("fstab_entry", "os.vhdx", lvm, "2:/etc/fstab"),
        _fact("fstab_entry", "os.vhdx", gone, "2:/etc/fstab"),
        _fact("linux_volume", "os.vhdx", {"id": "2", "uuid": "00000000-1111-2222-3333-4444"}),
        _fact("linux_volume", "data.vhdx", {"id": "1", "uuid": MISSING, "filesystem": "xfs"}),
        _fact("linux_volume", "data.vhdx", {"id": "1/data/lv0", "vg": "data", "lv": "lv0"}),
    ]
    out = reconcile_fstab(facts)
    assert [f.attributes["resolved"] for f in out[:3]] == [True, True, False]
    assert out[0].attributes["matched_disk"] == "data.vhdx"
    assert out[0].attributes["blocks_boot"] is False
    assert out[1].attributes["matched_volume"] == "1/data/lv0"
    assert out[3:] == facts[3:]
    # One disk alone: nothing to reconcile with, the facts come back as they were.
    assert reconcile_fstab(facts[:4]) == facts[:4]


# ---------------------------------------------------------------------------- oracles
def _dumpe2fs(raw: Path) -> dict[str, str]:
    out = run("dumpe2fs", "-h", raw, check=False).stdout
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()) if v}


def _group_free_blocks(raw: Path) -> int:
    """The free blocks of every group as dumpe2fs counts them (its group descriptor view)."""
    out = run("dumpe2fs", raw, check=False).stdout
    return sum(int(m) for m in re.findall(r"^\s+(\d+) free blocks,", out, re.M))


def _blkid(image: Path, tag: str = "UUID") -> str:
    return run("blkid", "-p", "-o", "value", "-s", tag, image, check=False).stdout.strip()


def _guest(disk: Path) -> dict[str, Any]:
    r = run_cli("guest", disk, "--json", evidence=[disk])
    assert r.rc == 0, r.stderr
    return r.json()


def _triage(disk: Path, out: Path) -> dict[str, Any]:
    r = run_cli("triage", disk, "--out", out, "--json", evidence=[disk])
    assert r.rc in (0, 1), r.stderr
    return r.json()


def _kinds(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f["attributes"] for f in data["facts"] if f["kind"] == kind]


def _ids(triage: dict[str, Any]) -> set[str]:
    return {d["id"] for d in triage["diagnoses"]}


PUBLIC_EXT = [
    ("btrfsprogs-ext4-needs-recovery.raw.xz", lzma.decompress),
    ("e2fsprogs-j_recover_csum3_64bit.image.bz2", bz2.decompress),
    ("e2fsprogs-f_jnl_64bit.image.gz", gzip.decompress),
    ("dissect-ext4.bin.gz", gzip.decompress),
    ("dfvfs-ext2.raw.gz", gzip.decompress),
    ("e2fsprogs-j_recover_fast_commit.image.gz", gzip.decompress),
]


@pytest.mark.parametrize(("name", "unpack"), PUBLIC_EXT, ids=[n for n, _ in PUBLIC_EXT])
def test_public_ext_images_state_as_dumpe2fs_and_blkid_say(name, unpack, tmp_path: Path):
    _needs("dumpe2fs", "blkid", "qemu-img")
    src = CORPUS / "fs" / "ext" / name
    if not src.exists():
        pytest.skip(f"{src} is not here")
    raw = tmp_path / "img.raw"
    raw.write_bytes(unpack(src.read_bytes()))
    if raw.stat().st_size % 512:
        with open(raw, "ab") as f:
            f.write(bytes(512 - raw.stat().st_size % 512))
    disk = to_vhdx(raw, tmp_path / "img.vhdx")
    data = _guest(disk)
    [fs] = _kinds(data, "linux_filesystem")
    oracle = _dumpe2fs(raw)
    assert fs["needs_recovery"] == ("needs_recovery" in oracle["Filesystem features"])
    assert fs["error_count"] == int(oracle.get("FS Error count", "0"))
    assert fs["uuid"] == oracle["Filesystem UUID"] == _blkid(raw)
    assert fs["state"] == (
        "clean"
        if oracle["Filesystem state"] == "clean" and not fs["needs_recovery"]
        else fs["state"]
    )
    if not fs["readable"]:
        # The fast-commit journal is refused by the reader: said as a problem, never skipped.
        assert "fast_commit" in oracle["Filesystem features"]
        assert any(p["code"] == "guest.volume-unreadable" for p in data["problems"])
    elif not fs["needs_recovery"]:
        bs = int(oracle["Block size"])
        assert fs["free_bytes"] == _group_free_blocks(raw) * bs
        assert fs["size_bytes"] == int(oracle["Block count"]) * bs
        assert fs["reserved_bytes"] == int(oracle["Reserved block count"]) * bs


# ---------------------------------------------------------------------------- WSL-like disks
def _ubuntu_tree(root: Path, fstab: str) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "home/dev/project").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)
    shutil.copy(FIX / "os-release-ubuntu.txt", root / "usr/lib/os-release")
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "etc/fstab").write_text(fstab)
    (root / "etc/wsl.conf").write_text("[boot]\nsystemd=true\n")
    (root / "home/dev/project/main.py").write_text("print('unpushed work')\n")
    lines = (FIX / "dmesg-wsl-reposted.md").read_text().splitlines()
    kern = [
        f"Nov 29 21:40:{i:02d} DEV-LAPTOP kernel: {ln.strip('> ')}"
        for i, ln in enumerate(lines)
        if ln.lstrip("> ").startswith("[")
    ]
    (root / "var/log/kern.log").write_text("\n".join(kern) + "\n")


def _ext4(raw: Path, src: Path, mb: int = 64, *extra: str) -> None:
    with open(raw, "wb") as f:
        f.truncate(mb << 20)
    run("mkfs.ext4", "-q", "-F", "-b", "4096", *extra, "-d", src, raw)


def _wsl_place(root: Path) -> Path:
    folder = root / "Users/dev/AppData/Local/Packages" / PACKAGE / "LocalState"
    folder.mkdir(parents=True)
    return folder / "ext4.vhdx"


WSL_FSTAB = (FIX / "fstab-wsl-ubuntu.txt").read_text() + f"UUID={MISSING} /data ext4 defaults 0 2\n"


@pytest.fixture(scope="module")
def wsl_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _needs("mkfs.ext4", "qemu-img", "dumpe2fs", "blkid")
    folder = tmp_path_factory.mktemp("wsl")
    src = folder / "src"
    _ubuntu_tree(src, WSL_FSTAB)
    raw = folder / "ext4.raw"
    _ext4(raw, src)
    disk = to_vhdx(raw, _wsl_place(folder / "evidence"))
    return {"raw": raw, "disk": disk, "folder": folder}


def test_wsl_disk_through_guest(wsl_disk: dict[str, Path]):
    data = _guest(wsl_disk["disk"])
    [vol] = data["volumes"]
    assert (vol["id"], vol["scheme"], vol["filesystem"]) == ("1", "none", "ext4")
    assert set(vol["roles"]) == {"linux", "linuxfs"}
    assert vol["uuid"] == _blkid(wsl_disk["raw"])
    kind = data["disk_kind"]
    assert kind["disk_kind"] == "wsl-distro" and kind["distro_package"] == PACKAGE
    assert "file:/etc/wsl.conf" in kind["signals"] and kind["partitionless"] is True
    [os_] = _kinds(data, "linux_os")
    assert (os_["id"], os_["version_id"], os_["file"]) == ("ubuntu", "22.04", "/usr/lib/os-release")
    entries = {e["mount_point"]: e for e in _kinds(data, "fstab_entry")}
    assert entries["/"]["wsl_default_root"] is True and entries["/"]["blocks_boot"] is False
    assert entries["/data"]["resolved"] is False and entries["/data"]["blocks_boot"] is True
    [fs] = _kinds(data, "linux_filesystem")
    oracle = _dumpe2fs(wsl_disk["raw"])
    assert fs["state"] == "clean" == oracle["Filesystem state"]
    assert fs["free_bytes"] == int(oracle["Free blocks"]) * 4096  # fresh from mkfs: exact
    assert fs["full"] is False
    events = _kinds(data, "linux_log_event")
    assert {e["category"] for e in events} >= {"fs-error", "io-error", "fs-recovery"}
    assert all(e["file"] == "/var/log/kern.log" for e in events)
    assert not data["problems"]


def test_wsl_disk_through_triage(wsl_disk: dict[str, Path], tmp_path: Path):
    report = _triage(wsl_disk["disk"], tmp_path / "report")
    ids = _ids(report)
    assert "linux.fstab-missing-uuid" in ids
    assert not ids & {"wsl.disk-damaged", "linux.fs-needs-recovery", "linux.disk-full"}
    [d] = [d for d in report["diagnoses"] if d["id"] == "linux.fstab-missing-uuid"]
    assert "/data" in d["title"] and MISSING in d["title"]
    assert report["verdict"]["state"] == "problems"
    commands = " ".join(s["command"] for s in d["steps"])
    assert str(wsl_disk["disk"]) in commands


def test_wsl_disk_with_a_dirty_journal(wsl_disk: dict[str, Path], tmp_path: Path):
    _needs("debugfs")
    before, after = tmp_path / "before.raw", tmp_path / "after.raw"
    shutil.copy(wsl_disk["raw"], before)
    shutil.copy(wsl_disk["raw"], after)
    run("debugfs", "-w", "-R", "mkdir /home/dev/notes", after)
    blocks = dirty_journal(before, after)
    assert blocks > 0
    assert "needs_recovery" in _dumpe2fs(before)["Filesystem features"]
    disk = to_vhdx(before, _wsl_place(tmp_path / "evidence"))
    data = _guest(disk)
    [fs] = _kinds(data, "linux_filesystem")
    assert fs["needs_recovery"] is True and fs["state"] == "not-clean"
    assert fs["journal"] == "replayed-in-memory"
    assert fs["journal_detail"]["blocks"] == blocks
    ids = _ids(_triage(disk, tmp_path / "report"))
    assert {"wsl.disk-damaged", "linux.fs-needs-recovery"} <= ids
    assert "docker.disk-damaged" not in ids


def test_wsl_disk_with_errors_recorded(wsl_disk: dict[str, Path], tmp_path: Path):
    _needs("debugfs")
    raw = tmp_path / "errors.raw"
    shutil.copy(wsl_disk["raw"], raw)
    script = tmp_path / "ssv.cmd"
    script.write_text(
        "ssv state 3\nssv error_count 4\nssv first_error_func ext4_lookup\n"
        "ssv first_error_time 20261120081000\nssv last_error_func ext4_find_entry\n"
        "ssv last_error_time 20261128100102\n"
    )
    run("debugfs", "-w", "-f", script, raw)
    oracle = _dumpe2fs(raw)
    disk = to_vhdx(raw, _wsl_place(tmp_path / "evidence"))
    [fs] = _kinds(_guest(disk), "linux_filesystem")
    assert fs["error_count"] == int(oracle["FS Error count"]) == 4
    assert fs["state"] == "errors" and "error" in oracle["Filesystem state"]
    assert fs["first_error_function"] == oracle["First error function"] == "ext4_lookup"
    assert fs["last_error_time"] == "2026-11-28T10:01:02Z"
    report = _triage(disk, tmp_path / "report")
    assert {"wsl.disk-damaged", "linux.fs-errors-recorded"} <= _ids(report)
    assert "linux.fs-needs-recovery" not in _ids(report)  # errors say more than recovery


def test_a_full_wsl_disk(tmp_path: Path):
    _needs("mkfs.ext4", "qemu-img", "dumpe2fs")
    empty, src = tmp_path / "empty", tmp_path / "src"
    _ubuntu_tree(src, "LABEL=cloudimg-rootfs\t/\t ext4\tdefaults\t0 1\n")
    empty.mkdir()
    probe = tmp_path / "probe.raw"
    _ext4(probe, src, 32, "-m", "0")
    free = int(_dumpe2fs(probe)["Free blocks"])
    (src / "home/dev/big.bin").write_bytes(b"\x5a" * ((free - 24) * 4096))
    raw = tmp_path / "full.raw"
    _ext4(raw, src, 32, "-m", "0")
    left = int(_dumpe2fs(raw)["Free blocks"]) * 4096
    disk = to_vhdx(raw, _wsl_place(tmp_path / "evidence"))
    [fs] = _kinds(_guest(disk), "linux_filesystem")
    assert fs["available_bytes"] == left and fs["full"] is True
    ids = _ids(_triage(disk, tmp_path / "report"))
    assert {"wsl.disk-full", "linux.disk-full"} <= ids


def test_docker_desktop_data_disk(tmp_path: Path):
    _needs("mkfs.ext4", "qemu-img", "debugfs")
    src = tmp_path / "src"
    for sub in ("docker/overlay2/l", "docker/volumes/pgdata/_data", "docker/image/overlay2"):
        (src / sub).mkdir(parents=True)
    (src / "docker/volumes/pgdata/_data/PG_VERSION").write_text("16\n")
    before, after = tmp_path / "before.raw", tmp_path / "after.raw"
    _ext4(before, src)
    shutil.copy(before, after)
    run("debugfs", "-w", "-R", "mkdir /docker/buildkit", after)
    dirty_journal(before, after)
    folder = tmp_path / "evidence/Users/dev/AppData/Local/Docker/wsl/disk"
    folder.mkdir(parents=True)
    disk = to_vhdx(before, folder / "docker_data.vhdx")
    data = _guest(disk)
    assert data["disk_kind"]["disk_kind"] == "docker-desktop-data"
    assert "docker-engine-tree" in data["disk_kind"]["signals"]
    assert not _kinds(data, "linux_os")  # a data disk has no system of its own
    ids = _ids(_triage(disk, tmp_path / "report"))
    assert "docker.disk-damaged" in ids and "wsl.disk-damaged" not in ids
    # The same tree under another name is still recognised by what it holds.
    other = to_vhdx(before, tmp_path / "evidence" / "copy-of-disk.vhdx")
    assert _guest(other)["disk_kind"]["disk_kind"] == "docker-desktop-data"


def test_a_wsl_disk_initialized_in_disk_management(wsl_disk: dict[str, Path], tmp_path: Path):
    _needs("sfdisk")
    raw = tmp_path / "initialized.raw"
    shutil.copy(wsl_disk["raw"], raw)
    proc = subprocess.run(
        ["sfdisk", "-q", str(raw)], input="label: gpt\n", text=True, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert _blkid(raw, "PTTYPE") == "gpt"
    disk = to_vhdx(raw, _wsl_place(tmp_path / "evidence"))
    data = _guest(disk)
    assert data["disk_kind"]["partition_table"] == "gpt"
    assert data["disk_kind"]["root_volume"] is None
    ids = _ids(_triage(disk, tmp_path / "report"))
    assert "wsl.disk-initialized-by-windows" in ids


# ---------------------------------------------------------------------------- LVM + XFS guest
RHEL_KERNEL = "5.14.0-362.8.1.el9_3.x86_64"


@pytest.fixture(scope="module")
def rhel_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _needs(
        "mkfs.xfs",
        "xfs_logprint",
        "mkfs.ext4",
        "mkswap",
        "sfdisk",
        "pvcreate",
        "losetup",
        "qemu-img",
    )
    folder = tmp_path_factory.mktemp("rhel")
    if not loop_mount_works(folder):
        pytest.skip("loop mounts are not allowed here: XFS cannot be filled with cp -a")
    boot_src = folder / "boot-src"
    boot_src.mkdir()
    (boot_src / f"vmlinuz-{RHEL_KERNEL}").write_bytes(b"\x4d\x5a" + bytes(4094))
    (boot_src / f"initramfs-{RHEL_KERNEL}.img").write_bytes(bytes(4096))
    boot = folder / "boot.img"
    _ext4(boot, boot_src, 64)
    swap = folder / "swap.img"
    with open(swap, "wb") as f:
        f.truncate(16 << 20)
    run("mkswap", "-q", swap)
    boot_uuid, swap_uuid = _blkid(boot), _blkid(swap)
    root = folder / "root-src"
    (root / "etc").mkdir(parents=True)
    shutil.copy(FIX / "os-release-rhel9.txt", root / "etc/os-release")
    (root / "etc/fstab").write_text(
        "/dev/mapper/rhel-root   /                       xfs     defaults        0 0\n"
        f"UUID={boot_uuid} /boot                   ext4    defaults        1 2\n"
        f"UUID={swap_uuid} none                    swap    defaults        0 0\n"
        f"UUID={MISSING} /data                   xfs     defaults        0 0\n"
    )
    mods = root / "usr/lib/modules" / RHEL_KERNEL
    (mods / "kernel/drivers/hv").mkdir(parents=True)
    (mods / "kernel/drivers/scsi").mkdir(parents=True)
    (mods / "kernel/drivers/hv/hv_vmbus.ko.xz").write_bytes(b"\xfd7zXZ\x00")
    (mods / "kernel/drivers/scsi/hv_storvsc.ko.xz").write_bytes(b"\xfd7zXZ\x00")
    (mods / "modules.builtin").write_text("kernel/drivers/hv/hv_utils.ko\n")
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/hv_kvp_daemon").write_bytes(b"\x7fELF")
    (root / "var/log").mkdir(parents=True)
    shutil.copy(FIX / "syslog-emergency.txt", root / "var/log/messages")
    (root / "boot").mkdir()
    xfs = folder / "root.img"
    make_xfs(xfs, root, folder / "mnt", 320)
    pv = folder / "pv.img"
    with open(pv, "wb") as f:
        f.truncate(400 << 20)
    layout = lvm_layout(pv, {"root": 320, "swap": 16}, vg="rhel")
    put(pv, layout["root"][0], xfs)
    put(pv, layout["swap"][0], swap)
    raw = folder / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(467 << 20)
    table = "label: gpt\nstart=2048, size=131072, type=L\nstart=135168, size=819200, type=V\n"
    proc = subprocess.run(["sfdisk", "-q", str(raw)], input=table, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    put(raw, 2048 * 512, boot)
    put(raw, 135168 * 512, pv)
    evidence = folder / "evidence"
    evidence.mkdir()
    disk = to_vhdx(raw, evidence / "rhel9-web01.vhdx")
    return {"disk": disk, "xfs": xfs, "boot": boot, "boot_uuid": boot_uuid, "swap_uuid": swap_uuid}


def _xfs_free(image: Path) -> int:
    out = run("xfs_db", "-r", "-c", "sb 0", "-c", "print fdblocks blocksize", image).stdout
    values = dict(line.split(" = ") for line in out.splitlines())
    return int(values["fdblocks"]) * int(values["blocksize"])


def test_lvm_xfs_guest_through_guest(rhel_disk: dict[str, Any]):
    data = _guest(rhel_disk["disk"])
    vols = {v["id"]: v for v in data["volumes"]}
    assert vols["1"]["filesystem"] == "ext4" and "linux-boot" in vols["1"]["roles"]
    assert vols["2"]["filesystem"] == "lvm2"
    assert vols["2/rhel/root"]["filesystem"] == "xfs" and "linux" in vols["2/rhel/root"]["roles"]
    assert vols["2/rhel/root"]["uuid"] == _blkid(rhel_disk["xfs"])
    assert vols["2/rhel/swap"]["filesystem"] == "swap"
    assert vols["2/rhel/swap"]["uuid"] == rhel_disk["swap_uuid"]
    assert data["disk_kind"]["disk_kind"] == "linux-vm"
    assert data["disk_kind"]["root_volume"] == "2/rhel/root"
    [os_] = _kinds(data, "linux_os")
    assert (os_["id"], os_["version_id"], os_["volume"]) == ("rhel", "9.3", "2/rhel/root")
    entries = {e["mount_point"]: e for e in _kinds(data, "fstab_entry")}
    assert entries["/"]["matched_volume"] == "2/rhel/root"
    assert entries["/boot"]["matched_volume"] == "1"
    assert entries["none"]["matched_volume"] == "2/rhel/swap"
    assert entries["/data"]["resolved"] is False and entries["/data"]["blocks_boot"] is True
    kernels = _kinds(data, "linux_kernel")
    assert {(k["version"], k["volume"]) for k in kernels} == {
        (RHEL_KERNEL, "2/rhel/root"),
        (RHEL_KERNEL, "1"),
    }
    assert any(k["image"] and k["initrd"] for k in kernels if k["volume"] == "1")
    [hv] = _kinds(data, "linux_hyperv")
    assert hv["modules"] == ["hv_storvsc", "hv_vmbus"] and hv["builtin"] == ["hv_utils"]
    assert hv["storage_driver"] is True and hv["missing"] == ["hv_netvsc"]
    [daemons] = _kinds(data, "linux_hyperv_daemons")
    assert daemons["kvp_daemon"] is True
    fs = {f["volume"]: f for f in _kinds(data, "linux_filesystem")}
    # XFS's state is its log's (no clean flag in its superblock); xfs_logprint is the oracle
    logprint = run("xfs_logprint", "-t", rhel_disk["xfs"], check=False).stdout
    assert "state: <CLEAN>" in logprint, logprint
    assert (fs["2/rhel/root"]["state"], fs["2/rhel/root"]["needs_recovery"]) == ("clean", False)
    assert fs["2/rhel/root"]["free_bytes"] >= _xfs_free(rhel_disk["xfs"])
    assert fs["2/rhel/root"]["free_bytes"] - _xfs_free(rhel_disk["xfs"]) < 8 << 20
    assert fs["1"]["state"] == "clean" and fs["1"]["uuid"] == rhel_disk["boot_uuid"]
    events = _kinds(data, "linux_log_event")
    # Every line of the minute the boot gave up on /data (rsyslog's time 06:15:35).
    failing = (FIX / "syslog-emergency.txt").read_text().count("Nov 28 06:15:35 ")
    assert sum(e["category"] == "mount-failure" for e in events) == failing


def test_lvm_xfs_guest_through_triage(rhel_disk: dict[str, Any], tmp_path: Path):
    report = _triage(rhel_disk["disk"], tmp_path / "report")
    ids = _ids(report)
    assert "linux.fstab-missing-uuid" in ids
    assert not ids & {"wsl.disk-damaged", "docker.disk-damaged", "linux.disk-full"}
    [d] = [d for d in report["diagnoses"] if d["id"] == "linux.fstab-missing-uuid"]
    assert "/data" in d["title"]
    cited = json.dumps(d["evidence"])
    assert "Timed out waiting for device" in cited  # the guest's own log supports it
    ja = run_cli(
        "--lang",
        "ja",
        "triage",
        rhel_disk["disk"],
        "--out",
        tmp_path / "ja",
        "--json",
        evidence=[rhel_disk["disk"]],
    ).json()
    [dj] = [d for d in ja["diagnoses"] if d["id"] == "linux.fstab-missing-uuid"]
    assert "ボリューム" in dj["title"] and "/data" in dj["title"]


# ---------------------------------------------------------------------------- damaged input


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.reads = 0

    def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        assert length <= 64 << 20, "a read sized by a damaged count"
        return self.data[offset : offset + length]


def _superblock(seed: bytes, magic: bytes, at: int) -> bytes:
    data = bytearray(seed.ljust(8192, b"\0")[:8192])
    data[at : at + len(magic)] = magic
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=8192))
def test_damaged_superblocks_give_values_or_none_never_an_error(seed: bytes):
    for data in (seed, _superblock(seed, b"\x53\xef", 1024 + 0x38), _superblock(seed, b"XFSB", 0)):
        source = _Bytes(data)
        state = ext_state(data[1024:2048])
        assert state is None or state["state"] in ("clean", "not-clean", "errors")
        for space in (ext_space(source), xfs_space(source)):
            if space is not None:
                assert 0 <= space["available_bytes"] <= space["free_bytes"] <= space["size_bytes"]
        for fs in ("ext4", "xfs", "fat32", "fat16", "ntfs", None):
            ident = identity(source, fs)
            assert set(ident) >= {"uuid", "label"}
        json.dumps([state, ident])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=4000))
def test_any_text_parses_as_fstab_os_release_and_log(text: str):
    for entry in parse_fstab(text):
        assert entry["line"] >= 1 and isinstance(entry["spec"], str)
        spec_kind(entry["spec"])
    parse_os_release(text)
    events, count = scan(text)
    assert len(events) <= count
