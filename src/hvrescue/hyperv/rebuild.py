"""`rebuild`: the plan to recreate a VM whose configuration is lost (or damaged) from its
surviving disks, and the PowerShell script that carries it out (printed, never run).

What is read, in order of trust:

1. the VM's configuration when one can still be read (a VM folder's `.vmcx` or XML): its
   generation, memory, processors, firmware, network adapters and where each disk was attached;
2. the disks themselves (:mod:`hvrescue.hyperv.hardware`): the partition style says the
   generation (GPT with an EFI system partition: 2; MBR: 1), the guest system the Secure Boot
   template (Windows: MicrosoftWindows; Linux with shim: MicrosoftUEFICertificateAuthority;
   Linux without a shim found: Secure Boot off);
3. what neither says is assumed (4 GB, 2 virtual processors, ...), listed in ``assumed`` and
   marked so in the script, never presented as read.

The disk attached is always the chain's leaf, with its chain intact (never its base): the one
the configuration named, else the newest leaf of each chain of the folder, else the disk given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.hyperv.hardware import DiskProbe, probe_disk
from hvrescue.vmconfig.hardware import SECURE_BOOT_TEMPLATES

MiB = 1024 * 1024
ASSUMED_MEMORY_BYTES = 4096 * MiB
ASSUMED_PROCESSORS = 2
MAX_DISKS = 64  # one SCSI controller's locations; more would be guessing anyway
IDE_SLOTS = ((0, 0), (0, 1), (1, 0), (1, 1))
WINDOWS_TEMPLATE = "MicrosoftWindows"
LINUX_TEMPLATE = "MicrosoftUEFICertificateAuthority"
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_CHECKPOINT_SUFFIX = re.compile(r"_[0-9A-Fa-f]{8}-[0-9A-Fa-f-]{27}$")


@dataclass
class PlanDisk:
    path: str  # the file to attach: a chain's leaf
    controller_type: str  # "IDE" or "SCSI"
    controller_number: int
    controller_location: int
    chain: list[str] = field(default_factory=list)  # every file the leaf needs, base first
    configured_path: str | None = None  # where the configuration had it

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "controller_type": self.controller_type,
            "controller_number": self.controller_number,
            "controller_location": self.controller_location,
            "chain": list(self.chain),
            "configured_path": self.configured_path,
        }


@dataclass
class RebuildPlan:
    name: str
    generation: int
    generation_source: str  # "configuration", "partition-style" or "assumed"
    secure_boot: bool | None
    secure_boot_template: str | None
    secure_boot_template_id: str | None
    memory_startup_bytes: int
    dynamic_memory: bool
    memory_minimum_bytes: int | None
    memory_maximum_bytes: int | None
    processor_count: int
    disks: list[PlanDisk]
    source: str
    configuration: str | None = None
    tpm_enabled: bool | None = None
    guest_state_files: list[str] = field(default_factory=list)
    network_adapters: list[dict[str, Any]] = field(default_factory=list)
    guest: dict[str, Any] | None = None
    vm_path: str | None = None
    switch: str | None = None
    assumed: list[str] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # no exit status

    def warn(self, key: str, **params: Any) -> None:
        if (key, params) not in self.warnings:
            self.warnings.append((key, params))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "configuration": self.configuration,
            "generation": self.generation,
            "generation_source": self.generation_source,
            "secure_boot": self.secure_boot,
            "secure_boot_template": self.secure_boot_template,
            "secure_boot_template_id": self.secure_boot_template_id,
            "memory_startup_bytes": self.memory_startup_bytes,
            "dynamic_memory": self.dynamic_memory,
            "memory_minimum_bytes": self.memory_minimum_bytes,
            "memory_maximum_bytes": self.memory_maximum_bytes,
            "processor_count": self.processor_count,
            "tpm_enabled": self.tpm_enabled,
            "network_adapters": list(self.network_adapters),
            "disks": [d.as_dict() for d in self.disks],
            "guest": self.guest,
            "vm_path": self.vm_path,
            "switch": self.switch,
            "assumed": list(self.assumed),
        }


# ------------------------------------------------------------------------------ the guest
def _from_guest(plan: RebuildPlan, probe: DiskProbe, firmware_known: bool) -> None:
    """Generation (unless the configuration said it) and Secure Boot (unless it said that)."""
    plan.guest = probe.as_dict()
    for key in probe.problems:
        plan.warn("ui.rebuild.warn.volume-unreadable", disk=probe.path, problem=key)
    if plan.generation_source != "configuration":
        style = probe.partition_style
        if style == "gpt":
            plan.generation, plan.generation_source = 2, "partition-style"
            if not probe.efi_system_partition:
                plan.warn("ui.rebuild.warn.gpt-without-esp", disk=probe.path)
        elif style == "mbr":
            plan.generation, plan.generation_source = 1, "partition-style"
        else:
            plan.generation, plan.generation_source = 1, "assumed"
            plan.assumed.append("generation")
            plan.warn("ui.rebuild.warn.no-partition-table", disk=probe.path)
    elif probe.partition_style == "mbr" and plan.generation == 2:
        plan.warn("ui.rebuild.warn.generation-mismatch", disk=probe.path, style="MBR")
    elif probe.partition_style == "gpt" and probe.efi_system_partition and plan.generation == 1:
        plan.warn("ui.rebuild.warn.generation-mismatch", disk=probe.path, style="GPT")
    if plan.generation != 2 or firmware_known:
        return
    if probe.guest_os == "windows":
        plan.secure_boot, plan.secure_boot_template = True, WINDOWS_TEMPLATE
    elif probe.guest_os == "linux" and probe.shim:
        plan.secure_boot, plan.secure_boot_template = True, LINUX_TEMPLATE
    elif probe.guest_os == "linux":
        plan.secure_boot, plan.secure_boot_template = False, None
        plan.warn("ui.rebuild.warn.linux-without-shim", disk=probe.path)
    else:
        plan.secure_boot, plan.secure_boot_template = False, None
        plan.assumed.append("secure_boot")
        plan.warn("ui.rebuild.warn.guest-unknown", disk=probe.path)


# ------------------------------------------------------------------------------ positions
def _positions(plan: RebuildPlan, leaves: list[tuple[str, list[str]]]) -> None:
    """Boot disk first: generation 1 on IDE 0:0 (then 0:1, 1:0, 1:1, then SCSI), generation
    2 on SCSI 0:0 and on."""
    scsi = 0
    for i, (leaf, chain) in enumerate(leaves[:MAX_DISKS]):
        if plan.generation == 1 and i < len(IDE_SLOTS):
            number, location = IDE_SLOTS[i]
            plan.disks.append(PlanDisk(leaf, "IDE", number, location, chain))
        else:
            plan.disks.append(PlanDisk(leaf, "SCSI", 0, scsi, chain))
            scsi += 1
    if len(leaves) > MAX_DISKS:
        plan.warn("ui.rebuild.warn.too-many-disks", count=len(leaves), limit=MAX_DISKS)


def _default_name(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return _CHECKPOINT_SUFFIX.sub("", stem) or stem


def _new_plan(source: str, name: str | None, leaf: str) -> RebuildPlan:
    plan = RebuildPlan(
        # A name is one line: control characters (a line break...) become spaces.
        name=_CONTROL.sub(" ", name or _default_name(leaf)).strip() or _default_name(leaf),
        generation=1,
        generation_source="assumed",
        secure_boot=None,
        secure_boot_template=None,
        secure_boot_template_id=None,
        memory_startup_bytes=ASSUMED_MEMORY_BYTES,
        dynamic_memory=False,
        memory_minimum_bytes=None,
        memory_maximum_bytes=None,
        processor_count=ASSUMED_PROCESSORS,
        disks=[],
        source=source,
    )
    if not name:
        plan.assumed.append("name")
    return plan


def _assume_sizing(plan: RebuildPlan) -> None:
    plan.assumed += ["memory_startup_bytes", "dynamic_memory", "processor_count"]


# ------------------------------------------------------------------------------ entry point
def plan_rebuild(
    target: str,
    name: str | None = None,
    vm_path: str | None = None,
    switch: str | None = None,
    search: list[str] | None = None,
) -> RebuildPlan:
    """The plan for ``target``: a disk (attached as given, with its chain) or a VM folder."""
    from hvrescue.hyperv.rebuild_folder import plan_folder

    if os.path.isdir(target):
        plan = plan_folder(os.path.abspath(target), name, search)
    else:
        leaf = os.path.realpath(target)
        probe = probe_disk(leaf, search)
        plan = _new_plan(leaf, name, leaf)
        _assume_sizing(plan)
        _from_guest(plan, probe, firmware_known=False)
        _positions(plan, [(leaf, chain_files(leaf, search))])
    plan.vm_path, plan.switch = vm_path, switch
    if plan.generation == 2 and plan.secure_boot and plan.secure_boot_template_id is None:
        by_name = {v: k for k, v in SECURE_BOOT_TEMPLATES.items()}
        plan.secure_boot_template_id = by_name.get(plan.secure_boot_template or "")
    if any(not _WINDOWS_PATH.match(d.path) for d in plan.disks):
        plan.notes.append(("ui.rebuild.warn.paths-as-seen-here", {}))
    return plan


def chain_files(leaf: str, search: list[str] | None) -> list[str]:
    """The files of the leaf's chain, base first, as the engine resolves them."""
    from hvrescue.vdisk.chain import resolve_chain

    chain = resolve_chain(leaf, search)
    try:
        return [os.path.realpath(layer.path) for layer in reversed(chain.layers)]
    finally:
        chain.close()


def require_disks(plan: RebuildPlan, where: str) -> None:
    if not plan.disks:
        raise InputError("error.rebuild.no-disk", path=where)
