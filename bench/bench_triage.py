"""``hvrescue triage`` on a folder of real EVTX beside the bare ``evtx`` package (records as
JSON, nothing else) over the same files: whole commands in child processes, the order
alternated; min/median wall, CPU, peak memory, the rate ratio. Each triage writes its report
to a new folder under a temporary one (removed at the end). Asserts nothing. Goal (issue 18):
ratio >= 0.8 on one core.

    python3 bench/bench_triage.py [--rounds 5] [--corpus DIR] [--jobs N] [--bytecode]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import events_common
from events_common import DEFAULT_CORPUS, compare, count_events, evtx_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--bytecode", action="store_true", help="let the children cache bytecode")
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    files = evtx_files(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    if args.bytecode:
        events_common.use_bytecode(str(work / "pycache"))
    counter = iter(range(1_000_000))
    real_run = events_common.run

    def run(argv: list[str]) -> tuple[float, float, int, bytes]:
        if "triage" in argv:  # a new report folder each time (triage never overwrites)
            argv = [*argv, "--out", str(work / f"report-{next(counter)}")]
        return real_run(argv)

    events_common.run = run
    try:
        ours = [sys.executable, "-m", "hvrescue", "triage", "--json", args.corpus]
        label = "triage"
        if args.jobs:
            ours[4:4] = ["--jobs", str(args.jobs)]
            label += f" --jobs {args.jobs}"
        compare(label, ours, files, args.rounds, count_events(files))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
