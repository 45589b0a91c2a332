"""Linux guest volumes built with the distributions' own tools, for the ext/XFS/LVM tests:
``mkfs.ext4 -d``, ``mkfs.xfs`` (filled through a loop mount with ``cp -a``, or a protofile
where loop mounts are not allowed), ``mkfs.btrfs --rootdir``, LVM2 on a loop device
(``lvcreate --activate n -Zn``: no device-mapper is needed), a dirty ext4 journal written with
``debugfs -w``, all wrapped in VHDX by ``qemu-img convert`` as WSL's partitionless ext4.vhdx is."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

T_OLD = 946_684_800_123_456_789  # 2000-01-01T00:00:00.123456789Z
T_NEW = 1_700_000_000_987_654_321


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


def run(*cmd: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True)


def populate(root: Path, seed: int = 5, many: int = 0) -> None:
    """A guest tree with what Linux trees hold: nested folders, UTF-8 names, an empty and a
    sparse file, modes and owners, times with nanoseconds, links (inside, absolute, and
    escaping the volume) and a FIFO. ``many`` adds that many small files in 100 folders."""
    rnd = random.Random(seed)
    (root / "etc").mkdir(parents=True)
    (root / "home/user/ドキュメント").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)
    (root / "etc/fstab").write_bytes(b"UUID=1234 / ext4 defaults 0 1\n")
    (root / "etc/shadow").write_bytes(b"root:*:19000:0:99999:7:::\n")
    (root / "home/user/ドキュメント/報告書.txt").write_bytes("障害報告\n".encode())
    (root / "home/user/big.bin").write_bytes(rnd.randbytes(1_500_000))
    (root / "home/user/empty").write_bytes(b"")
    (root / "home/user/odd:name\\x").write_bytes(b"a name Windows refuses")
    with open(root / "var/log/sparse.img", "wb") as f:
        f.truncate(3 * 1024 * 1024)
        f.seek(2 * 1024 * 1024)
        f.write(b"the end of a sparse file")
    os.chmod(root / "etc/shadow", 0o640)
    os.chown(root / "home/user/big.bin", 1000, 1000)
    os.chown(root / "home/user", 1000, 1000)
    os.symlink("../../etc/fstab", root / "home/user/fstab-link")
    os.symlink("/etc/passwd", root / "home/user/absolute-link")
    os.symlink("../../../../../etc/shadow", root / "home/user/escaping-link")
    os.mkfifo(root / "var/log/fifo")
    for i in range(many):
        folder = root / "many" / f"d{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_bytes(rnd.randbytes(rnd.randrange(0, 3000)))
    os.utime(root / "etc/fstab", ns=(T_NEW, T_OLD))
    os.utime(root / "home/user/big.bin", ns=(T_OLD, T_NEW))


def make_ext4(raw: Path, size_mb: int, src: Path, kind: str = "ext4") -> None:
    with open(raw, "wb") as f:
        f.truncate(size_mb << 20)
    run(f"mkfs.{kind}", "-q", "-F", "-b", "4096", "-I", "256", "-d", src, raw)


def loop_mount_works(tmp: Path) -> bool:
    img, mnt = tmp / "probe-xfs.img", tmp / "probe-mnt"
    try:
        with open(img, "wb") as f:
            f.truncate(300 << 20)
        run("mkfs.xfs", "-q", img)
        mnt.mkdir(exist_ok=True)
        run("mount", "-o", "loop", img, mnt)
        run("umount", mnt)
        return True
    except (subprocess.CalledProcessError, OSError):
        return False
    finally:
        img.unlink(missing_ok=True)


def make_xfs(raw: Path, src: Path, mnt: Path, size_mb: int = 320) -> None:
    """XFS filled by the kernel (``cp -a`` keeps times, modes, owners and links)."""
    with open(raw, "wb") as f:
        f.truncate(size_mb << 20)
    run("mkfs.xfs", "-q", raw)
    mnt.mkdir(exist_ok=True)
    run("mount", "-o", "loop", raw, mnt)
    try:
        for child in src.iterdir():
            run("cp", "-a", child, mnt)
    finally:
        run("umount", mnt)


def to_vhdx(raw: Path, out: Path) -> Path:
    run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, out)
    return out


def lvm_layout(raw: Path, lvs: dict[str, int], vg: str = "vg0") -> dict[str, tuple[int, int]]:
    """An LVM2 physical volume over all of ``raw`` with linear logical volumes of the given
    sizes (MiB), made by lvm2 on a loop device; {lv: (byte offset in raw, size)} as lvm2 itself
    reports it (pe_start + first PE x extent size), the independent answer for the tests."""
    loop = run("losetup", "-f", "--show", raw).stdout.strip()
    dev = ["--devices", loop]
    try:
        run("pvcreate", "-q", *dev, "-ff", "-y", loop)
        run("vgcreate", "-q", *dev, vg, loop)
        for name, mb in lvs.items():
            run(
                "lvcreate",
                "-q",
                *dev,
                "--driverloaded",
                "n",
                "--activate",
                "n",
                "-Zn",
                "-L",
                f"{mb}M",
                "-n",
                name,
                vg,
            )
        pe_start = int(
            run(
                "pvs", *dev, "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", loop
            ).stdout.split()[0]
        )
        extent = int(
            run(
                "vgs",
                *dev,
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_extent_size",
                vg,
            ).stdout.split()[0]
        )
        rows = run("lvs", *dev, "--noheadings", "-o", "lv_name,seg_pe_ranges", vg).stdout
    finally:
        run("losetup", "-d", loop, check=False)
    out = {}
    for line in rows.splitlines():
        name, ranges = line.split()
        first = int(ranges.split(":")[1].split("-")[0])
        out[name] = (pe_start + first * extent, lvs[name] << 20)
    return out


def put(raw: Path, offset: int, image: Path) -> None:
    with open(raw, "r+b") as out, open(image, "rb") as src:
        out.seek(offset)
        shutil.copyfileobj(src, out, 1 << 20)


def debugfs_write(image: Path, folder: str, name: str, data: bytes) -> None:
    """A new file written into an unmounted ext image by debugfs (no journal involved)."""
    local = image.parent / "debugfs-new.bin"
    local.write_bytes(data)
    script = image.parent / "debugfs-write.cmd"
    script.write_text(f"cd {folder}\nwrite {local} {name}\n")
    run("debugfs", "-w", "-f", script, image)


def dirty_journal(before: Path, after: Path) -> int:
    """Write into ``before``'s journal, as one committed transaction, every block in which
    ``after`` differs from it (debugfs ``jo``/``jw``/``jc``): the kernel or e2fsck replaying it
    turns ``before`` into ``after``. Returns the number of blocks."""
    bs = 4096
    a, b = before.read_bytes(), after.read_bytes()
    blocks = [
        i for i in range(len(b) // bs) if a[i * bs : (i + 1) * bs] != b[i * bs : (i + 1) * bs]
    ]
    blob = before.parent / "journal-blob.bin"
    blob.write_bytes(b"".join(b[i * bs : (i + 1) * bs] for i in blocks))
    script = before.parent / "journal.cmd"
    script.write_text(f"jo\njw -b {','.join(map(str, blocks))} {blob}\njc\n")
    run("debugfs", "-w", "-f", script, before)
    return len(blocks)


def lvm_striped(
    pvs: list[Path], mb: int, chunk_kb: int = 64, vg: str = "vg1"
) -> list[tuple[Path, int]]:
    """A striped logical volume ``vg/striped`` over the physical volumes ``pvs`` (files, each
    on its own loop device); where each chunk of it lies, [(pv file, byte offset)] in order,
    computed from what lvm2 reports (pe_start, extent size, the PE ranges of each stripe)."""
    loops = [run("losetup", "-f", "--show", p).stdout.strip() for p in pvs]
    dev = [a for loop in loops for a in ("--devices", loop)]
    try:
        for loop in loops:
            run("pvcreate", "-q", *dev, "-ff", "-y", loop)
        run("vgcreate", "-q", *dev, vg, *loops)
        run(
            "lvcreate",
            "-q",
            *dev,
            "--driverloaded",
            "n",
            "--activate",
            "n",
            "-Zn",
            "-i",
            str(len(pvs)),
            "-I",
            f"{chunk_kb}k",
            "-L",
            f"{mb}M",
            "-n",
            "striped",
            vg,
        )
        report = run(
            "pvs",
            *dev,
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pv_name,pe_start",
            *loops,
        ).stdout
        pe_start = {line.split()[0]: int(line.split()[1]) for line in report.splitlines()}
        extent = int(
            run(
                "vgs",
                *dev,
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_extent_size",
                vg,
            ).stdout.split()[0]
        )
        ranges = run("lvs", *dev, "--noheadings", "-o", "seg_pe_ranges", f"{vg}/striped").stdout
    finally:
        for loop in loops:
            run("losetup", "-d", loop, check=False)
    starts = []
    for item in ranges.split():
        name, pes = item.rsplit(":", 1)
        starts.append((pvs[loops.index(name)], pe_start[name] + int(pes.split("-")[0]) * extent))
    chunk = chunk_kb * 1024
    out = []
    for i in range((mb << 20) // chunk):
        row, col = divmod(i, len(pvs))
        pv, base = starts[col]
        out.append((pv, base + row * chunk))
    return out
