"""The report's input list and its digests (``render._inputs``, ``io.input_hash``). The oracle is
hashlib over the same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

import hvrescue.io.input_hash as input_hash_module
from hvrescue.report.render import _inputs


def _evidence(tmp_path: Path) -> Path:
    root = tmp_path / "evidence"
    (root / "b").mkdir(parents=True)
    (root / "a.log").write_bytes(b"first\n" * 100)
    (root / "b" / "c.evtx").write_bytes(os.urandom(3000))
    (root / "b" / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(b"\0" * 5000)
    with contextlib.suppress(OSError):  # no symlinks here (Windows without the privilege)
        (root / "link").symlink_to(root / "a.log")
    return root


def _sha256(path: str) -> str | None:
    if os.path.islink(path) or os.path.getsize(path) > 4096:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_each_input_file_with_its_own_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # files over 4 KiB are not hashed (the limit is 256 MiB; a small one keeps the test fast)
    monkeypatch.setattr(input_hash_module, "HASH_INPUTS_UP_TO", 4096)
    root = _evidence(tmp_path)
    rows = _inputs([str(root)])
    top = ["a.log", "big.bin"] + (["link"] if (root / "link").is_symlink() else [])
    files = [str(root / n) for n in top] + [str(root / "b" / n) for n in ("c.evtx", "empty")]
    assert [r["path"] for r in rows] == files
    assert [r["sha256"] for r in rows] == [_sha256(f) for f in files]
    assert [r["size"] for r in rows] == [os.lstat(f).st_size for f in files]
    assert rows[1]["sha256"] is None  # over the limit
    # a file given alone
    alone = _inputs([str(root / "a.log")])
    assert [(r["path"], r["sha256"]) for r in alone] == [(files[0], _sha256(files[0]))]


def test_a_folder_lists_at_most_its_first_2000_files(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2003):
        (root / f"{i:04}.txt").write_bytes(b"")
    rows = _inputs([str(root)])
    assert [r["path"] for r in rows] == [str(root / f"{i:04}.txt") for i in range(2000)]
