"""``python -m tests.fuzz FAMILY [--runs N] [--seconds S] [--memory-mb M] [--seed K] [--save]``:
one family, bounded in runs and time; prints one JSON line of figures; exit 1 when it found a
crash, a hang or memory over the budget. ``--replay`` runs the family's saved crashers instead.

This process only watches: the loop runs in a worker process (``tests.fuzz.worker``) that writes
each input to a shared slot before running it. The worker is killed and the input kept when one
run lasts over ``--hang-seconds`` (a hang, located by the stacks the worker prints on SIGUSR1) or
its resident memory passes ``--memory-mb``; a worker that dies by itself (a native abort, a
segmentation fault, the kernel's OOM killer) is a crash with its signal or exit code. Either way
a new worker goes on with another seed until the runs or the time are spent, so one bad input
cannot end a campaign. Figures: runs, runs per second, the slowest run, peak RSS (``max_rss_mb``,
the largest worker's) and every crash with its text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import engine
from tests.fuzz.targets import EVERY_FAMILY

CRASHERS = Path(__file__).parent / "crashers"
ROOT = Path(__file__).resolve().parents[2]
POLL = 0.1
MAX_RESTARTS = 25
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


@dataclass
class Campaign:
    family: str
    runs: int = 0
    slowest: float = 0.0
    hangs: int = 0
    crashes: dict[str, str] = field(default_factory=dict)
    saved: list[str] = field(default_factory=list)
    max_rss_mb: float = 0.0
    restarts: int = 0
    seeds: int = 0
    cpu_runs: int = 0  # runs of workers that reported their processor time
    cpu_seconds: float = 0.0


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MiB, from /proc where there is one."""
    now = peak = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return now, peak


def _where(stderr: str) -> str:
    """The innermost hvrescue frame of the last stack faulthandler printed (most recent call
    first), or the innermost frame of any code."""
    block = stderr.rsplit("most recent call first", 1)[-1]
    frames = _FRAME.findall(block)
    ours = [f for f in frames if "hvrescue" in f[0]] or frames
    if not ours:
        return "?"
    return f"{Path(ours[0][0]).name}:{ours[0][1]}"


def _signal_name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(-code).name
    return f"signal {-code}"


class Worker:
    """One worker process and what it leaves behind."""

    def __init__(self, args: argparse.Namespace, work: Path, n: int, extra: list[str]) -> None:
        self.slot_path = work / f"slot-{n}"
        self.report = work / f"report-{n}.json"
        self.stderr_path = work / f"stderr-{n}.txt"
        self.slot = engine.Slot(str(self.slot_path), create=True)
        cmd = [
            sys.executable,
            "-m",
            "tests.fuzz.worker",
            args.family,
            f"--memory-mb={args.memory_mb}",
            f"--slot={self.slot_path}",
            f"--report={self.report}",
            *extra,
        ]
        env = {**os.environ, "HVRESCUE_FUZZ_SCRATCH": str(work / f"scratch-{n}")}
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.peak_mb = 0.0

    def watch(self, hang_seconds: float, memory_mb: int) -> str | None:
        """Wait for the worker to end; None when it ended by itself, else why it was killed."""
        while self.proc.poll() is None:
            time.sleep(POLL)
            now_mb, peak_mb = _rss_mb(self.proc.pid)
            self.peak_mb = max(self.peak_mb, peak_mb, now_mb)
            _index, started, _n = engine.Slot.HEAD.unpack_from(self.slot.map, 0)
            if started and time.time() - started > hang_seconds:
                self._kill(dump=True)
                return "hang"
            if now_mb > memory_mb:
                self._kill(dump=True)
                return "memory"
        return None

    def _kill(self, dump: bool) -> None:
        if dump and hasattr(signal, "SIGUSR1"):
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGUSR1)  # faulthandler prints every stack
            time.sleep(1.0)
        self.proc.kill()
        self.proc.wait()

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 20000))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.slot.close()


def campaign(args: argparse.Namespace) -> Campaign:
    out = Campaign(args.family)
    files = engine.crashers(CRASHERS / args.family) if args.replay else []
    start = time.monotonic()
    seed = args.seed
    replay_from = 0
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="hvrescue-fuzz-", dir=base) as tmp:
        work = Path(tmp)
        while True:
            left = args.seconds - (time.monotonic() - start)
            if args.replay:
                if replay_from >= len(files):
                    break
                extra = ["--runs=0", "--seconds=0", "--seed=0", "--replay", *map(str, files)]
                extra.append(f"--start={replay_from}")
            else:
                if out.runs >= args.runs or left <= 0.5:
                    break
                extra = [f"--runs={args.runs - out.runs}", f"--seconds={left}", f"--seed={seed}"]
                if out.restarts:
                    extra.append("--no-seeds")
                if args.save:
                    extra.append(f"--crash-dir={CRASHERS}")
            worker = Worker(args, work, out.restarts, extra)
            try:
                killed = worker.watch(args.hang_seconds, args.memory_mb)
                out.max_rss_mb = max(out.max_rss_mb, worker.peak_mb)
                if killed is None and worker.proc.returncode == 0 and worker.report.exists():
                    _merge(out, json.loads(worker.report.read_text()))
                    if not args.replay:
                        break  # the worker spent its runs or its time
                    replay_from = len(files)
                    continue
                index, _started, data = worker.slot.read()
                if index == engine.Slot.NOTHING_YET:  # no input run: the setup itself failed
                    stderr = worker.stderr()
                    sig = f"SetupFailed@{_where(stderr)}"
                    out.crashes[sig] = f"exit {worker.proc.returncode}\n{stderr[-3000:]}"
                    break
                _died(out, args, worker, killed, data, files[index] if args.replay else None)
                out.runs += index + 1 - (replay_from if args.replay else 0)
                replay_from = index + 1
            finally:
                worker.close()
            out.restarts += 1
            seed += 1_000_003
            if out.restarts > MAX_RESTARTS:
                out.crashes["TooManyRestarts@" + args.family] = "gave up after repeated deaths"
                break
    with contextlib.suppress(ImportError):
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out.max_rss_mb = max(out.max_rss_mb, children)
    return out


def _merge(out: Campaign, report: dict[str, object]) -> None:
    out.runs += int(report["runs"])  # type: ignore[call-overload]
    out.slowest = max(out.slowest, float(report["slowest"]))  # type: ignore[arg-type]
    out.hangs += int(report["hangs"])  # type: ignore[call-overload]
    out.crashes.update(report["crashes"])  # type: ignore[call-overload]
    out.saved += report["saved"]  # type: ignore[arg-type]
    out.seeds = max(out.seeds, int(report["seeds"]))  # type: ignore[call-overload]
    out.max_rss_mb = max(out.max_rss_mb, float(report["max_rss_mb"]))  # type: ignore[arg-type]
    out.cpu_seconds += float(report["cpu_seconds"])  # type: ignore[arg-type]
    out.cpu_runs += int(report["runs"])  # type: ignore[call-overload]


def _died(
    out: Campaign,
    args: argparse.Namespace,
    worker: Worker,
    killed: str | None,
    data: bytes,
    replayed: Path | None,
) -> None:
    """A worker killed or dead: a crash (or hang) with the input it was running."""
    stderr = worker.stderr()
    code = worker.proc.returncode
    if killed == "hang":
        out.hangs += 1
        kind = "Hang"
    elif killed == "memory":
        kind = "MemoryBudget"
    elif code is not None and code < 0:
        kind = _signal_name(code)
    else:
        kind = f"Exit{code}"
    sig = f"{kind}@{_where(stderr)}"
    if replayed is not None:
        sig += f" in {replayed.name}"
    elif args.save:
        out.saved.append(str(engine.save(CRASHERS / args.family, data)))
    out.crashes.setdefault(sig, f"{kind}, input of {len(data)} bytes\n{stderr[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz")
    ap.add_argument("family", choices=sorted(EVERY_FAMILY))
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--memory-mb", type=int, default=1536, help="budget of resident memory")
    ap.add_argument("--hang-seconds", type=float, default=engine.HANG_SECONDS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true", help="write minimised crashers")
    ap.add_argument("--replay", action="store_true", help="run the saved crashers only")
    args = ap.parse_args()
    t0 = time.monotonic()
    out = campaign(args)
    seconds = time.monotonic() - t0
    figures = {
        "family": out.family,
        "runs": out.runs,
        "seconds": round(seconds, 1),
        "exec_per_s": round(out.runs / seconds, 1) if seconds else 0.0,
        # runs per second of processor time: what the family costs, whatever else the machine runs
        "exec_per_cpu_s": round(out.cpu_runs / out.cpu_seconds, 1) if out.cpu_seconds else None,
        "slowest": round(out.slowest, 3),
        "hangs": out.hangs,
        "max_rss_mb": round(out.max_rss_mb, 1),
        "memory_mb": args.memory_mb,
        "restarts": out.restarts,
        "seeds": out.seeds,
        "crashes": out.crashes,
        "saved": sorted(set(out.saved)),
    }
    print(json.dumps(figures), flush=True)
    bad = out.crashes or out.hangs or out.max_rss_mb > args.memory_mb
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
