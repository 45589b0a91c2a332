"""``hvrescue facts --format jsonl`` on a folder of real EVTX beside the bare ``evtx`` package
(records as JSON, nothing else) over the same files: both as whole commands in child processes,
the order alternated; min/median wall, CPU (workers included), peak memory, the rate ratio.
Asserts nothing. Goal (issue 18): ratio >= 0.5.

    python3 bench/bench_facts.py [--rounds 5] [--corpus DIR] [--jobs N] [--format jsonl|json]
                                 [--bytecode] [--copies N]

``--copies N``: the corpus's ``.evtx`` files copied N times into a temporary folder (removed
afterwards), a host-scale set on which the per-event cost weighs more than the start-up.
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
    ap.add_argument("--format", default="jsonl", choices=("jsonl", "json"))
    ap.add_argument("--copies", type=int, default=1, help="the .evtx files copied N times")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-facts-")
    try:
        corpus = args.corpus if args.copies <= 1 else host_scale(args.corpus, args.copies, work)
        files = evtx_files(corpus)
        ours = [sys.executable, "-m", "hvrescue", "facts", "--format", args.format, corpus]
        if args.jobs:
            ours[4:4] = ["--jobs", str(args.jobs)]
        label = f"facts --format {args.format}" + (f" --jobs {args.jobs}" if args.jobs else "")
        if args.bytecode:
            events_common.use_bytecode(work)
        compare(label, ours, files, args.rounds, count_events(files))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def host_scale(corpus: str, copies: int, work: str) -> str:
    """The corpus's .evtx files ``copies`` times over in ``work`` (c0/..., c1/..., ...)."""
    base = Path(corpus)
    target = Path(work) / "host"
    for n in range(copies):
        for src in evtx_files(corpus):
            dest = target / f"c{n}" / Path(src).relative_to(base)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    return str(target)


if __name__ == "__main__":
    main()
