"""`preserve` against `cp` and `cp` + `sha256sum`, in one run. Prints figures; asserts nothing.

    python3 bench/bench_preserve.py [--workdir DIR] [--gib 2] [--rounds 3] [--cold] [--hash blake3]

Builds a VM-like folder of ~2 GiB in several files (one large disk, a differencing disk, smaller
files), then times, alternating the order each round:
  cp -r SRC DEST                      (copy only; coreutils uses copy_file_range)
  cp -r SRC DEST; sync                (the same, on disk: preserve fsyncs every copy)
  sha256sum SRC/*  after that cp      (what people do to prove the copy)
  hvrescue preserve SRC DEST          (copy + SHA-256 + manifest + case record, one pass; with
                                      --hash, the further digests in the same pass)
With --cold the page cache is dropped before every command (needs root); otherwise every run
reads from a warm cache, which favours the peers' second read. Peak memory is from
/usr/bin/time when present.
"""

from __future__ import annotations

import argparse
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


def run(cmd: list[str], cold: bool) -> tuple[float, int | None]:
    if cold:
        drop_caches()
    timer = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else []
    t = time.perf_counter()
    proc = subprocess.run(timer + cmd, capture_output=True, text=True, env=ENV)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr[-500:]}")
    peak = None
    if timer:
        last = proc.stderr.strip().splitlines()[-1]
        peak = int(last) if last.isdigit() else None
    return dt, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--hash", default=None, help="further digests for preserve, e.g. blake3")
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
    times: dict[str, list[float]] = {"cp": [], "cp+sync": [], "sha256sum": [], "preserve": []}
    peaks: dict[str, int] = {}
    for rnd in range(args.rounds):
        order = ["cp", "preserve"] if rnd % 2 == 0 else ["preserve", "cp"]
        for name in order:
            dest = work / f"dest-{name}"
            shutil.rmtree(dest, ignore_errors=True)
            if name == "cp":
                dt, peak = run(["cp", "-r", str(src), str(dest)], args.cold)
                times["cp"].append(dt)
                t = time.perf_counter()
                os.sync()  # what preserve's per-file fsync costs cp
                times["cp+sync"].append(dt + time.perf_counter() - t)
                dt2, peak2 = run(["sha256sum", *files], args.cold)
                times["sha256sum"].append(dt2)
                peaks["sha256sum"] = max(peaks.get("sha256sum", 0), peak2 or 0)
            else:
                cmd = [*hv, "preserve", str(src), str(dest), "--allow-same-storage", "--json"]
                cmd += ["--hash", args.hash] if args.hash else []
                dt, peak = run(cmd, args.cold)
                times["preserve"].append(dt)
            peaks[name] = max(peaks.get(name, 0), peak or 0)
            shutil.rmtree(dest, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    both = med["cp"] + med["sha256sum"]
    rate = total / MiB
    print(f"  {'cp -r':<34} {med['cp']:7.2f} s {rate / med['cp']:7.0f} MiB/s  {peaks['cp']} KiB")
    print(f"  {'cp -r; sync':<34} {med['cp+sync']:7.2f} s {rate / med['cp+sync']:7.0f} MiB/s")
    print(f"  {'sha256sum':<34} {med['sha256sum']:7.2f} s")
    print(f"  {'cp -r + sha256sum':<34} {both:7.2f} s {rate / both:7.0f} MiB/s")
    print(
        f"  {'hvrescue preserve':<34} {med['preserve']:7.2f} s "
        f"{rate / med['preserve']:7.0f} MiB/s  {peaks['preserve']} KiB"
    )
    print(
        f"  preserve / (cp + sha256sum) = {med['preserve'] / both:.2f}   "
        f"preserve / cp = {med['preserve'] / med['cp']:.2f}   "
        f"preserve / (cp; sync) = {med['preserve'] / med['cp+sync']:.2f}   "
        f"(rounds: {args.rounds}, medians)"
    )
    mins = {k: min(v) for k, v in times.items()}
    print(
        f"  min: preserve {mins['preserve']:.2f} s, cp; sync {mins['cp+sync']:.2f} s, "
        f"preserve / (cp; sync) = {mins['preserve'] / mins['cp+sync']:.2f}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("  all runs:", {k: [round(x, 2) for x in v] for k, v in times.items()})
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
