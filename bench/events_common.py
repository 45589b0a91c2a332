"""Shared by bench_facts.py and bench_triage.py: run a command and its peer (the bare ``evtx``
package's ``records_json`` over the same files, nothing else) as child processes, the order
alternated each round, and print min/median wall time, CPU time (the child and its workers),
peak memory (the largest process, by GNU time) and the rate ratio. ``--bytecode`` (the scripts'
option) lets both children cache their bytecode (this machine sets PYTHONDONTWRITEBYTECODE)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public"
DEFAULT_CORPUS = SHARED / "evtx-real"

PEER = """
import sys, evtx
n = 0
for f in sys.argv[1:]:
    try:
        for _ in evtx.PyEvtxParser(f).records_json():
            n += 1
    except (OSError, RuntimeError, ValueError):
        pass
print(n)
"""


def evtx_files(corpus: str) -> list[str]:
    files = sorted(str(p) for p in Path(corpus).rglob("*.evtx"))
    if not files:
        sys.exit(f"no .evtx under {corpus}")
    return files


# The children's environment. This machine sets PYTHONDONTWRITEBYTECODE, so by default every
# start compiles hvrescue's sources again (~0.15 s); ``use_bytecode()`` lets both commands keep
# their bytecode in a temporary folder instead, as an installed package does.
ENV = dict(os.environ)


def use_bytecode(folder: str) -> None:
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = folder


# The peak memory of the largest process, read by GNU time (a small process: Linux keeps the
# larger ``ru_maxrss`` across exec, so a Python parent's own size would show otherwise).
TIME = shutil.which("time") or "/usr/bin/time"


def run(argv: list[str]) -> tuple[float, float, int, bytes]:
    """Wall s, CPU s (user + system, workers included), peak RSS KiB, stdout."""
    with tempfile.NamedTemporaryFile("w+", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [TIME, "-f", "%M", "-o", rss.name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            sys.exit(f"{argv[:4]} ended with {code}")
        rss.seek(0)
        peak = int(rss.read().split()[-1])
    return wall, usage.ru_utime + usage.ru_stime, peak, out


def peer_argv(files: list[str]) -> list[str]:
    return [sys.executable, "-c", PEER, *files]


def compare(name: str, ours: list[str], files: list[str], rounds: int, events: int) -> None:
    """``ours`` and the peer, ``rounds`` times each, the order alternated."""
    results: dict[str, list[tuple[float, float, int]]] = {"peer": [], name: []}
    peer = peer_argv(files)
    run(peer)  # a first run of each, not counted: the files in the page cache, bytecode made
    if not run(ours)[3].strip():  # a crash that exits 1 would otherwise look fast
        sys.exit(f"{name} printed nothing: run it by hand to see why")
    for r in range(rounds):
        order = [("peer", peer), (name, ours)]
        for label, argv in order if r % 2 == 0 else reversed(order):
            wall, cpu, rss, _out = run(argv)
            results[label].append((wall, cpu, rss))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cached = "bytecode cached" if "PYTHONPYCACHEPREFIX" in ENV else "sources compiled each start"
    print(
        f"{len(files)} files, {events} events, {rounds} rounds, load average {load:.1f} "
        f"at the end, {os.cpu_count()} cores, {cached}"
    )
    for label, rows in results.items():
        walls = [w for w, _c, _m in rows]
        cpus = [c for _w, c, _m in rows]
        peak = max(m for _w, _c, m in rows) / 1024
        print(
            f"  {label:<28} wall min {min(walls):6.2f} s median {statistics.median(walls):6.2f} s"
            f"  cpu median {statistics.median(cpus):6.2f} s  peak {peak:6.0f} MiB"
            f"  {events / min(walls):9.0f} events/s (best)"
        )
    best = {k: min(w for w, _c, _m in v) for k, v in results.items()}
    med = {k: statistics.median(w for w, _c, _m in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _w, c, _m in v) for k, v in results.items()}
    print(
        f"  rate ratio {name}/peer: {best['peer'] / best[name]:.2f} (min), "
        f"{med['peer'] / med[name]:.2f} (median), {cpu['peer'] / cpu[name]:.2f} (CPU time)"
    )


def count_events(files: list[str]) -> int:
    return int(run(peer_argv(files))[3].strip() or 0)
