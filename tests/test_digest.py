"""Digests in one pass (--hash sha256,blake3) for hash, preserve and verify; the read-ahead that
feeds them; in-kernel copies in preserve; the BAT scan that skips qemu's ZERO runs; a CLI that
starts without the engine. Oracles: hashlib and the blake3 package over the raw bytes, qemu-img's
own conversion to raw."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hvrescue.io import digest
from hvrescue.preserve.run import Options, preserve
from tests.builders import make_chain
from tests.helpers import run_cli

blake3 = pytest.importorskip("blake3")
MiB = 1 << 20
QEMU = shutil.which("qemu-img")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-img (qemu-utils) not installed")


def b3(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


# ---------------------------------------------------------------- io/digest
def test_algorithm_lists_are_split_deduplicated_and_unknown_names_refused():
    assert digest.parse_algorithms(["sha256,blake3", "BLAKE3", " md5 "]) == (
        "sha256",
        "blake3",
        "md5",
    )
    assert digest.parse_algorithms([]) == ("sha256",)
    assert digest.parse_algorithms(["sha3-256"]) == ("sha3_256",)
    with pytest.raises(digest.UnknownAlgorithmError) as err:
        digest.parse_algorithms(["sha256,crc32"])
    assert err.value.params["name"] == "crc32"


def test_segments_hash_as_the_bytes_they_describe_under_every_algorithm():
    data = os.urandom(5 * MiB + 123)
    # data, a hole, data across chunk borders, a tail of zeros
    segments = [(0, MiB + 7, True), (MiB + 7, 2 * MiB, False), (3 * MiB + 7, 2 * MiB + 116, True)]
    stream = bytearray(data[: MiB + 7]) + bytes(2 * MiB) + data[3 * MiB + 7 :]
    segments.append((len(stream), 3 * MiB, False))
    stream += bytes(3 * MiB)

    def fill(offset: int, view: memoryview) -> None:
        view[:] = data[offset : offset + len(view)]

    got = digest.digest_segments(segments, fill, ("sha256", "blake3", "md5"), chunk=MiB)
    assert got == {
        "sha256": hashlib.sha256(stream).hexdigest(),
        "blake3": b3(bytes(stream)),
        "md5": hashlib.md5(stream).hexdigest(),
    }


def test_read_ahead_stays_within_its_slots_and_stops_when_abandoned():
    calls: list[int] = []

    def fill(offset: int, view: memoryview) -> None:
        calls.append(offset)

    before = threading.active_count()
    pieces = digest.read_ahead([(0, 64 * MiB, True)], fill, chunk=MiB, depth=3)
    next(pieces)
    # The reader may be at most ``depth`` chunks ahead of the one being hashed.
    for _ in range(50):
        if len(calls) >= 3:
            break
        threading.Event().wait(0.01)
    assert len(calls) <= 3
    pieces.close()
    assert threading.active_count() == before
    assert len(calls) <= 4


def test_a_read_error_reaches_the_caller_and_the_reader_ends():
    def fill(offset: int, view: memoryview) -> None:
        if offset >= 2 * MiB:
            raise OSError(errno.EIO, "Input/output error")

    before = threading.active_count()
    with pytest.raises(OSError) as err:
        digest.digest_segments([(0, 8 * MiB, True)], fill, chunk=MiB)
    assert err.value.errno == errno.EIO
    assert threading.active_count() == before


# ---------------------------------------------------------------- hash
@needs_qemu
def test_hash_gives_several_digests_in_one_pass_equal_to_the_raw_content(tmp_path: Path):
    raw = tmp_path / "disk.raw"
    data = os.urandom(6 * MiB)
    with open(raw, "wb") as f:
        f.write(data)
        f.seek(40 * MiB)
        f.write(data[: MiB // 2])
        f.truncate(48 * MiB)
    disk = tmp_path / "disk.vhdx"
    subprocess.run([QEMU, "convert", "-O", "vhdx", str(raw), str(disk)], check=True)
    content = raw.read_bytes()
    r = run_cli("hash", disk, "--hash", "sha256,blake3", "--json")
    assert r.rc == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hashes"] == {"sha256": hashlib.sha256(content).hexdigest(), "blake3": b3(content)}
    assert out["sha256"] == hashlib.sha256(content).hexdigest()
    assert out["algorithms"] == ["sha256", "blake3"]
    # Only BLAKE3 asked for: no SHA-256 claimed.
    only = json.loads(run_cli("hash", disk, "--hash", "blake3", "--json").stdout)
    assert only["hashes"] == {"blake3": b3(content)} and "sha256" not in only
    text = run_cli("hash", disk, "--hash", "blake3").stdout
    assert b3(content) in text and "blake3" in text


def test_hash_through_a_chain_equals_libvhdi_reading_it(tmp_path: Path):
    pyvhdi = pytest.importorskip("pyvhdi")
    layers = make_chain(tmp_path / "chain", depth=3)
    files = []
    for path in reversed(layers):  # leaf first
        f = pyvhdi.file()
        f.open(str(path))
        files.append(f)
    for child, parent in itertools.pairwise(files):
        child.set_parent(parent)
    content = files[0].read_buffer_at_offset(files[0].get_media_size(), 0)
    for f in files:
        f.close()
    out = json.loads(run_cli("hash", layers[-1], "--hash", "blake3,sha256", "--json").stdout)
    assert out["hashes"] == {"blake3": b3(content), "sha256": hashlib.sha256(content).hexdigest()}


def test_an_unknown_algorithm_is_refused_before_anything_is_read(tmp_path: Path):
    disk = make_chain(tmp_path / "c", depth=1)[0]
    r = run_cli("hash", disk, "--hash", "sha256,whirlpool")
    assert r.rc == 2
    assert "whirlpool" in r.stderr and "blake3" in r.stderr
    ja = run_cli("--lang", "ja", "hash", disk, "--hash", "whirlpool")
    assert ja.rc == 2 and "whirlpool" in ja.stderr


# ---------------------------------------------------------------- preserve and verify
def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "ev"
    (src / "Virtual Hard Disks").mkdir(parents=True)
    (src / "Virtual Hard Disks" / "big.bin").write_bytes(os.urandom(9 * MiB + 5))
    with open(src / "Virtual Hard Disks" / "sparse.bin", "wb") as f:
        f.seek(20 * MiB)
        f.write(b"tail")
    (src / "notes.txt").write_text("small")
    return src


def test_preserve_records_blake3_beside_sha256_and_verify_checks_either(tmp_path: Path):
    src = _folder(tmp_path)
    dest = tmp_path / "copy"
    r = run_cli("preserve", src, dest, "--hash", "blake3", "--allow-same-storage", "--json")
    assert r.rc == 0, r.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["algorithms"] == ["sha256", "blake3"]
    for entry in manifest["files"]:
        original = (tmp_path / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(original).hexdigest()
        assert entry["blake3"] == b3(original)
        assert (dest / entry["path"]).read_bytes() == original
    header = (dest / "manifest.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.split(",")[6:8] == ["sha256", "blake3"]
    assert run_cli("verify", dest, "--hash", "blake3", evidence=[src]).rc == 0
    # A changed byte is found by BLAKE3 alone.
    victim = dest / "ev" / "Virtual Hard Disks" / "big.bin"
    with open(victim, "r+b") as f:
        f.seek(5 * MiB)
        byte = f.read(1)
        f.seek(5 * MiB)
        f.write(bytes([byte[0] ^ 1]))
    bad = run_cli("verify", dest, "--hash", "blake3", "--json", evidence=[src])
    assert bad.rc == 1
    statuses = {f["path"]: f["status"] for f in json.loads(bad.stdout)["files"]}
    assert statuses["ev/Virtual Hard Disks/big.bin"] == "mismatch"
    assert set(json.loads(bad.stdout)["files"][0]["expected"]) == {"blake3"}
    # An algorithm the manifest never recorded cannot vouch for anything: refused.
    none = run_cli("verify", dest, "--hash", "sha512", evidence=[src])
    assert none.rc == 2 and "sha512" in none.stderr


def test_verify_reads_a_manifest_written_before_algorithms_could_be_chosen(tmp_path: Path):
    src = _folder(tmp_path)
    dest = tmp_path / "copy"
    assert run_cli("preserve", src, dest, "--allow-same-storage", "--json").rc == 0
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["algorithms"]  # as the first manifests were
    path.write_text(json.dumps(manifest))
    r = run_cli("verify", dest, "--json", evidence=[src])
    assert r.rc == 0, r.stdout
    assert all(set(f["expected"]) == {"sha256"} for f in json.loads(r.stdout)["files"])


def _copy_file_range_spy(monkeypatch: pytest.MonkeyPatch, behaviour: str) -> list[int]:
    """Stand in for the kernel's copy_file_range (an OS boundary): ``real`` copies (through
    pread/pwrite where the OS has no such call), ``refuse`` says EXDEV, ``half`` copies the
    first half of a request and then fails with EIO."""
    calls: list[int] = []

    def fake(src: int, dst: int, count: int, offset_src: int, offset_dst: int) -> int:
        calls.append(count)
        if behaviour == "refuse":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        if behaviour == "half" and len(calls) % 2 == 0:
            raise OSError(errno.EIO, "Input/output error")
        n = count // 2 if behaviour == "half" else count
        from hvrescue.platform import pread, pwrite_all

        data = pread(src, n, offset_src)
        pwrite_all(dst, data, offset_dst)
        return len(data)

    monkeypatch.setattr(os, "copy_file_range", fake, raising=False)
    monkeypatch.setattr("hvrescue.platform.on_windows", lambda: False)
    return calls


@pytest.mark.parametrize("behaviour", ["real", "refuse", "half"])
def test_kernel_copies_or_their_refusal_give_the_same_copy_and_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str
):
    if sys.platform == "win32" or not hasattr(os, "pread"):
        pytest.skip("the kernel copy is a POSIX path; Windows copies through buffers")
    calls = _copy_file_range_spy(monkeypatch, behaviour)
    src = _folder(tmp_path)
    dest = tmp_path / "copy"
    outcome = preserve([str(src)], str(dest), Options(allow_same_storage=True, jobs=1), ["t"])
    assert outcome.complete
    for entry in outcome.manifest["files"]:
        original = (tmp_path / entry["path"]).read_bytes()
        assert (dest / entry["path"]).read_bytes() == original
        assert entry["sha256"] == hashlib.sha256(original).hexdigest()
    assert calls, "the kernel copy was not tried"
    if behaviour == "refuse":
        # Refused once per file, then that file goes through the buffers.
        assert len(calls) <= len(outcome.manifest["files"])
    # Holes stay holes: the 20 MiB sparse file allocates next to nothing.
    sparse = dest / "ev" / "Virtual Hard Disks" / "sparse.bin"
    if hasattr(os.stat(sparse), "st_blocks"):
        assert os.stat(sparse).st_blocks * 512 < 4 * MiB


# ---------------------------------------------------------------- check of qemu's sparse VHDX
@needs_qemu
@pytest.mark.parametrize("size", ["64T", "3073M"])
def test_bat_scan_skips_qemu_zero_runs_without_changing_what_it_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: str
):
    from hvrescue.vdisk.check import check_file
    from hvrescue.vdisk.detect import open_image
    from hvrescue.vdisk.vhdx import bat

    disk = tmp_path / "q.vhdx"
    subprocess.run([QEMU, "create", "-q", "-f", "vhdx", str(disk), size], check=True)
    if size != "64T":  # some data among the ZERO blocks, written by qemu-io
        qemu_io = shutil.which("qemu-io")
        if qemu_io:
            subprocess.run(
                [qemu_io, "-f", "vhdx", "-c", "write -P 0x5a 1G 3M", str(disk)],
                check=True,
                capture_output=True,
            )

    def seen() -> tuple[object, ...]:
        img = open_image(str(disk))
        result = check_file(str(disk))
        codes = sorted((f.rc, f.offset) for f in result.findings)
        return img.bat_counts, list(img.allocated()), list(img.suspect()), result.status, codes

    fast = seen()
    monkeypatch.setattr(bat, "all_zeroed", lambda *a: False)
    import hvrescue.vdisk.vhdx.image as image_mod

    monkeypatch.setattr(image_mod, "all_zeroed", lambda *a: False)
    slow = seen()
    assert fast == slow
    counts = fast[0]
    assert isinstance(counts, dict) and counts.get("zero", 0) > 0


# ---------------------------------------------------------------- start-up
def test_the_cli_starts_without_the_engine():
    code = "import sys, hvrescue.cli.main\nprint('\\n'.join(sorted(m for m in sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    heavy = {
        "hvrescue.vdisk",
        "hvrescue.diagnose",
        "hvrescue.evidence",
        "hvrescue.fs",
        "hvrescue.logs",
        "hvrescue.preserve.copy",
        "hvrescue.recover",
        "sqlite3",
        "yaml",
    }
    assert not heavy & loaded, sorted(heavy & loaded)
    # and every command is still there
    r = run_cli("--help")
    for name in ("check", "hash", "preserve", "verify", "triage", "explain", "merge", "ls"):
        assert name in r.stdout
