"""Fuzzing as part of the suite: every parser family gets a short, seeded, bounded run on each
test run (4 seconds each, in its own watched process: a hang, a native crash or memory over the
budget is reported with its input), and every minimised crasher ever found is replayed.
``-m slow`` runs each family to 1,000,000 executions (bounded by HVRESCUE_FUZZ_SECONDS, default
8 hours per family; with the variable set, the bound is the time given).
See tests/fuzz/README.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import engine
from tests.fuzz.targets import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
CRASHERS = ROOT / "tests" / "fuzz" / "crashers"
MEMORY_MB = 1536
SHORT_SECONDS = 2.0
LONG_RUNS = 1_000_000


def _fuzz(family: str, *options: str, timeout: float) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", family, f"--memory-mb={MEMORY_MB}", *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(lines[-1])
    return result


def _clean(result: dict[str, object]) -> None:
    crashes: dict[str, str] = result["crashes"]  # type: ignore[assignment]
    assert crashes == {}, "\n\n".join(f"{k}\n{v}" for k, v in crashes.items())
    assert result["hangs"] == 0
    assert result["max_rss_mb"] < MEMORY_MB  # type: ignore[operator]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_short_fuzz_run_finds_nothing(family: str) -> None:
    result = _fuzz(
        family, f"--seconds={SHORT_SECONDS}", "--seed=20261130", timeout=SHORT_SECONDS + 300
    )
    assert result["runs"] > result["seeds"] > 0  # type: ignore[operator]
    _clean(result)


@pytest.mark.slow
@pytest.mark.timeout(0)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_long_fuzz_run_finds_nothing(family: str) -> None:
    bound = os.environ.get("HVRESCUE_FUZZ_SECONDS")
    seconds = float(bound or 8 * 3600)
    result = _fuzz(
        family, f"--runs={LONG_RUNS}", f"--seconds={seconds}", "--seed=1", timeout=seconds + 3600
    )
    _clean(result)
    if bound is None:
        assert result["runs"] == LONG_RUNS


def _with_crashers() -> list[str]:
    return [f for f in sorted(FAMILIES) if engine.crashers(CRASHERS / f)]


@pytest.mark.parametrize("family", _with_crashers())
def test_every_crasher_found_is_handled(family: str) -> None:
    """Each saved input (minimised crash, hang or abort) runs once, in a watched process."""
    result = _fuzz(family, "--replay", "--hang-seconds=30", timeout=900)
    assert result["runs"] == len(engine.crashers(CRASHERS / family))
    _clean(result)


# ---------------------------------------------------------------- the harness itself
@pytest.mark.parametrize(
    ("family", "kind"),
    [
        ("selftest-abort", "SIGABRT@"),
        # the hang and the memory blow-up take their time limits to show: -m slow
        pytest.param("selftest-hang", "Hang@", marks=pytest.mark.slow),
        pytest.param("selftest-memory", "Memory", marks=pytest.mark.slow),
    ],
)
def test_what_python_cannot_catch_is_reported_and_the_run_goes_on(family: str, kind: str) -> None:
    """A native abort, a run that never returns and memory over the budget each end the
    worker; the supervisor reports them with their input and a new worker goes on."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz",
            family,
            "--seconds=4",
            "--hang-seconds=2",
            "--memory-mb=300",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1
    result = json.loads(proc.stdout.splitlines()[-1])
    # One kind of failure, reported once per place it was met (a loaded machine may let the
    # memory self-test pass the budget in the worker and in the supervisor's watch both).
    found = [k for k in result["crashes"] if k.startswith(kind)]
    assert found and (len(found) == 1 or kind == "Memory"), result["crashes"]
    crash = found[0]
    assert "targets.py" in crash or kind == "Memory"  # located in the target's own code
    assert result["restarts"] >= 1 and result["runs"] > 1  # the campaign went on after it
