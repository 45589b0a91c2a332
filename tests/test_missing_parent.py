"""A differencing disk whose parent is missing: `hash` and `merge` report or refuse exactly the
ranges the parent would have supplied, name where the parent was expected, and never call
anything complete or verified; `ls` and `extract` refuse.

Two sources: the dfvfs `fat-differential.vhd` (Windows-made, published without its parent) and
VHDX chains built here whose parent (or middle link) is then removed, so that the content the
parent held is known and every byte outside the reported ranges can be compared with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hvrescue.recover import ddmap
from hvrescue.vdisk.chain import resolve_chain
from hvrescue.vdisk.disk import Disk
from tests.builders import make_chain
from tests.helpers import run_cli

MiB = 1024 * 1024
SECTOR = 512


def _ranges(items: list[dict]) -> list[tuple[int, int]]:
    return [(g["offset"], g["length"]) for g in items]


def _content(path: Path, search: list[str] | None = None) -> bytes:
    with Disk.open(str(path), search) as disk:
        return disk.read(0, disk.size)


def _assert_covers_the_loss(intact: bytes, got: bytes, bad: list[tuple[int, int]]) -> None:
    """Outside ``bad`` ``got`` is ``intact``; every sector where they differ is in ``bad``."""
    assert len(got) == len(intact)
    covered = bytearray(len(intact))
    pos = 0
    for lo, n in bad:
        assert got[pos:lo] == intact[pos:lo]
        covered[lo : lo + n] = b"\x01" * n
        pos = lo + n
    assert got[pos:] == intact[pos:]
    for at in range(0, len(intact), SECTOR):
        if got[at : at + SECTOR] != intact[at : at + SECTOR]:
            assert covered[at], hex(at)


@pytest.fixture
def orphan(corpus_file) -> Path:
    """fat-differential.vhd alone in a folder of its own (its parent was never published)."""
    return corpus_file("dfvfs/fat-differential.vhd")


@pytest.fixture
def vhdx_orphan(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """(child, base moved away, the intact chain's content): a 2-level chain whose base was
    moved to another folder."""
    base, child = make_chain(tmp_path / "vm", depth=2, seed=25)
    intact = _content(child)
    away = tmp_path / "elsewhere"
    away.mkdir()
    moved = away / base.name
    shutil.move(base, moved)
    return child, moved, intact


# ------------------------------------------------------------------------- the chain
def test_missing_parents_names_where_the_parent_was_expected(vhdx_orphan) -> None:
    child, moved, _intact = vhdx_orphan
    chain = resolve_chain(str(child))
    try:
        assert chain.missing_parents() == [(str(child), str(child.parent / moved.name))]
    finally:
        chain.close()
    chain = resolve_chain(str(child), [str(moved.parent)])
    try:
        assert chain.complete and chain.missing_parents() == []
    finally:
        chain.close()


# ------------------------------------------------------------------------- hash
def test_hash_of_an_orphan_lists_the_parent_ranges(orphan: Path) -> None:
    result = run_cli("hash", orphan, "--json")
    assert result.rc == 1, result.stderr
    data = result.json()
    assert data["complete"] is False
    assert data["undefined"] and {g["cause"] for g in data["undefined"]} == {"parent-missing"}
    assert set(data["undefined"][0]) == {"offset", "length", "cause", "path"}
    assert data["undefined_bytes"] == sum(g["length"] for g in data["undefined"])
    assert "chain.parent.missing" in {f["code"] for f in data["findings"]}
    # The same ranges `check` and `salvage` report.
    check = run_cli("check", orphan, "--json").json()
    assert _ranges(data["undefined"]) == _ranges(check["files"][0]["undefined"])
    # Exactly the sectors the file's BAT and sector bitmaps leave to the parent.
    assert _ranges(data["undefined"]) == _vhd_left_to_parent(orphan)

    text = run_cli("hash", orphan)
    assert text.rc == 1
    assert "fat-parent.vhd" in text.stderr and "parent" in text.stderr
    assert "not the hash of the disk's content" in " ".join(text.stderr.split())


def test_hash_of_a_vhdx_without_its_base(vhdx_orphan) -> None:
    child, moved, intact = vhdx_orphan
    result = run_cli("hash", child, "--json")
    assert result.rc == 1, result.stderr
    data = result.json()
    assert data["complete"] is False
    assert {g["cause"] for g in data["undefined"]} == {"parent-missing"}
    assert {g["path"] for g in data["undefined"]} == {str(child)}
    # Outside the ranges the content is the chain's; every lost sector is inside them.
    _assert_covers_the_loss(intact, _content_allowing(child), _ranges(data["undefined"]))
    # Found again with --search: complete, another digest, exit 0.
    found = run_cli("hash", child, "--search", moved.parent, "--json")
    assert found.rc == 0 and found.json()["complete"] is True
    assert found.json()["sha256"] != data["sha256"]


def _vhd_left_to_parent(path: Path) -> list[tuple[int, int]]:
    """The sectors a differencing VHD leaves to its parent, read from the file here (footer,
    dynamic header, BAT, sector bitmaps: VHD specification 2006), not by the engine."""
    raw = path.read_bytes()
    footer = raw[-512:]
    assert footer[:8] == b"conectix"
    size = int.from_bytes(footer[48:56], "big")
    dyn = int.from_bytes(footer[16:24], "big")
    assert raw[dyn : dyn + 8] == b"cxsparse"
    table = int.from_bytes(raw[dyn + 16 : dyn + 24], "big")
    entries = int.from_bytes(raw[dyn + 28 : dyn + 32], "big")
    block = int.from_bytes(raw[dyn + 32 : dyn + 36], "big")
    per_block = block // SECTOR
    out: list[tuple[int, int]] = []
    for b in range(entries):
        at = int.from_bytes(raw[table + 4 * b : table + 4 * b + 4], "big")
        for i in range(per_block):
            lo = b * block + i * SECTOR
            if lo >= size:
                break
            held = at != 0xFFFFFFFF and raw[at * SECTOR + i // 8] >> (7 - i % 8) & 1
            if held:
                continue
            if out and out[-1][0] + out[-1][1] == lo:
                out[-1] = (out[-1][0], out[-1][1] + SECTOR)
            else:
                out.append((lo, SECTOR))
    return out


def _content_allowing(path: Path) -> bytes:
    with Disk.open(str(path), allow_incomplete=True) as disk:
        return disk.read(0, disk.size)


# ------------------------------------------------------------------------- merge
def test_merge_of_an_orphan_is_refused_naming_the_parent(orphan: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "m.vhdx"
    out.parent.mkdir()
    result = run_cli("merge", orphan, out, "--json")
    assert result.rc == 2
    error = result.json()["error"]
    assert error["key"] == "error.merge.parent-missing"
    assert error["params"]["parent"] == str(orphan.parent / "fat-parent.vhd")
    assert "salvage" in error["message"] and "--allow-gaps" in error["message"]
    assert {g["cause"] for g in error["params"]["undefined"]} == {"parent-missing"}
    assert list(out.parent.iterdir()) == []
    text = run_cli("merge", orphan, out)
    assert text.rc == 2 and "fat-parent.vhd" in text.stderr and "salvage" in text.stderr
    assert list(out.parent.iterdir()) == []


def test_merge_allow_gaps_writes_zeros_and_a_map(vhdx_orphan, tmp_path: Path) -> None:
    child, moved, intact = vhdx_orphan
    out = tmp_path / "m.raw"
    result = run_cli("merge", child, out, "--format", "raw", "--allow-gaps", "--json")
    assert result.rc == 1, result.stderr
    data = result.json()
    assert data["status"] == "written-with-gaps" and data["verified"] is False
    bad = _ranges(data["undefined"])
    assert bad and {g["cause"] for g in data["undefined"]} == {"parent-missing"}
    check = run_cli("check", child, "--json").json()
    assert bad == _ranges(check["files"][0]["undefined"])
    written = out.read_bytes()
    _assert_covers_the_loss(intact, written, bad)
    for lo, n in bad:
        assert written[lo : lo + n] == bytes(n)
    assert data["map"] == str(out) + ".map"
    size, entries = ddmap.read_map(data["map"])
    assert size == len(intact)
    assert [(pos, n) for pos, n, status in entries if status == "-"] == bad
    # The text output names the missing parent and never says verified.
    out2 = tmp_path / "m2.vhdx"
    text = run_cli("merge", child, out2, "--allow-gaps")
    assert text.rc == 1
    said = " ".join(text.stdout.split())
    assert str(child.parent / moved.name) in said and "Verified" not in said
    # With the base found, the same merge is verified.
    out3 = tmp_path / "m3.vhdx"
    again = run_cli("merge", child, out3, "--search", moved.parent, "--json")
    assert again.rc == 0 and again.json()["verified"] is True


def test_merge_of_a_chain_missing_its_middle_link(tmp_path: Path) -> None:
    _base, middle, leaf = make_chain(tmp_path / "vm", depth=3, seed=26)
    middle.unlink()
    out = tmp_path / "m.vhdx"
    result = run_cli("merge", leaf, out, "--json")
    assert result.rc == 2
    error = result.json()["error"]
    assert error["key"] == "error.merge.parent-missing"
    assert error["params"]["child"] == str(leaf) and error["params"]["parent"] == str(middle)
    assert not out.exists()


# ------------------------------------------------------------------------- ls / extract
def test_ls_and_extract_refuse_an_orphan(orphan: Path, tmp_path: Path) -> None:
    listing = run_cli("ls", orphan, "--json")
    assert listing.rc == 2 and listing.json()["status"] == "error"
    dest = tmp_path / "files"
    extracted = run_cli("extract", orphan, "1:/", "--to", dest, "--json")
    assert extracted.rc == 2, extracted.stdout
    assert not dest.exists() or not any(dest.rglob("*"))
