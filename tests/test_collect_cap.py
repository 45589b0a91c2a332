"""A command that prints past ``--max-output`` and ends before the next look is still
``too-large``: what the bundle keeps of it is cut, so it is never recorded as whole."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hvrescue.collector import process
from hvrescue.collector.status import status_of

CAP = 1 << 20


@pytest.mark.parametrize("printed", [CAP + 1, 5_000_000])
def test_output_past_the_cap_is_too_large_even_when_the_command_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, printed: int
):
    # No look while it runs: the child has ended, with everything printed, at the first wait.
    monkeypatch.setattr(process, "POLL_S", 60.0)
    argv = [sys.executable, "-c", f"import sys; sys.stdout.write('x' * {printed})"]
    out = process.run(
        argv, str(tmp_path / "o"), str(tmp_path / "e"), timeout=60, cap=CAP, cwd=str(tmp_path)
    )
    assert out.state == "too-large"
    assert out.stdout_bytes == printed and out.exit_code is None
    status, detail = status_of(out, "text", b"x" * 100, b"")
    assert status == "too-large" and str(printed) in (detail or "")


def test_output_at_the_cap_is_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(process, "POLL_S", 60.0)
    argv = [sys.executable, "-c", f"import sys; sys.stdout.write('x' * {CAP})"]
    out = process.run(
        argv, str(tmp_path / "o"), str(tmp_path / "e"), timeout=60, cap=CAP, cwd=str(tmp_path)
    )
    assert (out.state, out.exit_code, out.stdout_bytes) == ("exited", 0, CAP)
