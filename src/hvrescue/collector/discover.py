"""Phase 2: the VM folders, disk files and volumes named by the Hyper-V outputs of phase 1.

Read from ``Get-VM``, ``Get-VMSnapshot``, ``Get-VMHardDiskDrive`` and ``Get-VHD`` as
``ConvertTo-Json`` printed them (one object or an array; UTF-8 or UTF-16). Nothing here runs a
command or opens a file of the host: it only reads what the collector already saved.
"""

from __future__ import annotations

import json
import ntpath
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

# The properties that name a VM's folders (Get-VM, Get-VMSnapshot) and its disks.
FOLDER_KEYS = (
    "ConfigurationLocation",
    "SnapshotFileLocation",
    "CheckpointFileLocation",
    "SmartPagingFilePath",
    "Path",
)
DISK_KEYS = ("Path", "ParentPath")
MAX_OBJECTS = 10_000  # far above any host's VMs and disks: a bound on what is kept
_CSV = re.compile(r"^[A-Za-z]:\\ClusterStorage\\[^\\]+", re.IGNORECASE)


@dataclass
class Found:
    """What phase 2 works on: per VM name its folders, the disk files, the volume roots."""

    vm_folders: dict[str, list[str]] = field(default_factory=dict)
    disks: list[str] = field(default_factory=list)

    def folders(self) -> list[str]:
        seen: dict[str, str] = {}
        for paths in self.vm_folders.values():
            for p in paths:
                seen.setdefault(_key(p), p)
        return list(seen.values())

    def volumes(self) -> list[str]:
        roots: dict[str, str] = {}
        for p in [*self.folders(), *self.disks]:
            root = volume_root(p)
            if root:
                roots.setdefault(root.lower(), root)
        return list(roots.values())

    def as_phase2(self) -> dict[str, list[str]]:
        return {"vm-folder": self.folders(), "disk": self.disks, "volume": self.volumes()}


def _windows_path(path: str) -> bool:
    return bool(re.match(r"^([A-Za-z]:|\\\\)", path))


def _key(path: str) -> str:
    return path.rstrip("\\/").lower() if _windows_path(path) else path.rstrip("/")


def volume_root(path: str) -> str | None:
    """The root of the volume a path is on: ``D:\\``, a cluster shared volume's folder, a
    share; ``/`` for a POSIX path (the test hook)."""
    if _windows_path(path):
        csv = _CSV.match(path)
        if csv:
            return csv.group(0) + "\\"
        drive = ntpath.splitdrive(path)[0]
        return drive + "\\" if drive else None
    return posixpath.sep if path.startswith("/") else None


def objects(data: bytes) -> list[dict[str, Any]]:
    """The objects of a ConvertTo-Json output; [] for anything else."""
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding).strip()
            break
        except UnicodeDecodeError:
            continue
    else:
        return []
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return []
    items = parsed if isinstance(parsed, list) else [parsed]
    return [o for o in items[:MAX_OBJECTS] if isinstance(o, dict)]


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def discover(outputs: dict[str, bytes]) -> Found:
    """``outputs``: the saved stdout of ``get-vm``, ``get-vmsnapshot``, ``get-vmharddiskdrive``
    and ``get-vhd`` (any may be missing)."""
    found = Found()
    for cmd in ("get-vm", "get-vmsnapshot"):
        for obj in objects(outputs.get(cmd, b"")):
            name = _str(obj.get("VMName")) or _str(obj.get("Name")) or "unnamed"
            if cmd == "get-vmsnapshot":
                name = _str(obj.get("VMName")) or name
            folders = found.vm_folders.setdefault(name, [])
            for key in FOLDER_KEYS:
                value = _str(obj.get(key))
                if value and _key(value) not in {_key(f) for f in folders}:
                    folders.append(value)
    disks: dict[str, str] = {}
    for cmd in ("get-vmharddiskdrive", "get-vhd"):
        for obj in objects(outputs.get(cmd, b"")):
            for key in DISK_KEYS:
                value = _str(obj.get(key))
                if value and value.lower().endswith((".vhdx", ".avhdx", ".vhd", ".avhd")):
                    disks.setdefault(_key(value), value)
    found.disks = list(disks.values())
    return found
