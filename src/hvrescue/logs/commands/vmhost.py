"""`Get-VMHost` as `ConvertTo-Json` or `Format-List`: where the host keeps new VMs and disks,
how many logical processors and how much memory it has. Property names are English in every
language (Hyper-V module reference, VMHost class)."""

from __future__ import annotations

from typing import Any

from hvrescue.facts.model import Fact, Provenance

# Properties only a VMHost object has: two of them say the object is one.
MARKERS = frozenset(
    {
        "VirtualHardDiskPath",
        "VirtualMachinePath",
        "LogicalProcessorCount",
        "MemoryCapacity",
        "MemoryCapacity(M)",  # the default table's column, in MB
    }
)
BOOL = {"true": True, "false": False}


def is_vm_host(keys: set[str] | frozenset[str]) -> bool:
    return len(MARKERS & keys) >= 2


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = (_text(value) or "").replace(",", "")
    return int(text) if text.isdigit() else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return BOOL.get((_text(value) or "").lower())


def _memory(props: dict[str, Any]) -> int | None:
    exact = _count(props.get("MemoryCapacity"))
    if exact is not None:
        return exact
    mb = _count(props.get("MemoryCapacity(M)"))
    return None if mb is None else mb * 1024 * 1024


def vm_host_fact(props: dict[str, Any], where: Provenance) -> Fact | None:
    """The `vm_host` fact of one Get-VMHost object (JSON values or the text Format-List
    printed); None when the object is not a VMHost."""
    if not is_vm_host(set(props)):
        return None
    attrs = {
        "name": _text(props.get("ComputerName")) or _text(props.get("Name")),
        "virtual_hard_disk_path": _text(props.get("VirtualHardDiskPath")),
        "virtual_machine_path": _text(props.get("VirtualMachinePath")),
        "logical_processors": _count(props.get("LogicalProcessorCount")),
        "memory_capacity": _memory(props),
        "numa_spanning_enabled": _flag(props.get("NumaSpanningEnabled")),
    }
    return Fact("vm_host", attrs, where)
