"""Read, hash and check speed, side by side with peers in one run. Prints figures; asserts
nothing (speed is measured here, never in tests).

    python3 bench/bench_read.py [--workdir DIR] [--data-gib 1] [--rounds 3]

1. A 4 GiB-virtual dynamic VHDX with ~1 GiB of data (32 MiB blocks):
   `cat` of the file, libvhdi-python reading the virtual disk in 4 MiB chunks, hvrescue reading
   it in 4 MiB chunks; hvrescue `hash` (SHA-256, BLAKE3, both in one pass) vs hashlib's SHA-256
   and the blake3 package over the same bytes in memory, order alternated over --rounds.
2. `check` of a 64 TiB-virtual sparse VHDX with 32 MiB blocks, beside `qemu-img check`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvrescue.io.digest import new as new_hash
from hvrescue.vdisk.check import check_file
from hvrescue.vdisk.digest import disk_digests
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
    ap.add_argument("--rounds", type=int, default=3)
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

    def plain(algorithm: str) -> None:
        h = new_hash(algorithm)
        for piece in content:
            h.update(piece)

    def ours(algorithms: tuple[str, ...]) -> None:
        with Disk.open(str(path)) as d:
            disk_digests(d, algorithms)

    # Alternate the order each round; min and median of each (the machine is shared).
    cases = {
        "hashlib.sha256, same bytes in memory": lambda: plain("sha256"),
        "hvrescue hash --hash sha256": lambda: ours(("sha256",)),
        "blake3 package, same bytes in memory": lambda: plain("blake3"),
        "hvrescue hash --hash blake3": lambda: ours(("blake3",)),
        "hvrescue hash --hash sha256,blake3": lambda: ours(("sha256", "blake3")),
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else list(reversed(names)):
            t = time.perf_counter()
            cases[name]()
            runs[name].append(time.perf_counter() - t)
    content.clear()
    for name, got in runs.items():
        print(
            f"  {name:<48} min {min(got):6.3f} s  median {statistics.median(got):6.3f} s"
            f"  {size / min(got) / MiB:6.0f} MiB/s"
        )
    sha_in_memory = statistics.median(runs["hashlib.sha256, same bytes in memory"])
    b3_in_memory = statistics.median(runs["blake3 package, same bytes in memory"])
    t_hash = statistics.median(runs["hvrescue hash --hash sha256"])
    t_b3 = statistics.median(runs["hvrescue hash --hash blake3"])
    print(
        f"  ratios (medians): read/cat {t_ours / t_cat:.2f}x"
        + (f", read/libvhdi {t_ours / t_vhdi:.2f}x" if t_vhdi else "")
        + f", sha256/hashlib {t_hash / sha_in_memory:.2f}x"
        + f", blake3/package {t_b3 / b3_in_memory:.2f}x"
        + f"; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        " (includes the in-memory copy the peers hash)"
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
