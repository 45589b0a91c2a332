"""Hyper-V PowerShell objects: `Get-VM` / `Get-VHD` (and `Get-HotFix`) as `Format-List` text or
`ConvertTo-Json`. Property names are the same in every language.

ConvertTo-Json objects are told apart by their properties, not by one they share (every
Hyper-V object has a VMName): a checkpoint has SnapshotType, a disk drive ControllerType, a
volume DriveLetter, the host VirtualMachinePath. Checkpoints, disk drives and volumes are
turned into the text Format-Table prints (enum numbers into their names) and read by the same
mappers as a table (``pscmdlets``), so a JSON and a table of the same objects give the same
facts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import parse_local_time
from hvrescue.logs.textutil import Text

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
# Microsoft.HyperV.PowerShell.SnapshotType (the VirtualSystemType of the checkpoint's settings).
SNAPSHOT_TYPES = {
    0: "Standard",
    1: "Recovery",
    2: "Planned",
    5: "Missing",
    6: "Replica",
    7: "AppConsistentReplica",
    8: "SyncedReplica",
}
CONTROLLER_TYPES = {0: "IDE", 1: "SCSI", 2: "PMEM"}
# MSFT_Volume / MSFT_StorageObject (Storage module) as Get-Volume's table prints them.
HEALTH = {0: "Healthy", 1: "Warning", 2: "Unhealthy", 5: "Unknown"}
OPERATIONAL = {
    0: "Unknown",
    1: "Other",
    2: "OK",
    3: "Degraded",
    4: "Stressed",
    5: "Predictive Failure",
    6: "Error",
    7: "Non-Recoverable Error",
    8: "Starting",
    9: "Stopping",
    10: "Stopped",
    11: "In Service",
    12: "No Contact",
    13: "Lost Communication",
    14: "Aborted",
    15: "Dormant",
    16: "Supporting Entity in Error",
    17: "Completed",
    18: "Power Mode",
}
FILE_SYSTEMS = {
    0: "Unknown",
    2: "UFS",
    3: "HFS",
    4: "FAT",
    5: "FAT16",
    6: "FAT32",
    7: "NTFS4",
    8: "NTFS5",
    9: "XFS",
    10: "AFS",
    11: "EXT2",
    12: "EXT3",
    13: "ReiserFS",
    14: "NTFS",
    15: "ReFS",
    0x8000: "CSVFS_NTFS",
    0x8001: "CSVFS_ReFS",
}
JSON_ENUMS = {
    "SnapshotType": SNAPSHOT_TYPES,
    "ControllerType": CONTROLLER_TYPES,
    "HealthStatus": HEALTH,
    "OperationalStatus": OPERATIONAL,
    "FileSystemType": FILE_SYSTEMS,
}
# Properties of a VM (Get-VM) that a checkpoint (VMSnapshot) does not have.
VM_ONLY = frozenset({"CheckpointType", "Uptime", "Status", "CPUUsage", "MemoryAssigned"})
# Windows PowerShell 5.1 writes a DateTime as milliseconds since 1970 UTC: "\/Date(ms)\/",
# "+hhmm" only from other serializers; the slashes escaped once more when a JSON was re-quoted.
MS_DATE = re.compile(r"^\\?/Date\((?P<ms>-?\d{1,15})(?P<off>[+-]\d{4})?\)\\?/$")
ISO_DATE = re.compile(
    r"^(?P<local>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?$"
)
LONG_DATES = ("%A, %B %d, %Y %I:%M:%S %p", "%A, %d %B %Y %H:%M:%S")
JA_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日\D*(\d{1,2}):(\d{2}):(\d{2})")


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
    from hvrescue.logs.commands.vmhost import is_vm_host

    keys = set(props)
    if keys & {"VhdFormat", "VhdType"}:
        return "vhd"
    if "HotFixID" in keys:
        return "hotfix"
    if is_vm_host(keys):
        return "vm_host"
    if "DriveLetter" in keys and keys & {"SizeRemaining", "FileSystemType", "HealthStatus"}:
        return "volume"
    if {"ControllerType", "ControllerLocation"} <= keys:
        # A DVD drive has the same controller properties: it is no disk.
        return None if "DvdMediaType" in keys else "vm_disk"
    if "SnapshotType" in keys or (
        keys & {"ParentSnapshotId", "ParentCheckpointId"} and not keys & VM_ONLY
    ):
        return "checkpoint"
    if "VMName" in keys or "VMId" in keys or {"Name", "State", "Generation"} <= keys:
        return "vm"
    return None


def json_time(value: Any) -> tuple[str | None, str | None]:
    """A ConvertTo-Json DateTime -> (the host's local time, the UTC time), ISO 8601 without
    zone / with "Z"; either is None when the JSON does not say it. "\\/Date(ms)\\/" is UTC
    only: the host's offset is not in it."""
    if isinstance(value, dict):  # a DateTime with its ETS members: {"value", "DateTime"}
        local = _long_date(value.get("DateTime"))
        _, utc = json_time(value.get("value"))
        return local, utc
    if not isinstance(value, str):
        return None, None
    text = value.strip()
    m = MS_DATE.match(text)
    if m:
        try:
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(m.group("ms")))
        except OverflowError:
            return None, None
        utc = when.replace(tzinfo=None).isoformat() + "Z"
        off = m.group("off")
        if not off:
            return None, utc
        sign = 1 if off[0] == "+" else -1
        shift = timedelta(hours=int(off[1:3]), minutes=int(off[3:5])) * sign
        return (when + shift).replace(tzinfo=None).isoformat(), utc
    m = ISO_DATE.match(text)
    if m:
        local = m.group("local")
        if text.endswith("Z"):
            return None, local + "Z"
        return local, None
    return _long_date(text), None


def _long_date(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    m = JA_DATE.search(value)
    if m:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        try:
            return datetime(y, mo, d, h, mi, s).isoformat()
        except ValueError:
            return None
    for fmt in LONG_DATES:
        try:
            return datetime.strptime(value.strip(), fmt).isoformat()
        except ValueError:
            continue
    return None


def printed(key: str, value: Any) -> str:
    """A JSON value as Format-Table prints it (enum numbers as their names)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    names = JSON_ENUMS.get(key)
    if isinstance(value, int) and names is not None:
        return names.get(value, str(value))
    if isinstance(value, list):
        return ", ".join(printed(key, v) for v in value if not isinstance(v, dict | list))
    if isinstance(value, dict):
        return ""
    return str(value)


def _as_table(kind: str, props: dict[str, Any], provenance: Provenance) -> Fact | None:
    """A checkpoint, disk drive or volume object read as its Format-Table row is."""
    from hvrescue.logs.commands import pscmdlets

    cmdlet = {"checkpoint": "get-vmsnapshot", "vm_disk": "get-vmharddiskdrive"}.get(
        kind, "get-volume"
    )
    cells = {k: printed(k, v) for k, v in props.items() if isinstance(k, str)}
    utc = None
    if kind == "checkpoint":
        local, utc = json_time(props.get("CreationTime"))
        cells["CreationTime"] = local or ""
    found = pscmdlets.to_facts(cmdlet, cells, [], provenance)
    if not found:
        return None
    if utc is not None:
        found[0].attributes["creation_time_utc"] = utc
    return found[0]


def to_fact(props: dict[str, Any], provenance: Provenance) -> Fact | None:
    kind = classify(props)
    if kind in ("checkpoint", "vm_disk", "volume"):
        return _as_table(kind, props, provenance)
    if kind == "vm_host":
        from hvrescue.logs.commands.vmhost import vm_host_fact

        return vm_host_fact(props, provenance)
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
    """Format-List blocks and Format-Table tables of the cmdlets ``pscmdlets`` knows (Get-HotFix
    tables are hotfix.py's), and what ``psstate`` reads from a transcript's shape."""
    from hvrescue.logs.commands import pscmdlets, psstate, pstable
    from hvrescue.logs.commands.repost import cleaned

    lines = cleaned(text)
    facts: list[Fact] = []
    for record in pstable.read_lists(text, lines):
        cmdlet = pscmdlets.cmdlet_for(record.command, set(record.props))
        where = Provenance(text.path, text.locator(record.index))
        if cmdlet is None:
            hosts = _vm_host(record.props, record.truncated, where)
            facts.extend(_loose(h, record.cleaned) for h in hosts)
            continue
        context = {"_format": "ps-list", "_command": record.command or ""}
        found = pscmdlets.to_facts(cmdlet, record.props, record.truncated, where, context)
        facts.extend(_loose(f, record.cleaned) for f in found)
    for table in pstable.read_tables(text, lines):
        cmdlet = pscmdlets.cmdlet_for(table.command, set(table.columns))
        if cmdlet is None:
            for row in table.rows:
                where = Provenance(text.path, text.locator(row.index))
                for h in _vm_host(row.cells, row.truncated, where):
                    facts.append(_loose(h, table.cleaned or table.header_wrapped))
            continue
        if cmdlet == "get-hotfix":
            continue
        context = {"_format": "ps-table", **table.group}
        for row in table.rows:
            where = Provenance(text.path, text.locator(row.index))
            found = pscmdlets.to_facts(cmdlet, row.cells, row.truncated, where, context)
            facts.extend(
                _loose(f, table.cleaned or table.header_wrapped or row.wrapped) for f in found
            )
    # Cmdlets that printed no row, replication rows no column layout fits (psstate.py).
    facts = psstate.sound(facts)
    facts.extend(psstate.no_output(text, lines))
    facts.extend(psstate.replication(text, lines, facts))
    return facts


def _vm_host(props: dict[str, str], truncated: list[str], where: Provenance) -> list[Fact]:
    """Get-VMHost's list or table (no mapper of ``pscmdlets`` knows it). A value cut by the
    console ends in "..." and so is never read as a number or a flag; a cut path is kept as
    printed and named in ``truncated_fields``."""
    from hvrescue.logs.commands.vmhost import vm_host_fact

    fact = vm_host_fact(props, where)
    if fact is None:
        return []
    if truncated:
        fact.attributes["truncated"] = True
        fact.attributes["truncated_fields"] = sorted(truncated)
    return [fact]


def _loose(fact: Fact, loose: bool) -> Fact:
    """A record read from reposted or rewrapped text is less certain than a clean one."""
    if loose or fact.attributes.get("truncated"):
        fact.attributes.setdefault("confidence", 0.9)
    return fact


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
