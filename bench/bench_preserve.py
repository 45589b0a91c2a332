"""`preserve` against `cp` and `cp` + `sha256sum`, in one run. Prints figures; asserts nothing.

    python3 bench/bench_preserve.py [--workdir DIR] [--gib 2] [--rounds 3] [--cold] [--hash blake3]
                                    [--baseline-src OLD/src]

Builds a VM-like folder of ~2 GiB in several files (one large disk, a differencing disk, smaller
files), then times, alternating the order each round:
  cp -r SRC DEST                      (copy only; coreutils uses copy_file_range)
  cp -r SRC DEST; sync                (the same, on disk: preserve fsyncs every copy)
  sha256sum SRC/*  after that cp      (what people do to prove the copy)
  hvrescue preserve SRC DEST          (copy + SHA-256 + manifest + case record, one pass; with
                                      --hash, the further digests in the same pass)
With --cold the page cache is dropped before every command (needs root); otherwise every run
reads from a warm cache, which favours the peers' second read. Peak memory and CPU time (user +
system) are from GNU time when present; the 1-minute load average is printed before and after
each command (other jobs on the machine move every figure). SHA-256 of the same bytes in memory
(hashlib, one core) is printed as the floor no hashing copy can beat on one core.
``--baseline-src DIR`` also times hvrescue imported from another source tree (the previous
version) in the same rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
# As an installed package runs: with PYTHONDONTWRITEBYTECODE=1 (the development shell) every
# start of hvrescue would compile its modules again, a cost no installed copy pays.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def build(src: Path, gib: float) -> int:
    total = int(gib * 1024 * MiB)
    sizes = {
        "Virtual Hard Disks/web01.vhdx": total // 2,
        "Virtual Hard Disks/web01_A1B2.avhdx": total // 4,
        "Virtual Hard Disks/data.vhdx": total // 8,
        "Virtual Machines/A1B2.vmrs": total // 16,
        "Virtual Machines/A1B2.vmgs": total // 16 - 2 * MiB,
        "Virtual Machines/A1B2.vmcx": 2 * MiB,
    }
    block = os.urandom(8 * MiB)
    for rel, size in sizes.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size == size:
            continue
        with open(path, "wb") as f:
            left = size
            i = 0
            while left > 0:
                n = min(len(block), left)
                # Vary each chunk so no layer can deduplicate it.
                f.write(i.to_bytes(8, "little") + block[8:n])
                left -= n
                i += 1
    return sum(sizes.values())


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Run:
    def __init__(self, wall: float, peak: int | None, cpu: float | None, load: tuple[float, float]):
        self.wall, self.peak, self.cpu, self.load = wall, peak, cpu, load


def run(cmd: list[str], cold: bool, env: dict[str, str] | None = None) -> Run:
    if cold:
        drop_caches()
    timer = ["/usr/bin/time", "-f", "@@ %M %U %S"] if os.path.exists("/usr/bin/time") else []
    before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(timer + cmd, capture_output=True, text=True, env=env or ENV)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr[-500:]}")
    peak = cpu = None
    for line in proc.stderr.splitlines():
        if line.startswith("@@ "):
            kib, user, system = line.split()[1:4]
            peak, cpu = int(kib), float(user) + float(system)
    return Run(dt, peak, cpu, (before, os.getloadavg()[0]))


def sha256_floor(files: list[str]) -> float:
    """Seconds hashlib's SHA-256 takes over the files' bytes already in memory (one core)."""
    h = hashlib.sha256()
    took = 0.0
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(64 * MiB):
                t = time.perf_counter()
                h.update(chunk)
                took += time.perf_counter() - t
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--hash", default=None, help="further digests for preserve, e.g. blake3")
    ap.add_argument("--baseline-src", default=None, help="also time hvrescue from this src")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-bench-"))
    ENV.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))  # no bytecode in the tree
    src = work / "src"
    total = build(src, args.gib)
    files = sorted(str(p) for p in src.rglob("*") if p.is_file())
    if args.cold and not drop_caches():
        print("cannot drop caches (not root): running warm")
        args.cold = False
    print(f"{len(files)} files, {total / MiB:.0f} MiB, {'cold' if args.cold else 'warm'} cache")
    hv = [sys.executable, "-m", "hvrescue"]
    base_env = dict(ENV, PYTHONPATH=args.baseline_src or "")
    names = ["cp", "cp+sync", "sha256sum", "preserve"] + (["baseline"] if args.baseline_src else [])
    runs: dict[str, list[Run]] = {k: [] for k in names}
    for rnd in range(args.rounds):
        order = ["cp", "preserve"] + (["baseline"] if args.baseline_src else [])
        order = order if rnd % 2 == 0 else order[::-1]
        for name in order:
            dest = work / f"dest-{name}"
            shutil.rmtree(dest, ignore_errors=True)
            os.sync()  # the removal's writes are not charged to the next command
            if name == "cp":
                r = run(["cp", "-r", str(src), str(dest)], args.cold)
                runs["cp"].append(r)
                t = time.perf_counter()
                os.sync()  # what preserve's per-file fsync costs cp
                synced = time.perf_counter() - t
                runs["cp+sync"].append(Run(r.wall + synced, r.peak, r.cpu, r.load))
                runs["sha256sum"].append(run(["sha256sum", *files], args.cold))
            else:
                cmd = [*hv, "preserve", str(src), str(dest), "--allow-same-storage", "--json"]
                cmd += ["--hash", args.hash] if args.hash else []
                runs[name].append(run(cmd, args.cold, base_env if name == "baseline" else None))
            shutil.rmtree(dest, ignore_errors=True)
    floor = sha256_floor(files)
    med = {k: statistics.median(r.wall for r in v) for k, v in runs.items()}
    low = {k: min(r.wall for r in v) for k, v in runs.items()}
    rate = total / MiB
    for name in names:
        cpus = [r.cpu for r in runs[name] if r.cpu is not None]
        cpu = f"cpu {statistics.median(cpus):6.2f} s" if cpus else ""
        peak = max((r.peak or 0) for r in runs[name])
        label = {"cp": "cp -r", "cp+sync": "cp -r; sync", "preserve": "hvrescue preserve"}
        print(
            f"  {label.get(name, name):<20} min {low[name]:6.2f} med {med[name]:6.2f} s"
            f" {rate / med[name]:6.0f} MiB/s  {cpu}  {peak} KiB"
        )
    print(f"  {'SHA-256 in memory':<20} {floor:6.2f} s (hashlib, one core: the floor)")
    both = med["cp"] + med["sha256sum"]
    print(
        f"  preserve / (cp; sync) = {med['preserve'] / med['cp+sync']:.2f} median, "
        f"{low['preserve'] / low['cp+sync']:.2f} min   "
        f"preserve / (cp + sha256sum) = {med['preserve'] / both:.2f}   (rounds: {args.rounds})"
    )
    if args.baseline_src:
        print(
            f"  baseline / (cp; sync) = {med['baseline'] / med['cp+sync']:.2f} median, "
            f"{low['baseline'] / low['cp+sync']:.2f} min"
        )
    print("  all runs (wall s, cpu s, load before-after):")
    for name in names:
        shown = [
            f"{r.wall:.2f}/{r.cpu if r.cpu is not None else '-'}/{r.load[0]:.1f}-{r.load[1]:.1f}"
            for r in runs[name]
        ]
        print(f"    {name:<10} {'  '.join(shown)}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
