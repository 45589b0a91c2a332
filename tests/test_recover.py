"""merge, replay-log, reparent, repair, salvage: through the CLI, checked by independent readers
(qemu-img, libvhdi-python, dissect.hypervisor), with the inputs proven untouched."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from hvrescue.recover.salvage import read_map
from hvrescue.recover.salvage import salvage as run_salvage
from hvrescue.vdisk.disk import Disk
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import make_chain, patch, read_at
from tests.helpers import run_cli
from tests.oracle import (
    dissect_sha256,
    pyvhdi_chain_sha256,
    pyvhdi_sha256,
    qemu_check,
    qemu_compare,
    qemu_img,
    qemu_sha256,
)
from tests.test_io import FaultyDisk

MiB = 1024 * 1024
GiB = 1024 * MiB


def content_sha256(leaf: Path, search: list[Path] | None = None) -> str:
    with Disk.open(str(leaf), [str(s) for s in search or []]) as disk:
        return disk.sha256()


# ---------------------------------------------------------------- merge
CORPUS_STANDALONE = [
    ("dissect-hypervisor/fixed.vhdx", "vhdx"),
    ("dissect-hypervisor/dynamic.vhdx", "vhdx"),
    ("dissect-hypervisor/fixed.vhd", "vpc"),
    ("dissect-hypervisor/dynamic.vhd", "vpc"),
    ("discutils/btrfs.vhdx", "vhdx"),
    ("discutils/lvm2.vhdx", "vhdx"),
    ("discutils/swap.vhdx", "vhdx"),
    ("qemu-iotests/iotest-dynamic-1G.vhdx", "vhdx"),
    ("qemu-iotests/test-disk2vhd.vhdx", "vhdx"),
    pytest.param("qemu-iotests/hyperv2012r2-dynamic.vhd", "vpc", marks=pytest.mark.slow),
    ("qemu-iotests/d2v-zerofilled.vhd", "vpc"),
    pytest.param("qemu-iotests/virtualpc-dynamic.vhd", "vpc", marks=pytest.mark.slow),
    ("dfvfs/ext2.vhd", "vpc"),
    ("dfvfs/image.vhd", "vpc"),
]


@pytest.mark.parametrize("rel,qemu_fmt", CORPUS_STANDALONE)
def test_merge_of_corpus_images_equals_the_source_in_qemu(
    corpus_dir: Path, tmp_path, rel, qemu_fmt
):
    src = corpus_dir / rel
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", src, out, "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    assert r.json()["verified"] is True
    check = qemu_check(out)
    assert check.returncode == 0, check.stdout + check.stderr
    cmp = qemu_compare(src, qemu_fmt, out, "vhdx")
    if cmp.returncode == 0:
        return
    # qemu cannot open some VHDs (dfvfs's image.vhd has a bad header checksum, say): then
    # libvhdi reads both, the source and our output.
    assert qemu_fmt == "vpc" and "Could not open" in cmp.stderr, cmp.stdout + cmp.stderr
    assert src.stat().st_size < 64 * MiB
    assert pyvhdi_sha256(out) == pyvhdi_sha256(src)


def test_merge_corpus_with_three_readers(corpus_dir: Path, tmp_path: Path):
    src = corpus_dir / "dissect-hypervisor/dynamic.vhdx"
    out = tmp_path / "merged.vhdx"
    assert run_cli("merge", src, out).rc == 0
    expected = content_sha256(src)
    assert pyvhdi_sha256(out) == expected
    assert dissect_sha256(out) == expected
    assert qemu_sha256(out, "vhdx", tmp_path) == expected


@pytest.mark.parametrize("depth,lss", [(2, 512), (3, 512), (3, 4096)])
def test_merge_of_vhdx_chains(tmp_path: Path, depth: int, lss: int):
    layers = make_chain(tmp_path / "vm", lss=lss, depth=depth)
    leaf = layers[-1]
    expected = pyvhdi_chain_sha256(list(reversed(layers)))
    assert content_sha256(leaf) == expected
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", leaf, out, "--json", evidence=[tmp_path / "vm"])
    assert r.rc == 0 and r.json()["verified"] is True
    assert r.json()["chain"] == [str(p) for p in reversed(layers)]
    assert pyvhdi_sha256(out) == expected
    assert dissect_sha256(out) == expected
    if lss == 512:  # qemu-img does not open VHDX with 4096-byte logical sectors at all
        assert qemu_sha256(out, "vhdx", tmp_path) == expected
        assert qemu_check(out).returncode == 0
    # The block size is the base's; every written block holds data (no empty block is stored).
    assert r.json()["block_size"] == 2 * MiB
    raw = tmp_path / "merged.raw"
    r = run_cli("merge", leaf, raw, "--format", "raw", "--json")
    assert r.rc == 0 and r.json()["verified"] is True
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == expected


def test_merge_of_a_vhd_chain(corpus_dir: Path, tmp_path: Path):
    folder = tmp_path / "vm"
    folder.mkdir()
    for name in ("image.vhd", "image-differential.vhd"):
        shutil.copyfile(corpus_dir / "dfvfs" / name, folder / name)
    leaf, base = folder / "image-differential.vhd", folder / "image.vhd"
    expected = pyvhdi_sha256(leaf, base)
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", leaf, out, "--json", evidence=[folder])
    assert r.rc == 0 and r.json()["verified"] is True
    assert pyvhdi_sha256(out) == expected == dissect_sha256(out)
    assert qemu_check(out).returncode == 0


def test_merge_cost_follows_the_data(tmp_path: Path):
    """A 64 TiB disk holding a few MiB merges to a small file without touching the rest."""
    src = tmp_path / "huge.vhdx"
    blocks = {0: b"\x11" * MiB, 40 * 2**40: b"\x22" * (3 * MiB), 64 * 2**40 - MiB: b"\x33" * MiB}
    write_vhdx(str(src), VhdxSpec(virtual_size=64 * 2**40, block_size=32 * MiB), blocks)
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", src, out, "--json")
    assert r.rc == 0, r.stderr
    data = r.json()
    assert data["verified"] and data["blocks_written"] == 3 and data["virtual_size"] == 64 * 2**40
    assert out.stat().st_blocks * 512 < 200 * MiB
    with Disk.open(str(out)) as disk:
        assert disk.read(40 * 2**40, 3 * MiB) == b"\x22" * (3 * MiB)
        assert disk.read(64 * 2**40 - MiB, MiB) == b"\x33" * MiB
        assert disk.read(2**40, MiB) == bytes(MiB)
    assert qemu_check(out).returncode == 0


def test_merge_refuses_an_incomplete_chain_and_never_overwrites(corpus_dir: Path, tmp_path: Path):
    orphan = corpus_dir / "dissect-hypervisor/differencing.avhdx"
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", orphan, out, "--json", evidence=[orphan])
    assert r.rc == 2 and r.json()["error"]["key"] == "error.merge.parent-missing"
    assert r.json()["error"]["params"]["parent"].endswith(
        "_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx"
    )
    assert not out.exists()
    out.write_bytes(b"keep")
    r = run_cli("merge", corpus_dir / "dissect-hypervisor/fixed.vhdx", out, "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.output.exists"
    assert out.read_bytes() == b"keep"


# ---------------------------------------------------------------- replay-log
@pytest.mark.parametrize(
    "rel,expected",
    [
        (
            "discutils/vhdx-log-replay.vhdx",
            "3ba3b309425b7ff5e8e0199edceed95226250f880c53b24e8eae93865f3fad5e",
        ),
        (
            "qemu-iotests/iotest-dirtylog-10G-4M.vhdx",
            "179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f",
        ),
    ],
)
def test_replay_log_of_the_dirty_corpus_images(corpus_dir: Path, tmp_path: Path, rel, expected):
    src = corpus_dir / rel
    out = tmp_path / "replayed.vhdx"
    r = run_cli("replay-log", src, out, "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    assert [c["code"] for c in r.json()["changes"]] == ["rewrite.log-applied"]
    # No active log is left: the header's log GUID is zero and nothing is pending.
    info = run_cli("info", out, "--json").json()
    assert not any(f["code"].startswith("vhdx.log") for f in info["findings"])
    for raw_offset in (64 * 1024, 128 * 1024):
        assert read_at(out, raw_offset + 48, 16) == bytes(16)
    # Other tools now read the replayed content: block for block what qemu's own replay of a
    # copy gives (`qemu-img check -r all`), whose hash the corpus table records.
    theirs = tmp_path / "qemu-replayed.vhdx"
    shutil.copyfile(src, theirs)
    subprocess.run([qemu_img(), "check", "-r", "all", str(theirs)], capture_output=True)
    cmp = qemu_compare(theirs, "vhdx", out, "vhdx")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert qemu_check(out).returncode == 0
    if src.stat().st_size < 2 * GiB and "10G" not in rel:
        assert qemu_sha256(out, "vhdx", tmp_path) == expected
        assert pyvhdi_sha256(out) == expected


def test_replay_log_of_a_dirty_differencing_disk(tmp_path: Path):
    base, _child = make_chain(tmp_path / "vm", depth=2)
    dirty = tmp_path / "vm" / "dirty.avhdx"
    rnd = __import__("random").Random(5)
    from hvrescue.vdisk.vhdx.writer import ParentSpec

    info = run_cli("info", base, "--json").json()
    parent_id = uuid.UUID(next(h for h in info["headers"] if h["current"])["data_write_guid"])
    write_vhdx(
        str(dirty),
        VhdxSpec(
            virtual_size=64 * MiB,
            parent=ParentSpec(parent_id, relative_path=".\\base.vhdx"),
            pending_log=True,
        ),
        {4 * MiB: rnd.randbytes(MiB)},
    )
    expected = content_sha256(dirty)
    out = tmp_path / "vm" / "clean.avhdx"
    assert run_cli("replay-log", dirty, out).rc == 0
    assert pyvhdi_sha256(out, base) == expected


# ---------------------------------------------------------------- reparent
def test_reparent_onto_a_moved_and_renamed_parent(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    expected = content_sha256(child)
    moved = tmp_path / "elsewhere" / "renamed-base.vhdx"
    moved.parent.mkdir()
    base.rename(moved)
    assert run_cli("check", child).rc == 1  # the parent is gone from where the child points
    out_dir = tmp_path / "fixed"
    out_dir.mkdir()
    out = out_dir / "child.avhdx"
    r = run_cli("reparent", child, "--parent", moved, out, "--json", evidence=[child, moved])
    assert r.rc == 0, r.stdout + r.stderr
    assert r.json()["parent_found"] == str(moved)
    assert run_cli("check", out).rc == 0
    assert pyvhdi_sha256(out, moved) == expected
    assert content_sha256(out) == expected
    locator = run_cli("info", out, "--json").json()["parent_locator"]["entries"]
    assert locator["relative_path"] == "..\\elsewhere\\renamed-base.vhdx"
    assert locator["absolute_win32_path"].endswith("\\renamed-base.vhdx")


def test_reparent_refuses_a_parent_of_another_identity(tmp_path: Path):
    _base, child = make_chain(tmp_path / "vm", depth=2)
    other, _ = make_chain(tmp_path / "other", depth=2, seed=9)
    out = tmp_path / "out.avhdx"
    r = run_cli("reparent", child, "--parent", other, out, "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.reparent.id-mismatch"
    assert not out.exists()
    r = run_cli("reparent", child, "--parent", other, out, "--ignore-id-mismatch", "--json")
    assert r.rc == 0 and r.json()["identity_ignored"] is True
    assert "valid only if" in r.json()["warnings"][0]
    info = run_cli("info", other, "--json").json()
    other_id = next(h for h in info["headers"] if h["current"])["data_write_guid"]
    locator = run_cli("info", out, "--json").json()["parent_locator"]["entries"]
    assert locator["parent_linkage"].lower() == other_id.lower()
    # A parent of another size is refused even then.
    small = tmp_path / "small.vhdx"
    write_vhdx(str(small), VhdxSpec(virtual_size=32 * MiB), {})
    r = run_cli("reparent", child, "--parent", small, tmp_path / "o2.avhdx", "--ignore-id-mismatch")
    assert r.rc == 2


# ---------------------------------------------------------------- repair
def test_repair_rebuilds_damaged_twins_and_extends_for_blocks_past_eof(tmp_path: Path):
    path = tmp_path / "d.vhdx"
    rnd = __import__("random").Random(2)
    write_vhdx(str(path), VhdxSpec(virtual_size=64 * MiB), {0: rnd.randbytes(8 * MiB)})
    expected = content_sha256(path)
    patch(path, 64 * 1024 + 100, b"\xff\xff")  # header 1: checksum breaks
    patch(path, 256 * 1024 + 40, b"\xee")  # region table 2
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 3 * MiB)  # the last blocks now lie past the end of the file
    damaged = content_sha256(path)
    out = tmp_path / "fixed.vhdx"
    # Room for the cut blocks would be zeros presented as data: refused unless allowed.
    refused = run_cli("repair", path, out, "--json", evidence=[path])
    assert refused.rc == 2 and refused.json()["error"]["key"] == "error.rewrite.undefined"
    assert not out.exists()
    r = run_cli("repair", path, out, "--allow-gaps", "--json", evidence=[path])
    assert r.rc == 1, r.stdout
    assert r.json()["status"] == "written-with-gaps"
    ranges = [line.split() for line in Path(r.json()["map"]).read_text().splitlines()]
    gaps = refused.json()["error"]["params"]["undefined"]
    assert [(int(w[0], 16), int(w[1], 16)) for w in ranges if len(w) == 3 and w[2] == "-"] == [
        (gaps[0]["offset"], sum(g["length"] for g in gaps))  # touching ranges, one map line
    ]
    codes = [c["code"] for c in r.json()["changes"]]
    assert "rewrite.header-rebuilt" in codes and "rewrite.region-table-rebuilt" in codes
    assert "rewrite.file-extended" in codes
    assert run_cli("check", out).rc == 0
    assert qemu_check(out).returncode == 0
    # The repaired disk reads exactly what the engine read from the damaged one.
    assert content_sha256(out) == damaged == pyvhdi_sha256(out)
    assert damaged != expected


def test_repair_of_a_vhd_footer(corpus_dir: Path, tmp_path: Path):
    src = tmp_path / "dynamic.vhd"
    shutil.copyfile(corpus_dir / "dissect-hypervisor/dynamic.vhd", src)
    expected = content_sha256(src)
    size = src.stat().st_size
    patch(src, size - 512 + 20, b"\x00\x00\x00\x07")  # footer: checksum now wrong
    out = tmp_path / "fixed.vhd"
    r = run_cli("repair", src, out, "--json")
    assert r.rc == 0, r.stdout
    assert "repair.vhd.footer-rewritten" in [c["code"] for c in r.json()["changes"]]
    assert run_cli("check", out).rc == 0
    assert pyvhdi_sha256(out) == expected
    # A file cut right after its last block gets the footer back after the data.
    cut = tmp_path / "cut.vhd"
    shutil.copyfile(corpus_dir / "dissect-hypervisor/dynamic.vhd", cut)
    raw = cut.read_bytes()
    data_offset = struct.unpack_from(">Q", raw, 16)[0]
    (table_offset,) = struct.unpack_from(">Q", raw, data_offset + 16)
    entries, block = struct.unpack_from(">II", raw, data_offset + 28)
    bat = struct.unpack_from(f">{entries}I", raw, table_offset)
    bitmap = -(-(block // 512 // 8) // 512) * 512
    last = max(e * 512 + bitmap + block for e in bat if e != 0xFFFFFFFF)
    assert last < size - 512
    with open(cut, "r+b") as f:
        f.truncate(last)
    out2 = tmp_path / "fixed2.vhd"
    r = run_cli("repair", cut, out2, "--json")
    assert r.rc == 0 and "repair.vhd.footer-appended" in [c["code"] for c in r.json()["changes"]]
    assert out2.stat().st_size == last + 512
    assert pyvhdi_sha256(out2) == expected


# ---------------------------------------------------------------- salvage
def test_salvage_with_read_errors_then_a_second_run_fills_them(tmp_path: Path, monkeypatch):
    _base, child = make_chain(tmp_path / "vm", depth=2, seed=3)
    expected = Disk.open(str(child)).read(0, 64 * MiB)
    # Which virtual range does file offset X of the child hold? Take the first data block.
    with Disk.open(str(child)) as disk:
        leaf = disk.layers[0]
        run = next(
            r for r in leaf.map(0, 64 * MiB) if r.kind.name == "DATA" and r.length >= 256 * 1024
        )
    granule = 65536  # the source layer reads in 64 KiB granules, then a failing one by sector
    aligned = -(-(run.file_offset + 1) // granule) * granule
    fault = FaultyDisk(monkeypatch, child, aligned + 100, aligned + 5100)
    out, mapfile = tmp_path / "out.raw", tmp_path / "out.map"
    result = run_salvage(str(child), str(out), str(mapfile), ["t"])
    assert fault.attempts > 0
    lo_v = run.offset + (aligned - run.file_offset)
    bad = 5120  # the 10 sectors holding the bad bytes, nothing more
    assert result.bad == [(lo_v, bad)]
    assert [g.cause for g in result.gaps] == ["read-error"]
    copy = out.read_bytes()
    assert copy[:lo_v] == expected[:lo_v] and copy[lo_v + bad :] == expected[lo_v + bad :]
    assert copy[lo_v : lo_v + bad] == bytes(bad)
    size, entries = read_map(str(mapfile))
    assert size == 64 * MiB
    assert [(p, n) for p, n, st in entries if st == "-"] == [(lo_v, bad)]
    # The fault is gone: the second run reads only the bad range and fills it.
    monkeypatch.undo()
    again = run_salvage(str(child), str(out), str(mapfile), ["t"])
    assert again.bad == [] and again.retried and again.recovered == bad
    assert out.read_bytes() == expected
    assert [st for _p, _n, st in read_map(str(mapfile))[1]] == ["+"]


def test_salvage_of_blocks_past_the_end_of_file_through_the_cli(tmp_path: Path):
    path = tmp_path / "d.vhdx"
    rnd = __import__("random").Random(4)
    data = {i * 2 * MiB: rnd.randbytes(2 * MiB) for i in range(6)}
    write_vhdx(str(path), VhdxSpec(virtual_size=32 * MiB, block_size=2 * MiB), data)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 3 * MiB)  # block 5 entirely, block 4 half
    out, mapfile = tmp_path / "o.raw", tmp_path / "o.map"
    r = run_cli("salvage", path, out, "--map", mapfile, "--json", evidence=[path])
    assert r.rc == 1
    assert r.json()["bad"] == [[8 * MiB + MiB, 3 * MiB]]
    content = out.read_bytes()
    assert content[: 9 * MiB] == b"".join(data[i * 2 * MiB] for i in range(5))[: 9 * MiB]
    assert content[9 * MiB : 12 * MiB] == bytes(3 * MiB)
    ddrescuelog = shutil.which("ddrescuelog")
    if ddrescuelog:  # GNU ddrescue's own tool reads our map
        proc = subprocess.run([ddrescuelog, "-t", str(mapfile)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "bad-sector" in proc.stdout or "bad areas" in proc.stdout
    # The same map again: still bad (the file is still short), the image is left as it was.
    r = run_cli("salvage", path, out, "--map", mapfile, "--json", evidence=[path])
    assert r.rc == 1 and r.json()["retried"] is True and r.json()["recovered_bytes"] == 0


def test_salvage_of_a_chain_whose_parent_is_gone(corpus_dir: Path, tmp_path: Path):
    orphan = corpus_dir / "dissect-hypervisor/differencing.avhdx"
    out, mapfile = tmp_path / "o.raw", tmp_path / "o.map"
    r = run_cli("salvage", orphan, out, "--map", mapfile, "--json", evidence=[orphan])
    assert r.rc == 1
    data = r.json()
    assert data["size"] == 8 * GiB
    # Everything the child does not hold itself is a gap; what it holds was read.
    with Disk.open(str(orphan), allow_incomplete=True) as disk:
        extents = list(disk.extents())
    held = sum(n for _o, n in extents)
    assert 0 < data["bad_bytes"] < 8 * GiB and data["bad_bytes"] >= 8 * GiB - held
    # Gaps stay holes: only the 4 MiB pieces holding the child's own data take space.
    chunk = 4 * MiB
    touched = {c for o, n in extents for c in range(o // chunk, (o + n - 1) // chunk + 1)}
    assert out.stat().st_blocks * 512 <= len(touched) * chunk + MiB  # + filesystem metadata


def test_recovery_commands_say_so_in_japanese(tmp_path: Path):
    _base, child = make_chain(tmp_path / "vm", depth=2)
    r = run_cli("--lang", "ja", "merge", child, tmp_path / "m.vhdx")
    assert r.rc == 0 and "検証済み" in r.stdout


def test_read_into_equals_read_everywhere(tmp_path: Path):
    """The buffer-reusing read path gives exactly what the plain one does, across runs, layers,
    holes and the end of the disk."""
    rnd = __import__("random").Random(8)
    layers = make_chain(tmp_path / "vm", depth=3)
    with Disk.open(str(layers[-1])) as disk:
        buf = bytearray(5 * MiB)
        for _ in range(200):
            n = rnd.choice([512, 4096, 65536, MiB, 3 * MiB + 512, 5 * MiB])
            off = rnd.randrange(0, disk.size) // 512 * 512
            got = disk.read_into(off, memoryview(buf)[:n])
            assert bytes(buf[:got]) == disk.read(off, n)


def test_merge_of_a_dirty_log_disk_equals_a_real_replay(corpus_dir: Path, tmp_path: Path):
    src = corpus_dir / "discutils/vhdx-log-replay.vhdx"
    out = tmp_path / "merged.vhdx"
    r = run_cli("merge", src, out, "--json", evidence=[src])
    assert r.rc == 0 and r.json()["verified"]
    theirs = tmp_path / "qemu-replayed.vhdx"
    shutil.copyfile(src, theirs)
    subprocess.run([qemu_img(), "check", "-r", "all", str(theirs)], capture_output=True)
    assert qemu_compare(theirs, "vhdx", out, "vhdx").returncode == 0


def test_reparent_of_a_vhd_child(corpus_dir: Path, tmp_path: Path):
    """dfvfs's VHD child names its parent only by file name; the parent is renamed and moved."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    child = tmp_path / "a" / "image-differential.vhd"
    shutil.copyfile(corpus_dir / "dfvfs/image-differential.vhd", child)
    parent = tmp_path / "b" / "renamed.vhd"
    shutil.copyfile(corpus_dir / "dfvfs/image.vhd", parent)
    expected = pyvhdi_sha256(child, parent)
    assert run_cli("chain", child, "--json").rc == 1
    out = tmp_path / "a" / "fixed.vhd"
    r = run_cli("reparent", child, "--parent", parent, out, "--json", evidence=[child, parent])
    assert r.json()["parent_found"] == str(parent), r.stdout
    codes = [c["code"] for c in r.json()["changes"]]
    assert "rewrite.parent-locator" in codes and "repair.vhd.footer-checksum" in codes
    chain = run_cli("chain", out, "--json").json()
    assert chain["links"][0]["identity_ok"] is True
    assert chain["links"][0]["found_via"] == "relative_path"
    assert pyvhdi_sha256(out, parent) == expected
    assert content_sha256(out) == expected
    # What check still reports is the parent's own old damage, not the new child's.
    findings = run_cli("check", out, "--json").json()["findings"]
    assert all(f["path"] == str(parent) for f in findings if f["severity"] != "info")
