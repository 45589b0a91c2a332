"""Hyper-V PowerShell objects: `Get-VM` / `Get-VHD` (and `Get-HotFix`) as `Format-List` text or
`ConvertTo-Json`. Property names are the same in every language."""

from __future__ import annotations

import json
import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import parse_local_time
from hvrescue.logs.textutil import Text

PROPERTY = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_]*)\s*:\s?(?P<value>.*?)\s*$")
CONT = re.compile(r"^\s{4,}(?P<value>\S.*?)\s*$")

VM_STATES = {
    1: "Other",
    2: "Running",
    3: "Off",
    4: "Stopping",
    6: "Saved",
    9: "Paused",
    10: "Starting",
    11: "Reset",
    32773: "Saving",
    32776: "Pausing",
    32777: "Resuming",
    32779: "FastSaved",
    32780: "FastSaving",
}
VHD_FORMATS = {2: "VHD", 3: "VHDX", 4: "VHDSet"}
VHD_TYPES = {2: "Fixed", 3: "Dynamic", 4: "Differencing"}


def _enum(value: Any, names: dict[int, str]) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, value)
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).replace(",", "").strip())
    except ValueError:
        return None


def classify(props: dict[str, Any]) -> str | None:
    keys = set(props)
    if keys & {"VhdFormat", "VhdType"}:
        return "vhd"
    if "HotFixID" in keys:
        return "hotfix"
    if "VMName" in keys or "VMId" in keys or {"Name", "State", "Generation"} <= keys:
        return "vm"
    return None


def to_fact(props: dict[str, Any], provenance: Provenance) -> Fact | None:
    kind = classify(props)
    if kind == "vhd":
        attrs = {
            "path": props.get("Path"),
            "vhd_format": _enum(props.get("VhdFormat"), VHD_FORMATS),
            "vhd_type": _enum(props.get("VhdType"), VHD_TYPES),
            "file_size": _int(props.get("FileSize")),
            "size": _int(props.get("Size")),
            "parent_path": props.get("ParentPath") or None,
            "disk_identifier": props.get("DiskIdentifier"),
            "logical_sector_size": _int(props.get("LogicalSectorSize")),
            "physical_sector_size": _int(props.get("PhysicalSectorSize")),
            "block_size": _int(props.get("BlockSize")),
            "attached": props.get("Attached"),
            "properties": props,
        }
        return Fact("vhd", attrs, provenance)
    if kind == "vm":
        attrs = {
            "name": props.get("VMName") or props.get("Name"),
            "state": _enum(props.get("State"), VM_STATES),
            "status": props.get("Status"),
            "generation": _int(props.get("Generation")),
            "version": props.get("Version"),
            "vm_id": props.get("VMId") or props.get("Id"),
            "path": props.get("Path"),
            "configuration_location": props.get("ConfigurationLocation"),
            "checkpoint_file_location": props.get("CheckpointFileLocation")
            or props.get("SnapshotFileLocation"),
            "properties": props,
        }
        return Fact("vm", attrs, provenance)
    if kind == "hotfix":
        installed = str(props.get("InstalledOn") or "")
        return Fact(
            "hotfix",
            {
                "kb": str(props.get("HotFixID", "")).upper(),
                "description": props.get("Description"),
                "installed_on": installed or None,
                "installed_on_local": parse_local_time(installed) if installed else None,
                "installed_by": props.get("InstalledBy"),
                "computer": props.get("Source") or props.get("CSName"),
                "source": "get-hotfix",
            },
            provenance,
        )
    return None


def parse(text: Text) -> list[Fact]:
    """Format-List blocks: `Key : value` lines, blank-line separated, wrapped values indented."""
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        if not PROPERTY.match(lines[i]) or (
            " : " not in lines[i] and not lines[i].rstrip().endswith(" :")
        ):
            i += 1
            continue
        start = i
        props: dict[str, Any] = {}
        last: str | None = None
        while i < len(lines) and lines[i].strip():
            m = PROPERTY.match(lines[i])
            c = CONT.match(lines[i])
            if m and (" : " in lines[i] or lines[i].rstrip().endswith(" :")):
                last = m.group("key")
                props[last] = m.group("value")
            elif c and last is not None:
                props[last] = f"{props[last]}{c.group('value')}"
            else:
                break
            i += 1
        fact = to_fact(props, Provenance(text.path, text.locator(start)))
        if fact is not None:
            facts.append(fact)
        i = max(i, start + 1)
    return facts


def parse_json(raw: str, path: str) -> list[Fact] | None:
    """ConvertTo-Json output (one object or an array). None when the text is not such JSON."""
    stripped = raw.strip().lstrip("\ufeff")
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    objects = data if isinstance(data, list) else [data]
    facts = []
    for n, obj in enumerate(objects):
        if isinstance(obj, dict):
            fact = to_fact(obj, Provenance(path, f"object:{n}"))
            if fact is not None:
                facts.append(fact)
    return facts
