"""Saved and guest state: the state files a VM configuration names (hyperv/statefiles.py, run
by `inventory`) and the rules of field_state.yaml, from the check to `triage` on incident
folders (tests/fixtures/field_state, sources in its README)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.hyperv import statefiles
from hvrescue.inventory import CheckOptions, Inventory
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.helpers import CORPUS, run_cli
from tests.test_hyperv_formats import CAPACITY, GUEST_FILES, vmgs_image

RULES = load_rules()
FIELD = Path(__file__).parent / "fixtures" / "field_state"
VMCX = CORPUS / "dissect-hypervisor" / "test.vmcx"
VMRS = CORPUS / "dissect-hypervisor" / "test.VMRS"
VM_ID = "282874FC-59D6-4F30-BC04-5FDD909C82E0"  # the corpus configuration's VM
STATE_RULES = {
    "vm.saved-state.missing",
    "vm.saved-state.damaged",
    "vm.guest-state.missing",
    "vm.guest-state.damaged",
}


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not in the shared corpus")


def vm_folder(root: Path) -> Path:
    """A VM folder as a file-level restore leaves it: the corpus .vmcx (it names
    C:\\Hyper-V\\EasyToFind\\Virtual Machines\\<id>.vmgs) in `Virtual Machines`."""
    need(VMCX)
    folder = root / "EasyToFind" / "Virtual Machines"
    folder.mkdir(parents=True)
    shutil.copy(VMCX, folder / f"{VM_ID}.vmcx")
    return folder


def vmgs_file(path: Path, image: bytes) -> Path:
    """A .vmgs as Hyper-V keeps it: the VMGS inside a VHDX."""
    data = {off: image[off : off + 4096] for off in range(0, 16 * 4096, 4096)}
    write_vhdx(str(path), VhdxSpec(virtual_size=CAPACITY), data)
    return path


def finding_codes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in data["findings"]}


# ------------------------------------------------------------------ the check, through inventory
def test_inventory_reports_the_guest_state_the_configuration_names_as_missing(tmp_path: Path):
    vm_folder(tmp_path)
    r = run_cli("inventory", tmp_path, "--json", evidence=[tmp_path])
    found = finding_codes(r.json())
    missing = found["vm.state-file.missing"]
    assert missing["params"]["kind"] == "vmgs"
    assert missing["params"]["file"].endswith(f"{VM_ID}.vmgs")
    assert missing["params"]["vm"] == "Other Location"


def test_inventory_accepts_a_sound_guest_state_and_flags_a_damaged_one(tmp_path: Path):
    folder = vm_folder(tmp_path)
    vmgs = vmgs_file(folder / f"{VM_ID}.vmgs", vmgs_image(GUEST_FILES))
    r = run_cli("inventory", tmp_path, "--json", evidence=[tmp_path])
    assert not {c for c in finding_codes(r.json()) if c.startswith("vm.state-file.")}
    # The same file cut short by an interrupted copy: its VHDX headers are gone.
    data = vmgs.read_bytes()
    vmgs.unlink()
    vmgs.write_bytes(data[: 96 * 1024])
    r = run_cli("inventory", tmp_path, "--json", evidence=[tmp_path])
    damaged = finding_codes(r.json())["vm.state-file.damaged"]
    assert damaged["params"]["kind"] == "vmgs"
    assert "vmgs.container.unreadable" in damaged["params"]["detail"]
    # Zeroed headers (a wiped guest state) inside a sound container.
    vmgs.unlink()
    vmgs_file(vmgs, bytes(CAPACITY))
    r = run_cli("inventory", tmp_path, "--json", evidence=[tmp_path])
    assert "vmgs.empty" in finding_codes(r.json())["vm.state-file.damaged"]["params"]["detail"]


def inventory_of(root: Path, *vms: dict[str, Any]) -> Inventory:
    inv = Inventory(str(root), dt.datetime.now(dt.UTC))
    inv.vms = [{"kind": "vm", "disks": [], **vm} for vm in vms]
    return inv


def check(inv: Inventory) -> list[tuple[str, dict[str, Any]]]:
    return [(f.code, f.params) for f in statefiles.check(inv, CheckOptions())]


def test_saved_state_files_are_read_through_the_configuration_reader(tmp_path: Path):
    need(VMRS)
    folder = tmp_path / "Virtual Machines"
    folder.mkdir()
    named = f"D:\\Hyper-V\\SRV-FS01\\Virtual Machines\\{VM_ID}.vmrs"
    vm = {"path": f"Virtual Machines/{VM_ID}.vmcx", "vm_id": VM_ID, "state_files": [named]}
    assert check(inventory_of(tmp_path, vm)) == [
        ("vm.state-file.missing", {"file": named, "kind": "vmrs", "vm": "", "config_kind": "vm"})
    ]
    shutil.copy(VMRS, folder / f"{VM_ID}.vmrs")  # a real key store: readable, no VM id in it
    assert check(inventory_of(tmp_path, vm)) == []
    (folder / f"{VM_ID}.vmrs").write_bytes(b"\x00\x01garbage" * 512)
    [(code, params)] = check(inventory_of(tmp_path, vm))
    assert code == "vm.state-file.damaged" and params["kind"] == "vmrs"
    assert params["detail"].startswith("damaged")
    (folder / f"{VM_ID}.vmrs").write_bytes(b"")
    assert check(inventory_of(tmp_path, vm))[0][1]["detail"] == "empty"


def test_a_state_file_of_another_vm_is_a_mismatch(tmp_path: Path):
    folder = tmp_path / "Virtual Machines"
    folder.mkdir()
    other = "7C1D0B2E-3A4F-4B5C-8D6E-9F0A1B2C3D4E"
    vmgs_file(folder / f"{other}.vmgs", vmgs_image(GUEST_FILES))
    named = f"C:\\VMs\\Virtual Machines\\{other}.vmgs"
    vm = {"path": f"Virtual Machines/{VM_ID}.vmcx", "vm_id": VM_ID, "state_files": [named]}
    [(code, params)] = check(inventory_of(tmp_path, vm))
    assert code == "vm.state-file.mismatch" and params["other"] == other
    # Two configurations of different VMs naming one file: each is told about the other.
    shared = f"C:\\VMs\\Virtual Machines\\{other}.vmgs"
    first = {"path": "a.vmcx", "vm_id": other, "state_files": [shared], "name": "A"}
    second = {"path": "b.vmcx", "vm_id": VM_ID, "state_files": [shared], "name": "B"}
    found = check(inventory_of(tmp_path, first, second))
    pairs = {(p["vm_id"], p["other"]) for c, p in found if c == "vm.state-file.mismatch"}
    assert (other.lower(), VM_ID) in pairs and (VM_ID.lower(), other) in pairs
    # A checkpoint's configuration names files after the checkpoint, not the VM: no mismatch.
    snap = {**vm, "kind": "snapshot"}
    assert check(inventory_of(tmp_path, snap)) == []


def test_no_vtpm_only_where_the_configuration_enables_one(tmp_path: Path):
    folder = tmp_path / "Virtual Machines"
    folder.mkdir()
    without_tpm = {k: v for k, v in GUEST_FILES.items() if k != 3}
    vmgs_file(folder / f"{VM_ID}.vmgs", vmgs_image(without_tpm))
    named = f"C:\\VMs\\Virtual Machines\\{VM_ID}.vmgs"
    vm = {"path": f"Virtual Machines/{VM_ID}.vmcx", "vm_id": VM_ID, "state_files": [named]}
    assert check(inventory_of(tmp_path, {**vm, "tpm_enabled": True})) == [
        ("vm.guest-state.no-vtpm", {"file": named})
    ]
    assert check(inventory_of(tmp_path, {**vm, "tpm_enabled": None})) == []
    (folder / f"{VM_ID}.vmgs").unlink()
    vmgs_file(folder / f"{VM_ID}.vmgs", vmgs_image(GUEST_FILES))
    assert check(inventory_of(tmp_path, {**vm, "tpm_enabled": True})) == []


# ------------------------------------------------------------------ the rules on facts
def facts(*items: tuple[str, dict[str, Any]]) -> list[Fact]:
    return [
        Fact(kind, attrs, Provenance("/evidence/x.txt", f"line:{i + 1}"))
        for i, (kind, attrs) in enumerate(items)
    ]


def fired(*items: tuple[str, dict[str, Any]]) -> set[str]:
    return {d.rule.id for d in evaluate(RULES, facts(*items))}


MISSING_VMRS = (
    "finding",
    {
        "code": "vm.state-file.missing",
        "severity": "error",
        "path": "/evidence/x.vmcx",
        "param_file": "D:\\VMs\\x.vmrs",
        "param_kind": "vmrs",
    },
)


def test_a_missing_vmrs_is_a_saved_state_loss_only_for_a_saved_vm():
    assert "vm.saved-state.missing" in fired(MISSING_VMRS, ("vm", {"name": "A", "state": "Saved"}))
    assert "vm.saved-state.missing" in fired(
        MISSING_VMRS, ("vm", {"name": "A", "state": "SavedCritical"})
    )
    off = fired(MISSING_VMRS, ("vm", {"name": "A", "state": "Off"}))
    assert not off & STATE_RULES and "generic.inventory" in off


def test_the_avoid_lists_say_what_deleting_each_file_costs():
    by_id = {r.id: r for r in RULES if r.id in STATE_RULES}
    for rule_id in ("vm.saved-state.missing", "vm.saved-state.damaged"):
        text = " ".join(a.en for a in by_id[rule_id].avoid)
        assert "Remove-VMSavedState" in text and "memory" in text
    for rule_id in ("vm.guest-state.missing", "vm.guest-state.damaged"):
        text = " ".join(a.en for a in by_id[rule_id].avoid)
        assert "BitLocker" in text and "TPM" in text
        assert any("recovery key" in s.text.en for s in by_id[rule_id].steps)


# ------------------------------------------------------------------ end to end, incident folders
def build_missing(folder: Path) -> None:
    vm_folder(folder)


def build_damaged(folder: Path) -> None:
    target = vm_folder(folder) / f"{VM_ID}.vmgs"
    vmgs_file(target, vmgs_image(GUEST_FILES, corrupt_crc=True))


INCIDENTS = [
    ("saved-state-missing-en", None, "vm.saved-state.missing", "Remove-VMSavedState", "en"),
    ("saved-state-damaged-ja", None, "vm.saved-state.damaged", 'Start-VM -Name "SRV-FS01"', "ja"),
    ("saved-state-near-miss-en", None, None, None, "en"),
    (
        "guest-state-missing-vmcx",
        build_missing,
        "vm.guest-state.missing",
        'Start-VM -Name "Other Location"',
        "en",
    ),
    ("guest-state-damaged-ja", build_damaged, "vm.guest-state.damaged", "hvrescue info", "ja"),
]


@pytest.mark.parametrize(
    ("name", "build", "expected", "command", "lang"), INCIDENTS, ids=[i[0] for i in INCIDENTS]
)
def test_incident_folder_through_triage(tmp_path: Path, name, build, expected, command, lang):
    folder = tmp_path / name
    shutil.copytree(FIELD / name, folder)
    if build is not None:
        build(folder)
    out = tmp_path / "report"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    data = r.json()
    ids = [d["id"] for d in data["diagnoses"]]
    if expected is None:
        assert not set(ids) & STATE_RULES, ids
        return
    top = data["diagnoses"][0]
    assert top["id"] == expected, ids
    assert r.rc == 1 and data["verdict"]["state"] == "problems"
    assert any(command in s["command"] for s in top["steps"]), [s["command"] for s in top["steps"]]
    assert all(e["path"].startswith(str(folder)) for e in top["evidence"])
    serious = [
        d for d in data["diagnoses"] if SEVERITY_ORDER[d["severity"]] >= SEVERITY_ORDER["warning"]
    ]
    assert serious and serious[0]["id"] == expected
    if lang == "ja":
        assert any("\u3040" <= ch <= "\u30ff" for ch in top["title"])
