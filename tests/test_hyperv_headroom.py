"""Merge headroom and sector sizes against the storage: the bytes a merge writes counted from
the BATs (checked against dissect.hypervisor's reading of each layer's BAT), compared with the
free space of the volume the VM configuration places the chain on; end to end through
`triage` on incident folders of pasted Get-Volume, VMMS 19100, Get-VHD and fsutil output
(tests/fixtures/field_headroom, sources in its README)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from hvrescue.hyperv.headroom import CODE, merge_needs
from hvrescue.hyperv.sectors import CODE as SECTOR_CODE
from hvrescue.inventory import CheckOptions, build_inventory
from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx
from tests.helpers import run_cli
from tests.test_inventory import xml_config

MiB = 1024 * 1024
BLOCK = 2 * MiB
SIZE = 256 * MiB
FIXTURES = Path(__file__).parent / "fixtures" / "field_headroom"
LEAF = "web01_5B7E2C14-9A3D-4F61-8C2B-1D0E9F8A7B6C.avhdx"
# Blocks each layer writes, base first.
LAYERS = [{0, 1, 2, 3}, {2, 3, *range(10, 25)}, {24, *range(30, 46)}]
NAMES = ["web01.vhdx", "web01_1C2D3E4F-5A6B-4C7D-8E9F-0A1B2C3D4E5F.avhdx", LEAF]


def build_vm(home: Path, drive: str = "D", layers: list[set[int]] = LAYERS) -> list[Path]:
    """WEB01 with web01.vhdx <- ... <- LEAF, each layer writing whole blocks; the
    configuration attaches the leaf at ``drive``:\\Hyper-V\\WEB01\\Virtual Hard Disks."""
    disks = home / "Virtual Hard Disks"
    disks.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    parent: uuid.UUID | None = None
    for i, blocks in enumerate(layers):
        guid = uuid.uuid4()
        spec = VhdxSpec(
            virtual_size=SIZE,
            block_size=BLOCK,
            data_write_guid=guid,
            parent=None if parent is None else ParentSpec(parent, relative_path=NAMES[i - 1]),
        )
        data = {b * BLOCK: bytes([i + 1]) * BLOCK for b in sorted(blocks)}
        path = disks / NAMES[i]
        write_vhdx(str(path), spec, data)
        paths.append(path)
        parent = guid
    windows = f"{drive}:\\Hyper-V\\WEB01\\Virtual Hard Disks\\{NAMES[len(layers) - 1]}"
    xml_config(
        home / "Virtual Machines" / "4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F.xml", "WEB01", [windows]
    )
    return paths


def dissect_blocks(path: Path) -> set[int]:
    """The blocks a layer's BAT holds data for, as dissect.hypervisor reads it."""
    vhdx = pytest.importorskip("dissect.hypervisor.disk.vhdx")
    with open(path, "rb") as fh:
        disk = vhdx.VHDX(fh)
        count = -(-disk.size // disk.block_size)
        return {b for b in range(count) if disk.bat.pb(b).state in (6, 7)}


def oracle(paths: list[Path]) -> tuple[int, int]:
    """(bytes the differencing layers hold, bytes the whole chain holds) from dissect."""
    held = [dissect_blocks(p) for p in paths]
    diff = set().union(*held[1:])
    return len(diff) * BLOCK, len(set().union(*held)) * BLOCK


def options(free: int | None, margin: float | None = None) -> CheckOptions:
    extra: dict = {} if free is None else {"volume_free": {"D": free}}
    if margin is not None:
        extra["headroom_margin"] = margin
    return CheckOptions(extra=extra)


def headroom(inv) -> list:
    return [f for f in inv.findings if f.code == CODE]


# ---------------------------------------------------------------- the check in inventory
def test_needed_bytes_are_the_differencing_data_as_dissect_reads_the_bats(tmp_path: Path):
    paths = build_vm(tmp_path / "WEB01")
    needed, flatten = oracle(paths)
    assert needed == 33 * BLOCK and flatten == 35 * BLOCK  # the oracle reads what was written
    inv = build_inventory(str(tmp_path), options=options(None))
    needs = merge_needs(inv)
    leaf = str(paths[-1].resolve())
    assert set(needs) == {leaf}
    assert needs[leaf].delete_checkpoints == needed
    assert needs[leaf].flatten == flatten
    assert needs[leaf].differencing == 2 and needs[leaf].complete
    # Free space unknown: nothing is reported, the numbers are there for audit.
    assert headroom(inv) == []


def test_a_volume_below_the_need_is_reported_with_its_numbers(tmp_path: Path):
    paths = build_vm(tmp_path / "WEB01")
    needed, flatten = oracle(paths)
    inv = build_inventory(str(tmp_path), options=options(needed // 2))
    (finding,) = headroom(inv)
    assert finding.params["needed"] == needed
    assert finding.params["free"] == needed // 2
    assert finding.params["volume"] == "D:"
    assert finding.params["flatten"] == flatten
    assert finding.path == str(paths[-1].resolve())
    assert inv.status == "findings"


def test_the_margin_decides_near_the_limit(tmp_path: Path):
    paths = build_vm(tmp_path / "WEB01")
    needed, _ = oracle(paths)
    just_above = needed + needed // 20  # 1.05 x: above the need, below the default 1.1 margin
    assert len(headroom(build_inventory(str(tmp_path), options=options(just_above)))) == 1
    assert headroom(build_inventory(str(tmp_path), options=options(just_above, 1.0))) == []
    assert headroom(build_inventory(str(tmp_path), options=options(needed * 10))) == []


def test_free_space_by_leaf_path_and_another_drive(tmp_path: Path):
    paths = build_vm(tmp_path / "WEB01", drive="E")
    needed, _ = oracle(paths)
    # Get-Volume says D: is nearly full, but the chain lives on E:.
    assert headroom(build_inventory(str(tmp_path), options=options(1024))) == []
    leaf = str(paths[-1].resolve())
    by_leaf = CheckOptions(free_space={leaf: needed - 1})
    (finding,) = headroom(build_inventory(str(tmp_path), options=by_leaf))
    assert finding.params["free"] == needed - 1


def test_a_chain_without_differencing_data_needs_nothing(tmp_path: Path):
    build_vm(tmp_path / "WEB01", layers=[{0, 1}, set()])
    inv = build_inventory(str(tmp_path), options=options(0))
    (need,) = merge_needs(inv).values()
    assert need.delete_checkpoints == 0 and need.flatten == 2 * BLOCK
    assert headroom(inv) == []


def test_a_broken_chain_is_not_measured(tmp_path: Path):
    paths = build_vm(tmp_path / "WEB01")
    paths[0].unlink()  # the base is gone: no merge can run
    inv = build_inventory(str(tmp_path), options=options(0))
    assert all(not n.complete for n in merge_needs(inv).values())
    assert headroom(inv) == []


# ---------------------------------------------------------------- triage, end to end
def run_triage(folder: Path, out: Path, lang: str = "en") -> dict:
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    return r.json()


def diagnosis(data: dict, rule: str) -> dict | None:
    return next((d for d in data["diagnoses"] if d["id"] == rule), None)


@pytest.mark.parametrize("name,lang", [("merge-full-en", "en"), ("merge-full-ja", "ja")])
def test_pasted_get_volume_and_a_chain_that_cannot_fit(tmp_path: Path, name: str, lang: str):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    paths = build_vm(folder / "Hyper-V" / "WEB01")
    needed, _ = oracle(paths)
    assert needed > 48.2 * MiB * 1.1  # the fixture's Get-Volume gives D: 48.2 MB free
    data = run_triage(folder, tmp_path / "report", lang)
    found = diagnosis(data, "vdisk.merge-cannot-fit")
    assert found is not None, [d["id"] for d in data["diagnoses"]]
    assert any("Move-VMStorage" in s["command"] for s in found["steps"])
    assert any(str(needed) in s["text"] for s in found["steps"])
    # The failure itself is diagnosed too, from the pasted VMMS 19100.
    assert diagnosis(data, "vdisk.merge-failed.disk-full") is not None
    assert data["verdict"]["state"] == "problems"
    if lang == "ja":
        assert "チェックポイント" in found["title"] and "削除" in found["avoid"][0]


def test_a_volume_with_room_is_not_diagnosed(tmp_path: Path):
    folder = tmp_path / "merge-fits-en"
    shutil.copytree(FIXTURES / "merge-fits-en", folder)
    build_vm(folder / "Hyper-V" / "WEB01")
    data = run_triage(folder, tmp_path / "report")
    assert diagnosis(data, "vdisk.merge-cannot-fit") is None
    codes = {e["attributes"].get("code") for d in data["diagnoses"] for e in d["evidence"]}
    assert CODE not in codes


def make_vhd(home: Path, drive: str) -> Path:
    exe = shutil.which("qemu-img")
    if exe is None:
        pytest.skip("qemu-img is not installed")
    home.mkdir(parents=True, exist_ok=True)
    path = home / "app01.vhd"
    subprocess.run([exe, "create", "-q", "-f", "vpc", str(path), "64M"], check=True)
    xml_config(
        home / "Virtual Machines" / "4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F.xml",
        "APP01",
        [f"{drive}:\\VMs\\APP01\\app01.vhd"],
    )
    return path


def test_a_vhd_on_a_4kn_volume_is_found_by_the_inventory(tmp_path: Path):
    vhd = make_vhd(tmp_path / "VMs" / "APP01", "E")
    four_k = CheckOptions(extra={"volume_sectors": {"E:": {"logical": 4096, "physical": 4096}}})
    (finding,) = [
        f for f in build_inventory(str(tmp_path), options=four_k).findings if f.code == SECTOR_CODE
    ]
    assert finding.path == str(vhd.resolve())
    assert (finding.params["format"], finding.params["disk_sector"]) == ("vhd", 512)
    e512 = CheckOptions(extra={"volume_sectors": {"E:": {"logical": 512, "physical": 4096}}})
    inv = build_inventory(str(tmp_path), options=e512)
    assert SECTOR_CODE not in {f.code for f in inv.findings}


def test_triage_of_a_vhd_refused_on_4kn_storage(tmp_path: Path):
    folder = tmp_path / "sector-4kn-en"
    shutil.copytree(FIXTURES / "sector-4kn-en", folder)
    make_vhd(folder / "VMs" / "APP01", "E")
    data = run_triage(folder, tmp_path / "report")
    found = diagnosis(data, "vdisk.sector-size-mismatch")
    assert found is not None, [d["id"] for d in data["diagnoses"]]
    assert any("Convert-VHD" in s["command"] for s in found["steps"])
    codes = {e["attributes"].get("code") for e in found["evidence"]}
    assert SECTOR_CODE in codes  # the inventory compared the chain with fsutil's E:


def test_triage_of_a_vhd_on_512e_storage_says_nothing_of_sectors(tmp_path: Path):
    folder = tmp_path / "sector-512e-en"
    shutil.copytree(FIXTURES / "sector-512e-en", folder)
    make_vhd(folder / "VMs" / "APP01", "E")
    data = run_triage(folder, tmp_path / "report")
    ids = {d["id"] for d in data["diagnoses"]}
    assert not ids & {"vdisk.sector-size-mismatch", "vdisk.sector-size-mismatch.pasted"}
