"""The read-only I/O layer: inputs opened read-only, read errors retried, recorded and survived."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hvrescue.cli.main import cli
from hvrescue.errors import InputError, UnreadableRangeError
from hvrescue.io import source as source_mod
from hvrescue.io.atomic import atomic_output
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.helpers import Evidence

MiB = 1024 * 1024


class FaultyDisk:
    """Make os.pread fail with EIO for one byte range of one file, counting attempts."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        path: Path,
        lo: int,
        hi: int,
        heal_after: int | None = None,
    ) -> None:
        self.ino = os.stat(path).st_ino
        self.lo, self.hi, self.heal_after = lo, hi, heal_after
        self.attempts = 0

        def failing(fd: int, n: int, off: int) -> bool:
            if os.fstat(fd).st_ino == self.ino and off < self.hi and off + n > self.lo:
                self.attempts += 1
                return self.heal_after is None or self.attempts <= self.heal_after
            return False

        if not hasattr(os, "pread"):  # Windows (or its simulation): seek and read
            real_read = os.read

            def read(fd: int, n: int) -> bytes:
                if failing(fd, n, os.lseek(fd, 0, os.SEEK_CUR)):
                    raise OSError(errno.EIO, "Input/output error")
                return real_read(fd, n)

            monkeypatch.setattr(source_mod.os, "read", read)
            return
        real = os.pread

        def pread(fd: int, n: int, off: int) -> bytes:
            if failing(fd, n, off):
                raise OSError(errno.EIO, "Input/output error")
            return real(fd, n, off)

        real_v = os.preadv

        def preadv(fd: int, buffers: list, off: int) -> int:
            if failing(fd, sum(len(b) for b in buffers), off):
                raise OSError(errno.EIO, "Input/output error")
            return real_v(fd, buffers, off)

        monkeypatch.setattr(source_mod.os, "pread", pread)
        monkeypatch.setattr(source_mod.os, "preadv", preadv)


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "d.vhdx"
    rnd = __import__("random").Random(1)
    write_vhdx(
        str(path), VhdxSpec(virtual_size=32 * MiB, block_size=MiB), {0: rnd.randbytes(4 * MiB)}
    )
    return path


def test_source_refuses_directories_and_missing(tmp_path: Path):
    with pytest.raises(InputError):
        ReadOnlySource(tmp_path)
    with pytest.raises(InputError):
        ReadOnlySource(tmp_path / "missing")


def test_source_is_opened_read_only(disk: Path):
    with ReadOnlySource(disk) as src, pytest.raises(OSError):
        os.write(src._fd, b"x")


def test_transient_error_is_retried_and_succeeds(monkeypatch, disk: Path):
    fault = FaultyDisk(monkeypatch, disk, 0, 16, heal_after=2)
    with ReadOnlySource(disk, retries=3) as src:
        assert src.read(0, 16) == disk.read_bytes()[:16]
        assert not src.bad_ranges
    assert fault.attempts == 3


def test_persistent_error_is_bounded_recorded_and_raised(monkeypatch, disk: Path):
    fault = FaultyDisk(monkeypatch, disk, 5 * MiB, 5 * MiB + 10)
    with ReadOnlySource(disk, retries=2) as src:
        with pytest.raises(UnreadableRangeError):
            src.read(5 * MiB - 100, 200)
        data = src.read(5 * MiB - 100_000, 300_000, tolerant=True)
        assert len(data) == 300_000
        # Only the failing granule is lost; the data around it survives.
        assert data[: 100_000 - 65536] == disk.read_bytes()[5 * MiB - 100_000 : 5 * MiB - 65536]
        assert src.bad_ranges and src.bad_ranges[0].errno == errno.EIO
    assert fault.attempts < 50


def test_hash_survives_a_bad_range_and_says_so(monkeypatch, disk: Path):
    snap = Evidence([disk])
    # Payload blocks start after the 1 MiB BAT region at 3 MiB: damage the second block.
    FaultyDisk(monkeypatch, disk, 5 * MiB, 5 * MiB + 4096)
    result = CliRunner().invoke(cli, ["hash", "--json", str(disk)])
    assert result.exit_code == 1, result.output
    import json

    data = json.loads(result.output)
    assert data["complete"] is False
    assert data["unreadable"] and data["unreadable"][0]["offset"] == 5 * MiB
    clean = hashlib.sha256(disk.read_bytes()).hexdigest()
    assert data["sha256"] != clean
    snap.assert_untouched()


def test_deep_check_reports_read_errors(monkeypatch, disk: Path):
    FaultyDisk(monkeypatch, disk, 5 * MiB, 5 * MiB + 4096)
    result = CliRunner().invoke(cli, ["check", "--deep", "--json", str(disk)])
    import json

    data = json.loads(result.output)
    assert result.exit_code == 1
    assert any(f["code"] == "io.read-error" for f in data["findings"])


def test_structure_read_error_is_a_finding_not_a_crash(monkeypatch, disk: Path):
    FaultyDisk(monkeypatch, disk, 64 * 1024, 64 * 1024 + 10)  # header 1
    result = CliRunner().invoke(cli, ["check", "--json", str(disk)])
    import json

    data = json.loads(result.output)
    found = {f["code"] for f in data["findings"]}
    assert "io.read-error" in found and "vhdx.header.checksum" in found


def test_atomic_output_refuses_overwrite_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as fd:
        os.write(fd, b"abc")
    assert target.read_bytes() == b"abc"
    with pytest.raises(InputError), atomic_output(target) as fd:
        os.write(fd, b"zzz")
    assert target.read_bytes() == b"abc"
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "half.bin") as fd:
        os.write(fd, b"partial")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_positioned_reads_without_pread(monkeypatch, disk: Path):
    # Windows has no os.pread: the seek-and-read fallback must return the same bytes.
    monkeypatch.delattr(source_mod.os, "pread", raising=False)
    monkeypatch.delattr(source_mod.os, "preadv", raising=False)
    whole = disk.read_bytes()
    with ReadOnlySource(disk) as src:
        assert src.read(3 * MiB + 5, 1000) == whole[3 * MiB + 5 : 3 * MiB + 1005]
        assert src.read(len(whole) - 10, 100) == whole[-10:]
