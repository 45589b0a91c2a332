"""`salvage` interrupted (Ctrl-C, or killed outright) continues where it stopped: the map is
written first and kept up to date, the image lives under OUT.hvrescue-partial until the pass is
over, and the same command again finishes the work. Nothing appears under OUT before that."""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvrescue.recover.ddmap import read_map
from tests.helpers import Evidence, run_cli

MiB = 1024 * 1024
SIZE = 1024 * MiB


@pytest.fixture(scope="module")
def big_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fixed VHD full of data (so that salvage has seconds of work), and its content hash."""
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img")
    folder = tmp_path_factory.mktemp("big")
    raw = folder / "d.raw"
    rnd = random.Random(3)
    pattern = [rnd.randbytes(4 * MiB) for _ in range(3)]
    h = hashlib.sha256()
    with open(raw, "wb") as f:
        for i in range(SIZE // (4 * MiB)):
            f.write(pattern[i % 3])
            h.update(pattern[i % 3])
    vhd = folder / "d.vhd"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed,force_size=on",
            str(raw),
            str(vhd),
        ],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return vhd, h.hexdigest()


def _start(disk: Path, out: Path, mapfile: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hvrescue", "salvage", str(disk), str(out), "--map", str(mapfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "LANG": "C.UTF-8"},
    )


def _wait_for_work(out: Path, mapfile: Path, proc: subprocess.Popen[str]) -> None:
    partial = Path(str(out) + ".hvrescue-partial")
    deadline = time.monotonic() + 60
    while not (partial.exists() and mapfile.exists()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.slow  # a large disk salvaged and interrupted twice
@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_salvage_resumes(big_disk: tuple[Path, str], tmp_path: Path, how: str) -> None:
    disk, content = big_disk
    snap = Evidence([disk])
    out, mapfile = tmp_path / "out.raw", tmp_path / "out.map"
    proc = _start(disk, out, mapfile)
    _wait_for_work(out, mapfile, proc)
    if proc.poll() is not None:
        pytest.skip("salvage finished before it could be interrupted")
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    _stdout, stderr = proc.communicate(timeout=60)
    if how == "sigint":
        assert proc.returncode == 130, stderr
        assert stderr.strip(), "Ctrl-C must say what happened"
        assert "Traceback" not in stderr
        # The map says how far it got: some of it read, the rest still to do.
        _size, entries = read_map(str(mapfile))
        states = {st for _p, _n, st in entries}
        assert "?" in states and "+" in states
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "nothing under the final name before the pass is over"
    assert Path(str(out) + ".hvrescue-partial").exists()
    snap.assert_untouched()
    again = run_cli("salvage", disk, out, "--map", mapfile, "--json", evidence=[disk])
    assert again.rc == 0, again.stdout + again.stderr
    data = again.json()
    assert data["resumed"] is True and data["complete"] is True
    assert _sha256(out) == content
    assert [st for _p, _n, st in read_map(str(mapfile))[1]] == ["+"]
    assert not Path(str(out) + ".hvrescue-partial").exists()


def test_salvage_refuses_an_unwritable_map_before_writing_anything(
    big_disk: tuple[Path, str], tmp_path: Path
) -> None:
    disk, _content = big_disk
    out = tmp_path / "out.raw"
    result = run_cli("salvage", disk, out, "--map", tmp_path / "no" / "such" / "m.map")
    assert result.rc == 2
    assert list(tmp_path.iterdir()) == []  # no image left behind to block the rerun
