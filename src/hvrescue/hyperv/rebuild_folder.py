"""`rebuild` of a VM folder: the configuration's disks where a configuration can be read,
else the folder's chains (through :func:`hvrescue.inventory.build_inventory`)."""

from __future__ import annotations

import os
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.hyperv.hardware import DiskProbe, probe_disk
from hvrescue.hyperv.rebuild import (
    MiB,
    PlanDisk,
    RebuildPlan,
    _assume_sizing,
    _from_guest,
    _new_plan,
    _positions,
    require_disks,
)
from hvrescue.inventory import Inventory, build_inventory

BUSES = {"ide": "IDE", "scsi": "SCSI"}
SHOWN = 12  # VMs or chains named in a refusal


def _abs(inv: Inventory, rel: str) -> str:
    return rel if os.path.isabs(rel) else os.path.realpath(os.path.join(inv.root, rel))


def plan_folder(folder: str, name: str | None, search: list[str] | None) -> RebuildPlan:
    inv = build_inventory(folder, search)
    vms = [vm for vm in inv.vms if vm.get("kind") == "vm"]
    if len(vms) > 1:
        listed = "; ".join(f"{vm.get('name') or '?'} ({vm.get('path')})" for vm in vms[:SHOWN])
        raise InputError("error.rebuild.several-vms", path=folder, count=len(vms), vms=listed)
    if vms:
        return _from_configuration(inv, vms[0], name, search)
    return _from_chains(inv, folder, name, search)


def _from_configuration(
    inv: Inventory, vm: dict[str, Any], name: str | None, search: list[str] | None
) -> RebuildPlan:
    config_path = _abs(inv, str(vm["path"]))
    disks = [d for d in vm.get("disks") or [] if str(d.get("type", "")).upper() in ("VHD", "")]
    if not disks:
        raise InputError("error.rebuild.no-disk", path=config_path)
    missing = [d["path"] for d in disks if not d.get("found")]
    if missing:
        raise InputError("error.rebuild.disk-missing", config=config_path, disk=missing[0])
    first = _abs(inv, str(disks[0]["local"]))
    plan = _new_plan(inv.root, name or vm.get("name"), first)
    plan.configuration = config_path
    generation = vm.get("generation")
    if generation in (1, 2):
        plan.generation, plan.generation_source = int(generation), "configuration"
    _sizing(plan, vm)
    firmware_known = vm.get("secure_boot") is not None
    if firmware_known:
        plan.secure_boot = bool(vm["secure_boot"])
        plan.secure_boot_template = vm.get("secure_boot_template")
        plan.secure_boot_template_id = vm.get("secure_boot_template_id")
        if plan.secure_boot and plan.secure_boot_template is None:
            plan.warn(
                "ui.rebuild.warn.template-unknown", template=str(vm.get("secure_boot_template_id"))
            )
    plan.tpm_enabled = vm.get("tpm_enabled")
    plan.network_adapters = list(vm.get("network_adapters") or [])
    plan.guest_state_files = [s for s in vm.get("state_files") or [] if s.lower().endswith(".vmgs")]
    for d in disks:
        leaf = _abs(inv, str(d["local"]))
        chain = [_abs(inv, str(p)) for p in d.get("chain") or [leaf]]
        bus = BUSES.get(str(d.get("bus")), "SCSI")
        number, location = int(d.get("controller", 0)), int(d.get("drive", 0))
        if plan.generation == 2 and bus == "IDE":
            plan.warn("ui.rebuild.warn.ide-on-generation-2", disk=leaf)
            bus, number, location = "SCSI", 0, len(plan.disks)
        plan.disks.append(PlanDisk(leaf, bus, number, location, chain, str(d["path"])))
    for f in inv.findings:
        if f.code == "vm.disk.not-leaf" and f.path == config_path:
            plan.warn("ui.rebuild.warn.newer-children", **{k: str(v) for k, v in f.params.items()})
    boot = plan.disks[0].path
    _from_guest(plan, probe_disk(boot, [os.path.dirname(boot), *(search or [])]), firmware_known)
    _guest_state(plan, inv)
    return plan


def _guest_state(plan: RebuildPlan, inv: Inventory) -> None:
    """A surviving `.vmgs` that holds a vTPM: the VM had one, and a new VM will not take it
    over (BitLocker inside the guest will want its recovery key)."""
    try:
        from hvrescue.hyperv.vmgs import read_vmgs
    except ImportError:  # the VMGS reader is optional here
        return
    for f in inv.files:
        if not f.path.lower().endswith(".vmgs") or f.size == 0:
            continue
        try:
            report = read_vmgs(f.path).as_dict()
        except (HvrescueError, OSError):
            continue
        if report.get("vtpm_present"):
            plan.tpm_enabled = True
            protector = report.get("key_protector_present")
            plan.warn("ui.rebuild.warn.vmgs-vtpm", path=f.path, protector=str(protector).lower())


def _sizing(plan: RebuildPlan, vm: dict[str, Any]) -> None:
    startup = vm.get("memory_startup_mb")
    if isinstance(startup, int) and startup > 0:
        plan.memory_startup_bytes = startup * MiB
    else:
        plan.assumed.append("memory_startup_bytes")
    dynamic = vm.get("dynamic_memory")
    if isinstance(dynamic, bool):
        plan.dynamic_memory = dynamic
    else:
        plan.assumed.append("dynamic_memory")
    if plan.dynamic_memory:
        low, high = vm.get("memory_minimum_mb"), vm.get("memory_maximum_mb")
        plan.memory_minimum_bytes = low * MiB if isinstance(low, int) else None
        plan.memory_maximum_bytes = high * MiB if isinstance(high, int) else None
    count = vm.get("processor_count")
    if isinstance(count, int) and count > 0:
        plan.processor_count = count
    else:
        plan.assumed.append("processor_count")


def _from_chains(
    inv: Inventory, folder: str, name: str | None, search: list[str] | None
) -> RebuildPlan:
    """No configuration read: each chain's newest leaf; the one with a guest system boots."""
    mtime = {f.path: f.mtime_ns for f in inv.files}
    by_base: dict[str, list[list[str]]] = {}
    for chain in inv.chains:
        by_base.setdefault(chain[0], []).append(chain)
    chosen: list[list[str]] = []
    notes: list[tuple[str, dict[str, Any]]] = []
    for chains in by_base.values():
        chains.sort(key=lambda c: (mtime.get(c[-1], 0), c[-1]), reverse=True)
        chosen.append(chains[0])
        if len(chains) > 1:
            others = ", ".join(os.path.basename(c[-1]) for c in chains[1:SHOWN])
            notes.append(
                ("ui.rebuild.warn.other-leaves", {"leaf": chains[0][-1], "others": others})
            )
    if not chosen:
        raise InputError("error.rebuild.no-disk", path=folder)
    probes: list[tuple[list[str], DiskProbe]] = []
    for chain in sorted(chosen, key=lambda c: c[-1]):
        probes.append((chain, probe_disk(chain[-1], [folder, *(search or [])])))
    bootable = [cp for cp in probes if cp[1].guest_os or cp[1].efi_system_partition]
    if len(bootable) > 1:
        listed = "; ".join(
            f"{c[-1]} ({p.guest_os or p.partition_style})" for c, p in bootable[:SHOWN]
        )
        raise InputError(
            "error.rebuild.several-systems", path=folder, count=len(bootable), disks=listed
        )
    if bootable:
        boot = bootable[0]
    else:
        boot = max(probes, key=lambda cp: (mtime.get(cp[0][-1], 0), cp[0][-1]))
    ordered = [boot, *[cp for cp in probes if cp[0][-1] != boot[0][-1]]]
    plan = _new_plan(folder, name, boot[0][-1])
    for key, params in notes:
        plan.warn(key, **params)
    if any(f.code in ("vm.config.unreadable", "vm.config.parser-missing") for f in inv.findings):
        plan.warn("ui.rebuild.warn.configuration-unreadable", path=folder)
    if not bootable:
        plan.warn("ui.rebuild.warn.no-system-disk", disk=boot[0][-1])
    _assume_sizing(plan)
    _from_guest(plan, boot[1], firmware_known=False)
    _positions(plan, [(c[-1], c) for c, _p in ordered])
    _guest_state(plan, inv)
    require_disks(plan, folder)
    return plan
