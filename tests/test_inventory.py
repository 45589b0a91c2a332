"""inventory and the VM configuration readers, through the CLI, on built VM folders."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import pytest

from hvrescue.inventory import build_inventory
from hvrescue.vmconfig import read_config
from tests.builders import make_chain
from tests.helpers import CORPUS, run_cli

VM_ID = "4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F"


def xml_config(path: Path, name: str, disks: list[str], merge_pending: bool = False) -> None:
    """A Hyper-V 2012 R2 style configuration (UTF-16, typed leaves)."""
    drives = "".join(
        f'<drive{i}><pathname type="string">{d}</pathname><type type="string">VHD</type></drive{i}>'
        for i, d in enumerate(disks)
    )
    text = (
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>\n'
        "<configuration>"
        f"<_d422512d-2bf2-4752-809d-7b82b5fcb1b4_><controller0>{drives}</controller0>"
        "</_d422512d-2bf2-4752-809d-7b82b5fcb1b4_>"
        "<global_settings>"
        f'<disk_merge_pending type="bool">{merge_pending}</disk_merge_pending>'
        '<snapshots><list><size type="integer">0</size></list></snapshots>'
        "</global_settings>"
        f'<properties><name type="string">{name}</name>'
        f'<global_id type="string">{VM_ID}</global_id>'
        '<type_id type="string">Virtual Machines</type_id>'
        '<version type="integer">1280</version></properties>'
        "</configuration>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-16"))


@pytest.fixture
def vm(tmp_path: Path) -> Path:
    """web01: base.vhdx <- c1.avhdx <- c2.avhdx, configuration attached to the leaf."""
    home = tmp_path / "Hyper-V" / "web01"
    make_chain(home / "Virtual Hard Disks", depth=3)
    xml_config(
        home / "Virtual Machines" / f"{VM_ID}.xml",
        "web01",
        ["D:\\Hyper-V\\web01\\Virtual Hard Disks\\c2.avhdx"],
    )
    return home


def codes(result) -> list[str]:
    return sorted(f["code"] for f in result.json()["findings"])


def test_xml_configuration_is_read(vm: Path):
    config = read_config(str(vm / "Virtual Machines" / f"{VM_ID}.xml"))
    assert config.format == "xml" and config.name == "web01" and config.vm_id == VM_ID
    assert config.version == "5.0" and config.merge_pending is False
    [disk] = config.disks
    assert disk.bus == "scsi" and disk.path.endswith("c2.avhdx")


def test_vmcx_is_read_like_dissect_does():
    config = read_config(str(CORPUS / "dissect-hypervisor/test.vmcx"))
    assert config.format == "vmcx" and config.name == "Other Location"
    assert config.vm_id == "282874FC-59D6-4F30-BC04-5FDD909C82E0"
    assert [d.path for d in config.disks] == [
        "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual Hard Disks\\Other Location.vhdx"
    ]
    assert config.version == "9.0" and config.created.startswith("2021-08-22")


def test_healthy_vm_folder_has_no_findings(vm: Path):
    r = run_cli("inventory", vm, "--json", evidence=[vm])
    assert r.rc == 0, r.stdout
    data = r.json()
    [chain] = data["chains"]
    assert chain["files"] == [
        "Virtual Hard Disks/base.vhdx",
        "Virtual Hard Disks/c1.avhdx",
        "Virtual Hard Disks/c2.avhdx",
    ]
    assert chain["depth"] == 2 and chain["used_by"] == [f"Virtual Machines/{VM_ID}.xml"]
    [machine] = data["vms"]
    assert machine["name"] == "web01" and machine["disks"][0]["found"] is True
    assert machine["disks"][0]["chain"] == chain["files"]
    roles = {f["path"]: f["role"] for f in data["files"]}
    assert roles["Virtual Hard Disks/c1.avhdx"] == "differencing-disk"
    assert roles[f"Virtual Machines/{VM_ID}.xml"] == "configuration"
    assert data["findings"] == []


def test_vm_pointing_at_the_base_while_checkpoints_exist(vm: Path):
    cfg = vm / "Virtual Machines" / f"{VM_ID}.xml"
    cfg.unlink()
    xml_config(cfg, "web01", ["D:\\Hyper-V\\web01\\Virtual Hard Disks\\base.vhdx"])
    r = run_cli("inventory", vm, "--json")
    assert r.rc == 1
    assert "vm.disk.not-leaf" in codes(r)
    finding = next(f for f in r.json()["findings"] if f["code"] == "vm.disk.not-leaf")
    assert "c1.avhdx" in finding["params"]["newer"]
    # c2 (and c1 under it) now belong to no VM: an orphaned checkpoint chain, reported at its leaf.
    orphans = [
        f["path"] for f in r.json()["findings"] if f["code"] == "inventory.orphan-differencing"
    ]
    assert orphans == [str(vm / "Virtual Hard Disks/c2.avhdx")]


def test_missing_disk_other_folder_and_merge_pending(vm: Path, tmp_path: Path):
    cfg = vm / "Virtual Machines" / f"{VM_ID}.xml"
    cfg.unlink()
    xml_config(
        cfg,
        "web01",
        [
            "D:\\Hyper-V\\web01\\Virtual Hard Disks\\c2.avhdx",
            "D:\\Hyper-V\\web01\\Virtual Hard Disks\\data.vhdx",
            "E:\\Shared\\extra.vhdx",
        ],
        merge_pending=True,
    )
    (tmp_path / "Hyper-V" / "Shared").mkdir()
    shutil.copyfile(vm / "Virtual Hard Disks/base.vhdx", tmp_path / "Hyper-V/Shared/extra.vhdx")
    r = run_cli("inventory", vm.parent, "--json")
    assert r.rc == 1
    found = {(f["code"], f["params"].get("disk", "")) for f in r.json()["findings"]}
    assert ("vm.disk.missing", "D:\\Hyper-V\\web01\\Virtual Hard Disks\\data.vhdx") in found
    assert ("vm.disk.other-folder", "E:\\Shared\\extra.vhdx") in found
    assert ("vm.config.merge-pending", "") in found
    assert not any(code == "vm.disk.missing" and "c2" in d for code, d in found)
    r = run_cli("--lang", "ja", "inventory", vm.parent)
    assert "VM 構成が指すディスク" in r.stdout


def test_old_checkpoints_and_deep_chains(vm: Path):
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).isoformat()
    r = run_cli("inventory", vm, "--json", "--as-of", later)
    old = [f for f in r.json()["findings"] if f["code"] == "inventory.checkpoint-old"]
    assert {Path(f["path"]).name for f in old} == {"c1.avhdx", "c2.avhdx"}
    assert all(f["params"]["days"] >= 39 for f in old)
    r = run_cli("inventory", vm, "--json", "--as-of", later, "--older-than", "60")
    assert "inventory.checkpoint-old" not in codes(r)
    r = run_cli("inventory", vm, "--json", "--max-depth", "1")
    assert r.rc == 1 and codes(r) == ["inventory.chain-too-deep"]
    assert r.json()["findings"][0]["params"] == {"depth": 2, "limit": 1}


def test_folder_without_configuration_and_empty_files(tmp_path: Path):
    folder = tmp_path / "disks"
    make_chain(folder, depth=2)
    r = run_cli("inventory", folder, "--json")
    assert r.rc == 0 and codes(r) == ["inventory.no-vm-config"]
    (folder / "lost.avhdx").write_bytes(b"")
    r = run_cli("inventory", folder, "--json")
    assert r.rc == 1 and "inventory.empty-file" in codes(r)
    assert all(c["files"] != ["lost.avhdx"] for c in r.json()["chains"])


def test_parent_missing_is_reported(corpus_dir: Path, tmp_path: Path):
    folder = tmp_path / "disks"
    folder.mkdir()
    shutil.copyfile(corpus_dir / "dissect-hypervisor/differencing.avhdx", folder / "d.avhdx")
    r = run_cli("inventory", folder, "--json")
    assert r.rc == 1 and "chain.parent.missing" in codes(r)
    [f] = r.json()["files"]
    assert f["parent_state"] == "missing" and f["role"] == "differencing-disk"


def test_unreadable_configurations_are_findings_not_crashes(vm: Path, monkeypatch):
    machines = vm / "Virtual Machines"
    (machines / "broken.vmcx").write_bytes(b"\x00" * 5000)
    shutil.copyfile(CORPUS / "dissect-hypervisor/test.vmcx", machines / "real.vmcx")
    (machines / "bad.xml").write_bytes(b"<configuration><properties>")
    r = run_cli("inventory", vm, "--json")
    unreadable = {
        Path(f["path"]).name for f in r.json()["findings"] if f["code"] == "vm.config.unreadable"
    }
    assert unreadable == {"broken.vmcx", "bad.xml"}
    # Without the optional vmcx parser the core still works and says what is missing.
    monkeypatch.setitem(sys.modules, "dissect.hypervisor.descriptor.hyperv", None)
    inv = build_inventory(str(vm))
    missing = {Path(f.path).name for f in inv.findings if f.code == "vm.config.parser-missing"}
    assert missing == {"broken.vmcx", "real.vmcx"}
    assert inv.vms and inv.vms[0]["name"] == "web01"  # the XML one is still read


def test_damaged_vmcx_files_never_crash_the_reader(tmp_path: Path):
    import random

    from hvrescue.vmconfig import ConfigUnavailable

    data = (CORPUS / "dissect-hypervisor/test.vmcx").read_bytes()
    rnd = random.Random(7)
    outcomes = {"read": 0, "damaged": 0}
    for i in range(60):
        damaged = bytearray(data)
        for _ in range(rnd.choice([1, 8, 64])):
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        if i % 5 == 0:
            damaged = damaged[: rnd.randrange(len(damaged))]
        path = tmp_path / f"{i}.vmcx"
        path.write_bytes(bytes(damaged))
        try:
            config = read_config(str(path))
        except ConfigUnavailable as exc:
            assert exc.reason == "damaged"
            outcomes["damaged"] += 1
        else:
            assert config.format == "vmcx"
            outcomes["read"] += 1
    assert outcomes["read"] and outcomes["damaged"]  # both paths were exercised


def test_inventory_from_a_walk_already_made_is_the_inventory_it_makes_itself(vm: Path):
    from hvrescue.evidence import Item, Walk

    items = [e for e in Walk([str(vm)], archives=False) if isinstance(e, Item)]
    given = build_inventory(str(vm), as_of=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), items=items)
    walked = build_inventory(str(vm), as_of=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert given.as_dict() == walked.as_dict() and given.findings == walked.findings
    assert {f["role"] for f in walked.as_dict()["files"]} == {
        "base-disk",
        "differencing-disk",
        "configuration",
    }


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="FIFOs are POSIX")
def test_inventory_lists_what_it_did_not_read_and_never_blocks(vm: Path, tmp_path: Path):
    import os

    os.mkfifo(vm / "Virtual Hard Disks" / "stuck.vhdx")
    outside = tmp_path / "elsewhere.vhdx"
    (vm / "Virtual Hard Disks" / "base.vhdx").rename(outside)
    os.symlink(outside, vm / "Virtual Hard Disks" / "base.vhdx")
    r = run_cli("inventory", "--json", vm, "--max-memory", "64M")
    data = r.json()
    reasons = {Path(s["path"]).name: s["reason"] for s in data["skipped"]}
    assert reasons == {"stuck.vhdx": "not-regular", "base.vhdx": "link-outside"}
    paths = {f["path"] for f in data["files"]}
    # Neither is a file of the folder (the link's target may still be found as a parent, by
    # the chain's own search, and listed as outside the folder).
    assert not {"Virtual Hard Disks/stuck.vhdx", "Virtual Hard Disks/base.vhdx"} & paths


def test_disks_of_a_vm_whose_configuration_was_not_read_are_not_called_orphans(
    vm: Path, tmp_path: Path
):
    """One VM read (web01), another's configuration unreadable (app01): app01's checkpoint is
    not an orphan (nothing says no VM uses it), but a stray one outside every VM folder is."""
    app = tmp_path / "Hyper-V" / "app01"
    make_chain(app / "Virtual Hard Disks", depth=2)
    (app / "Virtual Machines").mkdir(parents=True)
    (app / "Virtual Machines" / "5B6D2B1F-2E3C-4D4E-9FA0-1B2C3D4E5F60.vmcx").write_bytes(
        b"\x00" * 4096
    )
    stray = tmp_path / "Hyper-V" / "stray"
    make_chain(stray, depth=2)
    r = run_cli("inventory", tmp_path / "Hyper-V", "--json")
    found = r.json()["findings"]
    assert any(f["code"].startswith("vm.config.") for f in found)
    orphans = sorted(f["path"] for f in found if f["code"] == "inventory.orphan-differencing")
    assert orphans == [str(stray / "c1.avhdx")]
