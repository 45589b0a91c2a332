"""One audited folder's findings with Hyper-V's own VM list laid over its inventory.

The inventory judges from the configurations it could read; where Hyper-V's list says more
(a VM whose `.vmcx` needs the optional parser, its disks, its checkpoints), the findings are
brought in line with it, each condition once:

- a differencing disk a listed VM uses is no orphan; when every VM configuration of the folder
  is known (read, or listed by Hyper-V), the orphans are those no VM uses;
- a `.vmcx` left unread (``vm.config.parser-missing``, a warning) whose VM Hyper-V listed
  becomes ``audit.config-not-read`` (info: its VM, disks and checkpoints came from the list);
  one no list covers stays a warning, and the run says which configurations were not read;
- checkpoints: backup leftovers and old ones (:mod:`hvrescue.audit.checkpoints`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from hvrescue.audit import checkpoints
from hvrescue.audit.vms import HyperVVm, Overlay, orphans, overlay
from hvrescue.errors import InputError
from hvrescue.findings import Finding, Severity
from hvrescue.inventory import Inventory
from hvrescue.io.files import read_evidence

PARSER_MISSING = "vm.config.parser-missing"
ORPHAN = "inventory.orphan-differencing"
NOT_READ = "audit.config-not-read"
MAX_FOUND_FILE = 4 * 1024 * 1024  # text files of the audited folder read for command outputs
MAX_FOUND_FILES = 2000
TEXT_SUFFIXES = (".txt", ".log", ".out", ".json")


def found_texts(inv: Inventory) -> Iterator[tuple[str, bytes]]:
    """The text files of the folder that may hold command outputs (a collector's bundle keeps
    icacls, Get-VM, Get-VMHardDiskDrive and Get-VMSnapshot outputs), one at a time."""
    texts = [
        f for f in inv.files if f.path.lower().endswith(TEXT_SUFFIXES) and f.size <= MAX_FOUND_FILE
    ]
    for info in texts[:MAX_FOUND_FILES]:
        try:
            data = read_evidence(info.path, MAX_FOUND_FILE)
        except (OSError, InputError):
            continue  # not ours to judge here: the file is other evidence
        yield info.path, data


def _owner_names(inv: Inventory) -> dict[str, str]:
    """The VM name of each chain file, by real path."""
    real_of = {f.rel: f.path for f in inv.files}
    out: dict[str, str] = {}
    for vm in inv.vms:
        if vm.get("kind") != "vm":
            continue
        for disk in vm.get("disks") or []:
            for rel in disk.get("chain") or []:
                out.setdefault(real_of.get(rel, rel), str(vm.get("name") or "?"))
    return out


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _unknown_homes(inv: Inventory, layer: Overlay) -> list[str]:
    """The VM folders of the configurations neither read nor listed by Hyper-V: their disks
    cannot be told from orphans."""
    homes = []
    for f in inv.findings:
        if f.code == PARSER_MISSING and layer.stands_for(inv.root, f.path) is None:
            folder = os.path.dirname(os.path.dirname(os.path.realpath(f.path)))
            if folder != os.path.realpath(inv.root):  # a configuration at the top: no folder
                homes.append(folder)
    return homes


def _not_read(f: Finding, inv: Inventory, layer: Overlay) -> Finding:
    vm = layer.stands_for(inv.root, f.path)
    if vm is None:
        return f
    params = {"vm": vm.name or "?", "vm_id": vm.vm_id or "?", "source": ", ".join(vm.sources)}
    return Finding(NOT_READ, Severity.INFO, f.path, params=params)


def apply(
    inv: Inventory, vms: list[HyperVVm], older_than_days: int
) -> tuple[list[Finding], dict[str, int], list[dict[str, Any]], list[HyperVVm]]:
    """The folder's findings in line with ``vms`` (``inv.vms`` gains the listed VMs whose
    configuration was not read), the oldest checkpoint's age per VM name, the
    configurations not read (path, and the listed VM that stands for it, if any), and the
    listed VMs matched to this folder."""
    layer = overlay(inv, vms)
    found = orphans(inv, layer)
    unknown = _unknown_homes(inv, layer)
    out: list[Finding] = []
    for f in inv.findings:
        real = os.path.realpath(f.path)
        if f.code == ORPHAN and (real in layer.used or any(_under(real, h) for h in unknown)):
            continue  # a listed VM's, or maybe the disk of a VM whose configuration is unread
        if f.code == "inventory.no-vm-config" and found is not None:
            continue  # every configuration is known: which VM uses which chain is checked
        out.append(_not_read(f, inv, layer) if f.code == PARSER_MISSING else f)
    known = {os.path.realpath(f.path) for f in out if f.code == ORPHAN}
    out += [Finding(ORPHAN, Severity.WARNING, p) for p in found or [] if p not in known]
    owners = _owner_names(inv)
    stale = {
        owners[os.path.realpath(f.path)]
        for f in out
        if f.code == "inventory.checkpoint-old" and os.path.realpath(f.path) in owners
    }
    extra, oldest = checkpoints.findings(inv, layer, older_than_days, stale)
    unread = [
        {"path": f.path, "vm": f.params.get("vm") if f.code == NOT_READ else None}
        for f in out
        if f.code in (PARSER_MISSING, NOT_READ)
    ]
    return [*out, *extra], oldest, unread, [vm for vm, _row in layer.vms]
