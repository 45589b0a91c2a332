"""The aftermath of risky advice, read from the disks and configurations left behind.

Three things people are told to do to a broken checkpoint chain leave marks an inventory can
see: a checkpoint disk renamed from ``.avhdx`` to ``.vhdx`` (it is still a differencing disk),
checkpoint files deleted in the file system (a configuration names them, the disk the VM uses
now still needs them), and a parent written to after its child was made (``Merge-VHD`` into
it, a mount on the host, a start of the VM on it). What the engine already reports is not
repeated: a missing configured disk is ``vm.disk.missing``, a parent of another identity is
``chain.parent.linkage-mismatch``; these findings say what those mean together.

- ``hyperv.renamed-differencing`` (warning): a file named ``.vhdx``/``.vhd`` whose header is a
  differencing disk, where something shows it was an ``.avhdx``/``.avhd``: a configuration or a
  child names it so, or its name is Hyper-V's checkpoint name (``<disk>_<GUID>``). A
  differencing disk created under a ``.vhdx`` name on purpose (``New-VHD -Differencing``) shows
  none of these and is left alone. Params: ``file``, ``parent`` (the parent it names),
  ``original`` (the name it had).
- ``hyperv.checkpoint-files-deleted`` (error): a VM or checkpoint configuration names a
  differencing disk that is gone while a disk present, in use by a VM, names it as its parent.
  Params: ``vm``, ``missing_disk``, ``child_disk``, ``config_kind``.
- ``hyperv.merged-away-parent`` (info, beside the linkage or time-stamp mismatch it explains):
  the file at the parent's recorded path no longer has the identity the child was written
  against, and it was modified after the child was last written. Params: ``child_disk``,
  ``parent``, ``parent_modified``, ``child_modified``.
"""

from __future__ import annotations

import datetime as dt
import ntpath
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.preserve.plan import ROLE_DIFF
from hvrescue.vdisk.chain import resolve_chain
from hvrescue.vdisk.detect import open_image

if TYPE_CHECKING:
    from hvrescue.inventory import CheckOptions, FileInfo, Inventory

# Hyper-V names a checkpoint's differencing disk after its parent and a GUID.
CHECKPOINT_NAME = re.compile(
    r"_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)
RENAMED_TO = {".vhdx": ".avhdx", ".vhd": ".avhd"}
CHECKPOINT_SUFFIXES = (".avhdx", ".avhd")
# Differencing disks re-opened to read their parent locators: bounded like the walk itself.
MAX_DISKS = 20_000


@dataclass(frozen=True)
class _Reference:
    """A disk a configuration names, as the inventory matched it."""

    config: str  # real path of the configuration
    vm: str
    kind: str  # "vm" or "snapshot"
    windows_path: str
    found: bool


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).isoformat().replace("+00:00", "Z")


def _references(inv: Inventory) -> list[_Reference]:
    by_rel = {f.rel: f.path for f in inv.files}
    out = []
    for vm in inv.vms:
        rel = str(vm.get("path") or "")
        config = by_rel.get(rel) or os.path.join(inv.root, rel)
        for disk in vm.get("disks") or []:
            path = disk.get("path")
            if not isinstance(path, str) or not path:
                continue
            out.append(
                _Reference(
                    config,
                    str(vm.get("name") or vm.get("vm_id") or ntpath.basename(rel)),
                    str(vm.get("kind") or "vm"),
                    path,
                    bool(disk.get("found")),
                )
            )
    return out


def _parent_names(path: str) -> list[str]:
    """The parent locator entries of a differencing disk (paths as written), or [] when the
    file cannot be read as one."""
    try:
        image = open_image(path)
    except HvrescueError:
        return []
    try:
        ref = image.parent_ref if image.readable and image.is_differencing else None
        return [text for _kind, text in ref.paths] if ref is not None else []
    finally:
        image.close()


def _base(name: str) -> str:
    return ntpath.basename(name.replace("/", "\\")).lower()


def _renamed(
    info: FileInfo, names: list[str], missing: list[_Reference], named_by_children: set[str]
) -> Finding | None:
    stem, suffix = os.path.splitext(os.path.basename(info.path))
    if suffix.lower() not in RENAMED_TO:
        return None
    original = stem + RENAMED_TO[suffix.lower()]
    expected = original.lower()
    if os.path.exists(os.path.join(os.path.dirname(info.path), original)):
        return None  # a copy under another name, not a rename
    named = any(_base(r.windows_path) == expected for r in missing)
    if not (named or expected in named_by_children or CHECKPOINT_NAME.search(stem)):
        return None
    return Finding(
        "hyperv.renamed-differencing",
        Severity.WARNING,
        info.path,
        params={
            "file": os.path.basename(info.path),
            "parent": names[0] if names else "-",
            "original": original,
        },
    )


def _deleted(
    info: FileInfo, names: list[str], missing: list[_Reference], inv: Inventory, vms: set[str]
) -> list[Finding]:
    if info.parent_state != "missing" or not _in_use(info, inv, vms):
        return []
    wanted = {_base(n) for n in names}
    out = []
    for ref in missing:
        gone = _base(ref.windows_path)
        if not gone.endswith(CHECKPOINT_SUFFIXES) or gone not in wanted:
            continue
        out.append(
            Finding(
                "hyperv.checkpoint-files-deleted",
                Severity.ERROR,
                ref.config,
                params={
                    "vm": ref.vm,
                    "missing_disk": ntpath.basename(ref.windows_path),
                    "child_disk": os.path.basename(info.path),
                    "config_kind": ref.kind,
                },
            )
        )
    return out


def _in_use(info: FileInfo, inv: Inventory, vm_configs: set[str]) -> bool:
    """Whether a VM (not only a checkpoint) uses this disk or a disk built on it."""
    children: dict[str, list[FileInfo]] = {}
    for f in inv.files:
        if f.parent:
            children.setdefault(f.parent, []).append(f)
    todo, seen = [info], set()
    while todo:
        f = todo.pop()
        if f.path in seen:
            continue
        seen.add(f.path)
        if any(u in vm_configs for u in f.used_by):
            return True
        todo.extend(children.get(f.path, []))
    return False


def _merged_away(info: FileInfo, inv: Inventory) -> Finding | None:
    """The parent at the child's recorded path, of another identity (or, for VHD, time
    stamp), modified after the child was last written."""
    try:
        chain = resolve_chain(info.path, [inv.root], max_depth=1)
    except HvrescueError:
        return None
    try:
        candidates = [
            str(f.params.get("parent"))
            for f in chain.findings
            if f.code in ("chain.parent.linkage-mismatch", "chain.parent.timestamp-mismatch")
            and f.params.get("parent")
        ]
    finally:
        chain.close()
    for candidate in candidates:
        try:
            parent_ns = os.stat(candidate).st_mtime_ns
        except OSError:
            continue
        if parent_ns > info.mtime_ns:
            return Finding(
                "hyperv.merged-away-parent",
                Severity.INFO,
                info.path,
                params={
                    "child_disk": os.path.basename(info.path),
                    "parent": candidate,
                    "parent_modified": _iso(parent_ns),
                    "child_modified": _iso(info.mtime_ns),
                },
            )
    return None


def check(inv: Inventory, options: CheckOptions) -> list[Finding]:
    """The aftermath findings of ``inv`` (see the module's docstring)."""
    del options  # no thresholds: each of these is a fact, not a matter of degree
    refs = _references(inv)
    missing = [r for r in refs if not r.found]
    vm_configs = {r.config for r in refs if r.kind == "vm"}
    differencing = [f for f in inv.files if f.role == ROLE_DIFF and f.size][:MAX_DISKS]
    names = {f.path: _parent_names(f.path) for f in differencing}
    named_by_children = {_base(n) for listed in names.values() for n in listed}
    findings: list[Finding] = []
    for info in differencing:
        renamed = _renamed(info, names[info.path], missing, named_by_children)
        if renamed is not None:
            findings.append(renamed)
        findings.extend(_deleted(info, names[info.path], missing, inv, vm_configs))
        if info.parent_state == "missing" or info.format == "vhd":
            merged = _merged_away(info, inv)
            if merged is not None:
                findings.append(merged)
    return findings
