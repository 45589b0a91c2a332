"""Start-up and small commands, side by side with the interpreter and qemu-img. Prints figures;
asserts nothing.

    python3 bench/bench_startup.py [--rounds 15] [--workdir DIR]

Times, alternating the order each round, as whole processes (what a user waits for):
  python3 -c pass                     (the floor: the interpreter and site)
  python3 -c "import click"           (the floor of any click program)
  qemu-img --version                  (the peer's floor)
  hvrescue --help (en, ja), explain 0xC03A000D, info DISK, check DISK
  hvrescue check of 64 TiB-virtual sparse VHDXs made by qemu-img (empty blocks marked ZERO):
    32 MiB blocks empty, 1 MiB blocks empty (a 512 MiB BAT), 32 MiB blocks with a little data
  qemu-img info / check of the same disks (the peer)
and what the CLI imports: `python3 -X importtime` for the module tree of `hvrescue --help`
(modules and milliseconds beyond `import click`). `--baseline SRC` also runs every hvrescue
case from another tree's `src` folder (a copy of the tree before a change), in the same rounds,
for a before / after in one run. Wall time is noisy on a shared machine, so
user+system CPU time (from wait4) is printed beside it; peak memory is the child's maximum
resident set. `--quick` leaves out the 1 MiB-block disk (its BAT alone is 512 MiB).
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


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall s, user+system CPU s, peak RSS KiB) of one process."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or ENV
    )
    _pid, _status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def imports(cmd: list[str]) -> dict[str, int]:
    """Each module a process imports and its own import time in µs (-X importtime)."""
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=ENV
    )
    out: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| ( *)(\S+)$", line)
        if m:
            out[m.group(3)] = int(m.group(1))
    return out


def import_report(py: str, rounds: int = 5) -> None:
    """Modules and self import time `hvrescue --help` adds to `import click` (min of rounds)."""
    best: dict[str, int] = {}
    base: dict[str, int] = {}
    for _ in range(rounds):
        for name, t in imports([py, "-m", "hvrescue", "--help"]).items():
            best[name] = min(best.get(name, t), t)
        for name, t in imports([py, "-c", "import click"]).items():
            base[name] = min(base.get(name, t), t)
    ours = {k: v for k, v in best.items() if k not in base}
    top = sorted(ours.items(), key=lambda kv: -kv[1])[:8]
    print(
        f"  hvrescue --help imports {len(ours)} modules beyond `import click`, "
        f"{sum(ours.values()) / 1000:.1f} ms of their own import time (min of {rounds}); "
        "largest: " + ", ".join(f"{k} {v / 1000:.1f}" for k, v in top)
    )


def build(work: Path, quick: bool) -> tuple[Path, dict[str, Path]]:
    """A small dynamic VHDX with data, and 64 TiB sparse ones, all made by qemu-img."""
    qemu = shutil.which("qemu-img")
    if qemu is None:
        raise SystemExit("qemu-img is needed to build the test disks (Debian: qemu-utils)")
    small = work / "small.vhdx"
    if not small.exists():
        raw = work / "small.raw"
        with open(raw, "wb") as f:
            f.write(os.urandom(8 * MiB))
            f.truncate(64 * MiB)
        subprocess.run([qemu, "convert", "-O", "vhdx", str(raw), str(small)], check=True)
        raw.unlink()
    big = {"64 TiB sparse, 32M blocks": ("32M", work / "q64t.vhdx", False)}
    big["64 TiB, 32M blocks, data"] = ("32M", work / "q64t-data.vhdx", True)
    if not quick:
        big["64 TiB sparse, 1M blocks"] = ("1M", work / "q64t-1m.vhdx", False)
    for block, path, data in big.values():
        if path.exists():
            continue
        opts = f"block_size={block}"
        subprocess.run(
            [qemu, "create", "-q", "-f", "vhdx", "-o", opts, str(path), "64T"], check=True
        )
        qemu_io = shutil.which("qemu-io")
        if data and qemu_io:  # a little data, in three places
            for cmd in ("write -P 0x11 0 4M", "write -P 0x22 10T 8M", "write -P 0x33 63T 1M"):
                subprocess.run(
                    [qemu_io, "-f", "vhdx", "-c", cmd, str(path)], check=True, capture_output=True
                )
    return small, {name: path for name, (_b, path, _d) in big.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="leave out the 1 MiB-block disk")
    ap.add_argument("--baseline", type=Path, default=None, help="another tree's src folder")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-bench-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    small, big = build(work, args.quick)
    ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    py = sys.executable
    hv = [py, "-m", "hvrescue"]
    qemu = shutil.which("qemu-img") or "qemu-img"
    cases: dict[str, list[str]] = {
        "python3 -c pass": [py, "-c", "pass"],
        "python3 -c 'import click'": [py, "-c", "import click"],
        "qemu-img --version": [qemu, "--version"],
        "hvrescue --help": [*hv, "--help"],
        "hvrescue --lang ja --help": [*hv, "--lang", "ja", "--help"],
        "hvrescue explain 0xC03A000D": [*hv, "explain", "0xC03A000D"],
        "hvrescue info (64 MiB VHDX)": [*hv, "info", str(small)],
        "hvrescue check (64 MiB VHDX)": [*hv, "check", str(small)],
        "qemu-img info (64 MiB VHDX)": [qemu, "info", str(small)],
    }
    for name, path in big.items():
        cases[f"hvrescue check ({name})"] = [*hv, "check", str(path)]
        cases[f"qemu-img check ({name})"] = [qemu, "check", "-f", "vhdx", str(path)]
    envs: dict[str, dict[str, str]] = {}
    if args.baseline is not None:
        before = dict(ENV, PYTHONPATH=str(args.baseline.resolve()))
        before["PYTHONPYCACHEPREFIX"] = str(work / "pycache-baseline")
        for name, cmd in list(cases.items()):
            if name.startswith("hvrescue"):
                cases[f"(baseline) {name}"] = cmd
                envs[f"(baseline) {name}"] = before
    for name, cmd in cases.items():  # warm the page cache and the bytecode caches
        run_once(cmd, envs.get(name))
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    names = list(cases)
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else reversed(names):
            runs[name].append(run_once(cases[name], envs.get(name)))
    print(f"{args.rounds} rounds, order alternated; load average {os.getloadavg()[0]:.2f}")
    print(f"  {'':<56} {'wall min':>9} {'median':>8} {'cpu min':>8} {'median':>8} {'peak':>8}")
    base_cpu = min(c for _w, c, _m in runs["python3 -c pass"])
    click_cpu = min(c for _w, c, _m in runs["python3 -c 'import click'"])
    for name, got in runs.items():
        walls = [w for w, _c, _m in got]
        cpus = [c for _w, c, _m in got]
        peak = max(m for _w, _c, m in got)
        print(
            f"  {name:<56} {min(walls) * 1000:7.0f}ms {statistics.median(walls) * 1000:6.0f}ms "
            f"{min(cpus) * 1000:6.0f}ms {statistics.median(cpus) * 1000:6.0f}ms "
            f"{peak / 1024:6.0f}MiB"
            + (
                f"  cpu +{(min(cpus) - base_cpu) * 1000:.0f} ms over pass, "
                f"+{(min(cpus) - click_cpu) * 1000:.0f} over click"
                if name.startswith(("hvrescue", "(baseline)"))
                else ""
            )
        )
    import_report(py)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
