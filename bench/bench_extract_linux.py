"""`extract` of 10,000 files from ext4 and from XFS against the Linux kernel's own reading of
the same filesystem (a read-only loop mount and `cp -a`), in the same run, the order alternated
round by round; prints min and median seconds per reader. Asserts nothing. Needs root (loop
mounts), Debian's e2fsprogs, xfsprogs and qemu-utils.

    python3 bench/bench_extract_linux.py [--workdir DIR] [--files 10000] [--rounds 5]

hvrescue reads the partitionless VHDX (as WSL's ext4.vhdx) through its own disk engine; the
kernel reads the raw image the VHDX was made from (it cannot read VHDX). Both read from the page
cache after the first round: this compares the file-system readers, not the disks.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fs_linux_builders import make_ext4, make_xfs, run, to_vhdx  # noqa: E402

from hvrescue.fs.listing import extract_files  # noqa: E402


def tree(root: Path, files: int) -> None:
    rnd = random.Random(1)
    for i in range(files):
        folder = root / f"d{i % 100:03d}" / f"s{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rnd.choice((0, 100, 2000, 9000, 70000))
        (folder / f"file{i:05d}.dat").write_bytes(rnd.randbytes(size))


def build(work: Path, files: int) -> dict[str, tuple[Path, Path]]:
    src = work / "src"
    if not src.exists():
        tree(src, files)
    out = {}
    for fs in ("ext4", "xfs"):
        raw, vhdx = work / f"{fs}.raw", work / f"{fs}.vhdx"
        if not vhdx.exists():
            if fs == "ext4":
                make_ext4(raw, 1024, src)
            else:
                make_xfs(raw, src, work / "mnt", size_mb=1024)
            to_vhdx(raw, vhdx)
        out[fs] = (raw, vhdx)
    return out


def ours(vhdx: Path, dest: Path) -> float:
    start = time.perf_counter()
    result = extract_files(str(vhdx), ["1:/"], str(dest))
    took = time.perf_counter() - start
    assert not result.skipped and not result.incomplete, "extract must copy every file"
    return took


def kernel(raw: Path, dest: Path, mnt: Path) -> float:
    mnt.mkdir(exist_ok=True)
    dest.mkdir()
    start = time.perf_counter()
    subprocess.run(["mount", "-o", "ro,loop", str(raw), str(mnt)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{mnt}/.", str(dest)], check=True)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-extract-linux-"))
    work.mkdir(parents=True, exist_ok=True)
    images = build(work, args.files)
    for fs, (raw, vhdx) in images.items():
        times: dict[str, list[float]] = {"hvrescue extract": [], "kernel mount + cp -a": []}
        for r in range(args.rounds):
            order = ["ours", "kernel"] if r % 2 == 0 else ["kernel", "ours"]
            for who in order:
                dest = work / f"out-{fs}-{who}"
                shutil.rmtree(dest, ignore_errors=True)
                if who == "ours":
                    times["hvrescue extract"].append(ours(vhdx, dest))
                else:
                    times["kernel mount + cp -a"].append(kernel(raw, dest, work / "mnt"))
                shutil.rmtree(dest, ignore_errors=True)
        for name, values in times.items():
            print(
                f"{fs:5} {name:22} {args.files} files: min {min(values):.2f} s, "
                f"median {statistics.median(values):.2f} s ({len(values)} rounds)"
            )
    if args.workdir is None:
        run("rm", "-rf", work)


if __name__ == "__main__":
    main()
