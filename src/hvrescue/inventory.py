"""`inventory`: which files belong together, per VM and per chain, and what does not add up.

Built from the files alone (identities, parent links, configuration contents), never from names:
each differencing disk is linked to its parent by the engine's chain resolution, chains are
listed base first, and each VM configuration's disks are matched to the files present.
"""

from __future__ import annotations

import datetime as dt
import importlib
import ntpath
import os
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, NotADiskError
from hvrescue.evidence import Budget, Item, Skipped, Walk
from hvrescue.evidence import classify as kinds
from hvrescue.findings import Finding, Severity
from hvrescue.preserve.plan import (
    ROLE_BASE,
    ROLE_CONFIG,
    ROLE_DIFF,
    ROLE_RUNTIME,
    _role_by_name,
)
from hvrescue.vdisk.chain import candidate_paths, resolve_chain
from hvrescue.vdisk.check import dedupe
from hvrescue.vdisk.detect import DISK_SUFFIXES, probe_identity
from hvrescue.vmconfig import ConfigUnavailable, VmConfig, read_config

MAX_FILES = 200_000
DEFAULT_OLDER_THAN_DAYS = 14
DEFAULT_MAX_DEPTH = 5
VM_FOLDERS = ("virtual machines", "snapshots")
# Checks run over a built inventory, each a module with ``check(inv, options) -> list[Finding]``
# (see hvrescue.hyperv). A module that is not there is skipped.
CHECK_MODULES: tuple[str, ...] = (
    "hvrescue.hyperv.aftermath",
    "hvrescue.hyperv.leftovers",
    "hvrescue.hyperv.statefiles",
    "hvrescue.hyperv.headroom",
)


@dataclass(frozen=True)
class CheckOptions:
    """Thresholds of the checks (`audit` exposes them as options). ``free_space``: free bytes
    of the volume that holds each chain, by the chain's leaf (real path), when known (a live
    host, or a collected Get-Volume); ``extra``: per-check settings by name."""

    older_than_days: int = DEFAULT_OLDER_THAN_DAYS
    max_depth: int = DEFAULT_MAX_DEPTH
    free_space: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileInfo:
    path: str
    rel: str
    role: str
    size: int
    mtime_ns: int
    ctime_ns: int
    format: str | None = None
    identity: str | None = None
    parent: str | None = None  # real path of the resolved parent
    parent_state: str | None = None  # "found", "missing", "mismatch", None for base disks
    used_by: list[str] = field(default_factory=list)  # config paths

    def as_dict(self, rel_of: dict[str, str]) -> dict[str, Any]:
        from hvrescue.preserve.manifest import iso_ns  # not for triage, which reads no files list

        return {
            "path": self.rel,
            "source": self.path,
            "role": self.role,
            "size": self.size,
            "mtime": iso_ns(self.mtime_ns),
            "ctime": iso_ns(self.ctime_ns),
            "format": self.format,
            "identity": self.identity,
            "parent": rel_of.get(self.parent or "", self.parent),
            "parent_state": self.parent_state,
            "used_by": [rel_of.get(u, u) for u in self.used_by],
        }


@dataclass
class Inventory:
    root: str
    as_of: dt.datetime
    files: list[FileInfo] = field(default_factory=list)
    chains: list[list[str]] = field(default_factory=list)  # real paths, base first
    vms: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # what the walk did not read

    @property
    def status(self) -> str:
        """``findings`` when a finding of warning or worse was made, else ``clean``."""
        return "findings" if any(f.severity >= Severity.WARNING for f in self.findings) else "clean"

    def as_dict(self) -> dict[str, Any]:
        rel_of = {f.path: f.rel for f in self.files}
        by_path = {f.path: f for f in self.files}
        chains = []
        for chain in self.chains:
            leaf = by_path[chain[-1]]
            chains.append(
                {
                    "base": rel_of[chain[0]],
                    "leaf": rel_of[chain[-1]],
                    "files": [rel_of[p] for p in chain],
                    "depth": len(chain) - 1,
                    "complete": by_path[chain[0]].role == ROLE_BASE,
                    "used_by": [rel_of.get(u, u) for u in leaf.used_by],
                }
            )
        return {
            "root": self.root,
            "as_of": self.as_of.isoformat().replace("+00:00", "Z"),
            "files": [f.as_dict(rel_of) for f in self.files],
            "chains": chains,
            "vms": self.vms,
            "skipped": [s.as_dict() for s in self.skipped],
        }


def _local_disk(config_path: str, windows_path: str) -> str | None:
    for candidate in candidate_paths(config_path, "absolute_win32_path", windows_path):
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
    return None


def _vm_home_local(config_path: str) -> str:
    folder = os.path.dirname(os.path.realpath(config_path))
    if os.path.basename(folder).lower() in VM_FOLDERS:
        return os.path.dirname(folder)
    return folder


def _vm_home_windows(config: VmConfig) -> str | None:
    for state in config.state_files:
        folder = ntpath.dirname(state)
        if ntpath.basename(folder).lower() in VM_FOLDERS:
            return ntpath.dirname(folder)
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _files(
    root: str, items: list[Item] | None, budget: Budget | None, inv: Inventory
) -> list[Item]:
    """The regular files under ``root``: those a walk already found, or a walk of its own
    (zips left as files); what the walk skipped goes to ``inv.skipped``."""
    if items is not None:
        return [i for i in items if not i.member and i.stat is not None]
    found: list[Item] = []
    limits = Budget.of(budget.max_memory if budget else None, max_files=MAX_FILES)
    for entry in Walk([root], limits, archives=False):
        if isinstance(entry, Skipped):
            inv.skipped.append(entry)
        elif isinstance(entry, Item) and entry.stat is not None:
            found.append(entry)
    return found


def build_inventory(
    root: str,
    search: list[str] | None = None,
    as_of: dt.datetime | None = None,
    older_than_days: int = DEFAULT_OLDER_THAN_DAYS,
    max_depth: int = DEFAULT_MAX_DEPTH,
    budget: Budget | None = None,
    items: list[Item] | None = None,
    options: CheckOptions | None = None,
) -> Inventory:
    """``items``: the files of ``root`` as a walk already found them (triage walks once);
    without them ``root`` is walked here, under ``budget``. ``options``: the thresholds of the
    checks of :data:`CHECK_MODULES` (``older_than_days``/``max_depth`` stand when not given)."""
    root = os.path.abspath(root)
    opts = options or CheckOptions(older_than_days, max_depth)
    older_than_days, max_depth = opts.older_than_days, opts.max_depth
    inv = Inventory(root, as_of or dt.datetime.now(dt.UTC))
    findings: list[Finding] = []
    search_dirs = [root, *(search or [])]
    by_real: dict[str, FileInfo] = {}
    configs: list[str] = []
    for item in _files(root, items, budget, inv):
        path = os.path.abspath(item.path)
        st = item.stat
        if st is None:
            continue
        real = os.path.realpath(path)
        info = FileInfo(
            real,
            os.path.relpath(path, root).replace(os.sep, "/"),
            _role_by_name(path),
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )
        if st.st_size == 0:
            findings.append(
                Finding("inventory.empty-file", Severity.WARNING, path, params={"role": info.role})
            )
        if item.kind == kinds.VM_RUNTIME:
            info.role = ROLE_RUNTIME
        elif item.kind == kinds.DISK:
            probe = probe_identity(path)
            if probe is not None:
                info.format, info.identity = probe[0], probe[1]
        elif item.kind == kinds.VM_CONFIG:
            info.role = ROLE_CONFIG
            configs.append(real)
        by_real[real] = info
    inv.files = sorted(by_real.values(), key=lambda f: f.rel)

    # Disks: who is whose parent, by identity.
    for info in inv.files:
        if info.format is None and not info.path.lower().endswith(DISK_SUFFIXES):
            continue
        if info.size == 0:
            continue
        try:
            # One link is enough here; deeper links are resolved from their own files.
            chain = resolve_chain(info.path, search_dirs, max_depth=1)
        except NotADiskError:
            # Named like a disk, holding no disk: say so rather than leave it out unseen.
            findings.append(Finding("file.not-a-disk", Severity.ERROR, info.path, 0))
            continue
        except HvrescueError:
            continue
        try:
            layer = chain.layers[0]
            if not layer.readable:
                findings.extend(layer.findings)
                continue
            info.format = layer.format
            info.identity = layer.identity
            info.role = ROLE_DIFF if layer.is_differencing else ROLE_BASE
            if layer.is_differencing:
                link = chain.links[0] if chain.links else None
                if link is not None and link.parent is not None:
                    info.parent = os.path.realpath(link.parent.path)
                    info.parent_state = "found"
                else:
                    info.parent_state = "missing"
                findings.extend(f for f in chain.findings if f.code != "chain.too-deep")
        finally:
            chain.close()

    # Chains: from each leaf (a disk nobody uses as parent) down to its base.
    parents = {f.parent for f in inv.files if f.parent}
    by_path = {f.path: f for f in inv.files}
    for info in inv.files:
        if info.format is None or info.path in parents:
            continue
        files = [info.path]
        walk = info
        while walk.parent and walk.parent in by_path and walk.parent not in files:
            walk = by_path[walk.parent]
            files.append(walk.path)
        if walk.parent and walk.parent not in by_path:
            files.append(walk.parent)  # a parent outside DIR (found through --search)
            by_path.setdefault(
                walk.parent,
                FileInfo(walk.parent, walk.parent, ROLE_BASE, 0, 0, 0),
            )
        files.reverse()
        inv.chains.append(files)
        depth = len(files) - 1
        if depth > max_depth:
            findings.append(
                Finding(
                    "inventory.chain-too-deep",
                    Severity.WARNING,
                    info.path,
                    params={"depth": depth, "limit": max_depth},
                )
            )
    listed = {f.path for f in inv.files}
    for extra in by_path.values():
        if extra.path not in listed:
            listed.add(extra.path)
            extra.rel = extra.path
            inv.files.append(extra)

    # Checkpoint age: a differencing disk exists since its parent stopped changing.
    limit = dt.timedelta(days=older_than_days)
    for info in inv.files:
        if info.role != ROLE_DIFF or not info.parent or info.parent not in by_path:
            continue
        parent = by_path[info.parent]
        if not parent.mtime_ns:
            continue
        since = dt.datetime.fromtimestamp(parent.mtime_ns // 1_000_000_000, dt.UTC)
        age = inv.as_of - since
        if age > limit:
            findings.append(
                Finding(
                    "inventory.checkpoint-old",
                    Severity.WARNING,
                    info.path,
                    params={
                        "since": since.isoformat().replace("+00:00", "Z"),
                        "days": age.days,
                        "limit": older_than_days,
                    },
                )
            )

    # VM configurations and the disks they name.
    vm_used: set[str] = set()
    read_any = False
    unread_homes: list[str] = []  # folders of VMs whose configuration could not be read
    for cfg_path in configs:
        try:
            config = read_config(cfg_path)
        except ConfigUnavailable as exc:
            unread_homes.append(_vm_home_local(cfg_path))
            missing = exc.reason == "parser-missing"
            code = "vm.config.parser-missing" if missing else "vm.config.unreadable"
            sev = Severity.WARNING if missing else Severity.ERROR
            findings.append(Finding(code, sev, cfg_path, params={"detail": exc.detail}))
            continue
        except HvrescueError as exc:
            unread_homes.append(_vm_home_local(cfg_path))
            findings.append(
                Finding(
                    "vm.config.unreadable", Severity.ERROR, cfg_path, params={"detail": exc.key}
                )
            )
            continue
        read_any = True
        home_local = _vm_home_local(cfg_path)
        home_windows = _vm_home_windows(config)
        vm = config.as_dict()
        vm["path"] = by_real[cfg_path].rel if cfg_path in by_real else cfg_path
        vm["kind"] = "snapshot" if config.is_snapshot or "snapshots" in cfg_path.lower() else "vm"
        disks_out = []
        for disk in config.disks:
            local = _local_disk(cfg_path, disk.path)
            entry: dict[str, Any] = disk.as_dict()
            entry["local"] = by_real[local].rel if local in by_real else local
            entry["found"] = local is not None
            chain_files: list[str] = []
            if local is None:
                findings.append(
                    Finding("vm.disk.missing", Severity.ERROR, cfg_path, params={"disk": disk.path})
                )
            else:
                step: str | None = local
                seen: set[str] = set()
                while step and step not in seen:
                    seen.add(step)
                    chain_files.append(step)
                    vm_used.add(step)
                    layer_info = by_path.get(step)
                    if layer_info is not None and cfg_path not in layer_info.used_by:
                        layer_info.used_by.append(cfg_path)
                    step = layer_info.parent if layer_info is not None else None
                newer = [f.path for f in inv.files if f.parent == local and f.role == ROLE_DIFF]
                if newer and vm["kind"] == "vm":
                    findings.append(
                        Finding(
                            "vm.disk.not-leaf",
                            Severity.ERROR,
                            cfg_path,
                            params={
                                "disk": disk.path,
                                "newer": ", ".join(os.path.basename(n) for n in newer),
                            },
                        )
                    )
            outside = False
            if home_windows is not None:
                outside = not disk.path.lower().startswith(home_windows.lower().rstrip("\\") + "\\")
            elif local is not None:
                outside = not _inside(local, home_local)
            if outside:
                findings.append(
                    Finding(
                        "vm.disk.other-folder",
                        Severity.WARNING,
                        cfg_path,
                        params={"disk": disk.path, "home": home_windows or home_local},
                    )
                )
            entry["outside_vm_folder"] = outside
            entry["chain"] = [by_path[p].rel if p in by_path else p for p in reversed(chain_files)]
            disks_out.append(entry)
        vm["disks"] = disks_out
        if config.merge_pending:
            findings.append(Finding("vm.config.merge-pending", Severity.WARNING, cfg_path))
        inv.vms.append(vm)

    differencing = [f for f in inv.files if f.role == ROLE_DIFF]
    if read_any:
        for f in differencing:
            if f.path in vm_used or f.path in parents:
                continue
            if any(_inside(f.path, home) for home in unread_homes):
                continue  # it may be the disk of the VM whose configuration was not read
            findings.append(Finding("inventory.orphan-differencing", Severity.WARNING, f.path))
    elif differencing:
        findings.append(Finding("inventory.no-vm-config", Severity.INFO, root))
    for name in CHECK_MODULES:
        findings.extend(importlib.import_module(name).check(inv, opts))
    inv.findings = dedupe(findings)
    return inv
