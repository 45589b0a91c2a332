"""merge's output reaches the device while it is written (issue 18 part 2), and keeps its
guarantee: it is flushed before it gets its name, and a failed writeback or flush is a failure
of the output (a message from the catalogues, nothing left under the name).

The doubles stand at the OS boundary only: ``os.fsync``, ``os.link``, the writes, and libc's
``sync_file_range`` (wrapped to record its calls, or made to fail as a failing device would).
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hvrescue.errors import OutputError
from hvrescue.platform import writeback
from hvrescue.recover import merge_pipe
from hvrescue.recover.digest import nonzero_units
from hvrescue.recover.merge import chain_digest, merge
from hvrescue.recover.merge_pipe import Chunk, Pipeline, nonzero_runs
from hvrescue.report.i18n import Messages
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx

MiB = 1024 * 1024
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sync_file_range is Linux's"
)


def _source(tmp_path: Path, data_mib: int = 96, seed: int = 1) -> Path:
    """A VHDX holding ``data_mib`` MiB of random data, a 1 MiB extent every 2 MiB."""
    rnd = random.Random(seed)
    size = 2 * data_mib * MiB
    src = tmp_path / "src.vhdx"
    data = {off: rnd.randbytes(MiB) for off in range(0, size, 2 * MiB)}
    write_vhdx(str(src), VhdxSpec(virtual_size=size, block_size=8 * MiB), data)
    return src


def _ino(fd: int) -> int:
    return os.fstat(fd).st_ino


class Journal:
    """What reached the OS, in order: writes, writebacks and fsyncs per inode, names given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int, int, int]] = []
        real_sfr = writeback._libc_sync_file_range()
        real_fsync, real_link, real_write = os.fsync, os.link, os.write
        real_pwrite = getattr(os, "pwrite", None)

        def sfr(fd: int, offset: int, length: int, flags: int) -> int:
            self.events.append(("writeback", _ino(fd), offset, length))
            return real_sfr(fd, offset, length, flags) if real_sfr is not None else 0

        def fsync(fd: int) -> None:
            self.events.append(("fsync", _ino(fd), 0, 0))
            real_fsync(fd)

        def link(src: str, dst: str, **kw: object) -> None:
            real_link(src, dst, **kw)  # type: ignore[arg-type]
            self.events.append(("name", os.stat(dst).st_ino, 0, 0))

        def write(fd: int, data: bytes) -> int:
            n = real_write(fd, data)
            self.events.append(("write", _ino(fd), -1, n))
            return n

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            assert real_pwrite is not None
            n = int(real_pwrite(fd, data, offset))
            self.events.append(("write", _ino(fd), offset, n))
            return n

        monkeypatch.setattr(writeback, "_missing", [])
        monkeypatch.setattr(writeback, "_libc_sync_file_range", lambda: sfr)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(os, "write", write)
        if real_pwrite is not None:
            monkeypatch.setattr(os, "pwrite", pwrite)

    def of(self, ino: int) -> list[tuple[str, int, int]]:
        return [(kind, off, n) for kind, i, off, n in self.events if i == ino]


def _failing_sfr(code: int) -> Callable[[int, int, int, int], int]:
    def sfr(fd: int, offset: int, length: int, flags: int) -> int:
        ctypes.set_errno(code)  # what libc leaves for the caller when the call fails
        return -1

    return sfr


@pytest.mark.parametrize("verify", [True, False])
def test_output_is_written_back_during_the_merge_and_fsynced_before_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    src = _source(tmp_path)
    journal = Journal(monkeypatch)
    out = tmp_path / "m.vhdx"
    result = merge(str(src), str(out), verify=verify)
    assert result.status == ("verified" if verify else "unverified")
    seen = journal.of(out.stat().st_ino)
    kinds = [kind for kind, _off, _n in seen]
    assert kinds.count("name") == 1 and kinds[-1] == "name"
    last_write = max(i for i, k in enumerate(kinds) if k == "write")
    fsyncs = [i for i, k in enumerate(kinds) if k == "fsync"]
    # The guarantee: flushed after the last byte was written, before the name was given.
    assert fsyncs and last_write < fsyncs[-1] < len(kinds) - 1
    # Writeback started while the writing went on (96 MiB written, a range every 32 MiB).
    backs = [i for i, k in enumerate(kinds) if k == "writeback"]
    assert len(backs) >= 3 and backs[0] < last_write
    # No fsync while writing: the ranges' writeback replaces the periodic flushes.
    assert fsyncs == [fsyncs[-1]]
    assert chain_digest(str(out)) == chain_digest(str(src))


def test_the_ranges_written_back_cover_every_byte_the_pipeline_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(monkeypatch)
    monkeypatch.setattr(merge_pipe, "WRITEBACK_EVERY", 3 * MiB)
    rnd = random.Random(5)
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        pipe = Pipeline(fd, 4 * MiB, None, None)
        for i in range(12):
            buffer = pipe.buffer()
            # Some units left zero: they are not written, so need no writeback either.
            for u in range(4):
                unit = rnd.randbytes(MiB) if rnd.random() < 0.7 else bytes(MiB)
                buffer[u * MiB : (u + 1) * MiB] = unit
            flags = nonzero_units(buffer, 4 * MiB)
            item = Chunk(i * 4 * MiB, buffer, 4 * MiB, flags)
            at = (11 - i) * 4 * MiB if i % 5 == 4 else i * 4 * MiB  # not always ascending
            item.places = [(at + s, s, n) for s, n in nonzero_runs(flags, 4 * MiB)]
            pipe.submit(item)
        pipe.finish()
        ino = _ino(fd)
    finally:
        os.close(fd)
    seen = journal.of(ino)
    written = [(off, off + n) for kind, off, n in seen if kind == "write"]
    backs = [(off, off + n) for kind, off, n in seen if kind == "writeback"]
    assert written and len(backs) >= 4
    for lo, hi in written:
        assert any(a <= lo and hi <= b for a, b in backs), (lo, hi)
    # Each range is handed over after its bytes were written, never before.
    kinds = [kind for kind, _o, _n in seen]
    assert kinds[-1] == "writeback"


@pytest.mark.parametrize("verify", [True, False])
def test_a_failed_writeback_is_an_output_error_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    src = _source(tmp_path, data_mib=64)
    monkeypatch.setattr(writeback, "_missing", [])
    monkeypatch.setattr(writeback, "_libc_sync_file_range", lambda: _failing_sfr(errno.EIO))
    with pytest.raises(OutputError) as failed:
        merge(str(src), str(tmp_path / "m.vhdx"), verify=verify)
    assert failed.value.key == "error.output.flush"
    assert failed.value.params["errno"] == "EIO"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.vhdx"]
    for lang in ("en", "ja"):
        assert Messages(lang).has(failed.value.key)
        text = Messages(lang)(failed.value.key, **failed.value.params)
        assert str(tmp_path / "m.vhdx") in text and "EIO" in text


def test_a_writeback_that_finds_the_disk_full_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path, data_mib=64)
    monkeypatch.setattr(writeback, "_missing", [])
    monkeypatch.setattr(writeback, "_libc_sync_file_range", lambda: _failing_sfr(errno.ENOSPC))
    with pytest.raises(OutputError) as failed:
        merge(str(src), str(tmp_path / "m.vhdx"), verify=False)
    assert failed.value.key == "error.output.no-space"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.vhdx"]


def test_a_failed_final_flush_is_an_output_error_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path, data_mib=8)
    out = tmp_path / "m.vhdx"

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError) as failed:
        merge(str(src), str(out), verify=False)
    assert failed.value.key == "error.output.flush"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.vhdx"]


def test_where_ranges_cannot_be_written_back_the_file_is_fsynced_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel or sandbox without the call answers ENOSYS; Windows and macOS have none at all:
    # the flusher falls back to fsyncing the whole file every FLUSH_EVERY bytes.
    src = _source(tmp_path, data_mib=64)
    journal = Journal(monkeypatch)
    monkeypatch.setattr(writeback, "_libc_sync_file_range", lambda: _failing_sfr(errno.ENOSYS))
    monkeypatch.setattr(merge_pipe, "FLUSH_EVERY", 16 * MiB)
    out = tmp_path / "m.vhdx"
    result = merge(str(src), str(out), verify=False)
    assert result.status == "unverified"
    kinds = [kind for kind, _o, _n in journal.of(out.stat().st_ino)]
    last_write = max(i for i, k in enumerate(kinds) if k == "write")
    assert "writeback" not in kinds  # the failing calls were not recorded: never reached
    assert sum(1 for k in kinds[:last_write] if k == "fsync") >= 2
    assert kinds[-2:] == ["fsync", "name"]
    assert writeback._missing  # asked once, not per range
    assert chain_digest(str(out)) == chain_digest(str(src))


@linux_only
def test_start_writeback_reports_what_the_kernel_refuses(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(MiB))
    fd = os.open(path, os.O_RDWR)
    try:
        assert writeback.start_writeback(fd, 0, MiB) is True
        assert writeback.start_writeback(fd, 0, 0) is False  # nothing to write back
    finally:
        os.close(fd)
    with pytest.raises(OSError) as bad:
        writeback.start_writeback(fd, 0, MiB)  # closed: the kernel's EBADF, not swallowed
    assert bad.value.errno == errno.EBADF
    r, w = os.pipe()
    try:
        assert writeback.start_writeback(w, 0, MiB) is False  # ESPIPE: not for a pipe
        assert writeback.writes_back()  # a pipe says nothing about files
    finally:
        os.close(r)
        os.close(w)
