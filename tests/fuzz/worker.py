"""The process that runs one family's loop (started by ``python -m tests.fuzz``, never by hand).

It writes each input to the shared slot before running it and, at the end, its figures as JSON to
``--report``; its stdout goes nowhere (a library that prints cannot spoil the figures) and its
stderr to a file the supervisor reads when the process dies. ``faulthandler`` prints the Python
stack on a fatal signal and, on SIGUSR1 (sent by the supervisor before it kills a hung worker),
the stack of every thread, so that even a loop inside native code is located.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.fuzz import engine
from tests.fuzz.targets import EVERY_FAMILY


def _limit_address_space(mb: int) -> None:
    """A backstop only: the budget itself is watched as resident memory. Native libraries
    reserve address space they never touch (thread stacks, allocator arenas), so the limit on
    address space is several times the budget."""
    try:
        import resource
    except ImportError:  # Windows: nothing to set
        return
    limit = max(4 * mb, 4096) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _keep_freed_memory() -> None:
    """glibc returns every freed block of a few MiB to the kernel and faults it in again on the
    next allocation: with disk images as inputs that cost more than the parsing (27 ms against
    2 ms a copy of 7 MiB here). Large blocks are kept in the heap instead; memory is still
    measured as resident memory."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.worker")
    ap.add_argument("family", choices=sorted(EVERY_FAMILY))
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--memory-mb", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--slot", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--crash-dir")
    ap.add_argument("--no-seeds", action="store_true", help="do not run the seeds first")
    ap.add_argument("--replay", nargs="*", help="run exactly these files, in order")
    ap.add_argument("--start", type=int, default=0, help="replay from this file on")
    args = ap.parse_args()

    _keep_freed_memory()
    faulthandler.enable(file=sys.stderr, all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    logging.disable(logging.CRITICAL)
    family = EVERY_FAMILY[args.family]
    _limit_address_space(args.memory_mb)
    slot = engine.Slot(args.slot)
    if args.replay is not None:
        figures = _replay(family.target, [Path(p) for p in args.replay], args.start, slot)
        Path(args.report).write_text(json.dumps(figures))
        return 0
    seeds = family.seeds()
    cpu = time.process_time()
    stats = engine.run(
        args.family,
        family.target,
        seeds,
        runs=args.runs,
        seconds=args.seconds,
        seed=args.seed,
        crash_dir=Path(args.crash_dir) if args.crash_dir else None,
        include_seeds=not args.no_seeds,
        slot=slot,
        memory_mb=args.memory_mb,
    )
    figures = {
        "runs": stats.runs,
        "seconds": stats.seconds,
        "slowest": stats.slowest,
        "hangs": stats.hangs,
        "crashes": {sig: c.text for sig, c in stats.crashes.items()},
        "saved": stats.saved,
        "seeds": len(seeds),
        "max_rss_mb": engine.peak_rss_mb(),
        "cpu_seconds": time.process_time() - cpu,
    }
    Path(args.report).write_text(json.dumps(figures))
    return 0


def _replay(
    target: Callable[[bytes], None], files: list[Path], start: int, slot: engine.Slot
) -> dict[str, object]:
    """Each saved crasher once, in order, from ``start`` (the slot's index is the file's)."""
    crashes: dict[str, str] = {}
    slowest = 0.0
    for index in range(start, len(files)):
        data = engine.load(files[index])
        slot.begin(index, data)
        t0 = time.monotonic()
        try:
            target(data)
        except Exception as exc:  # not handled by hvrescue: the crasher still crashes
            text = "".join(traceback.format_exception(exc))[-4000:]
            crashes[f"{engine.signature(exc)} in {files[index].name}"] = text
        finally:
            slot.end(index)
        slowest = max(slowest, time.monotonic() - t0)
    return {
        "runs": len(files) - start,
        "seconds": 0.0,
        "slowest": slowest,
        "hangs": 0,
        "crashes": crashes,
        "saved": [],
        "seeds": 0,
        "max_rss_mb": engine.peak_rss_mb(),
        "cpu_seconds": 0.0,
    }


if __name__ == "__main__":
    sys.exit(main())
