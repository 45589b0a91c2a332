"""Read, hash and check speed, side by side with peers in one run. Prints figures; asserts
nothing (speed is measured here, never in tests).

    python3 bench/bench_read.py [--workdir DIR] [--data-gib 1]

1. A 4 GiB-virtual dynamic VHDX with ~1 GiB of data (32 MiB blocks):
   `cat` of the file, libvhdi-python reading the virtual disk in 4 MiB chunks, hvrescue reading
   it in 4 MiB chunks, hvrescue `hash` vs hashlib SHA-256 over the same bytes in memory.
2. `check` of a 64 TiB-virtual sparse VHDX with 32 MiB blocks, beside `qemu-img check`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvrescue.vdisk.check import check_file
from hvrescue.vdisk.disk import Disk
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 4 * MiB


def timed(label: str, fn, nbytes: int | None = None) -> float:
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    rate = f"  {nbytes / dt / MiB:8.0f} MiB/s" if nbytes else ""
    print(f"  {label:<48} {dt:8.3f} s{rate}")
    return dt


def build(workdir: Path, data_gib: int) -> Path:
    path = workdir / "bench-4g.vhdx"
    if path.exists():
        return path
    rnd = os.urandom
    blocks = data_gib * GiB // (32 * MiB)
    # Spread the data over the disk: every fourth 32 MiB block.
    data = {i * 4 * 32 * MiB: rnd(32 * MiB) for i in range(blocks)}
    write_vhdx(str(path), VhdxSpec(virtual_size=4 * GiB, block_size=32 * MiB), data)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--data-gib", type=int, default=1)
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hvrescue-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}")
    path = build(workdir, args.data_gib)
    size = 4 * GiB
    print(f"\n1. 4 GiB virtual, {args.data_gib} GiB data, file {path.stat().st_size / MiB:.0f} MiB")
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    t_cat = timed(
        "cat FILE > /dev/null",
        lambda: subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True),
        path.stat().st_size,
    )

    t_vhdi = None
    try:
        import pyvhdi

        def vhdi() -> None:
            f = pyvhdi.file()
            f.open(str(path))
            for pos in range(0, size, CHUNK):
                f.read_buffer_at_offset(CHUNK, pos)
            f.close()

        t_vhdi = timed("libvhdi-python, 4 MiB chunks (virtual)", vhdi, size)
    except ImportError:
        print("  libvhdi-python not installed: peer skipped")

    def ours() -> None:
        with Disk.open(str(path)) as d:
            for pos in range(0, size, CHUNK):
                d.read(pos, CHUNK)

    t_ours = timed("hvrescue Disk.read, 4 MiB chunks (virtual)", ours, size)

    with Disk.open(str(path)) as d:
        content = [bytes(p) for p in d.iter_content()]

    def plain_sha() -> None:
        h = hashlib.sha256()
        for piece in content:
            h.update(piece)

    t_sha = timed("hashlib.sha256 over the same bytes in memory", plain_sha, size)
    content.clear()

    def our_hash() -> None:
        with Disk.open(str(path)) as d:
            d.sha256()

    t_hash = timed("hvrescue hash (Disk.sha256)", our_hash, size)
    print(
        f"  ratios: read/cat {t_ours / t_cat:.2f}x"
        + (f", read/libvhdi {t_ours / t_vhdi:.2f}x" if t_vhdi else "")
        + f", hash/hashlib {t_hash / t_sha:.2f}x"
    )

    print("\n2. 64 TiB virtual sparse VHDX, 32 MiB blocks")
    big = workdir / "bench-64t.vhdx"
    if not big.exists():
        write_vhdx(
            str(big),
            VhdxSpec(virtual_size=64 << 40, block_size=32 * MiB),
            {0: os.urandom(MiB), (64 << 40) - MiB: os.urandom(MiB)},
        )
    print(f"  file {big.stat().st_size / MiB:.0f} MiB")
    result = None

    def check() -> None:
        nonlocal result
        result = check_file(str(big))

    timed("hvrescue check", check)
    assert result is not None
    print(f"  status {result.status}, findings {len(result.findings)}")
    qemu = shutil.which("qemu-img")
    if qemu:
        timed(
            "qemu-img check",
            lambda: subprocess.run([qemu, "check", "-f", "vhdx", str(big)], capture_output=True),
        )
    else:
        print("  qemu-img not installed: peer skipped")
    if not args.workdir:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())
