"""``hvrescue facts --format jsonl`` on a folder of real EVTX beside the bare ``evtx`` package
(records as JSON, nothing else) over the same files: both as whole commands in child processes,
the order alternated; min/median wall, CPU (workers included), peak memory, the rate ratio.
Asserts nothing. Goal (issue 18): ratio >= 0.5.

    python3 bench/bench_facts.py [--rounds 5] [--corpus DIR] [--jobs N] [--format jsonl|json]
                                 [--bytecode]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile

import events_common
from events_common import DEFAULT_CORPUS, compare, count_events, evtx_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--bytecode", action="store_true", help="let the children cache bytecode")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--format", default="jsonl", choices=("jsonl", "json"))
    args = ap.parse_args()
    files = evtx_files(args.corpus)
    ours = [sys.executable, "-m", "hvrescue", "facts", "--format", args.format, args.corpus]
    if args.jobs:
        ours[4:4] = ["--jobs", str(args.jobs)]
    label = f"facts --format {args.format}" + (f" --jobs {args.jobs}" if args.jobs else "")
    work = tempfile.mkdtemp(prefix="bench-facts-")
    if args.bytecode:
        events_common.use_bytecode(work)
    try:
        compare(label, ours, files, args.rounds, count_events(files))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
