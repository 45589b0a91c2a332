"""Whether an XFS log needs recovery (fs.xfs_log), against ``xfs_logprint -t`` on filesystems the
kernel wrote: fresh, unmounted cleanly, shut down with changes in the log, and with logs that
went round their end; through `ls` (a note, exit 1) and `triage` (its own diagnosis, not the ext
rule's, which says the journal was replayed); damaged logs said as unreadable, never clean."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from hvrescue.fs.xfs_log import log_state
from tests.fs_linux_builders import have, loop_mount_works, run, to_vhdx
from tests.helpers import run_cli

# mkfs.xfs refuses logs under 64 MiB outside xfstests; these let it make a 6 MiB one, which a
# few thousand file operations take round its end.
SMALL_LOG_ENV = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}


class FileSource:
    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


def _churn(mnt: Path, count: int) -> None:
    """Creates, renames and removes: metadata the log records. A sync every hundred
    operations forces the log out, so the same count fills the log the same way whatever
    the machine's load (delayed logging would otherwise gather more into each write)."""
    (mnt / "d").mkdir()
    for i in range(count):
        if i % 100 == 0:
            os.sync()
        p = mnt / "d" / f"f{i:06d}"
        p.write_bytes(b"x" * (i % 300))
        if i % 3 == 0:
            p = p.rename(p.with_suffix(".r"))
        if i % 5 == 0:
            p.unlink()


def _make(folder: Path, name: str, ops: int, dirty: bool) -> Path:
    img, mnt = folder / f"{name}.raw", folder / f"{name}-mnt"
    with open(img, "wb") as f:
        f.truncate(300 << 20)
    env = dict(os.environ, **SMALL_LOG_ENV)
    import subprocess

    subprocess.run(
        ["mkfs.xfs", "-q", "-f", "-l", "size=6m", str(img)],
        check=True,
        env=env,
        capture_output=True,
    )
    if ops:
        mnt.mkdir()
        run("mount", "-o", "loop", img, mnt)
        try:
            _churn(mnt, ops)
            if dirty:
                run("xfs_io", "-x", "-c", "shutdown -f", mnt)
        finally:
            run("umount", mnt)
    return img


def _oracle(img: Path) -> dict[str, Any]:
    text = run("xfs_logprint", "-t", img, check=False).stdout
    m = re.search(r"log tail: (\d+) head: (\d+) state: <(\w+)>", text)
    assert m, text
    return {"tail": int(m[1]), "head": int(m[2]), "state": m[3].lower()}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not have("mkfs.xfs", "xfs_logprint", "xfs_io", "qemu-img"):
        pytest.skip("needs xfsprogs and qemu-utils (Debian)")
    folder = tmp_path_factory.mktemp("xfslog")
    if not loop_mount_works(folder):
        pytest.skip("loop mounts are not allowed here: the kernel must write the logs")
    specs = {
        "fresh": (0, False),
        "clean": (3000, False),
        "dirty": (3000, True),
        "clean-wrapped": (20000, False),
        "dirty-wrapped": (20000, True),
    }
    return {name: _make(folder, name, ops, dirty) for name, (ops, dirty) in specs.items()}


@pytest.mark.parametrize("name", ["fresh", "clean", "dirty", "clean-wrapped", "dirty-wrapped"])
def test_the_state_and_head_are_what_xfs_logprint_finds(images, name):
    img = images[name]
    oracle = _oracle(img)
    found = log_state(FileSource(img))
    assert found.state == oracle["state"]
    assert found.head == oracle["head"]
    if oracle["state"] == "dirty":
        assert found.tail == oracle["tail"]  # where recovery would start
    assert (found.note() is None) == (oracle["state"] == "clean")


def test_a_wrapped_log_was_really_wrapped(images):
    # the cases above would not test the search over a log written round its end otherwise:
    # its records carry cycle numbers past the first
    for name in ("dirty-wrapped", "clean-wrapped"):
        text = run("xfs_logprint", "-d", images[name], check=False).stdout  # every record
        cycles = {int(c) for c in re.findall(r"HEADER Cycle (\d+)", text)}
        assert cycles and max(cycles) > 1, (name, sorted(cycles))


def test_ls_and_triage_of_a_dirty_xfs(images, tmp_path: Path):
    oracle = _oracle(images["dirty"])
    disk = to_vhdx(images["dirty"], tmp_path / "dirty.vhdx")
    r = run_cli("ls", disk, "1:/", "--json")
    assert r.rc == 1, r.stderr  # the view is the state before recovery: not "all fine"
    assert [(n["key"], n["severity"], n["params"]) for n in r.json()["notes"]] == [
        ("ui.fs.xfs-log-dirty", "warning", {"head": oracle["head"], "tail": oracle["tail"]})
    ]
    text = run_cli("ls", disk, "1:/")
    assert "state before recovery" in " ".join(text.stderr.split())
    ja = run_cli("--lang", "ja", "ls", disk, "1:/")
    assert "復旧前の状態" in "".join(ja.stderr.split())
    report = run_cli("triage", disk, "--out", tmp_path / "report", "--json", evidence=[disk])
    assert report.rc in (0, 1), report.stderr
    ids = [d["id"] for d in report.json()["diagnoses"]]
    assert "linux.xfs-log-needs-recovery" in ids
    assert "linux.fs-needs-recovery" not in ids  # that rule says the journal was replayed
    found = next(d for d in report.json()["diagnoses"] if d["id"] == "linux.xfs-log-needs-recovery")
    assert found["severity"] == "warning"
    assert report.json()["verdict"] != "healthy"


def test_ls_and_triage_of_a_clean_xfs(images, tmp_path: Path):
    disk = to_vhdx(images["clean-wrapped"], tmp_path / "clean.vhdx")
    r = run_cli("ls", disk, "1:/d", "--json")
    assert r.rc == 0, r.stderr
    assert r.json()["notes"] == []
    report = run_cli("triage", disk, "--out", tmp_path / "report", "--json", evidence=[disk])
    ids = {d["id"] for d in report.json()["diagnoses"]}
    assert not ids & {"linux.xfs-log-needs-recovery", "linux.fs-needs-recovery"}


def _superblock(data: bytearray) -> tuple[int, int]:
    """(byte offset of the log, its length) from an XFS superblock."""
    bs = struct.unpack_from(">I", data, 4)[0]
    logstart = struct.unpack_from(">Q", data, 0x30)[0]
    agblocks = struct.unpack_from(">I", data, 0x54)[0]
    agblklog = data[0x7C]
    agno, agbno = logstart >> agblklog, logstart & ((1 << agblklog) - 1)
    return (agno * agblocks + agbno) * bs, struct.unpack_from(">I", data, 0x60)[0] * bs


class Patched(FileSource):
    def __init__(self, data: bytearray) -> None:
        self.data = bytes(data)


def test_damaged_logs_are_unreadable_or_external_never_clean(images):
    base = bytearray(images["clean"].read_bytes())
    start, length = _superblock(base)
    zeroed = bytearray(base)
    zeroed[start : start + length] = bytes(length)  # a log never written (or wiped)
    assert log_state(Patched(zeroed)).state == "unreadable"
    no_headers = bytearray(base)
    for at in range(start, start + length, 512):  # every block stamped, no record header
        no_headers[at : at + 4] = struct.pack(">I", 1)
    state = log_state(Patched(no_headers))
    assert state.state == "unreadable" and "no log record header" in (state.reason or "")
    outside = bytearray(base)
    struct.pack_into(">Q", outside, 0x30, 0xFFFFFFFFFFFF)  # the log starts past the last AG
    assert log_state(Patched(outside)).state == "unreadable"
    huge = bytearray(base)
    struct.pack_into(">I", huge, 0x60, 0xFFFFFFFF)  # a log larger than any XFS makes
    assert log_state(Patched(huge)).state == "unreadable"
    truncated = Patched(base[: start + length // 2])  # the image ends inside the log
    assert log_state(truncated).state == "unreadable"
    external = bytearray(base)
    struct.pack_into(">Q", external, 0x30, 0)
    ext = log_state(Patched(external))
    assert ext.state == "external" and ext.note() is not None
    assert log_state(Patched(bytearray(4096))).state == "unreadable"  # not XFS at all


def test_a_torn_last_record_moves_the_head_back(images, tmp_path: Path):
    """A record whose data did not all reach the disk is not part of the log: the head is its
    header, as the kernel decides (xlog_find_verify_log_record), and xfs_logprint agrees."""
    img = images["dirty"]
    oracle = _oracle(img)
    data = bytearray(img.read_bytes())
    start, _length = _superblock(data)
    head = oracle["head"]
    # the last block before the head goes back to the previous cycle: a torn write
    at = start + (head - 1) * 512
    cycle = struct.unpack_from(">I", data, at)[0]
    struct.pack_into(">I", data, at, cycle - 1)
    torn = tmp_path / "torn.raw"
    torn.write_bytes(bytes(data))
    shutil.copymode(img, torn)
    expected = _oracle(torn)
    found = log_state(FileSource(torn))
    assert (found.state, found.head) == (expected["state"], expected["head"])
    assert found.head < head
