"""Windows as a platform, checked here without Windows.

The Win32 calls (sparse files, allocated ranges, the interface language) run against a stand-in
kernel32 at the ctypes boundary, over real files: it answers as NTFS does and records what NTFS
would have done, in particular every growth of a file that was not marked sparse first (NTFS
fills it with zeros). The POSIX twin runs for real. Console code pages are simulated with
PYTHONIOENCODING; Ctrl-C is a real SIGINT to a real `preserve`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

# Imported before any test stands in for Windows: a module that imports ``on_windows`` by name
# while the stand-in is active would keep the stand-in.
import hvrescue.fs.extract
import hvrescue.fs.mount
import hvrescue.preserve.snapshot  # noqa: F401
from hvrescue import platform
from hvrescue.platform import posix, windows
from hvrescue.report.i18n import catalogue, detect_language

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
HANDLE_BASE = 0x4000
LINUX = sys.platform.startswith("linux")
# The host kernel's own hole finding, used by the stand-in NTFS to answer
# FSCTL_QUERY_ALLOCATED_RANGES (the Windows simulation hides the names, not the syscall).
HOST_SEEK_DATA, HOST_SEEK_HOLE = 3, 4
NAMES = {
    windows.FSCTL_SET_SPARSE: "FSCTL_SET_SPARSE",
    windows.FSCTL_SET_ZERO_DATA: "FSCTL_SET_ZERO_DATA",
    windows.FSCTL_QUERY_ALLOCATED_RANGES: "FSCTL_QUERY_ALLOCATED_RANGES",
}


def host_allocation(fd: int, size: int) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, HOST_SEEK_DATA)
        except OSError:
            break
        if data >= size:
            break
        hole = min(os.lseek(fd, data, HOST_SEEK_HOLE), size)
        out.append((data, hole))
        pos = hole
    return out


class FakeKernel32:
    """kernel32 over the test's real files (HANDLE = descriptor + HANDLE_BASE), answering as
    NTFS: a file is sparse only once asked; growing one that is not writes zeros (recorded in
    ``zero_filled``); allocated ranges are the host file system's, or ``declared``."""

    def __init__(self, langid: int = 0x0409) -> None:
        self.langid = langid
        self.calls: list[tuple[str, Any]] = []
        self.sparse: set[int] = set()
        self.zero_filled: list[tuple[int, int]] = []
        self.declared: dict[int, list[tuple[int, int]]] = {}
        self.refuse: set[int] = set()
        self.error = 0
        self.stall = False  # answer ERROR_MORE_DATA without entries (a broken filter driver)

    def declare(self, path: Path, ranges: list[tuple[int, int]]) -> None:
        self.declared[os.stat(path).st_ino] = ranges

    def DeviceIoControl(
        self,
        handle: int,
        code: int,
        inbuf: Any,
        insize: int,
        outbuf: Any,
        outsize: int,
        returned: Any,
        overlapped: Any,
    ) -> int:
        fd = handle - HANDLE_BASE
        st = os.fstat(fd)
        self.calls.append((NAMES.get(code, hex(code)), fd))
        returned.contents.value = 0
        assert overlapped is None
        if code in self.refuse:
            self.error = 1  # ERROR_INVALID_FUNCTION: FAT, exFAT, a share without sparse files
            return 0
        if code == windows.FSCTL_SET_SPARSE:
            assert inbuf is None and insize == 0
            self.sparse.add(st.st_ino)
            return 1
        if code == windows.FSCTL_SET_ZERO_DATA:
            assert insize == 16
            offset, beyond = struct.unpack("<qq", inbuf.raw[:16])
            self.calls[-1] = ("FSCTL_SET_ZERO_DATA", (offset, beyond))
            zeros = bytes(beyond - offset)
            os.lseek(fd, offset, os.SEEK_SET)
            os.write(fd, zeros)
            return 1
        if code == windows.FSCTL_QUERY_ALLOCATED_RANGES:
            assert insize == 16
            start, length = struct.unpack("<qq", inbuf.raw[:16])
            if self.stall:
                self.error = windows.ERROR_MORE_DATA
                return 0
            if st.st_ino in self.declared:
                alloc = self.declared[st.st_ino]
            elif st.st_ino in self.sparse:
                alloc = host_allocation(fd, st.st_size)
            else:
                alloc = [(0, st.st_size)] if st.st_size else []  # NTFS: all of a plain file
            hits = [(lo, hi) for lo, hi in alloc if hi > start and lo < start + length]
            room = outsize // 16
            for i, (lo, hi) in enumerate(hits[:room]):
                outbuf[i * 16 : (i + 1) * 16] = struct.pack("<qq", lo, hi - lo)
            returned.contents.value = 16 * min(room, len(hits))
            if len(hits) > room:
                self.error = windows.ERROR_MORE_DATA
                return 0
            return 1
        raise AssertionError(f"unexpected control code {code:#x}")

    def SetFileInformationByHandle(self, handle: int, info_class: int, info: Any, size: int) -> int:
        fd = handle - HANDLE_BASE
        assert info_class == windows.FILE_END_OF_FILE_INFO and size == 8
        (end,) = struct.unpack("<q", info.raw[:8])
        st = os.fstat(fd)
        self.calls.append(("SetFileInformationByHandle", end))
        if end > st.st_size and st.st_ino not in self.sparse:
            self.zero_filled.append((st.st_size, end))  # NTFS would write these zeros
        os.ftruncate(fd, end)
        return 1

    def GetUserDefaultUILanguage(self) -> int:
        self.calls.append(("GetUserDefaultUILanguage", None))
        return self.langid


@pytest.fixture
def win(monkeypatch: pytest.MonkeyPatch) -> FakeKernel32:
    """Stand in for Windows: the platform package takes its Windows branch, against the fake."""
    if not LINUX:
        pytest.skip("the stand-in NTFS asks the Linux kernel for holes")
    fake = FakeKernel32()
    monkeypatch.setattr(platform, "on_windows", lambda: True)
    monkeypatch.setattr(windows, "kernel32", lambda: fake)
    monkeypatch.setattr(windows, "os_handle", lambda fd: fd + HANDLE_BASE)
    monkeypatch.setattr(windows, "last_error", lambda: fake.error)
    return fake


def _new(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))


# ---------------------------------------------------------------- sparse files, Windows branch
def test_growing_an_output_on_windows_marks_it_sparse_first(win: FakeKernel32, tmp_path: Path):
    fd = _new(tmp_path / "out.raw")
    try:
        platform.set_size(fd, 1 * TiB)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    assert st.st_size == 1 * TiB
    assert win.zero_filled == []
    names = [name for name, _ in win.calls]
    assert names.index("FSCTL_SET_SPARSE") < names.index("SetFileInformationByHandle")
    assert ("SetFileInformationByHandle", 1 * TiB) in win.calls
    assert st.st_blocks * 512 < MiB


def test_without_the_sparse_mark_the_stand_in_sees_the_zero_fill(
    win: FakeKernel32, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The check above can fail: drop the mark and NTFS's zero fill is recorded."""
    monkeypatch.setattr(windows, "make_sparse", lambda fd: False)
    fd = _new(tmp_path / "out.raw")
    try:
        platform.set_size(fd, 8 * GiB)
    finally:
        os.close(fd)
    assert win.zero_filled == [(0, 8 * GiB)]


def test_a_volume_without_sparse_files_still_gets_its_size(win: FakeKernel32, tmp_path: Path):
    win.refuse.add(windows.FSCTL_SET_SPARSE)
    fd = _new(tmp_path / "out.raw")
    try:
        assert platform.make_sparse(fd) is False
        platform.set_size(fd, 3 * MiB)
        assert os.fstat(fd).st_size == 3 * MiB
    finally:
        os.close(fd)


def test_punch_on_windows_asks_for_the_exact_range(win: FakeKernel32, tmp_path: Path):
    path = tmp_path / "out.raw"
    path.write_bytes(b"\xaa" * (3 * MiB))
    fd = os.open(path, os.O_RDWR)
    try:
        platform.punch(fd, MiB, MiB)
    finally:
        os.close(fd)
    assert ("FSCTL_SET_ZERO_DATA", (MiB, 2 * MiB)) in win.calls
    names = [name for name, _ in win.calls]
    assert names.index("FSCTL_SET_SPARSE") < names.index("FSCTL_SET_ZERO_DATA")
    data = path.read_bytes()
    assert data[:MiB] == b"\xaa" * MiB and data[MiB : 2 * MiB] == bytes(MiB)
    assert data[2 * MiB :] == b"\xaa" * MiB


def test_allocated_ranges_are_read_page_by_page(
    win: FakeKernel32, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(windows, "RANGES_PER_CALL", 2)
    path = tmp_path / "src.vhdx"
    declared = [(i * 10 * MiB, i * 10 * MiB + MiB) for i in range(5)]
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    win.declare(path, declared)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert platform.data_ranges(fd, 64 * MiB) == declared
        queries = sum(1 for name, _ in win.calls if name == "FSCTL_QUERY_ALLOCATED_RANGES")
        assert queries == 3  # 2 + 2 + 1 entries
        # Asked from inside a range: clipped to the question.
        assert platform.data_ranges(fd, 25 * MiB, start=MiB // 2) == [
            (MiB // 2, MiB),
            (10 * MiB, 11 * MiB),
            (20 * MiB, 21 * MiB),
        ]
    finally:
        os.close(fd)


@pytest.mark.parametrize("trouble", ["refused", "stalled", "out-of-order"])
def test_allocated_ranges_that_cannot_be_trusted_read_as_all_data(
    win: FakeKernel32, tmp_path: Path, trouble: str
):
    path = tmp_path / "src.vhdx"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
    if trouble == "refused":
        win.refuse.add(windows.FSCTL_QUERY_ALLOCATED_RANGES)
    elif trouble == "stalled":
        win.stall = True
    else:
        win.declare(path, [(4 * MiB, 5 * MiB), (MiB, 2 * MiB)])
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.monotonic()
        assert platform.data_ranges(fd, 8 * MiB) == [(0, 8 * MiB)]
        assert time.monotonic() - started < 5  # never loops
    finally:
        os.close(fd)


def test_the_seek_and_write_fallback_keeps_concurrent_writers_apart(
    win: FakeKernel32, tmp_path: Path
):
    """Windows has no pwrite: a seek and a write under the descriptor's lock. Eight threads
    writing interleaved blocks through one descriptor must each land where they aimed."""
    path = tmp_path / "out.bin"
    fd = _new(path)
    block = 4096

    def writer(k: int) -> None:
        for i in range(k, 512, 8):
            platform.pwrite_all(fd, bytes([i % 251]) * block, i * block)

    try:
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert len(data) == 512 * block
    for i in range(512):
        assert data[i * block : (i + 1) * block] == bytes([i % 251]) * block, i


# ---------------------------------------------------------------- every output stays sparse
def _small_big_disk(path: Path, size: int = 1 * TiB) -> dict[int, bytes]:
    from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

    rnd = __import__("random").Random(5)
    data = {0: rnd.randbytes(MiB), size // 2: rnd.randbytes(2 * MiB), size - MiB: b"\x5a" * MiB}
    write_vhdx(str(path), VhdxSpec(virtual_size=size, block_size=2 * MiB), data)
    return data


def test_writing_a_vhdx_on_windows_fills_nothing_with_zeros(win: FakeKernel32, tmp_path: Path):
    _small_big_disk(tmp_path / "big.vhdx")
    assert win.zero_filled == []
    assert "FSCTL_SET_SPARSE" in [name for name, _ in win.calls]


@pytest.mark.parametrize("fmt", ["raw", "vhdx"])
def test_merge_on_windows_writes_only_the_data(win: FakeKernel32, tmp_path: Path, fmt: str):
    from hvrescue.recover.api import merge_chain

    src = tmp_path / "big.vhdx"
    data = _small_big_disk(src)
    win.calls.clear()
    out = tmp_path / f"flat.{'raw' if fmt == 'raw' else 'vhdx'}"
    result = merge_chain(str(src), str(out), fmt)
    assert result.verified
    assert win.zero_filled == []
    st = os.stat(out)
    assert st.st_blocks * 512 < 64 * MiB  # 4 MiB of data in a 1 TiB disk
    if fmt == "raw":
        assert st.st_size == 1 * TiB
        assert ("SetFileInformationByHandle", 1 * TiB) in win.calls
        with open(out, "rb") as f:
            for offset, blob in data.items():
                f.seek(offset)
                assert f.read(len(blob)) == blob


def test_salvage_on_windows_grows_its_output_sparse(win: FakeKernel32, tmp_path: Path):
    from hvrescue.recover.api import salvage_chain

    src = tmp_path / "big.vhdx"
    data = _small_big_disk(src, 64 * GiB)
    win.calls.clear()
    out = tmp_path / "salvaged.raw"
    salvage_chain(str(src), str(out), str(tmp_path / "salvaged.map"))
    assert win.zero_filled == []
    assert os.stat(out).st_size == 64 * GiB
    with open(out, "rb") as f:
        for offset, blob in data.items():
            f.seek(offset)
            assert f.read(len(blob)) == blob


def test_preserve_on_windows_keeps_holes_and_counts_them(win: FakeKernel32, tmp_path: Path):
    from hvrescue.preserve.api import preserve_to

    src = tmp_path / "vm"
    src.mkdir()
    disk = src / "data.bin"  # a sparse file that is no disk: copied as it is
    parts = {0: os.urandom(MiB), 40 * MiB: os.urandom(3 * MiB)}
    with open(disk, "wb") as f:
        f.truncate(96 * MiB)
        for off, blob in parts.items():
            f.seek(off)
            f.write(blob)
    win.declare(disk, [(0, MiB), (40 * MiB, 43 * MiB)])
    result = preserve_to([str(src)], str(tmp_path / "dest"), allow_same_storage=True)
    (entry,) = result.manifest["files"]
    assert entry["holes"] == 96 * MiB - 4 * MiB
    expected = hashlib.sha256()
    with open(disk, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            expected.update(chunk)
    assert entry["sha256"] == expected.hexdigest()
    copy = tmp_path / "dest" / entry["path"]
    assert os.stat(copy).st_blocks * 512 < 16 * MiB
    assert win.zero_filled == []


# ---------------------------------------------------------------- the POSIX twin, for real
def test_a_64_tib_sparse_output_stays_small_on_disk_and_its_holes_are_found(tmp_path: Path):
    if not platform.sees_holes():
        pytest.skip("no SEEK_DATA/SEEK_HOLE here (the Windows simulation): holes are not seen")
    where = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    path = where / f"hvrescue-sparse-{os.getpid()}.raw"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        try:
            platform.set_size(fd, 64 * TiB)
        except OSError as exc:  # ext4 stops at 16 TiB
            pytest.skip(f"this file system holds no 64 TiB file: {exc}")
        platform.pwrite_all(fd, b"\x01" * MiB, 32 * TiB)
        platform.pwrite_all(fd, b"\x02" * 4096, 64 * TiB - 4096)
        st = os.fstat(fd)
        assert st.st_size == 64 * TiB
        assert st.st_blocks * 512 < 8 * MiB
        ranges = platform.data_ranges(fd, 64 * TiB)
        assert [lo for lo, _ in ranges] == [32 * TiB, 64 * TiB - 4096]
        assert ranges[0][1] >= 32 * TiB + MiB and ranges[-1][1] == 64 * TiB
        platform.punch(fd, 32 * TiB, MiB)
        assert os.pread(fd, 16, 32 * TiB) == bytes(16)
        assert [lo for lo, _ in platform.data_ranges(fd, 64 * TiB)] == [64 * TiB - 4096]
    finally:
        os.close(fd)
        path.unlink()


def test_punch_without_fallocate_writes_zeros(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(posix, "punch", lambda fd, offset, length: False)
    path = tmp_path / "f"
    path.write_bytes(b"\xff" * 10_000)
    fd = os.open(path, os.O_RDWR)
    try:
        platform.punch(fd, 100, 5_000)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\xff" * 100 + bytes(5_000) + b"\xff" * 4_900


def test_ranges_past_the_bound_count_as_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not posix.sees_holes():
        pytest.skip("no SEEK_DATA here")
    monkeypatch.setattr(posix, "MAX_RANGES", 2)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, 64 * MiB)
        for i in range(4):
            platform.pwrite_all(fd, b"x" * 4096, i * 16 * MiB)
        ranges = platform.data_ranges(fd, 64 * MiB)
    finally:
        os.close(fd)
    # Two ranges found, then the bound: the rest, holes and all, counts as data.
    assert ranges == [(0, 4096), (16 * MiB, 16 * MiB + 4096), (16 * MiB + 4096, 64 * MiB)]


# ---------------------------------------------------------------- the interface language
@pytest.fixture
def no_language_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HVRESCUE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)


def test_japanese_windows_speaks_japanese(win: FakeKernel32, no_language_env: None):
    win.langid = 0x0411
    assert detect_language() == "ja"
    win.langid = 0x0409
    assert detect_language() == "en"
    win.langid = 0x0407  # German: no catalogue, English
    assert detect_language() == "en"


def test_the_windows_language_comes_before_lang_and_after_the_explicit_choices(
    win: FakeKernel32, no_language_env: None, monkeypatch: pytest.MonkeyPatch
):
    win.langid = 0x0411
    monkeypatch.setenv("LANG", "en_US.UTF-8")  # set by Git Bash or an SSH client
    assert detect_language() == "ja"
    assert detect_language("en") == "en"
    monkeypatch.setenv("HVRESCUE_LANG", "en")
    win.calls.clear()
    assert detect_language() == "en"
    assert win.calls == []  # not even asked


def test_off_windows_the_interface_language_is_never_asked(
    no_language_env: None, monkeypatch: pytest.MonkeyPatch
):
    def refuse() -> windows.Kernel32:
        raise AssertionError("kernel32 asked off Windows")

    monkeypatch.setattr(platform, "on_windows", lambda: False)
    monkeypatch.setattr(windows, "kernel32", refuse)
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    assert detect_language() == "ja"


def test_a_windows_without_the_call_falls_back(win: FakeKernel32, no_language_env: None):
    def broken() -> int:
        raise OSError("GetUserDefaultUILanguage not found")

    win.GetUserDefaultUILanguage = broken  # type: ignore[method-assign]
    assert detect_language() == "en"


# ---------------------------------------------------------------- UTF-8 JSON, safe text
def _hvrescue(*args: str, encoding: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    for name in ("HVRESCUE_LANG", "LC_ALL", "LANG"):
        env.pop(name, None)
    env["PYTHONIOENCODING"] = encoding
    return subprocess.run(
        [sys.executable, "-m", "hvrescue", *args],
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_json_is_utf8_whatever_the_console_code_page(tmp_path: Path, encoding: str):
    proc = _hvrescue(
        "--lang",
        "ja",
        "explain",
        "vhdx.log.replay-needed",
        "--json",
        encoding=encoding,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.decode("utf-8"))  # strict: not cp932, not cp1252
    assert data["meaning"] == _ja_template("vhdx.log.replay-needed")
    assert "–" in data["meaning"]  # an en dash: neither code page can hold it with the kana
    out = tmp_path / "explained.json"
    proc = _hvrescue(
        "--lang",
        "ja",
        "explain",
        "vhdx.log.replay-needed",
        "--json",
        "-o",
        str(out),
        encoding=encoding,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_bytes().decode("utf-8"))["meaning"] == data["meaning"]


def _ja_template(key: str) -> str:
    from hvrescue.report.i18n import Messages

    return Messages("ja").template(key)


@pytest.mark.parametrize(("encoding", "lang"), [("cp932", "en"), ("cp1252", "ja"), ("ascii", "ja")])
def test_human_text_replaces_what_the_console_cannot_show(tmp_path: Path, encoding: str, lang: str):
    proc = _hvrescue(
        "--lang", lang, "explain", "vhdx.log.replay-needed", encoding=encoding, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"UnicodeEncodeError" not in proc.stderr
    text = proc.stdout.decode(encoding, errors="strict")  # all of it in the console's code page
    assert "vhdx.log.replay-needed" in text and "?" in text


def test_json_lines_through_a_cp1252_stream_are_utf8(monkeypatch: pytest.MonkeyPatch):
    from hvrescue.cli.output import emit_json, stdout_binary
    from hvrescue.report.records import write_jsonl

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    record = {"message": catalogue("ja")["ui.preserve.interrupted"], "arrow": "leaf → base"}
    with stdout_binary() as out:
        write_jsonl([record, record], out)
    emit_json(record)
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines[:2]] == [record, record]
    assert json.loads("\n".join(lines[2:])) == record


# ---------------------------------------------------------------- Ctrl-C during preserve
@pytest.mark.skipif(
    sys.platform == "win32",
    reason="SIGINT to a child is POSIX; CI on Windows covers the loop by the unit test below",
)
def test_ctrl_c_stops_preserve_at_once_and_resume_completes_it(tmp_path: Path):
    src = tmp_path / "vm"
    src.mkdir()
    disk = src / "big.bin"
    head = os.urandom(MiB)
    with open(disk, "wb") as f:
        f.write(head)
        f.truncate(2 * GiB)  # hashing 2 GiB of zeros takes seconds: time to interrupt
    dest = tmp_path / "dest"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [
        sys.executable,
        "-m",
        "hvrescue",
        "preserve",
        str(src),
        str(dest),
        "--allow-same-storage",
        "--json",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if dest.is_dir() and any(p.is_file() for p in dest.rglob("big.bin")):
            break  # the copy has begun
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 2.5, f"Ctrl-C took {took:.1f} s"
    assert not (dest / "manifest.json").exists()
    done = subprocess.run([*argv, "--resume"], capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = manifest["files"]
    expected = hashlib.sha256(head)
    zeros = bytes(4 * MiB)
    left = 2 * GiB - MiB
    while left:
        n = min(left, len(zeros))
        expected.update(zeros[:n])
        left -= n
    assert entry["sha256"] == expected.hexdigest()
    assert (dest / entry["path"]).stat().st_size == 2 * GiB


def test_waiting_for_copies_never_blocks_without_a_timeout(monkeypatch: pytest.MonkeyPatch):
    """The main thread waits in short slices (Windows delivers Ctrl-C only between them before
    Python 3.14): a wait longer than the slice is never asked for."""
    import concurrent.futures as cf

    from hvrescue.preserve import run

    asked: list[float | None] = []
    real = cf.wait

    def wait(fs: Any, timeout: float | None = None, return_when: str = cf.ALL_COMPLETED) -> Any:
        asked.append(timeout)
        return real(fs, timeout=timeout, return_when=return_when)

    monkeypatch.setattr(run, "wait", wait)
    with cf.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(time.sleep, 0.5), pool.submit(time.sleep, 0.1)]
        run._wait_all(futures)
    assert asked and all(t is not None and t <= 0.5 for t in asked)
    assert len(asked) >= 2  # it came back and waited again


# ---------------------------------------------------------------- shadow copies
FIXTURES = Path(__file__).parent / "fixtures" / "platform"


class StandInCommands:
    """The process boundary of ``preserve --snapshot``: replays recorded outputs per program."""

    def __init__(self, answers: dict[str, list[tuple[int, str]]]) -> None:
        self.answers = answers
        self.ran: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str]:
        self.ran.append(argv)
        key = argv[0] if argv[0] != "vssadmin" else f"vssadmin {argv[1]}"
        assert timeout > 0
        return self.answers[key].pop(0)


def _fixture(name: str) -> str:
    raw = (FIXTURES / name).read_bytes()
    return raw.decode("utf-8", errors="replace")


@pytest.fixture
def shadow_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A "D:" volume (a folder) holding a VM, its shadow copy device mapped to another folder
    with the frozen content (different from the live files, as a running VM changes them)."""
    from hvrescue.preserve import snapshot

    volume = tmp_path / "D"
    vm = volume / "Hyper-V" / "VM1"
    vm.mkdir(parents=True)
    (vm / "disk.bin").write_bytes(b"live, changing" * 1000)
    frozen = tmp_path / "shadow" / "Hyper-V" / "VM1"
    frozen.mkdir(parents=True)
    (frozen / "disk.bin").write_bytes(b"frozen at the snapshot" * 1000)
    monkeypatch.setattr(snapshot, "supported", lambda: True)

    def volume_of(path: str) -> tuple[str, str]:
        rel = Path(path).relative_to(volume)
        return "D:\\", str(rel)

    monkeypatch.setattr(snapshot, "volume_of", volume_of)
    monkeypatch.setattr(snapshot, "reading_root", lambda device: str(tmp_path / "shadow") + os.sep)
    return {"vm": vm, "frozen": frozen, "tmp": tmp_path, "snapshot": snapshot}


def test_snapshot_reads_the_frozen_copy_and_deletes_it(
    shadow_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    from hvrescue.preserve.run import Options, preserve

    snapshot = shadow_world["snapshot"]
    commands = StandInCommands(
        {
            "powershell.exe": [(0, _fixture("powershell-wmi-create.txt"))],
            "vssadmin delete": [(0, _fixture("vssadmin-delete-shadows.txt"))],
        }
    )
    monkeypatch.setattr(snapshot, "run_command", commands)
    dest = shadow_world["tmp"] / "dest"
    vm = shadow_world["vm"]
    outcome = preserve(
        [str(vm)], str(dest), Options(allow_same_storage=True, snapshot=True), ["test"]
    )
    (entry,) = outcome.manifest["files"]
    copied = (dest / entry["path"]).read_bytes()
    assert copied == (shadow_world["frozen"] / "disk.bin").read_bytes()
    assert entry["sha256"] == hashlib.sha256(copied).hexdigest()
    assert entry["source"] == "D:\\" + str(Path("Hyper-V") / "VM1" / "disk.bin")
    assert entry["read_from"].startswith(str(shadow_world["tmp"] / "shadow"))
    (shadow,) = outcome.manifest["snapshots"]
    assert shadow["id"] == "{7c0e3b52-91d4-4a6f-b8e2-5f1a9c3d6e04}"
    assert shadow["device"] == "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy9"
    assert shadow["volume"] == "D:\\" and shadow["method"] == "wmi"
    assert shadow["created"] <= shadow["deleted"]
    create, delete = commands.ran
    assert create[0] == "powershell.exe" and "Win32_ShadowCopy" in create[-1]
    assert "'D:\\', 'ClientAccessible'" in create[-1]
    assert delete == [
        "vssadmin",
        "delete",
        "shadows",
        "/shadow={7c0e3b52-91d4-4a6f-b8e2-5f1a9c3d6e04}",
        "/quiet",
    ]
    assert "snapshot-not-deleted" not in outcome.manifest["warnings"]
    on_disk = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["snapshots"] == outcome.manifest["snapshots"]


def test_snapshot_falls_back_to_vssadmin_and_reads_a_japanese_answer(
    shadow_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    snapshot = shadow_world["snapshot"]
    commands = StandInCommands(
        {
            "powershell.exe": [(1, _fixture("powershell-wmi-create-denied.txt"))],
            "vssadmin create": [(0, _fixture("vssadmin-create-shadow-ja.cp932.txt"))],
            "vssadmin delete": [(0, "")],
        }
    )
    monkeypatch.setattr(snapshot, "run_command", commands)
    with snapshot.Snapshots() as snaps:
        read = snaps.take([str(shadow_world["vm"])])
        assert read == [str(shadow_world["tmp"] / "shadow") + os.sep + str(Path("Hyper-V/VM1"))]
        (shadow,) = snaps.shadows.values()
        assert shadow.id == "{9d2e61c4-7a0b-4f3e-8c52-1e6b0d9a4c73}"
        assert shadow.device.endswith("HarddiskVolumeShadowCopy3")
        assert shadow.method == "vssadmin"
    assert commands.ran[1] == ["vssadmin", "create", "shadow", "/for=D:"]
    assert commands.ran[-1][:3] == ["vssadmin", "delete", "shadows"]
    assert shadow.deleted_ns is not None


def test_a_failed_preserve_still_deletes_its_shadow_copy(
    shadow_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    from hvrescue.preserve.run import Options, preserve

    snapshot = shadow_world["snapshot"]
    commands = StandInCommands(
        {
            "powershell.exe": [(0, _fixture("powershell-wmi-create.txt"))],
            "vssadmin delete": [(0, _fixture("vssadmin-delete-shadows.txt"))],
        }
    )
    monkeypatch.setattr(snapshot, "run_command", commands)

    def interrupted(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        preserve(
            [str(shadow_world["vm"])],
            str(shadow_world["tmp"] / "dest"),
            Options(allow_same_storage=True, snapshot=True),
            ["test"],
            progress=interrupted,
        )
    assert [argv[:3] for argv in commands.ran] == [
        ["powershell.exe", "-NoProfile", "-NonInteractive"],
        ["vssadmin", "delete", "shadows"],
    ]


def test_no_shadow_copy_made_means_a_clear_error_and_nothing_to_delete(
    shadow_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    from hvrescue.errors import InputError

    snapshot = shadow_world["snapshot"]
    commands = StandInCommands(
        {
            "powershell.exe": [(1, _fixture("powershell-wmi-create-denied.txt"))],
            "vssadmin create": [(2, _fixture("vssadmin-create-shadow-client.txt"))],
        }
    )
    monkeypatch.setattr(snapshot, "run_command", commands)
    with pytest.raises(InputError) as caught, snapshot.Snapshots() as snaps:
        snaps.take([str(shadow_world["vm"])])
    assert caught.value.key == "error.snapshot.create"
    assert caught.value.params["volume"] == "D:\\"
    assert "Invalid command" in caught.value.params["reason"]
    assert all(argv[:2] != ["vssadmin", "delete"] for argv in commands.ran)


@pytest.mark.parametrize(
    "name", ["vssadmin-create-shadow-en.txt", "vssadmin-create-shadow-ja.cp932.txt"]
)
def test_the_answer_is_read_by_its_shape(name: str):
    from hvrescue.preserve import snapshot

    found = snapshot._parse(_fixture(name))
    assert found is not None
    assert found[1].startswith("\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy")


@pytest.mark.parametrize(
    "name", ["vssadmin-list-shadows-pasted.txt", "vssadmin-create-shadow-denied.txt"]
)
def test_an_answer_naming_several_or_no_shadow_copies_is_never_guessed(name: str):
    from hvrescue.preserve import snapshot

    assert snapshot._parse(_fixture(name)) is None


def test_snapshot_off_windows_is_a_clear_error(tmp_path: Path):
    from hvrescue.errors import InputError
    from hvrescue.preserve.run import Options, preserve

    if sys.platform == "win32":
        pytest.skip("on Windows --snapshot is available")
    (tmp_path / "vm").mkdir()
    with pytest.raises(InputError) as caught:
        preserve([str(tmp_path / "vm")], str(tmp_path / "d"), Options(snapshot=True), ["t"])
    assert caught.value.key == "error.snapshot.windows-only"
    assert not (tmp_path / "d").exists()


def test_windows_volumes_and_shares():
    from hvrescue.errors import InputError
    from hvrescue.preserve import snapshot

    assert snapshot.volume_of("d:\\Hyper-V\\VM1\\disk.vhdx") == ("D:\\", "Hyper-V\\VM1\\disk.vhdx")
    assert snapshot.reading_root("\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy3") == (
        "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy3\\"
    )
    with pytest.raises(InputError):
        snapshot.volume_of("\\\\filer\\vms\\disk.vhdx")


# ---------------------------------------------------------------- paths, times, mount
def test_long_paths_take_the_extended_form_on_windows(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(platform, "on_windows", lambda: True)
    deep = "C:\\out\\" + "\\".join(["x" * 60] * 5) + "\\file.txt"
    assert len(deep) > 300
    assert platform.long_path(deep) == "\\\\?\\" + deep
    assert platform.long_path("\\\\filer\\share\\a") == "\\\\?\\UNC\\filer\\share\\a"
    assert platform.long_path("\\\\?\\C:\\x") == "\\\\?\\C:\\x"
    assert platform.long_path("C:\\a\\..\\b") == "\\\\?\\C:\\b"  # made absolute, normalised
    assert platform.path_limit("C:\\") == 32_767


def test_file_times_without_follow_symlinks_use_the_path(tmp_path: Path, monkeypatch):
    """Windows has no utime(follow_symlinks=False) (cpython#90648): the path is used."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    calls: list[dict[str, Any]] = []
    real = os.utime

    def utime(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        if kwargs.get("follow_symlinks") is False:
            raise NotImplementedError("utime: follow_symlinks unavailable on this platform")
        real(*args, **kwargs)

    monkeypatch.setattr(os, "utime", utime)
    platform.set_times(
        str(path), 1_000_000_000_000_000_000, 1_300_000_000_123_456_789, follow_symlinks=False
    )
    assert os.stat(path).st_mtime_ns // 1000 == 1_300_000_000_123_456
    assert calls[-1].get("follow_symlinks", True) is True


def _fat_disk(folder: Path, deep: list[str], mtime: int) -> Path:
    """A VHDX (our writer) of an MBR disk with one FAT16 volume holding ``deep/file.txt``."""
    import shutil

    from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

    if not all(shutil.which(t) for t in ("mkfs.fat", "mmd", "mcopy", "sfdisk")):
        pytest.skip("needs dosfstools, mtools and fdisk")
    part = folder / "part.img"
    with open(part, "wb") as f:
        f.truncate(32 * MiB)
    subprocess.run(["mkfs.fat", "-F", "16", str(part)], check=True, capture_output=True)
    for i in range(1, len(deep) + 1):
        subprocess.run(
            ["mmd", "-i", str(part), "::/" + "/".join(deep[:i])], check=True, capture_output=True
        )
    src = folder / "file.txt"
    src.write_bytes(b"at the bottom of a long path\r\n")
    os.utime(src, ns=(mtime, mtime))
    subprocess.run(
        ["mcopy", "-m", "-i", str(part), str(src), "::/" + "/".join([*deep, "file.txt"])],
        check=True,
        capture_output=True,
        env=dict(os.environ, TZ="UTC"),
    )
    raw = folder / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(40 * MiB)
    subprocess.run(
        ["sfdisk", "-q", str(raw)],
        input=b"label: dos\nstart=2048, type=6\n",
        check=True,
        capture_output=True,
    )
    image = bytearray(raw.read_bytes())
    image[MiB : MiB + 32 * MiB] = part.read_bytes()
    data = {
        off: bytes(image[off : off + MiB])
        for off in range(0, len(image), MiB)
        if image[off : off + MiB].count(0) != MiB
    }
    disk = folder / "guest.vhdx"
    write_vhdx(str(disk), VhdxSpec(virtual_size=len(image), block_size=MiB), data)
    return disk


def test_extract_writes_a_300_character_path_and_keeps_its_time(tmp_path: Path):
    from hvrescue.fs.listing import extract_files

    deep = [c * 62 for c in "abcd"]
    mtime = 1_300_000_000 * 10**9  # 2011-03-13, FAT's two-second steps
    disk = _fat_disk(tmp_path, deep, mtime)
    out = tmp_path / ("o" * 20)
    result = extract_files(str(disk), ["/"], str(out))
    found = list(out.rglob("file.txt"))
    assert len(found) == 1, (result.skipped, result.files)
    assert len(str(found[0])) > 300
    assert found[0].read_bytes() == b"at the bottom of a long path\r\n"
    # Set from the guest's record, not left at the time of extraction.
    assert abs(found[0].stat().st_mtime_ns - mtime) < 2 * 10**9 + 86_400 * 10**9
    assert abs(found[0].stat().st_mtime - time.time()) > 365 * 86_400


def test_extract_creates_every_path_through_long_path(tmp_path: Path, monkeypatch):
    """On Windows every created path starts with the ``\\\\?\\`` root: here a marker root
    (``//`` is the same folder on POSIX) shows no path is made outside it."""
    from hvrescue.fs import extract as extract_mod
    from hvrescue.fs.listing import extract_files

    disk = _fat_disk(tmp_path, ["folder", "sub"], 1_300_000_000 * 10**9)
    monkeypatch.setattr(extract_mod, "long_path", lambda p: "//" + os.path.abspath(p).lstrip("/"))
    made: list[str] = []
    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path: Any, *a: Any, **k: Any) -> None:
        made.append(os.fspath(path))
        real_mkdir(path, *a, **k)

    def open_(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if flags & os.O_CREAT:
            made.append(os.fspath(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    out = tmp_path / "out"
    extract_files(str(disk), ["/"], str(out))
    inside = [p for p in made if str(out) in p or p.startswith("//")]
    assert len(inside) >= 4  # label folder, two folders, the file, the manifest
    assert all(p.startswith("//") for p in inside if p != str(out)), inside


def test_mount_without_winfsp_explains_winfsp_and_the_way_around(monkeypatch):
    from hvrescue.errors import InputError
    from hvrescue.fs import mount

    monkeypatch.setitem(sys.modules, "mfusepy", None)  # import fails as without WinFsp
    monkeypatch.setattr(mount, "on_windows", lambda: True)
    with pytest.raises(InputError) as caught:
        mount._fuse()
    assert caught.value.key == "error.mount.no-winfsp"
    for lang in ("en", "ja"):
        text = catalogue(lang)["error.mount.no-winfsp"]
        assert "winfsp.dev" in text and "hvrescue merge" in text
        assert "Mount-VHD -Path OUT.vhdx -ReadOnly" in text
    monkeypatch.setattr(mount, "on_windows", lambda: False)
    with pytest.raises(InputError) as caught:
        mount._fuse()
    assert caught.value.key == "error.mount.no-fuse"


def test_user_ids_on_windows_never_ask_for_posix_ids(monkeypatch: pytest.MonkeyPatch):
    def no(*a: Any) -> int:
        raise AssertionError("os.getuid called")

    monkeypatch.setattr(platform, "on_windows", lambda: True)
    monkeypatch.setattr(os, "getuid", no, raising=False)
    monkeypatch.setattr(os, "getgid", no, raising=False)
    assert platform.user_ids() == (0, 0)


# ---------------------------------------------------------------- the real thing, on Windows CI
@pytest.mark.skipif(sys.platform != "win32", reason="the real kernel32: Windows CI only")
def test_real_ntfs_keeps_a_large_output_sparse(tmp_path: Path):
    fd = _new(tmp_path / "out.raw")
    try:
        platform.set_size(fd, 1 * TiB)
        platform.pwrite_all(fd, b"\x01" * MiB, 512 * GiB)
        ranges = platform.data_ranges(fd, 1 * TiB)
    finally:
        os.close(fd)
    assert os.stat(tmp_path / "out.raw").st_size == 1 * TiB
    assert len(ranges) >= 1 and all(hi - lo < GiB for lo, hi in ranges)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_kill_process_group_ends_a_child_and_its_children():
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    platform.kill_process_group(proc.pid)
    assert proc.wait(timeout=10) != 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        stat = Path(f"/proc/{grandchild}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            break  # dead, waiting for an init that is slow to reap it
        time.sleep(0.05)
    else:
        raise AssertionError("the grandchild outlived its group")
