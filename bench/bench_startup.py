"""Start-up and small commands, side by side with the interpreter and qemu-img. Prints figures;
asserts nothing.

    python3 bench/bench_startup.py [--rounds 15] [--workdir DIR]

Times, alternating the order each round, as whole processes (what a user waits for):
  python3 -c pass                     (the floor: the interpreter and site)
  hvrescue --help, explain 0x80070005, info DISK, check DISK
  hvrescue check of a 64 TiB-virtual sparse VHDX made by qemu-img (empty blocks marked ZERO)
  qemu-img info / check of the same disks (the peer)
and the import time `python3 -X importtime` reports for the CLI's module tree. Wall time is
noisy on a shared machine, so user+system CPU time (from wait4) is printed beside it; peak
memory is the child's maximum resident set.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20


# As an installed package runs: pip compiles the bytecode at install. A checkout run with
# PYTHONDONTWRITEBYTECODE=1 compiles every module on every start (~0.1 s more here), so the
# children may write bytecode, kept out of the tree (PYTHONPYCACHEPREFIX, set in main).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, user+system CPU s, peak RSS KiB) of one process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def import_ms(python: str) -> float:
    """Cumulative import time of hvrescue.cli.main (-X importtime), in ms."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", "import hvrescue.cli.main"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| hvrescue\.cli\.main$", line)
        if m:
            return int(m.group(1)) / 1000
    return float("nan")


def build(work: Path) -> tuple[Path, Path]:
    """A small dynamic VHDX with data, and a 64 TiB sparse one, both made by qemu-img."""
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise SystemExit("qemu-img is needed to build the test disks (Debian: qemu-utils)")
    small, big = work / "small.vhdx", work / "q64t.vhdx"
    if not small.exists():
        raw = work / "small.raw"
        with open(raw, "wb") as f:
            f.write(os.urandom(8 * MiB))
            f.truncate(64 * MiB)
        subprocess.run([qemu, "convert", "-O", "vhdx", str(raw), str(small)], check=True)
        raw.unlink()
    if not big.exists():
        subprocess.run(
            [qemu, "create", "-q", "-f", "vhdx", "-o", "block_size=32M", str(big), "64T"],
            check=True,
        )
    return small, big


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-bench-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    small, big = build(work)
    ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    py = sys.executable
    hv = [py, "-m", "hvrescue"]
    qemu = shutil.which("qemu-img") or "qemu-img"
    cases: dict[str, list[str]] = {
        "python3 -c pass": [py, "-c", "pass"],
        "hvrescue --help": [*hv, "--help"],
        "hvrescue explain 0x80070005": [*hv, "explain", "0x80070005"],
        "hvrescue info (64 MiB VHDX)": [*hv, "info", str(small)],
        "hvrescue check (64 MiB VHDX)": [*hv, "check", str(small)],
        "hvrescue check (64 TiB sparse)": [*hv, "check", str(big)],
        "qemu-img info (64 MiB VHDX)": [qemu, "info", str(small)],
        "qemu-img check (64 TiB sparse)": [qemu, "check", "-f", "vhdx", str(big)],
    }
    for cmd in cases.values():  # warm the page cache and the bytecode caches
        run_once(cmd)
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    names = list(cases)
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else reversed(names):
            runs[name].append(run_once(cases[name]))
    print(f"{args.rounds} rounds, order alternated; load average {os.getloadavg()[0]:.2f}")
    print(f"  {'':<32} {'wall min':>9} {'median':>8} {'cpu min':>8} {'median':>8} {'peak':>8}")
    base_cpu = min(c for _w, c, _m in runs["python3 -c pass"])
    for name, got in runs.items():
        walls = [w for w, _c, _m in got]
        cpus = [c for _w, c, _m in got]
        peak = max(m for _w, _c, m in got)
        print(
            f"  {name:<32} {min(walls) * 1000:7.0f}ms {statistics.median(walls) * 1000:6.0f}ms "
            f"{min(cpus) * 1000:6.0f}ms {statistics.median(cpus) * 1000:6.0f}ms "
            f"{peak / 1024:6.0f}MiB"
            + (f"  ({min(cpus) / base_cpu:.1f}x pass, cpu)" if name.startswith("hvrescue") else "")
        )
    imports = sorted(import_ms(py) for _ in range(5))
    print(
        f"  import hvrescue.cli.main (-X importtime): min {imports[0]:.0f} ms, median "
        f"{statistics.median(imports):.0f} ms"
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
