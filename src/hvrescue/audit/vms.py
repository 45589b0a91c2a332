"""Hyper-V's own list of VMs (``vminfo``) laid over a storage tree.

Each VM of ``Get-VM`` / ``Get-VMHardDiskDrive`` / ``Get-VMSnapshot`` is matched to the tree by
the Windows paths Hyper-V gives (its disks, its folders), never by a name that only ends alike:

1. on the Windows host, the path itself when it lies under the folder audited;
2. through its configuration file in the tree (``Virtual Machines\\<VMId>.vmcx``, read or not):
   the folder holding ``Virtual Machines`` is the VM's ``ConfigurationLocation`` (or ``Path``);
3. through the audited folder's own name in the path (``D:\\Hyper-V\\web01\\...`` under an
   audited ``Hyper-V``): what follows it must be a file (or folder) of the tree.

A VM whose configuration was read keeps the configuration's disks (the inventory's); the
others become VM entries of the inventory's shape (``"source": "vm-info"``) with the chain of
each disk found, so that the ACL check, the per-VM figures and the orphan check see them.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from hvrescue import platform as plat
from hvrescue.facts.model import Fact
from hvrescue.inventory import Inventory
from hvrescue.preserve.plan import ROLE_DIFF

CONFIG_SUFFIXES = (".vmcx", ".xml")
HOME_FIELDS = (("path", "Path"), ("configuration_location", "ConfigurationLocation"))


def components(path: str) -> tuple[str, ...]:
    """A Windows (or local) path as lower-case parts, for comparisons Windows would make."""
    return tuple(p for p in path.replace("/", "\\").lower().split("\\") if p)


@dataclass
class HyperVVm:
    name: str | None
    vm_id: str | None
    state: str | None = None
    homes: list[str] = field(default_factory=list)  # Path, ConfigurationLocation (Windows)
    disks: list[str] = field(default_factory=list)  # Windows paths, whole (never cut)
    cut_disks: int = 0  # disk paths the console cut: not matched
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    disk_keys: set[tuple[str, ...]] = field(default_factory=set, repr=False)
    checkpoint_keys: set[tuple[str, Any]] = field(default_factory=set, repr=False)

    def add_source(self, fact: Fact) -> None:
        if fact.provenance.path not in self.sources:
            self.sources.append(fact.provenance.path)


def created_utc(attrs: dict[str, Any]) -> dt.datetime | None:
    """A checkpoint's creation time: UTC when the JSON says it, else the host's local time
    read as UTC (the offset is not in the text: up to a day off at the threshold)."""
    for key in ("creation_time_utc", "creation_time"):
        value = attrs.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


def _text(value: Any) -> str | None:
    """A value of a JSON a person may have edited: text, or nothing."""
    return value.strip() or None if isinstance(value, str) else None


def _cut(fact: Fact, field_name: str) -> bool:
    return field_name in (fact.attributes.get("truncated_fields") or [])


class _Book:
    """The VMs of the facts, by id and by name."""

    def __init__(self) -> None:
        self.vms: list[HyperVVm] = []
        self.by_id: dict[str, HyperVVm] = {}
        self.by_name: dict[str, list[HyperVVm]] = {}
        self.ambiguous = 0

    def named(self, name: str | None) -> list[HyperVVm]:
        return self.by_name.get((name or "").strip().lower(), [])

    def _new(self, name: str | None, vm_id: str | None) -> HyperVVm:
        vm = HyperVVm(name, vm_id)
        self.vms.append(vm)
        self.by_name.setdefault((name or "").strip().lower(), []).append(vm)
        return vm

    def of(self, vm_id: str | None, name: str | None) -> HyperVVm | None:
        if vm_id:
            vm = self.by_id.get(vm_id)
            if vm is None:
                unnamed = [v for v in self.named(name) if v.vm_id is None]
                vm = unnamed[0] if len(unnamed) == 1 else self._new(name, vm_id)
                vm.vm_id = vm_id
                self.by_id[vm_id] = vm
            return vm
        same = self.named(name) if (name or "").strip() else []
        if len(same) == 1:
            return same[0]
        if not same and name:
            return self._new(name, None)
        self.ambiguous += 1  # two VMs of one name and no id: not guessed
        return None


def gather(facts: list[Fact]) -> tuple[list[HyperVVm], int]:
    """The VMs the facts describe, and how many disk or checkpoint rows named a VM ambiguously."""
    book = _Book()
    order = {"vm": 0, "vm_disk": 1, "checkpoint": 2}
    ranked = sorted(facts, key=lambda f: (order.get(f.kind, 3), not f.attributes.get("vm_id")))
    for fact in ranked:
        a = fact.attributes
        if fact.kind == "vm":
            vm = book.of(_text(a.get("vm_id")), _text(a.get("name")))
            if vm is None:
                continue
            vm.name = vm.name or _text(a.get("name"))
            vm.state = vm.state or _text(a.get("state"))
            for key, prop in (
                ("path", "Path"),
                ("configuration_location", "ConfigurationLocation"),
            ):
                home = a.get(key)
                if isinstance(home, str) and home and not _cut(fact, prop) and home not in vm.homes:
                    vm.homes.append(home)
        elif fact.kind in ("vm_disk", "checkpoint"):
            vm = book.of(_text(a.get("vm_id")), _text(a.get("vm_name")))
            if vm is None:
                continue
            if fact.kind == "vm_disk":
                path = a.get("path")
                if not isinstance(path, str) or not path:
                    continue  # a pass-through disk: no file
                if _cut(fact, "Path"):
                    vm.cut_disks += 1
                elif components(path) not in vm.disk_keys:
                    vm.disk_keys.add(components(path))
                    vm.disks.append(path)
            else:
                _add_checkpoint(vm, fact)
        else:
            continue
        vm.add_source(fact)
    return book.vms, book.ambiguous


def _add_checkpoint(vm: HyperVVm, fact: Fact) -> None:
    a = fact.attributes
    name = a.get("name")
    if not isinstance(name, str) or not name or _cut(fact, "Name"):
        return
    when = created_utc(a)
    if (name, when) in vm.checkpoint_keys:
        return  # the same checkpoint from two outputs
    vm.checkpoint_keys.add((name, when))
    vm.checkpoints.append(
        {
            "name": name,
            "type": a.get("snapshot_type"),
            "created": when,
            # As the output gave it: UTC ("Z") from a PS 5.1 JSON, else the host's local time.
            "created_text": a.get("creation_time_utc") or a.get("creation_time") or "?",
            "path": a.get("path"),
            "source": fact.provenance.path,
        }
    )


class TreeMap:
    """The files and folders of one audited folder by their lower-case parts under it."""

    def __init__(self, inv: Inventory) -> None:
        self.root = inv.root
        self.base = os.path.basename(inv.root.rstrip(os.sep)).lower()
        self.files: dict[tuple[str, ...], str | None] = {}
        self.folders: set[tuple[str, ...]] = {()}
        self.configs: dict[str, tuple[str, ...]] = {}  # VM id -> its configuration file
        for info in inv.files:
            if os.path.isabs(info.rel):
                continue
            key = components(info.rel)
            known = self.files.get(key, info.path)
            self.files[key] = info.path if known == info.path else None  # case twins: neither
            self.folders.update(key[:i] for i in range(len(key)))
            if (
                len(key) >= 2
                and key[-2] == "virtual machines"
                and key[-1].endswith(CONFIG_SUFFIXES)
            ):
                self.configs[os.path.splitext(key[-1])[0]] = key
        self.anchors: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def anchor(self, vm: HyperVVm) -> tuple[str, ...] | None:
        """The VM's configuration file in the tree, and its folders anchored by it."""
        config = self.configs.get(vm.vm_id or "")
        if config is None:
            return None
        home = config[:-2]
        for windows in vm.homes:
            pair = (components(windows), home)
            if pair not in self.anchors:
                self.anchors.append(pair)
                self.anchors.sort(key=lambda p: -len(p[0]))  # the most precise first
        return config

    def _hit(self, key: tuple[str, ...], folder: bool) -> bool:
        return key in self.folders if folder else self.files.get(key) is not None

    def locate(self, windows: str, folder: bool = False) -> tuple[str, ...] | None:
        """The parts under the audited folder of the file (or folder) Hyper-V names."""
        if plat.on_windows():
            real = os.path.realpath(windows)
            rel = os.path.relpath(real, os.path.realpath(self.root))
            if not rel.startswith(".."):
                key = () if rel == "." else components(rel)
                if self._hit(key, folder):
                    return key
        parts = components(windows)
        for prefix, home in self.anchors:
            if parts[: len(prefix)] == prefix and self._hit(home + parts[len(prefix) :], folder):
                return home + parts[len(prefix) :]
        for i in range(len(parts) - 1, -1, -1):
            # A folder by the same name as the audited one is no proof that it is the same:
            # only what lies under it (a VM's own folder, a file) is taken.
            if parts[i] == self.base and parts[i + 1 :] and self._hit(parts[i + 1 :], folder):
                return parts[i + 1 :]
        return None


def _chain(by_path: dict[str, Any], leaf: str) -> list[str]:
    """The files from ``leaf`` down to its base (real paths), as the inventory linked them."""
    out: list[str] = []
    step: str | None = leaf
    while step and step not in out:
        out.append(step)
        info = by_path.get(step)
        step = info.parent if info is not None else None
    return out


@dataclass
class Overlay:
    """What the VM list adds to one audited folder."""

    vms: list[tuple[HyperVVm, dict[str, Any]]] = field(default_factory=list)  # (VM, its row)
    used: set[str] = field(default_factory=set)  # real paths of the chains of matched VMs
    covered: dict[str, HyperVVm] = field(default_factory=dict)  # config path -> its VM
    homes: dict[tuple[str, ...], HyperVVm] = field(default_factory=dict)

    def stands_for(self, root: str, config: str) -> HyperVVm | None:
        """The listed VM that tells what an unread configuration would: the VM's own, or a
        checkpoint's (``<VM folder>\\Snapshots\\<id>.vmcx``) when its checkpoints are listed."""
        vm = self.covered.get(os.path.realpath(config))
        if vm is not None:
            return vm
        parts = components(os.path.relpath(config, root))
        if parts[-2:-1] == ("snapshots",):
            owner = self.homes.get(parts[:-2])
            if owner is not None and owner.checkpoints:
                return owner
        return None


def overlay(inv: Inventory, vms: list[HyperVVm]) -> Overlay:
    """Match ``vms`` to ``inv``: add the VMs whose configuration was not read to ``inv.vms``
    (their disks' chains found in the tree) and say which files they use."""
    tree = TreeMap(inv)
    out = Overlay()
    read = {str(v.get("vm_id") or "").lower(): v for v in inv.vms if v.get("kind") == "vm"}
    rel_of = {f.path: f.rel for f in inv.files}
    by_path = {f.path: f for f in inv.files}
    for vm in vms:
        config = tree.anchor(vm)
        disks: list[dict[str, Any]] = []
        for windows in vm.disks:
            key = tree.locate(windows)
            real = tree.files.get(key) if key is not None else None
            chain = list(reversed(_chain(by_path, real))) if real else []
            out.used.update(chain)
            disks.append(
                {
                    "path": windows,
                    "local": rel_of.get(real, real) if real else None,
                    "found": real is not None,
                    "chain": [rel_of.get(p, p) for p in chain],
                }
            )
        places = [*vm.homes, *(c["path"] for c in vm.checkpoints)]
        homes = [tree.locate(p, True) for p in places if isinstance(p, str) and p]
        home = (
            config[:-2] if config is not None else next((h for h in homes if h is not None), None)
        )
        if config is None and home is None and not any(d["found"] for d in disks):
            continue  # not a VM of this folder
        if home is not None:
            out.homes.setdefault(home, vm)
        config_path = tree.files.get(config) if config is not None else None
        if config_path:
            out.covered[config_path] = vm
        row = read.get(vm.vm_id or "")
        if row is None:
            row = {
                "name": vm.name,
                "vm_id": vm.vm_id,
                "kind": "vm",
                "source": "vm-info",
                "format": None,
                "path": rel_of.get(config_path or ""),
                "state": vm.state,
                "disks": disks,
                "snapshot_count": len(vm.checkpoints) if vm.checkpoints else None,
                "sources": list(vm.sources),
            }
            inv.vms.append(row)
        out.vms.append((vm, row))
    return out


def orphans(inv: Inventory, layer: Overlay) -> list[str] | None:
    """Differencing disks no VM uses (real paths), when every VM configuration of the folder
    is known, read or from Hyper-V's list; None when one is not (a disk of an unknown VM would
    pass for an orphan)."""
    configs = [
        f.path
        for f in inv.files
        if components(f.rel)[-2:-1] == ("virtual machines",)
        and f.rel.lower().endswith(CONFIG_SUFFIXES)
    ]
    read_ids = {str(v.get("vm_id") or "").lower() for v in inv.vms if v.get("source") != "vm-info"}
    stems = {p: os.path.splitext(os.path.basename(p))[0].lower() for p in configs}
    if not configs or any(p not in layer.covered and stems[p] not in read_ids for p in configs):
        return None
    used: set[str] = set(layer.used)
    real_of = {f.rel: f.path for f in inv.files}
    for vm in inv.vms:
        for disk in vm.get("disks") or []:
            used.update(real_of.get(r, r) for r in disk.get("chain") or [])
    parents = {f.parent for f in inv.files if f.parent}
    return [
        f.path
        for f in inv.files
        if f.role == ROLE_DIFF and f.path not in used and f.path not in parents
    ]
