"""One shape for every Hyper-V configuration format, taken from the configuration tree.

Both the binary `.vmcx` key store and the 2012 R2 XML file hold the same tree under a
``configuration`` root: ``properties`` (name, global_id, type_id, version, creation_time),
``global_settings`` (snapshots, ``disk_merge_pending``), ``settings`` and one ``_<device GUID>_``
node per virtual device. Disk attachments are ``controllerN/driveM`` nodes with ``pathname`` and
``type`` under the IDE and SCSI controller devices.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.vdisk.detect import DISK_SUFFIXES
from hvrescue.vmconfig.hardware import hardware
from hvrescue.vmconfig.values import boolean as _bool
from hvrescue.vmconfig.values import integer as _int
from hvrescue.vmconfig.values import text as _text

# The keys of the virtual hardware in VmConfig.as_dict (None when not read).
HARDWARE_KEYS = (
    "generation",
    "memory_startup_mb",
    "dynamic_memory",
    "memory_minimum_mb",
    "memory_maximum_mb",
    "processor_count",
    "secure_boot",
    "secure_boot_template_id",
    "secure_boot_template",
    "tpm_enabled",
    "network_adapters",
)

# Device GUIDs of the storage controllers (the node names are "_<guid>_").
BUS_BY_DEVICE = {
    "83f8638b-8dca-4152-9eda-2ca8b33039b4": "ide",
    "d422512d-2bf2-4752-809d-7b82b5fcb1b4": "scsi",
    "8f0d2762-0b00-4e04-af4f-19010527cb93": "floppy",
}
_DEVICE_NODE = re.compile(r"^_([0-9a-fA-F-]{36})_$")
_CONTROLLER = re.compile(r"^controller(\d+)$")
_DRIVE = re.compile(r"^drive(\d+)$")
MAX_DISKS = 4096
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ConfigDisk:
    path: str  # as the configuration names it (a Windows path)
    bus: str  # "ide", "scsi" or the device GUID
    controller: int
    drive: int
    kind: str  # the configuration's "type": VHD, ISO, PASSTHRU...

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "bus": self.bus,
            "controller": self.controller,
            "drive": self.drive,
            "type": self.kind,
        }


@dataclass
class VmConfig:
    path: str
    format: str  # "vmcx", "vmrs", "xml"
    name: str | None = None
    vm_id: str | None = None
    type_id: str | None = None
    version: str | None = None
    created: str | None = None
    disks: list[ConfigDisk] = field(default_factory=list)
    state_files: list[str] = field(default_factory=list)
    snapshot_count: int | None = None
    merge_pending: bool | None = None
    # The virtual hardware (vmconfig.hardware): None where the configuration does not say.
    hardware: dict[str, Any] = field(default_factory=dict)

    @property
    def is_snapshot(self) -> bool:
        return bool(self.type_id) and "snapshot" in (self.type_id or "").lower()

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "name": self.name,
            "vm_id": self.vm_id,
            "type": self.type_id,
            "version": self.version,
            "created": self.created,
            "disks": [d.as_dict() for d in self.disks],
            "state_files": list(self.state_files),
            "snapshot_count": self.snapshot_count,
            "disk_merge_pending": self.merge_pending,
            **{key: self.hardware.get(key) for key in HARDWARE_KEYS},
        }


def _get(tree: Any, *keys: str) -> Any:
    cur = tree
    for key in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def filetime(value: Any) -> str | None:
    """An 8-byte little-endian FILETIME (or its integer) as ISO 8601 UTC."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 8:
        ticks = int.from_bytes(value, "little")
    else:
        ticks = _int(value) or 0
    if ticks <= 0:
        return None
    try:
        when = FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None
    return when.isoformat().replace("+00:00", "Z")


def _version(value: Any) -> str | None:
    number = _int(value)
    if number is None or number <= 0:
        return None
    return f"{number >> 8}.{number & 0xFF}"


def _disks(config: dict[str, Any]) -> list[ConfigDisk]:
    out: list[ConfigDisk] = []
    for node_name, node in config.items():
        match = _DEVICE_NODE.match(str(node_name))
        if not match or not isinstance(node, dict):
            continue
        device = match.group(1).lower()
        bus = BUS_BY_DEVICE.get(device, device)
        for ctl_name, ctl in node.items():
            ctl_match = _CONTROLLER.match(str(ctl_name))
            if not ctl_match or not isinstance(ctl, dict):
                continue
            for drv_name, drv in ctl.items():
                drv_match = _DRIVE.match(str(drv_name))
                if not drv_match or not isinstance(drv, dict):
                    continue
                path = _text(drv.get("pathname"))
                kind = _text(drv.get("type")) or ""
                if path is None:
                    continue
                if kind.upper() != "VHD" and not path.lower().endswith(DISK_SUFFIXES):
                    continue
                out.append(
                    ConfigDisk(path, bus, int(ctl_match.group(1)), int(drv_match.group(1)), kind)
                )
                if len(out) >= MAX_DISKS:
                    return out
    out.sort(key=lambda d: (d.bus, d.controller, d.drive))
    return out


def _state_files(tree: Any, out: list[str], depth: int = 0) -> None:
    if depth > 16 or not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if isinstance(value, dict):
            _state_files(value, out, depth + 1)
        elif str(key).lower() in ("statefilepath", "file", "memlocation") and _text(value):
            text = _text(value)
            if text and ("\\" in text or "/" in text) and text not in out:
                out.append(text)


def from_tree(path: str, fmt: str, tree: dict[str, Any]) -> VmConfig:
    config = tree.get("configuration")
    if not isinstance(config, dict):
        config = tree
    props = config.get("properties") if isinstance(config.get("properties"), dict) else {}
    settings = config.get("global_settings")
    snapshots = _get(settings, "snapshots", "list", "size")
    result = VmConfig(
        path=path,
        format=fmt,
        name=_text(_get(props, "name")),
        vm_id=_text(_get(props, "global_id"))
        or _text(_get(config, "settings", "global", "logical_id")),
        type_id=_text(_get(props, "type_id")),
        version=_version(_get(props, "version")),
        created=filetime(_get(props, "creation_time")),
        disks=_disks(config),
        snapshot_count=_int(snapshots),
        merge_pending=_bool(_get(settings, "disk_merge_pending")),
        hardware=hardware(config),
    )
    states: list[str] = []
    _state_files(config, states)
    result.state_files = states
    return result
