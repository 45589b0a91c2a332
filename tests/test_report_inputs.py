"""The report's input list and its digests, made on a thread while the evidence is read
(``report/inputs.py``). The oracle is hashlib over the same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

import hvrescue.io.input_hash as input_hash_module
import hvrescue.report.inputs as inputs
from hvrescue.report.inputs import InputHashes, input_files


def _evidence(tmp_path: Path) -> Path:
    root = tmp_path / "evidence"
    (root / "b").mkdir(parents=True)
    (root / "a.log").write_bytes(b"first\n" * 1000)
    (root / "b" / "c.evtx").write_bytes(os.urandom(300_000))
    (root / "b" / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(b"\0" * 5000)
    with contextlib.suppress(OSError):  # no symlinks here (Windows without the privilege)
        (root / "link").symlink_to(root / "a.log")
    return root


def _sha256(path: str) -> str | None:
    if os.path.islink(path) or os.path.getsize(path) > 4096:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # files over 4 KiB are not hashed (the limit is 256 MiB; a small one keeps the test fast)
    monkeypatch.setattr(input_hash_module, "HASH_INPUTS_UP_TO", 4096)


def test_the_thread_gives_each_file_its_own_digest(tmp_path: Path, small_limit: None) -> None:
    root = _evidence(tmp_path)
    (root / "a.log").write_bytes(b"first\n" * 100)
    files = input_files(str(root))
    top = ["a.log", "big.bin"] + (["link"] if (root / "link").is_symlink() else [])
    assert files == [str(root / n) for n in top] + [
        str(root / "b" / n) for n in ("c.evtx", "empty")
    ]
    hashes = InputHashes([str(root)])
    assert {f: hashes.get(f) for f in files} == {f: _sha256(f) for f in files}
    assert hashes.get(str(root / "big.bin")) is None  # over the limit
    if (root / "link").is_symlink():
        assert hashes.get(str(root / "link")) is None  # a link is not followed


def test_what_the_thread_did_not_hash_is_hashed_when_asked(
    tmp_path: Path, small_limit: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _evidence(tmp_path)
    (root / "a.log").write_bytes(b"x" * 10)
    files = input_files(str(root))

    def broken(path: str) -> list[str]:
        raise OSError("the walk failed on the thread")

    monkeypatch.setattr(inputs, "input_files", broken)  # the thread lists nothing
    hashes = InputHashes([str(root)])
    assert [hashes.get(f) for f in files] == [_sha256(f) for f in files]
    # a cancelled thread: the digests are made when asked for
    monkeypatch.undo()
    monkeypatch.setattr(input_hash_module, "HASH_INPUTS_UP_TO", 4096)
    cancelled = InputHashes([str(root)])
    cancelled.cancel()
    assert [cancelled.get(f) for f in files] == [_sha256(f) for f in files]


def test_a_folder_lists_at_most_its_first_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(30):
        (root / f"{i:03}.txt").write_text(str(i))
    monkeypatch.setattr(inputs, "MAX_INPUT_FILES", 7)
    assert input_files(str(root)) == [str(root / f"{i:03}.txt") for i in range(7)]
    assert input_files(str(root / "005.txt")) == [str(root / "005.txt")]
