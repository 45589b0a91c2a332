"""Chains read exactly as libvhdi-python reads them, and every broken link gets its code."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from hvrescue.vdisk.disk import Disk
from tests.builders import make_chain, read_at, set_data_write_guid, sparse_raw
from tests.helpers import codes, run_cli
from tests.oracle import pyvhdi_sha256, qemu_img

WINDOWS_CHILD = "dissect-hypervisor/differencing.avhdx"
PARENT_NAME = "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx"
PARENT_LINKAGE = uuid.UUID("ff34003b-11ed-4cf8-a166-b2be05e20b80")


@pytest.fixture
def windows_chain(corpus_file, tmp_path: Path) -> tuple[Path, Path]:
    """The Windows-made differencing.avhdx with a parent built by qemu-img (as the corpus notes
    describe): random data at every block the child touches and a few more, DataWriteGuid
    patched to the child's parent_linkage."""
    child = corpus_file(WINDOWS_CHILD)
    with Disk.open(str(child), allow_incomplete=True) as d:
        touched = sorted({lo // (2 * 1024 * 1024) for lo, _n in d.extents()})
        size = d.size
    rnd = __import__("random").Random(7)
    blocks = {
        b * 2 * 1024 * 1024: rnd.randbytes(2 * 1024 * 1024) for b in [*touched, 0, 5, 1000, 4095]
    }
    raw = tmp_path / "parent.raw"
    sparse_raw(raw, size, blocks)
    parent = child.parent / PARENT_NAME
    subprocess.run(
        [
            qemu_img(),
            "convert",
            "-f",
            "raw",
            "-O",
            "vhdx",
            "-o",
            "subformat=dynamic,block_size=2M",
            str(raw),
            str(parent),
        ],
        check=True,
    )
    raw.unlink()
    set_data_write_guid(parent, PARENT_LINKAGE)
    return child, parent


@pytest.mark.slow  # 25 s: a Windows chain built and read whole by two readers
def test_windows_child_reads_like_libvhdi(windows_chain):
    child, parent = windows_chain
    result = run_cli("hash", "--json", child, evidence=[child, parent])
    assert result.rc == 0, result.stdout
    data = result.json()
    assert data["chain"] == [str(child), str(parent)]
    assert data["sha256"] == pyvhdi_sha256(child, parent)


def test_windows_child_refuses_a_parent_with_another_identity(windows_chain):
    child, parent = windows_chain
    set_data_write_guid(parent, uuid.uuid4())
    result = run_cli("check", "--json", child, evidence=[child, parent])
    assert result.rc == 1
    data = result.json()
    assert "chain.parent.linkage-mismatch" in codes(data)
    assert run_cli("hash", "--json", child, evidence=[child, parent]).rc == 2


@pytest.mark.parametrize("lss", [512, 4096])
def test_written_chain_reads_like_libvhdi(tmp_path: Path, lss: int):
    paths = make_chain(tmp_path / "vm", lss=lss, depth=3, seed=lss)
    leaf = paths[-1]
    result = run_cli("hash", "--json", leaf, evidence=paths)
    assert result.rc == 0
    # libvhdi resolves only one parent per call, so compare the two-level chain too.
    assert result.json()["sha256"] == _pyvhdi_chain(paths)


def _pyvhdi_chain(paths: list[Path]) -> str:
    pyvhdi = pytest.importorskip("pyvhdi")
    files = []
    for p in paths:
        f = pyvhdi.file()
        f.open(str(p))
        files.append(f)
    for child, parent in zip(files[1:], files[:-1], strict=True):
        child.set_parent(parent)
    import hashlib

    leaf = files[-1]
    h = hashlib.sha256()
    size = leaf.get_media_size()
    for pos in range(0, size, 1 << 22):
        h.update(leaf.read_buffer_at_offset(min(1 << 22, size - pos), pos))
    for f in files:
        f.close()
    return h.hexdigest()


def test_chain_command_shows_each_link(tmp_path: Path):
    paths = make_chain(tmp_path / "vm", depth=3)
    result = run_cli("chain", "--json", paths[-1], evidence=paths)
    assert result.rc == 0
    data = result.json()
    assert data["complete"] is True
    assert [layer["path"] for layer in data["layers"]] == [str(p) for p in reversed(paths)]
    assert [link["found_via"] for link in data["links"]] == ["relative_path", "relative_path"]
    assert all(link["identity_ok"] for link in data["links"])


def test_parent_moved_is_found_by_search_and_reported(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    moved = tmp_path / "elsewhere" / "deep"
    moved.mkdir(parents=True)
    new_base = moved / "renamed-base.vhdx"
    shutil.move(base, new_base)
    missing = run_cli("check", "--json", child, evidence=[child, new_base])
    assert missing.rc == 1 and "chain.parent.missing" in codes(missing.json())
    found = run_cli(
        "check", "--json", child, "--search", tmp_path / "elsewhere", evidence=[child, new_base]
    )
    data = found.json()
    assert "chain.parent.found-elsewhere" in codes(data)
    assert "chain.parent.missing" not in codes(data)
    chain = run_cli(
        "chain", "--json", child, "--search", tmp_path / "elsewhere", evidence=[child, new_base]
    ).json()
    assert chain["links"][0]["found_via"] == "search"
    assert chain["links"][0]["parent"] == str(new_base)
    assert (
        run_cli(
            "hash", "--json", child, "--search", tmp_path / "elsewhere", evidence=[child, new_base]
        ).rc
        == 0
    )


def test_renamed_parent_in_same_folder_is_found_by_identity(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    base.rename(base.with_name("base-restored.vhdx"))
    data = run_cli("chain", "--json", child).json()
    assert data["complete"]
    assert data["links"][0]["parent"].endswith("base-restored.vhdx")


def test_replaced_parent_is_not_used(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    base.unlink()
    make_chain(tmp_path / "other", depth=1, seed=99)[0].rename(base)
    result = run_cli("check", "--json", child, evidence=[child, base])
    data = result.json()
    assert result.rc == 1
    mismatch = [f for f in data["findings"] if f["code"] == "chain.parent.linkage-mismatch"]
    assert mismatch and mismatch[0]["severity"] == "error"
    assert mismatch[0]["params"]["parent"] == str(base)


def test_self_referencing_parent_is_a_cycle(tmp_path: Path):
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    path = tmp_path / "self.avhdx"
    guid = uuid.uuid4()
    write_vhdx(
        str(path),
        VhdxSpec(
            virtual_size=8 << 20,
            data_write_guid=guid,
            parent=ParentSpec(guid, relative_path=".\\self.avhdx"),
        ),
    )
    result = run_cli("check", "--json", path)
    assert result.rc == 1
    assert "chain.cycle" in codes(result.json())


def test_two_children_pointing_at_each_other_is_a_cycle(tmp_path: Path):
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    ga, gb = uuid.uuid4(), uuid.uuid4()
    a, b = tmp_path / "a.avhdx", tmp_path / "b.avhdx"
    write_vhdx(
        str(a),
        VhdxSpec(
            virtual_size=8 << 20, data_write_guid=ga, parent=ParentSpec(gb, relative_path="b.avhdx")
        ),
    )
    write_vhdx(
        str(b),
        VhdxSpec(
            virtual_size=8 << 20, data_write_guid=gb, parent=ParentSpec(ga, relative_path="a.avhdx")
        ),
    )
    assert "chain.cycle" in codes(run_cli("check", "--json", a).json())


def test_size_and_sector_mismatch_between_links(tmp_path: Path):
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    g = uuid.uuid4()
    write_vhdx(
        str(tmp_path / "p.vhdx"),
        VhdxSpec(virtual_size=16 << 20, data_write_guid=g, logical_sector_size=4096),
    )
    write_vhdx(
        str(tmp_path / "c.avhdx"),
        VhdxSpec(virtual_size=32 << 20, parent=ParentSpec(g, relative_path="p.vhdx")),
    )
    found = codes(run_cli("check", "--json", tmp_path / "c.avhdx").json())
    assert {"chain.size-mismatch", "chain.sector-size-mismatch"} <= found


def test_vhd_chain_matches_libvhdi(corpus_dir: Path):
    folder = corpus_dir / "dfvfs"
    child, parent = folder / "image-differential.vhd", folder / "image.vhd"
    data = run_cli("hash", "--json", child, evidence=[child, parent]).json()
    assert data["sha256"] == pyvhdi_sha256(child, parent)


def test_parent_locator_entries_are_all_shown(corpus_dir: Path):
    info = run_cli("info", "--json", corpus_dir / WINDOWS_CHILD).json()
    entries = info["parent_locator"]["entries"]
    assert entries["parent_linkage"] == "{" + str(PARENT_LINKAGE) + "}"
    assert {"relative_path", "volume_path", "absolute_win32_path"} <= set(entries)
    assert read_at(corpus_dir / WINDOWS_CHILD, 0, 8) == b"vhdxfile"


def test_locator_case_differs_from_the_copied_file_name(tmp_path: Path):
    # Evidence copied from NTFS to a case-sensitive filesystem: ".\base.vhdx" vs "BASE.VHDX".
    base, child = make_chain(tmp_path / "vm", depth=2)
    base.rename(base.with_name("BASE.VHDX"))
    data = run_cli("chain", "--json", child).json()
    assert data["complete"]
    assert data["links"][0]["found_via"] == "relative_path"
    assert "chain.parent.found-elsewhere" not in codes(data)


def test_absolute_windows_path_is_mapped_onto_the_evidence_layout(tmp_path: Path):
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    g = uuid.uuid4()
    evidence = tmp_path / "evidence"
    (evidence / "Hyper-V" / "Base").mkdir(parents=True)
    (evidence / "Hyper-V" / "web01" / "Snapshots").mkdir(parents=True)
    base = evidence / "Hyper-V" / "Base" / "gold.vhdx"
    write_vhdx(str(base), VhdxSpec(virtual_size=8 << 20, data_write_guid=g))
    child = evidence / "Hyper-V" / "web01" / "Snapshots" / "web01_1.avhdx"
    write_vhdx(
        str(child),
        VhdxSpec(
            virtual_size=8 << 20,
            parent=ParentSpec(
                g,
                relative_path="..\\..\\gold.vhdx",  # stale: the base was moved later
                absolute_win32_path="D:\\Hyper-V\\Base\\gold.vhdx",
            ),
        ),
    )
    data = run_cli("chain", "--json", child, evidence=[evidence]).json()
    assert data["complete"]
    assert data["links"][0]["found_via"] == "absolute_win32_path"
    assert data["links"][0]["parent"] == str(base)


def test_empty_parent_file_is_named(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    base.write_bytes(b"")  # the classic zero-size link after a failed merge or copy
    data = run_cli("check", "--json", child, evidence=[child, base]).json()
    found = {(f["code"], f["path"]) for f in data["findings"]}
    assert ("file.empty", str(base)) in found
    assert "chain.parent.missing" in codes(data)


def test_parent_that_is_not_a_disk_is_named(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    base.write_bytes(b"\x00" * 4096)
    data = run_cli("check", "--json", child, evidence=[child, base]).json()
    unusable = [f for f in data["findings"] if f["code"] == "chain.parent.unusable"]
    assert unusable and unusable[0]["params"]["parent"] == str(base)


def test_deep_check_of_a_chain_with_a_damaged_parent(tmp_path: Path):
    from hvrescue.vdisk.vhdx import structures as vs
    from tests.builders import patch

    base, child = make_chain(tmp_path / "vm", depth=2)
    for off in vs.REGION_TABLE_OFFSETS:  # the parent opens, but nothing in it can be found
        patch(base, off + 20, b"\xff")
    result = run_cli("check", "--deep", "--json", child, evidence=[child, base])
    assert result.rc == 1
    found = {(f["code"], f["path"]) for f in result.json()["findings"]}
    assert ("vhdx.region-table.none-valid", str(base)) in found
    # What only the unusable parent holds is undefined: listed by hash, refused by merge.
    hashed = run_cli("hash", "--json", child, evidence=[child, base])
    assert hashed.rc == 1 and hashed.json()["complete"] is False
    assert {g["cause"] for g in hashed.json()["undefined"]} == {"parent-missing"}
    merged = run_cli("merge", "--json", child, tmp_path / "m.vhdx", evidence=[child, base])
    assert merged.rc == 2 and merged.json()["error"]["params"]["parent"] == str(base)
    assert not (tmp_path / "m.vhdx").exists()
