"""`merge` beside its peers, in one run. Prints figures; asserts nothing.

    python3 bench/bench_merge.py [--workdir DIR] [--data-gib 1]

1. A 4 GiB-virtual dynamic VHDX holding ~1 GiB (32 MiB blocks): `hvrescue merge` (which also
   verifies its output) against `qemu-img convert -O vhdx` of the same file.
2. A two-level chain of the same size (base + child each holding ~half): `hvrescue merge`
   against libvhdi-python reading the chain and writing a sparse raw file.
3. Cost follows the data: the same 1 GiB in a 64 TiB-virtual disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from hvrescue.recover.merge import merge
from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

MiB = 1 << 20
GiB = 1 << 30


def timed(label: str, fn) -> float:
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    print(f"  {label:<58} {dt:7.2f} s")
    return dt


def data(gib: float, every: int, seed: int) -> dict[int, bytes]:
    blob = os.urandom(32 * MiB)
    count = int(gib * GiB // (32 * MiB))
    return {
        (i * every + seed) * 32 * MiB: seed.to_bytes(4, "little") + blob[4:] for i in range(count)
    }


def libvhdi_to_raw(leaf: Path, base: Path, out: Path) -> None:
    import pyvhdi

    p = pyvhdi.file()
    p.open(str(base))
    c = pyvhdi.file()
    c.open(str(leaf))
    c.set_parent(p)
    size = c.get_media_size()
    with open(out, "wb") as f:
        f.truncate(size)
        pos = 0
        zero = bytes(4 * MiB)
        while pos < size:
            chunk = c.read_buffer_at_offset(min(4 * MiB, size - pos), pos)
            if chunk != zero[: len(chunk)]:
                os.pwrite(f.fileno(), chunk, pos)
            pos += len(chunk)
    c.close()
    p.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--data-gib", type=float, default=1.0)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-merge-"))
    work.mkdir(parents=True, exist_ok=True)
    qemu = shutil.which("qemu-img")

    print(f"1. 4 GiB-virtual VHDX, {args.data_gib} GiB of data, 32 MiB blocks")
    single = work / "single.vhdx"
    if not single.exists():
        write_vhdx(
            str(single),
            VhdxSpec(virtual_size=4 * GiB, block_size=32 * MiB),
            data(args.data_gib, 4, 0),
        )
    for p in (work / "m1.vhdx", work / "q1.vhdx"):
        p.unlink(missing_ok=True)
    ours = timed(
        "hvrescue merge (with verification)", lambda: merge(str(single), str(work / "m1.vhdx"))
    )
    if qemu:
        theirs = timed(
            "qemu-img convert -O vhdx",
            lambda: subprocess.run(
                [qemu, "convert", "-f", "vhdx", "-O", "vhdx", str(single), str(work / "q1.vhdx")],
                check=True,
            ),
        )
        print(f"  ratio hvrescue / qemu-img = {ours / theirs:.2f}")

    print("2. two-level chain, 4 GiB virtual, ~1 GiB of data in all")
    base, child = work / "base.vhdx", work / "child.avhdx"
    if not child.exists():
        base_id = uuid.uuid4()
        write_vhdx(
            str(base),
            VhdxSpec(virtual_size=4 * GiB, block_size=32 * MiB, data_write_guid=base_id),
            data(args.data_gib / 2, 4, 0),
        )
        write_vhdx(
            str(child),
            VhdxSpec(
                virtual_size=4 * GiB,
                block_size=32 * MiB,
                parent=ParentSpec(base_id, relative_path=".\\base.vhdx"),
            ),
            data(args.data_gib / 2, 4, 1),
        )
    for p in (work / "m2.vhdx", work / "l2.raw"):
        p.unlink(missing_ok=True)
    ours = timed("hvrescue merge of the chain", lambda: merge(str(child), str(work / "m2.vhdx")))
    try:
        theirs = timed(
            "libvhdi-python reading the chain + writing sparse raw",
            lambda: libvhdi_to_raw(child, base, work / "l2.raw"),
        )
        print(f"  ratio hvrescue / libvhdi = {ours / theirs:.2f}")
    except ImportError:
        print("  libvhdi-python not installed")

    print(f"3. the same {args.data_gib} GiB in a 64 TiB-virtual VHDX")
    huge = work / "huge.vhdx"
    if not huge.exists():
        spread = {off * 4096: v for off, v in data(args.data_gib, 4, 0).items()}
        write_vhdx(str(huge), VhdxSpec(virtual_size=64 * 2**40, block_size=32 * MiB), spread)
    (work / "m3.vhdx").unlink(missing_ok=True)
    timed("hvrescue merge, 64 TiB virtual", lambda: merge(str(huge), str(work / "m3.vhdx")))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
