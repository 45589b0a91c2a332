"""preserve's cost: write-back started as the copy goes, the case record in one commit.

The copy starts write-back every ``WRITEBACK_EVERY`` bytes, so that the final fsync has little
left; the case record of a preservation is one transaction (one commit, not one per row: each
commit waits for the disk several times). ``posix_fadvise`` is the OS boundary observed here;
the bytes, the hashes and the untouched source are checked for real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from hvrescue.preserve import copy as copy_mod
from hvrescue.preserve import run as run_mod
from hvrescue.preserve.case import CaseRecord
from hvrescue.preserve.manifest import load_manifest
from hvrescue.preserve.run import Options, preserve

KiB = 1024


def _evidence(root: Path, size: int) -> Path:
    folder = root / "evidence"
    folder.mkdir(parents=True)
    (folder / "disk.raw").write_bytes(os.urandom(size))
    (folder / "notes.txt").write_bytes(b"small file\r\n")
    return folder


def _spy_advice(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int, str]]:
    seen: list[tuple[int, int, int, str]] = []
    real = copy_mod.advise

    def spy(fd: int, offset: int, length: int, advice: str) -> None:
        seen.append((fd, offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(copy_mod, "advise", spy)
    monkeypatch.setattr(copy_mod, "WRITEBACK_EVERY", copy_mod.CHUNK)
    return seen


def _check_copy(src: Path, dest: Path, before: os.stat_result) -> None:
    data = (src / "disk.raw").read_bytes()
    assert (dest / "evidence" / "disk.raw").read_bytes() == data
    entry = next(e for e in load_manifest(str(dest))[1]["files"] if e["path"].endswith("disk.raw"))
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    after = (src / "disk.raw").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_a_copy_on_other_storage_starts_write_back_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to preserve onto")
    chunk = copy_mod.CHUNK
    size = 2 * chunk + chunk // 4 + 123
    src = _evidence(tmp_path, size)
    before = (src / "disk.raw").stat()
    seen = _spy_advice(monkeypatch)
    dest = shm / f"hvrescue-writeback-{os.getpid()}"
    try:
        preserve([str(src)], str(dest), Options(), ["test"])
        ranges = [(off, n) for _fd, off, n, advice in seen if advice == "dontneed"]
        # Write-back of each WRITEBACK_EVERY bytes as they are written; the tail is left to
        # the final fsync.
        assert ranges == [(0, chunk), (chunk, chunk)]
        _check_copy(src, dest, before)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_the_case_record_of_a_preservation_is_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    statements: list[str] = []

    class Traced(CaseRecord):
        def __init__(self, path: str) -> None:
            super().__init__(path)
            self.db.set_trace_callback(statements.append)

    monkeypatch.setattr(run_mod, "CaseRecord", Traced)
    src = _evidence(tmp_path, 64 * KiB)
    dest = tmp_path / "copy"
    preserve([str(src)], str(dest), Options(allow_same_storage=True), ["hvrescue", "preserve"])
    assert [s for s in statements if s.split()[0] in ("BEGIN", "COMMIT")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    db = sqlite3.connect(dest / "case.sqlite")
    try:
        (action,) = db.execute("SELECT id, command, exit_code FROM actions").fetchall()
        assert action[1:] == ("preserve", 0)
        rows = db.execute(
            "SELECT direction, role FROM files WHERE action_id = ? ORDER BY rowid", (action[0],)
        ).fetchall()
    finally:
        db.close()
    # Each of the two files in and out, and the two manifests.
    assert sorted(rows).count(("output", "manifest")) == 2
    assert len(rows) == 2 * 2 + 2


def test_a_case_batch_that_fails_records_nothing(tmp_path: Path):
    path = str(tmp_path / "case.sqlite")
    case = CaseRecord(path)
    try:
        with pytest.raises(RuntimeError), case.batch():
            action = case.begin("preserve", ["hvrescue", "preserve"])
            case.add_file(action, "input", str(tmp_path), size=1, mtime_ns=0, sha256="00")
            raise RuntimeError("interrupted")
        assert case.actions() == []
        with case.batch():
            case.finish(case.begin("verify", ["hvrescue", "verify"]), 0)
        assert [a["command"] for a in case.actions()] == ["verify"]
    finally:
        case.close()
    again = CaseRecord(path)  # reopened: the schema and the committed action are there
    try:
        assert [a["exit_code"] for a in again.actions()] == [0]
    finally:
        again.close()
