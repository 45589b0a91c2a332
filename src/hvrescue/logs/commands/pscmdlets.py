"""Known cmdlets' columns and properties → facts: Get-VM, Get-VHD, Get-VMSnapshot /
Get-VMCheckpoint, Get-VMHardDiskDrive, Get-ComputerInfo, Get-Service, Get-WinEvent, Get-HotFix,
Get-Volume, Get-VMIntegrationService, Get-/Measure-VMReplication, Measure-Object's counts
(``psstate``), and the failover cluster's
Get-ClusterResource, -Group, -Node and -SharedVolume. The cmdlet is the one typed at the prompt
above the output when there is one, otherwise the one whose columns these are.

Property names are English in every language; values are what the console printed. A value
cut by the console ("C:\\ProgramData\\Micr...") is kept and its field named in
``truncated_fields``; a value that is cut is never turned into a number or a date."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands import powershell, psstate, psstorage
from hvrescue.logs.events import event_fact, level_from_word, parse_local_time

# Columns that say which cmdlet printed a table or list when no prompt says it.
SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("get-vmintegrationservice", frozenset({"Name", "Enabled", "PrimaryStatusDescription"})),
    ("get-vmreplication", frozenset({"VMName", "State", "Health", "Mode"})),
    ("measure-vmreplication", frozenset({"VMName", "State", "Health", "LReplTime"})),
    ("measure-object", frozenset({"Count", "Property"})),
    ("get-clusterresource", frozenset({"OwnerGroup", "ResourceType"})),
    ("get-clustergroup", frozenset({"Name", "OwnerNode", "State"})),
    ("get-clustersharedvolume", frozenset({"Name", "State", "Node"})),
    ("get-clusternode", frozenset({"Name", "State", "Id"})),
    ("get-clusternode", frozenset({"Name", "State", "ID"})),
    ("get-vhd", frozenset({"VhdFormat"})),
    ("get-vhd", frozenset({"VhdType"})),
    ("get-vmsnapshot", frozenset({"SnapshotType"})),
    ("get-vmsnapshot", frozenset({"CheckpointType"})),
    ("get-vmsnapshot", frozenset({"VMName", "ParentSnapshotName"})),
    ("get-vmharddiskdrive", frozenset({"ControllerType", "ControllerLocation"})),
    ("get-computerinfo", frozenset({"CsName", "OsName"})),
    ("get-computerinfo", frozenset({"HyperVRequirementVirtualizationFirmwareEnabled"})),
    ("get-computerinfo", frozenset({"HyperVisorPresent"})),
    ("get-winevent", frozenset({"TimeCreated", "Id"})),
    ("get-hotfix", frozenset({"HotFixID"})),
    ("get-volume", frozenset({"DriveLetter", "HealthStatus"})),
    ("get-volume", frozenset({"DriveLetter", "SizeRemaining"})),
    ("get-service", frozenset({"Status", "Name", "DisplayName"})),
    ("get-vm", frozenset({"Name", "State", "CPUUsage(%)"})),
    ("get-vm", frozenset({"Name", "State", "Generation"})),
    ("get-vm", frozenset({"VMName", "State"})),
    ("get-vm", frozenset({"VMId"})),
)
ALIASES = {"get-vmcheckpoint": "get-vmsnapshot"}
SERVICE_STATES = {
    "stopped": (1, "STOPPED"),
    "startpending": (2, "START_PENDING"),
    "stoppending": (3, "STOP_PENDING"),
    "running": (4, "RUNNING"),
    "continuepending": (5, "CONTINUE_PENDING"),
    "pausepending": (6, "PAUSE_PENDING"),
    "paused": (7, "PAUSED"),
}
SIZE = re.compile(r"^(?P<n>\d+(?:[.,]\d+)?)\s*(?P<unit>B|KB|MB|GB|TB|PB)$", re.I)
UNITS = {"b": 0, "kb": 1, "mb": 2, "gb": 3, "tb": 4, "pb": 5}
BOOL = {"true": True, "false": False}
DRIVES = re.compile(r"-Exp\w*\s+HardDrives\b|\)\.HardDrives\b", re.I)
MEASURED = re.compile(r"\|\s*(?:Measure-Object|measure)\b[^|]*$", re.I)


def cmdlet_for(command: str | None, columns: set[str]) -> str | None:
    from hvrescue.logs.commands.pstable import cmdlet_of

    typed = cmdlet_of(command)
    typed = ALIASES.get(typed or "", typed)
    if command and MEASURED.search(command):
        return "measure-object"  # "Get-ChildItem ... | Measure-Object": the counts, not files
    if command and DRIVES.search(command):
        return "get-vmharddiskdrive"  # "Get-VM X | Select -ExpandProperty HardDrives"
    if typed in MAPPERS:
        return typed
    for name, needed in SIGNATURES:
        if needed <= columns:
            return name
    return None


def to_facts(
    cmdlet: str,
    props: dict[str, str],
    truncated: list[str],
    where: Provenance,
    context: dict[str, str] | None = None,
) -> list[Fact]:
    mapper = MAPPERS.get(cmdlet)
    if mapper is None:
        return []
    # A cell cut short is kept as printed but never read as a number, a date or a flag.
    whole = {k: ("" if k in truncated else v) for k, v in props.items()}
    fact = mapper(props, whole, where, context or {})
    if fact is None:
        return []
    if truncated:
        fact.attributes["truncated"] = True
        fact.attributes["truncated_fields"] = sorted(truncated)
    return [fact]


def _none(value: str | None) -> str | None:
    return value if value else None


def _int(value: str | None) -> int | None:
    if not value:
        return None
    text = value.replace(",", "").replace("\u00a0", "").strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def _bool(value: str | None) -> bool | None:
    return BOOL.get((value or "").strip().lower())


def size_bytes(value: str | None) -> int | None:
    """'12.5 GB' (Get-Volume's formatting, binary units) or a plain number of bytes."""
    if not value:
        return None
    plain = _int(value)
    if plain is not None:
        return plain
    m = SIZE.match(value.strip())
    if not m:
        return None
    number = float(m.group("n").replace(",", "."))
    return round(number * (1 << (10 * UNITS[m.group("unit").lower()])))


def _vm(props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any) -> Fact | None:
    name = props.get("VMName") or props.get("Name")
    if not name:
        return None
    state = whole.get("State") or ""
    attrs = {
        "name": name,
        "state": powershell.VM_STATES.get(int(state), state) if state.isdigit() else state or None,
        "status": _none(whole.get("Status")),
        "generation": _int(whole.get("Generation")),
        "version": _none(whole.get("Version")),
        "vm_id": _none(whole.get("VMId") or whole.get("Id")),
        "path": _none(props.get("Path")),
        "configuration_location": _none(props.get("ConfigurationLocation")),
        "checkpoint_file_location": _none(
            props.get("CheckpointFileLocation") or props.get("SnapshotFileLocation")
        ),
        "uptime": _none(whole.get("Uptime")),
        "properties": dict(props),
    }
    return Fact("vm", attrs, where)


def _vhd(props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any) -> Fact | None:
    kept = {k: v for k, v in whole.items() if v}
    kept.setdefault("VhdFormat", "")
    fact = powershell.to_fact(kept, where)
    if fact is None:
        return None
    attrs = fact.attributes
    attrs["properties"] = {k: v for k, v in props.items()}
    for key, prop in (("path", "Path"), ("parent_path", "ParentPath")):
        if not attrs.get(key) and props.get(prop):
            attrs[key] = props[prop]  # cut by the console: kept as printed, marked truncated
    attrs["vhd_format"] = _none(whole.get("VhdFormat"))
    attrs["fragmentation_percentage"] = _int(whole.get("FragmentationPercentage"))
    return fact


def _checkpoint(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    name = props.get("Name")
    if not name:
        return None
    created = whole.get("CreationTime") or ""
    attrs = {
        "vm_name": _none(props.get("VMName")),
        "name": name,
        "snapshot_type": _none(whole.get("SnapshotType") or whole.get("CheckpointType")),
        "creation_time": parse_local_time(created) if created else None,
        "parent_checkpoint_name": _none(
            props.get("ParentSnapshotName") or props.get("ParentCheckpointName")
        ),
        "id": _none(whole.get("Id")),
        "vm_id": _none(whole.get("VMId")),
        "path": _none(props.get("Path")),
    }
    return Fact("checkpoint", attrs, where)


def _vm_disk(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    if not (props.get("ControllerType") or props.get("Path")):
        return None
    attrs = {
        "vm_name": _none(props.get("VMName")),
        "vm_id": _none(whole.get("VMId")),
        "controller_type": _none(whole.get("ControllerType")),
        "controller_number": _int(whole.get("ControllerNumber")),
        "controller_location": _int(whole.get("ControllerLocation")),
        "path": _none(props.get("Path")),
        "disk_number": _int(whole.get("DiskNumber")),
    }
    return Fact("vm_disk", attrs, where)


def _computer_info(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    version = whole.get("OsVersion") or ""
    build = _int(whole.get("OsBuildNumber"))
    if build is None:
        m = re.search(r"\d+\.\d+\.(\d+)", version)
        build = int(m.group(1)) if m else None
    attrs = {
        "host_name": _none(whole.get("CsName")),
        "os_name": _none(whole.get("OsName")),
        "os_version": _none(version),
        "os_build": build,
        "hypervisor_detected": _bool(whole.get("HyperVisorPresent")),
        "vm_monitor_mode_extensions": _bool(whole.get("HyperVRequirementVMMonitorModeExtensions")),
        "virtualization_firmware_enabled": _bool(
            whole.get("HyperVRequirementVirtualizationFirmwareEnabled")
        ),
        "slat": _bool(whole.get("HyperVRequirementSecondLevelAddressTranslation")),
        "dep_available": _bool(whole.get("HyperVRequirementDataExecutionPreventionAvailable")),
        "source": "get-computerinfo",
    }
    return Fact("system_info", attrs, where)


def _service(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    name = props.get("Name") or props.get("ServiceName")
    status = (whole.get("Status") or "").lower()
    if not name or status not in SERVICE_STATES:
        return None
    code, label = SERVICE_STATES[status]
    attrs = {
        "service_name": name,
        "display_name": _none(props.get("DisplayName")),
        "state": {"code": code, "name": label},
        "running": code == 4,
        "start_type": _none(whole.get("StartType")),
        "source": "get-service",
    }
    return Fact("service_status", attrs, where)


def _event(
    props: dict[str, str], whole: dict[str, str], where: Provenance, context: dict[str, str]
) -> Fact | None:
    event_id = _int(whole.get("Id"))
    if event_id is None:
        return None
    # A provider name cut by the console would match other providers' rules: left unknown.
    provider = whole.get("ProviderName") or context.get("ProviderName")
    time = whole.get("TimeCreated") or ""
    level = level_from_word(whole.get("LevelDisplayName"))
    if level is None:
        level = _int(whole.get("Level"))
    return event_fact(
        where,
        source_format=context.get("_format", "ps-table"),
        channel=_none(whole.get("LogName") or context.get("LogName")),
        provider=_none(provider),
        source_name=_none(provider),
        event_id=event_id,
        qualifiers=_int(whole.get("Qualifiers")),
        level=level,
        time_local=parse_local_time(time) if time else None,
        computer=_none(whole.get("MachineName")),
        record_id=_int(whole.get("RecordId")),
        message=_none(props.get("Message")),
        process_id=_int(whole.get("ProcessId")),
        thread_id=_int(whole.get("ThreadId")),
    )


def _hotfix(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    kb = (whole.get("HotFixID") or "").strip().upper()
    if not re.fullmatch(r"KB\d{6,7}", kb):
        return None
    installed = whole.get("InstalledOn") or ""
    attrs = {
        "kb": kb,
        "description": _none(whole.get("Description")),
        "installed_on": installed or None,
        "installed_on_local": parse_local_time(installed) if installed else None,
        "installed_by": _none(whole.get("InstalledBy")),
        "computer": _none(whole.get("Source") or whole.get("CSName")),
        "source": "get-hotfix",
    }
    return Fact("hotfix", attrs, where)


def _volume(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    attrs = {
        "drive_letter": _none(whole.get("DriveLetter")),
        "label": _none(props.get("FriendlyName") or props.get("FileSystemLabel")),
        "filesystem": _none(whole.get("FileSystemType") or whole.get("FileSystem")),
        "health": _none(whole.get("HealthStatus")),
        "operational_status": _none(whole.get("OperationalStatus")),
        "size": size_bytes(whole.get("Size")),
        "free": size_bytes(whole.get("SizeRemaining")),
    }
    if not any(attrs.values()):
        return None
    return Fact("volume", attrs, where)


Mapper = Callable[[dict[str, str], dict[str, str], Provenance, dict[str, str]], Fact | None]


def _cluster(what: str) -> Mapper:
    """Get-ClusterResource / -Group / -Node / -SharedVolume: one ``cluster_object`` per row,
    its state as printed (Online, Offline, Failed, Up, Down, Paused...)."""

    def mapper(
        props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
    ) -> Fact | None:
        name, state = _none(props.get("Name")), _none(whole.get("State"))
        if name is None or state is None:
            return None
        owner = props.get("OwnerGroup") or props.get("OwnerNode") or props.get("Node")
        attrs = {
            "object": what,
            "name": name,
            "state": state,
            "owner": _none(owner),
            "resource_type": _none(props.get("ResourceType")),
        }
        return Fact("cluster_object", attrs, where)

    return mapper


def _integration(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    """Get-VMIntegrationService: one service of a VM, whether it is on and how it answers
    (OK, No Contact, Lost Communication, Protocol Mismatch...)."""
    name = _none(props.get("Name"))
    if name is None:
        return None
    attrs = {
        "vm_name": _none(props.get("VMName")),
        "name": name,
        "enabled": _bool(whole.get("Enabled")),
        # Descriptions are prose: one cut by the console is kept as printed (the start of
        # "The protocol version of the co..." says enough), named in truncated_fields.
        "primary_status": _none(props.get("PrimaryStatusDescription")),
        "secondary_status": _none(props.get("SecondaryStatusDescription")),
    }
    return Fact("integration_service", attrs, where)


def _replication(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    """Get-VMReplication / Measure-VMReplication: a VM's replication, its state and health as
    printed (Replicating, Suspended, Error, ResynchronizationRequired...; Normal, Warning,
    Critical)."""
    name = _none(props.get("VMName") or props.get("Name"))
    if name is None:
        return None
    attrs = {
        "name": name,
        "state": _none(whole.get("State")),
        "health": _none(whole.get("Health")),
        "mode": _none(whole.get("Mode")),
        "primary_server": _none(props.get("PrimaryServer")),
        "replica_server": _none(props.get("ReplicaServer")),
    }
    return Fact("vm_replication", attrs, where)


MAPPERS: dict[str, Mapper] = {
    "get-vmintegrationservice": _integration,
    "get-vmreplication": _replication,
    "measure-vmreplication": _replication,
    "measure-object": psstate.measure,
    "get-clusterresource": _cluster("resource"),
    "get-clustergroup": _cluster("group"),
    "get-clusternode": _cluster("node"),
    "get-clustersharedvolume": _cluster("csv"),
    "get-vm": _vm,
    "get-vhd": _vhd,
    "get-vmsnapshot": _checkpoint,
    "get-vmharddiskdrive": _vm_disk,
    "get-computerinfo": _computer_info,
    "get-service": _service,
    "get-winevent": _event,
    "get-hotfix": _hotfix,
    "get-volume": _volume,
}
# The host's storage (Get-PhysicalDisk, Get-VirtualDisk, Get-StoragePool ...): psstorage.py.
SIGNATURES += psstorage.SIGNATURES
MAPPERS.update(psstorage.MAPPERS)
