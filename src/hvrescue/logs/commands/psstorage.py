"""The host's storage as the Storage module prints it: Get-PhysicalDisk, Get-VirtualDisk,
Get-StoragePool, Get-Disk, Get-StorageJob and Get-StorageSubSystem, as tables or lists, each
object one ``storage_object`` fact. Merged into ``pscmdlets``' SIGNATURES and MAPPERS.

Values are kept as printed ("Lost Communication", "Predictive Failure", "In Service"); a list
value ("{Degraded, Incomplete}") becomes a list of its words. Sizes printed with a unit
("3.64 TB") are read as binary units, as the Storage module's format data computes them. A value
cut by the console is never read (``pscmdlets.to_facts`` hands it over blank).

States and what they mean: Microsoft's "Troubleshoot Storage Spaces and Storage Spaces Direct
health and operational states" (tests/fixtures/field_hoststorage/README.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hvrescue.facts.model import Fact, Provenance

# Columns that name the cmdlet when no prompt does. Checked after pscmdlets' own, so a
# Get-Volume table (DriveLetter, FriendlyName, HealthStatus, OperationalStatus) stays a volume.
SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("get-physicaldisk", frozenset({"CanPool", "HealthStatus"})),
    ("get-physicaldisk", frozenset({"CannotPoolReason"})),
    ("get-physicaldisk", frozenset({"MediaType", "Usage", "HealthStatus"})),
    ("get-physicaldisk", frozenset({"SerialNumber", "Usage", "OperationalStatus"})),
    ("get-virtualdisk", frozenset({"ResiliencySettingName", "HealthStatus"})),
    ("get-virtualdisk", frozenset({"ResiliencySettingName", "OperationalStatus"})),
    ("get-virtualdisk", frozenset({"FootprintOnPool"})),
    ("get-virtualdisk", frozenset({"DetachedReason"})),
    ("get-storagepool", frozenset({"IsPrimordial"})),
    ("get-storagepool", frozenset({"ReadOnlyReason", "HealthStatus"})),
    ("get-storagejob", frozenset({"JobState", "PercentComplete"})),
    ("get-storagejob", frozenset({"BytesProcessed", "BytesTotal"})),
    ("get-disk", frozenset({"PartitionStyle", "OperationalStatus"})),
    ("get-disk", frozenset({"OfflineReason"})),
    ("get-disk", frozenset({"IsOffline", "Number"})),
    # Get-StorageSubSystem's three columns say too little alone: read only when the name is
    # a subsystem's ("Windows Storage on HOST", "Clustered Windows Storage on CLUSTER").
    ("storage-subsystem?", frozenset({"FriendlyName", "HealthStatus", "OperationalStatus"})),
)
SUBSYSTEM_NAME = re.compile(r"^(?:Clustered )?(?:Windows Storage|Storage Spaces) on \S", re.I)
LIST_VALUE = re.compile(r"^\{(?P<items>.*)\}$")
SIZE = re.compile(r"^(?P<n>\d+(?:[.,]\d+)?)\s*(?P<unit>B|KB|MB|GB|TB|PB)$", re.I)
UNITS = {"b": 0, "kb": 1, "mb": 2, "gb": 3, "tb": 4, "pb": 5}
BOOL = {"true": True, "false": False}
# A PhysicalDisk, VirtualDisk or StoragePool has "{a, b}" lists; nothing it prints is longer.
MAX_ITEMS = 16


def _none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _int(value: str | None) -> int | None:
    text = (value or "").replace(",", "").replace("\u00a0", "").replace("%", "").strip()
    return int(text) if re.fullmatch(r"-?\d{1,20}", text) else None


def _bool(value: str | None) -> bool | None:
    return BOOL.get((value or "").strip().lower())


def size(value: str | None) -> int | None:
    """'3.64 TB' as the console prints it (binary units) or a plain number of bytes."""
    plain = _int(value)
    if plain is not None:
        return plain
    m = SIZE.match((value or "").replace("\u00a0", " ").strip())
    if not m:
        return None
    number = float(m.group("n").replace(",", "."))
    return round(number * (1 << (10 * UNITS[m.group("unit").lower()])))


def statuses(value: str | None) -> str | list[str] | None:
    """'OK', 'Lost Communication', or '{Degraded, Incomplete}' as a list of its words."""
    text = _none(value)
    if text is None:
        return None
    m = LIST_VALUE.match(text)
    if not m:
        return text
    items = [v.strip() for v in m.group("items").split(",") if v.strip()][:MAX_ITEMS]
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def _fact(
    what: str, name: str | None, whole: dict[str, str], more: dict[str, Any]
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "object": what,
        "name": name,
        "operational_status": statuses(whole.get("OperationalStatus")),
        "health_status": _none(whole.get("HealthStatus")),
    }
    attrs.update(more)
    return {k: v for k, v in attrs.items() if v is not None}


def _physical_disk(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    name = _none(props.get("FriendlyName")) or _none(props.get("DeviceId"))
    if name is None:
        return None
    attrs = _fact(
        "physical_disk",
        name,
        whole,
        {
            "device_id": _none(whole.get("DeviceId")),
            "serial": _none(whole.get("SerialNumber")),
            "media_type": _none(whole.get("MediaType")),
            "can_pool": _bool(whole.get("CanPool")),
            "cannot_pool_reason": statuses(whole.get("CannotPoolReason")),
            "usage": _none(whole.get("Usage")),
            "size": size(whole.get("Size")),
            "allocated": size(whole.get("AllocatedSize")),
            "bus_type": _none(whole.get("BusType")),
            "physical_location": _none(props.get("PhysicalLocation")),
        },
    )
    return Fact("storage_object", attrs, where)


def _virtual_disk(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    name = _none(props.get("FriendlyName"))
    if name is None:
        return None
    attrs = _fact(
        "virtual_disk",
        name,
        whole,
        {
            "resiliency": _none(whole.get("ResiliencySettingName")),
            "fault_domain_redundancy": _int(whole.get("FaultDomainRedundancy")),
            "detached_reason": _none(whole.get("DetachedReason")),
            "size": size(whole.get("Size")),
            "allocated": size(whole.get("AllocatedSize")),
            "footprint_on_pool": size(whole.get("FootprintOnPool")),
            "is_manual_attach": _bool(whole.get("IsManualAttach")),
        },
    )
    return Fact("storage_object", attrs, where)


def _pool(props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any) -> Fact | None:
    name = _none(props.get("FriendlyName"))
    if name is None:
        return None
    attrs = _fact(
        "pool",
        name,
        whole,
        {
            "is_primordial": _bool(whole.get("IsPrimordial")),
            "is_readonly": _bool(whole.get("IsReadOnly")),
            "read_only_reason": _none(whole.get("ReadOnlyReason")),
            "size": size(whole.get("Size")),
            "allocated": size(whole.get("AllocatedSize")),
        },
    )
    return Fact("storage_object", attrs, where)


def _disk(props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any) -> Fact | None:
    number = _int(whole.get("Number") or whole.get("DiskNumber"))
    name = _none(props.get("FriendlyName") or props.get("Friendly Name"))
    if name is None and number is None:
        return None
    attrs = _fact(
        "disk",
        name or str(number),
        whole,
        {
            "number": number,
            "serial": _none(whole.get("SerialNumber") or whole.get("Serial Number")),
            "size": size(whole.get("Size") or whole.get("Total Size")),
            "allocated": size(whole.get("AllocatedSize")),
            "partition_style": _none(whole.get("PartitionStyle") or whole.get("Partition Style")),
            "is_offline": _bool(whole.get("IsOffline")),
            "offline_reason": _none(whole.get("OfflineReason")),
            "is_readonly": _bool(whole.get("IsReadOnly")),
            "bus_type": _none(whole.get("BusType")),
        },
    )
    return Fact("storage_object", attrs, where)


def _job(props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any) -> Fact | None:
    name = _none(props.get("Name"))
    state = _none(whole.get("JobState"))
    if name is None or state is None:
        return None
    percent = _int(whole.get("PercentComplete"))
    attrs = _fact(
        "job",
        name,
        whole,
        {
            "job_state": state,
            "percent_complete": percent if percent is not None and 0 <= percent <= 100 else None,
            "is_background_task": _bool(whole.get("IsBackgroundTask")),
            "elapsed_time": _none(whole.get("ElapsedTime")),
            "bytes_processed": size(whole.get("BytesProcessed")),
            "bytes_total": size(whole.get("BytesTotal")),
        },
    )
    return Fact("storage_object", attrs, where)


def _subsystem(
    props: dict[str, str], whole: dict[str, str], where: Provenance, _c: Any
) -> Fact | None:
    name = _none(props.get("FriendlyName"))
    if name is None:
        return None
    return Fact("storage_object", _fact("subsystem", name, whole, {}), where)


def _maybe_subsystem(
    props: dict[str, str], whole: dict[str, str], where: Provenance, context: Any
) -> Fact | None:
    if not SUBSYSTEM_NAME.match(props.get("FriendlyName") or ""):
        return None
    return _subsystem(props, whole, where, context)


Mapper = Callable[[dict[str, str], dict[str, str], Provenance, dict[str, str]], Fact | None]

_BY_CMDLET: dict[str, Mapper] = {
    "get-physicaldisk": _physical_disk,
    "get-virtualdisk": _virtual_disk,
    "get-storagepool": _pool,
    "get-disk": _disk,
    "get-storagejob": _job,
    "get-storagesubsystem": _subsystem,
    "storage-subsystem?": _maybe_subsystem,  # never typed: chosen by columns only
}


CONCRETE = frozenset(
    ("get-physicaldisk", "get-virtualdisk", "get-storagepool", "get-disk", "get-storagejob")
)


def by_columns(columns: set[str]) -> str | None:
    """The storage cmdlet whose columns these are, if any (the subsystem's three columns,
    which other objects print too, name none)."""
    return next(
        (n for n, needed in SIGNATURES if needed <= columns and n in CONCRETE),
        None,
    )


def _checked(cmdlet: str) -> Mapper:
    """A prompt names the cmdlet of every output below it until the next prompt, so a list
    pasted without its own prompt ("Get-PhysicalDisk" under "Get-VirtualDisk | fl") would be
    read as the typed cmdlet's. The columns decide when they are another storage cmdlet's and
    none of the typed one's."""

    def mapper(
        props: dict[str, str], whole: dict[str, str], where: Provenance, context: dict[str, str]
    ) -> Fact | None:
        columns = set(props)
        own = any(needed <= columns for name, needed in SIGNATURES if name == cmdlet)
        other = by_columns(columns)
        chosen = other if other is not None and not own else cmdlet
        return _BY_CMDLET[chosen](props, whole, where, context)

    return mapper


MAPPERS: dict[str, Mapper] = {name: _checked(name) for name in _BY_CMDLET}
