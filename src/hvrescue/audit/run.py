"""`audit`: the prevention conditions of Hyper-V storage trees, as figures a monitor graphs.

Each folder is walked once and taken stock of (:func:`hvrescue.inventory.build_inventory`, with
the thresholds in :class:`~hvrescue.inventory.CheckOptions`); the audit adds what only a run on
the tree itself can know (the free space of the volume that holds each chain, the disks' ACLs)
and summarises per chain and per VM: depth, the oldest checkpoint's age, the bytes a merge
writes, the free bytes, and the findings.
"""

from __future__ import annotations

import datetime as dt
import itertools
import ntpath
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from hvrescue.audit import apply, vminfo
from hvrescue.audit.acl import acl_facts, acl_findings, read_acl_files
from hvrescue.audit.checkpoints import LEFTOVER, OLD
from hvrescue.audit.vms import gather
from hvrescue.errors import InputError
from hvrescue.evidence import Budget, Item, Skipped, Walk
from hvrescue.facts.model import Fact
from hvrescue.findings import Finding, Severity
from hvrescue.hyperv import headroom
from hvrescue.inventory import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_OLDER_THAN_DAYS,
    MAX_FILES,
    CheckOptions,
    FileInfo,
    Inventory,
    build_inventory,
)
from hvrescue.vdisk.check import dedupe
from hvrescue.vdisk.detect import DISK_SUFFIXES

DEFAULT_HEADROOM_MARGIN = 1.1
ORPHAN_CODES = ("inventory.orphan-differencing", "inventory.rct-orphan")


@dataclass(frozen=True)
class AuditOptions:
    """The thresholds, and where the disks' ACLs come from: ``acl_files`` (icacls outputs),
    the icacls outputs found in the folders, and on Windows (``live_acl`` None) or when
    ``live_acl`` is True, icacls run on each disk file. The VMs, their disks and checkpoints
    come from the configurations read, from ``vm_info_files`` (Get-VM, Get-VMHardDiskDrive,
    Get-VMSnapshot outputs), from such outputs found in the folders, and on Windows
    (``live_vm_info`` None) or when ``live_vm_info`` is True, from the cmdlets run here."""

    older_than_days: int = DEFAULT_OLDER_THAN_DAYS
    max_depth: int = DEFAULT_MAX_DEPTH
    headroom_margin: float = DEFAULT_HEADROOM_MARGIN
    rct_max_bytes: int | None = None
    acl_files: tuple[str, ...] = ()
    live_acl: bool | None = None
    vm_info_files: tuple[str, ...] = ()
    live_vm_info: bool | None = None
    as_of: dt.datetime | None = None
    budget: Budget | None = None
    # Free bytes by Windows drive ("D:"), as Get-Volume shows them on the host: for a copy of
    # the storage, whose own volume says nothing of the host's. Given, the tree's is not read.
    volume_free: dict[str, int] | None = None

    def thresholds(self) -> dict[str, Any]:
        return {
            "older_than_days": self.older_than_days,
            "max_depth": self.max_depth,
            "headroom_margin": self.headroom_margin,
            "rct_max_bytes": self.rct_max_bytes,
            "volume_free": dict(self.volume_free) if self.volume_free else None,
        }


@dataclass
class AuditResult:
    roots: list[str]
    as_of: dt.datetime
    thresholds: dict[str, Any]
    vms: list[dict[str, Any]] = field(default_factory=list)
    chains: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    acl_checked: int = 0  # disk files whose ACL was compared with their VM's id
    # Where Hyper-V's own VM list came from, and what of it matched the folders.
    vm_info: dict[str, Any] = field(default_factory=dict)
    configs_not_read: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``findings`` when anything of warning or worse stands, else ``clean``."""
        return "findings" if any(f.severity >= Severity.WARNING for f in self.findings) else "clean"

    def orphaned_files(self) -> int:
        return sum(1 for f in self.findings if f.code in ORPHAN_CODES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "roots": self.roots,
            "as_of": self.as_of.isoformat().replace("+00:00", "Z"),
            "thresholds": self.thresholds,
            "vms": self.vms,
            "chains": self.chains,
            "findings": [f.as_dict() for f in self.findings],
            "skipped": [s.as_dict() for s in self.skipped],
            "acl_checked": self.acl_checked,
            "vm_info": self.vm_info,
            "configs_not_read": self.configs_not_read,
            "orphaned_files": self.orphaned_files(),
            "status": self.status,
        }


def check_roots(paths: list[str]) -> list[str]:
    """The folders to audit, absolute; a folder given twice, or inside another one given,
    would count its files twice: refused."""
    roots: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            raise InputError("error.audit.not-a-folder", path=path)
        real = os.path.normcase(os.path.realpath(path))
        for other in roots:
            known = os.path.normcase(os.path.realpath(other))
            if real == known or real.startswith(known.rstrip(os.sep) + os.sep):
                raise InputError("error.audit.overlap", path=path, other=other)
            if known.startswith(real.rstrip(os.sep) + os.sep):
                raise InputError("error.audit.overlap", path=other, other=path)
        roots.append(os.path.abspath(path))
    return roots


def _walk(root: str, budget: Budget | None) -> tuple[list[Item], list[Skipped]]:
    items: list[Item] = []
    skipped: list[Skipped] = []
    limits = Budget.of(budget.max_memory if budget else None, max_files=MAX_FILES)
    for entry in Walk([root], limits, archives=False):
        if isinstance(entry, Skipped):
            skipped.append(entry)
        elif isinstance(entry, Item) and entry.stat is not None and not entry.member:
            items.append(entry)
    return items, skipped


def _free_space(items: list[Item]) -> dict[str, int]:
    """Free bytes of the volume holding each disk file, by its real path (one query per
    volume): the headroom check compares them with what a merge of the chain writes."""
    by_device: dict[int, int | None] = {}
    out: dict[str, int] = {}
    for item in items:
        if not item.path.lower().endswith(DISK_SUFFIXES) or item.stat is None:
            continue
        real = os.path.realpath(item.path)
        device = item.stat.st_dev
        if device not in by_device:
            try:
                by_device[device] = shutil.disk_usage(os.path.dirname(real)).free
            except OSError:
                by_device[device] = None
        free = by_device[device]
        if free is not None:
            out[real] = free
    return out


def _drive_free(inv: Inventory, table: dict[str, int]) -> dict[str, int]:
    """Free bytes of each chain file's host volume, by real path, from the drive the VM
    configurations name for its disks."""
    real_of = {f.rel: f.path for f in inv.files}
    volumes = {k.strip().rstrip("\\").rstrip(":").upper() + ":": v for k, v in table.items()}
    out: dict[str, int] = {}
    for vm in inv.vms:
        for disk in vm.get("disks", []):
            drive = ntpath.splitdrive(str(disk.get("path") or ""))[0].upper()
            if drive not in volumes:
                continue
            for rel in disk.get("chain", []):
                out.setdefault(real_of.get(rel, rel), volumes[drive])
    return out


def _merge_needs(inv: Inventory) -> dict[str, int]:
    """The bytes deleting each chain's checkpoints writes, by its leaf's real path (None where
    a layer could not be read: left out, never shown as 0)."""
    out: dict[str, int] = {}
    for leaf, need in headroom.merge_needs(inv).items():
        if need.delete_checkpoints is not None:
            out[os.path.realpath(leaf)] = need.delete_checkpoints
    return out


def _shown(inv: Inventory, info: FileInfo) -> str:
    """A file's path as the user reaches it: under the folder given, else as found."""
    if os.path.isabs(info.rel):
        return info.rel
    return os.path.join(inv.root, info.rel.replace("/", os.sep))


def _days(inv: Inventory, since_ns: int) -> int:
    since = dt.datetime.fromtimestamp(since_ns // 1_000_000_000, dt.UTC)
    return (inv.as_of - since).days


def _vm_of_files(inv: Inventory) -> dict[str, dict[str, Any]]:
    """The VM (not a checkpoint's configuration) each chain file belongs to, by real path."""
    real_of = {f.rel: f.path for f in inv.files}
    owner: dict[str, dict[str, Any]] = {}
    for vm in inv.vms:
        if vm.get("kind") != "vm":
            continue
        for disk in vm.get("disks", []):
            for rel in disk.get("chain", []):
                owner.setdefault(real_of.get(rel, rel), vm)
    return owner


def _views(
    inv: Inventory,
    free: dict[str, int],
    needs: dict[str, int],
    findings: list[Finding],
    oldest: dict[str, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_path = {f.path: f for f in inv.files}
    owner = _vm_of_files(inv)
    chains: list[dict[str, Any]] = []
    chain_of: dict[str, dict[str, Any]] = {}
    for files in inv.chains:
        leaf = by_path[files[-1]]
        ages = [
            _days(inv, by_path[parent].mtime_ns)
            for parent, child in itertools.pairwise(files)
            if by_path[child].parent == parent and by_path[parent].mtime_ns
        ]
        vm = next((owner[p] for p in reversed(files) if p in owner), None)
        view: dict[str, Any] = {
            "leaf": _shown(inv, leaf),
            "base": _shown(inv, by_path[files[0]]),
            "depth": len(files) - 1,
            "oldest_checkpoint_days": max(ages) if ages else None,
            "merge_bytes": needs.get(leaf.path),
            "free_bytes": free.get(leaf.path),
            "vm": vm.get("name") if vm else None,
            "findings": [],
        }
        chains.append(view)
        for p in files:
            chain_of.setdefault(p, view)
    vms: list[dict[str, Any]] = []
    vm_view: dict[int, dict[str, Any]] = {}
    for vm in inv.vms:
        if vm.get("kind") != "vm":
            continue
        mine = [c for p, c in chain_of.items() if owner.get(p) is vm]
        unique = list({id(c): c for c in mine}.values())
        ages = [
            c["oldest_checkpoint_days"] for c in unique if c["oldest_checkpoint_days"] is not None
        ]
        if str(vm.get("name")) in oldest:  # the checkpoints' own creation times
            ages.append(oldest[str(vm.get("name"))])
        config = vm.get("path")
        merges = [c["merge_bytes"] for c in unique]
        frees = [c["free_bytes"] for c in unique if c["free_bytes"] is not None]
        vm_row: dict[str, Any] = {
            "name": vm.get("name"),
            "vm_id": vm.get("vm_id"),
            "config": os.path.join(inv.root, config.replace("/", os.sep)) if config else None,
            "source": vm.get("source") or "configuration",
            "root": inv.root,
            "chains": [c["leaf"] for c in unique],
            "depth": max((c["depth"] for c in unique), default=0),
            "checkpoint_count": vm.get("snapshot_count"),
            "oldest_checkpoint_days": max(ages) if ages else None,
            "merge_bytes": sum(merges) if merges and None not in merges else None,
            "free_bytes": min(frees) if frees else None,
            "findings": [],
        }
        vms.append(vm_row)
        vm_view[id(vm)] = vm_row
    configs = {os.path.realpath(v["config"]): v for v in vms if v["config"]}
    named = {v["name"]: v for v in vms}
    for f in findings:
        real = os.path.realpath(f.path)
        chain = chain_of.get(real)
        if chain is not None:
            chain["findings"].append(f.code)
        owned = owner.get(real)
        target = vm_view.get(id(owned)) if owned is not None else configs.get(real)
        if f.code in (LEFTOVER, OLD):  # a checkpoint is its VM's, wherever it points
            target = named.get(f.params.get("vm"))
        if target is not None:
            target["findings"].append(f.code)
    return vms, chains


def _vm_facts(opts: AuditOptions) -> tuple[list[Fact], dict[str, Any]]:
    """The VM list given (``--vm-info``) and, on the Windows host, Hyper-V's own."""
    facts = vminfo.read_vm_info_files(list(opts.vm_info_files))
    info: dict[str, Any] = {"files": list(opts.vm_info_files), "live": None, "found": []}
    if vminfo.wanted_live(opts.live_vm_info):
        live, failed = vminfo.live_vm_info()
        facts += live
        info["live"] = {"ran": [c for c, _ in vminfo.COMMANDS if c not in failed], "failed": failed}
    return facts, info


def run_audit(paths: list[str], options: AuditOptions | None = None) -> AuditResult:
    """Audit each folder of ``paths``; ``InputError`` when one cannot be audited at all."""
    opts = options or AuditOptions()
    roots = check_roots(paths)
    as_of = opts.as_of or dt.datetime.now(dt.UTC)
    acls = read_acl_files(list(opts.acl_files))
    vm_facts, info = _vm_facts(opts)
    result = AuditResult(roots, as_of, opts.thresholds())
    extra: dict[str, Any] = {"headroom_margin": opts.headroom_margin}
    if opts.rct_max_bytes is not None:
        extra["rct_max_bytes"] = opts.rct_max_bytes
    if opts.volume_free:
        extra["volume_free"] = dict(opts.volume_free)
    built = []
    for root in roots:
        items, skipped = _walk(root, opts.budget)
        free = {} if opts.volume_free else _free_space(items)
        check = CheckOptions(opts.older_than_days, opts.max_depth, free, extra)
        inv = build_inventory(root, as_of=as_of, budget=opts.budget, items=items, options=check)
        for path, data in apply.found_texts(inv):  # icacls and Get-VM* outputs kept in the tree
            acls += acl_facts(data, path)
            found = vminfo.facts_of_text(data, path)
            vm_facts += found
            if found:
                info["found"].append(path)
        built.append((inv, skipped, free, check))
    listed, info["ambiguous_rows"] = gather(vm_facts)
    matched: list[str] = []
    seen: set[int] = set()  # the listed VMs some folder matched
    for inv, skipped, free, check in built:
        before = len(inv.vms)
        findings, oldest, unread, here = apply.apply(inv, listed, opts.older_than_days)
        seen.update(id(vm) for vm in here)
        matched += [str(v.get("name")) for v in inv.vms[before:]]
        if opts.volume_free:
            if len(inv.vms) > before:  # the disks of the listed VMs name their drives too
                findings += headroom.check(inv, check)
            free = _drive_free(inv, opts.volume_free)
        acl, checked = acl_findings(inv, acls, opts.live_acl)
        findings = dedupe([*findings, *acl])
        if skipped:
            findings.append(
                Finding(
                    "audit.walk-incomplete",
                    Severity.WARNING,
                    inv.root,
                    params={"count": len(skipped)},
                )
            )
        vms, chains = _views(inv, free, _merge_needs(inv), findings, oldest)
        result.vms += vms
        result.chains += chains
        result.findings += findings
        result.skipped += skipped
        result.acl_checked += checked
        result.configs_not_read += unread
    unmatched = [vm for vm in listed if id(vm) not in seen]
    if unmatched and built:
        # Said as a finding too, so that JSON and Prometheus readers see the audit did not
        # cover them (a VM of another folder, or the folder given above its "Hyper-V").
        names = sorted(str(vm.name or vm.vm_id or "?") for vm in unmatched)
        result.findings.append(
            Finding(
                "audit.vm-info-unmatched",
                Severity.INFO,
                built[0][0].root,
                params={"count": len(unmatched), "names": ", ".join(names[:20])},
            )
        )
    info["vms"] = len(listed)
    info["matched"] = matched
    result.vm_info = info
    return result
