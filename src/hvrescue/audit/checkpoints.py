"""Checkpoints by name, type and creation time: backup leftovers and old checkpoints.

Backup software takes a checkpoint of each VM it backs up and removes it at the end of the job;
one that stays behind keeps every write of the VM in a growing ``.avhdx`` and makes the next
backup fail. Hyper-V marks the ones taken through its backup API as ``Recovery`` (Hyper-V
Manager does not show them on every version); some products name theirs (Backup Exec
``BE_Snapshot_*``, HyperBack ``VG_Recovery_*``, Veeam's working snapshots). The names are the
ones the diagnosis rule ``host.backup-checkpoint-leftover`` knows
(``diagnose/rules/field_backup.yaml``), read from there so both say the same.

The checkpoints come from ``Get-VMSnapshot`` (:mod:`hvrescue.audit.vms`) and from the
checkpoint configurations the inventory read; one checkpoint is reported once, whatever says it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import cache
from typing import Any

from hvrescue.audit.vms import Overlay, components, created_utc
from hvrescue.findings import Finding, Severity
from hvrescue.inventory import Inventory

LEFTOVER = "audit.backup-checkpoint-leftover"
OLD = "audit.checkpoint-old"
RULE = "host.backup-checkpoint-leftover"
# The rule's own pattern, should its file not be readable (kept equal by a test).
FALLBACK_VENDOR = (
    r"^\s*(BE_Snapshot|VG_Recovery_|Veeam Replica Working Snapshot|VEEAM BACKUP TEMPORARY SNAPSHOT)"
)


@cache
def vendor_pattern() -> re.Pattern[str]:
    """The checkpoint names of backup products, as the diagnosis rule matches them."""
    from hvrescue.diagnose.rules import load_rules

    for rule in load_rules():
        if rule.id != RULE:
            continue
        for clause in rule.require_one_of or []:
            if clause.kind != "checkpoint":
                continue
            condition = (clause.where or {}).get("name")
            regex = getattr(condition, "regex", None)
            if isinstance(regex, str):
                return re.compile(regex, re.IGNORECASE)  # as the rule engine matches
    return re.compile(FALLBACK_VENDOR, re.IGNORECASE)


def is_backup(name: str, kind: Any) -> bool:
    text = str(kind or "").strip()
    if text.lower() == "recovery" or text.endswith("Snapshot:Recovery"):
        return True
    return bool(vendor_pattern().search(name))


def _iso(when: dt.datetime | None) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if when else "?"


def _days(as_of: dt.datetime, when: dt.datetime | None) -> int | None:
    return (as_of - when).days if when else None


def _config_checkpoints(inv: Inventory) -> list[tuple[str, dict[str, Any]]]:
    """(VM name, checkpoint) of the checkpoint configurations the inventory read; the VM is
    the one whose configuration sits in the same VM folder."""
    homes: dict[tuple[str, ...], str] = {}
    for vm in inv.vms:
        path = str(vm.get("path") or "")
        if vm.get("kind") == "vm" and path and vm.get("source") != "vm-info":
            homes[components(path)[:-2]] = str(vm.get("name") or "?")
    out = []
    for vm in inv.vms:
        if vm.get("kind") != "snapshot" or not vm.get("name"):
            continue
        path = str(vm.get("path") or "")
        name = homes.get(components(path)[:-2], "?")
        full = path if os.path.isabs(path) else os.path.join(inv.root, *path.split("/"))
        created = created_utc({"creation_time_utc": vm.get("created")})
        kind = str(vm.get("type") or "")
        out.append((name, {"name": vm["name"], "type": kind, "created": created, "at": full}))
    return out


def findings(
    inv: Inventory, layer: Overlay, older_than_days: int, stale: set[str]
) -> tuple[list[Finding], dict[str, int]]:
    """``audit.backup-checkpoint-leftover`` for each backup checkpoint left, ``audit.checkpoint-
    old`` for each other checkpoint older than the limit whose VM has no old checkpoint disk
    reported already (``stale``: names of such VMs); and the oldest age per VM name."""
    out: list[Finding] = []
    oldest: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    candidates: list[tuple[str, dict[str, Any], str]] = []
    for vm_name, cp in _config_checkpoints(inv):
        candidates.append((vm_name, cp, cp["at"]))
    for vm, row in layer.vms:
        at = _where(inv, row)
        name = vm.name or row.get("name") or "?"
        for cp in vm.checkpoints:
            candidates.append((name, cp, at))
    for vm_name, cp, at in candidates:
        key = (vm_name.lower(), str(cp["name"]).strip().lower())
        if key in seen:
            continue
        seen.add(key)
        days = _days(inv.as_of, cp["created"])
        if days is not None:
            oldest[vm_name] = max(days, oldest.get(vm_name, days))
        params = {
            "vm": vm_name,
            "checkpoint": cp["name"],
            "type": _type(cp["type"]),
            "created": cp.get("created_text") or _iso(cp["created"]),
            "days": "?" if days is None else days,
        }
        if is_backup(str(cp["name"]), cp["type"]):
            out.append(Finding(LEFTOVER, Severity.WARNING, at, params=params))
        elif days is not None and days > older_than_days and vm_name not in stale:
            out.append(
                Finding(OLD, Severity.WARNING, at, params={**params, "limit": older_than_days})
            )
    return out, oldest


def _type(kind: Any) -> str:
    text = str(kind or "").strip()
    if text.startswith("Microsoft:Hyper-V:Snapshot:"):
        return text.rsplit(":", 1)[-1]  # a configuration's VirtualSystemType
    return text or "?"


def _where(inv: Inventory, row: dict[str, Any]) -> str:
    """A VM's findings point at its configuration file when the tree holds it."""
    path = row.get("path")
    if isinstance(path, str) and path:
        return path if os.path.isabs(path) else os.path.join(inv.root, *path.split("/"))
    return inv.root
