"""A small world for link and special-file tests: evidence (a two-layer VHDX chain in ev/), a
victim file outside everything the commands are given, and the output folder out/. ``hv`` runs
the real CLI with a timeout and proves afterwards that nothing outside out/ changed."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.builders import make_chain
from tests.helpers import Result

MiB = 1024 * 1024
TIMEOUT = 60


def _state(path: Path) -> tuple[object, ...]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ("file", digest, st.st_size, st.st_mtime_ns)
    return (stat.S_IFMT(st.st_mode),)


@dataclass
class World:
    root: Path
    ev: Path
    base: Path
    leaf: Path
    victim: Path
    out: Path
    cut: Path  # a copy of base.vhdx cut short: blocks past its end (undefined content)
    before: dict[Path, tuple[object, ...]] = field(default_factory=dict)

    def tree(self) -> dict[Path, tuple[object, ...]]:
        """Every entry under root but out/, as lstat sees it (links never followed)."""
        seen: dict[Path, tuple[object, ...]] = {}
        for folder, dirs, names in os.walk(self.root):
            here = Path(folder)
            dirs[:] = [d for d in dirs if here / d != self.out]
            for name in dirs + names:
                seen[here / name] = _state(here / name)
        return seen

    def snapshot(self) -> None:
        self.before = self.tree()

    def check(self) -> None:
        after = self.tree()
        changed = {p for p in set(self.before) | set(after) if self.before.get(p) != after.get(p)}
        assert not changed, f"changed outside the output folder: {sorted(map(str, changed))}"

    def replace_with_link(self, path: Path, target: Path) -> None:
        """Put a link to ``target`` where ``path`` is (a file or a folder of ours)."""
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            import shutil

            shutil.rmtree(path)
        path.symlink_to(target, target_is_directory=target.is_dir())


def make_world(tmp_path: Path) -> World:
    ev = tmp_path / "ev"
    base, leaf = make_chain(ev, size=8 * MiB, block=1 * MiB)
    victim = tmp_path / "victim" / "victim.bin"
    victim.parent.mkdir()
    victim.write_bytes(os.urandom(64 * 1024))
    out = tmp_path / "out"
    out.mkdir()
    cut = tmp_path / "cut" / "cut.vhdx"
    cut.parent.mkdir()
    data = base.read_bytes()
    cut.write_bytes(data[: len(data) - 3 * MiB])
    w = World(tmp_path, ev, base, leaf, victim, out, cut)
    w.snapshot()
    return w


def hv(*args: str | Path, world: World | None = None, cwd: Path | None = None) -> Result:
    """``python -m hvrescue ARGS`` within TIMEOUT seconds (a hang fails the test), no traceback;
    with ``world``, nothing outside its output folder may have changed afterwards."""
    env = dict(os.environ)
    env.pop("HVRESCUE_LANG", None)
    env.update({"LANG": "C.UTF-8", "LC_ALL": "", "COLUMNS": "200"})
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        cwd=cwd,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Internal error" not in proc.stderr, proc.stderr
    if world is not None:
        world.check()
    return Result(proc.returncode, proc.stdout, proc.stderr)
