"""`fleet` throughput: bundles per second for 50, 100 and 200 generated bundles with --jobs 1
and 2 (the bundles of tests/fleet_world.py: healthy hosts, VSS incidents, broken zips), each
run as the command a user types. Wall time should grow in proportion to the bundles' count and
size, not faster; the last column (vs first) compares each run's seconds per bundle with the
smallest run's at the same --jobs (1.00: linear). Prints figures; asserts nothing.

    python3 bench/bench_fleet.py [--counts 50 100 200] [--jobs 1 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fleet_world import write_fleet  # noqa: E402


def run(folder: Path, jobs: int, count: int) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", "-q", "fleet", str(folder), "--jobs", str(jobs),
         "--json"],
        capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    # Exit 1 is also how Python ends on a traceback: the summary itself says it ran.
    try:
        hosts = json.loads(proc.stdout)["counts"]["hosts"]
    except (ValueError, KeyError):
        hosts = None
    if proc.returncode not in (0, 1) or hosts != count:
        sys.exit(proc.stderr.decode(errors="replace"))
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1, help="runs per point; the fastest counts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folders = {}
        for count in args.counts:
            folder = Path(tmp) / f"fleet-{count}"
            write_fleet(folder, count)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            folders[count] = folder
            print(f"{count} bundles, {size / 1024:.0f} KiB")
        print(f"{'bundles':>8} {'jobs':>5} {'seconds':>8} {'bundles/s':>10} {'vs first':>9}")
        for jobs in args.jobs:
            first = None
            for count in args.counts:
                best = min(run(folders[count], jobs, count) for _ in range(args.repeat))
                per = best / count
                first = first or per
                rate = count / best
                print(f"{count:>8} {jobs:>5} {best:>8.2f} {rate:>10.1f} {per / first:>9.2f}")


if __name__ == "__main__":
    main()
