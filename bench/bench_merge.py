"""`merge` beside its peer, in one run, on inputs the project did not build. Prints figures;
asserts nothing. Linux (peak memory from GNU time).

    python3 bench/bench_merge.py [--workdir DIR] [--rounds 3] [--data-gib 1] [--cases ...]
                                 [--modes verified no-verify] [--baseline-src OLD/src]

Inputs: a sparse raw image of 4 GiB holding 1 GiB of random (incompressible) data in 1 MiB
extents, one every 4 MiB, converted by `qemu-img convert -O vhdx` at 1, 32 and 256 MiB
blocks (so at 32 and 256 MiB every block is a quarter full, the case that used to cost the
block size); and a 3-deep chain (base + two differencing children, each holding a third of the
extents and rewriting some of its parent's), written by hvrescue's test writer because qemu
writes no differencing VHDX.

Each case is timed as whole processes, `--rounds` times, the order alternated with the peer:

- verified: `hvrescue merge` (reads the chain, writes, fsyncs, reads back and proves equality)
  against `qemu-img convert -O vhdx` + `sync OUT` + `qemu-img compare` (the peer's way to the
  same guarantee). qemu cannot read a VHDX chain, so for the chain the peer converts the
  base-sized single disk holding the same 1 GiB (its time is the reference).
- `--no-verify`: `merge(..., verify=False)` against plain `qemu-img convert -O vhdx`.

Prints min and median of each, the ratio of the medians, the median CPU time (user + system,
from GNU time) and the peak resident memory, with the load average before and after each case:
on a shared machine the wall-clock ratio is noisy and the CPU time tells what the process
itself cost. ``--baseline-src DIR`` also times hvrescue imported from another source tree
(e.g. an earlier version of ``src``) in the same rounds, to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

MiB = 1 << 20
GiB = 1 << 30
VIRTUAL = 4 * GiB


def extents(data_gib: float) -> list[int]:
    """Offsets of the 1 MiB data extents: one every 4 MiB, as many as ``data_gib`` holds."""
    count = int(data_gib * GiB // MiB)
    step = max(MiB, VIRTUAL // count // MiB * MiB)
    return [i * step for i in range(count) if i * step + MiB <= VIRTUAL]


def write_raw(path: Path, offsets: list[int], seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(VIRTUAL)
        for off in offsets:
            f.seek(off)
            f.write(rnd.randbytes(MiB))


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall time, peak RSS (bytes) and CPU time (user + system, s) of one process. The peak
    and CPU come from GNU time where it is installed: a child forked from this (large) process
    would report this one's peak as its own (Linux keeps the high-water mark across exec)."""
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    wrapped = ["/usr/bin/time", "-f", "@@ %M %U %S", *cmd] if gnu_time else cmd
    t = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _out, err = proc.communicate()
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}: {err.decode(errors='replace')}")
    peak, cpu = 0, 0.0
    for line in err.decode(errors="replace").splitlines():
        fields = line.split()
        if gnu_time and len(fields) == 4 and fields[0] == "@@":
            peak = int(fields[1]) * 1024
            cpu = float(fields[2]) + float(fields[3])
    return dt, peak, cpu


def run_all(cmds: list[list[str]], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    total, peak, cpu = 0.0, 0, 0.0
    for cmd in cmds:
        dt, rss, used = run(cmd, env)
        total += dt
        peak = max(peak, rss)
        cpu += used
    return total, peak, cpu


def load() -> str:
    """The 1-minute load average (the machine is shared: say how busy it was)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def ours(leaf: Path, out: Path, verify: bool) -> list[str]:
    code = (
        "import sys; from hvrescue.recover.merge import merge; "
        f"r = merge({str(leaf)!r}, {str(out)!r}, verify={verify}); "
        "sys.exit(0 if r.status == ('verified' if r.output_digest else 'unverified') else 1)"
    )
    return [sys.executable, "-c", code]


def peer(qemu: str, src: Path, out: Path, verify: bool) -> list[list[str]]:
    convert = [qemu, "convert", "-f", "vhdx", "-O", "vhdx", str(src), str(out)]
    if not verify:
        return [convert]
    return [
        convert,
        ["sync", str(out)],
        [qemu, "compare", "-f", "vhdx", "-F", "vhdx", str(src), str(out)],
    ]


def build(work: Path, qemu: str, data_gib: float) -> dict[str, tuple[Path, Path]]:
    """case -> (leaf for hvrescue, single disk for the peer)."""
    offsets = extents(data_gib)
    raw = work / "src.raw"
    if not raw.exists():
        write_raw(raw, offsets, 1)
    cases: dict[str, tuple[Path, Path]] = {}
    for mib in (1, 32, 256):
        disk = work / f"q{mib}.vhdx"
        if not disk.exists():
            subprocess.run(
                [
                    qemu,
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vhdx",
                    "-o",
                    f"block_size={mib}M,subformat=dynamic",
                    str(raw),
                    str(disk),
                ],
                check=True,
            )
        cases[f"{mib} MiB blocks (qemu-made)"] = (disk, disk)
    leaf = work / "c2.avhdx"
    if not leaf.exists():
        rnd = random.Random(2)
        ids = [uuid.uuid4() for _ in range(3)]
        names = ["c0.vhdx", "c1.avhdx", "c2.avhdx"]
        for level in range(3):
            own = offsets[level::3]
            if level:  # rewrite a sixth of the parent's extents too
                own = sorted(own + offsets[level - 1 :: 18])
            parent = (
                ParentSpec(ids[level - 1], relative_path=".\\" + names[level - 1])
                if level
                else None
            )
            spec = VhdxSpec(
                virtual_size=VIRTUAL, block_size=32 * MiB, data_write_guid=ids[level], parent=parent
            )
            write_vhdx(str(work / names[level]), spec, {o: rnd.randbytes(MiB) for o in own})
    cases["3-deep chain, 32 MiB blocks"] = (leaf, work / "q32.vhdx")
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--data-gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", nargs="*", default=None, help="substrings of case names")
    ap.add_argument("--baseline-src", default=None, help="also time hvrescue from this src")
    ap.add_argument(
        "--modes",
        nargs="*",
        choices=("verified", "no-verify"),
        default=["verified", "no-verify"],
        help="which of the two comparisons to run",
    )
    args = ap.parse_args()
    qemu = shutil.which("qemu-img")
    if not qemu:
        raise SystemExit("qemu-img is needed (Debian: qemu-utils)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-merge-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = build(work, qemu, args.data_gib)
    print(
        f"4 GiB virtual, {args.data_gib} GiB of random data; {args.rounds} rounds, order alternated"
    )
    for name, (leaf, single) in cases.items():
        if args.cases and not any(c in name for c in args.cases):
            continue
        print(name)
        who_all = ["hvrescue", "peer"] + (["baseline"] if args.baseline_src else [])
        base_env = dict(os.environ, PYTHONPATH=args.baseline_src or "")
        for verify in [m == "verified" for m in args.modes]:
            times: dict[str, list[float]] = {k: [] for k in who_all}
            cpus: dict[str, list[float]] = {k: [] for k in who_all}
            peaks: dict[str, int] = dict.fromkeys(who_all, 0)
            loads = [load()]
            for r in range(args.rounds):
                order = who_all if r % 2 == 0 else who_all[::-1]
                for who in order:
                    out = work / f"out-{who}.vhdx"
                    out.unlink(missing_ok=True)
                    cmds = (
                        peer(qemu, single, out, verify)
                        if who == "peer"
                        else [ours(leaf, out, verify)]
                    )
                    dt, rss, cpu = run_all(cmds, base_env if who == "baseline" else None)
                    times[who].append(dt)
                    cpus[who].append(cpu)
                    peaks[who] = max(peaks[who], rss)
                    out.unlink(missing_ok=True)
            loads.append(load())
            label = "verified" if verify else "no verify"
            peer_label = "convert+sync+compare" if verify else "convert"
            med = {k: statistics.median(v) for k, v in times.items()}
            cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
            ours_t, peer_t = times["hvrescue"], times["peer"]
            print(
                f"  {label:<9} hvrescue min {min(ours_t):5.2f} med {med['hvrescue']:5.2f} s"
                f" cpu {cpu_med['hvrescue']:5.2f} s ({peaks['hvrescue'] / MiB:4.0f} MiB)"
                f" | qemu {peer_label} min {min(peer_t):5.2f} med {med['peer']:5.2f} s"
                f" cpu {cpu_med['peer']:5.2f} s ({peaks['peer'] / MiB:3.0f} MiB)"
                f" | ratio {med['hvrescue'] / med['peer']:.2f}"
                f" (cpu {cpu_med['hvrescue'] / max(cpu_med['peer'], 1e-9):.2f})"
                f" | load {loads[0]}..{loads[1]}"
                f"  [all: {' '.join(f'{t:.2f}' for t in ours_t)} /"
                f" {' '.join(f'{t:.2f}' for t in peer_t)}]"
            )
            if args.baseline_src:
                base_t = times["baseline"]
                print(
                    f"  {'':<9} baseline min {min(base_t):5.2f} med {med['baseline']:5.2f} s"
                    f" cpu {cpu_med['baseline']:5.2f} s ({peaks['baseline'] / MiB:4.0f} MiB)"
                    f" | ratio to peer {med['baseline'] / med['peer']:.2f}"
                    f"  [all: {' '.join(f'{t:.2f}' for t in base_t)}]"
                )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
