"""Events per second from all public .evtx samples: the bare `evtx` package (records as JSON,
nothing else) beside hvrescue's facts end to end (JSON decoded, fact built, provenance).
Prints figures; asserts nothing.

    python3 bench/bench_facts.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import evtx

from hvrescue.logs.collect import collect

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public" / "evtx"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--corpus", default=str(CORPUS))
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.corpus).rglob("*.evtx"))
    if not files:
        sys.exit(f"no .evtx under {args.corpus}")
    print(f"{len(files)} files, {args.repeat} passes")

    t = time.perf_counter()
    bare = 0
    for _ in range(args.repeat):
        for f in files:
            for _record in evtx.PyEvtxParser(f).records_json():
                bare += 1
    t_bare = time.perf_counter() - t

    t = time.perf_counter()
    ours = 0
    for _ in range(args.repeat):
        ours += len(collect(files).facts)
    t_ours = time.perf_counter() - t

    print(
        f"  evtx package, records_json only   {bare:8d} records {t_bare:7.2f} s "
        f"{bare / t_bare:10.0f} records/s"
    )
    print(
        f"  hvrescue facts (end to end)       {ours:8d} events  {t_ours:7.2f} s "
        f"{ours / t_ours:10.0f} events/s  (target >= 100000)"
    )


if __name__ == "__main__":
    main()
