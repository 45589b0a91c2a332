"""Change-tracking leftovers in a storage folder: a check of ``inventory.CHECK_MODULES``.

Resilient Change Tracking (Windows Server 2016 and later, configuration version 6.2 and up)
keeps two files beside each tracked disk, named after the disk's whole file name:
``<disk>.vhdx.rct`` (the change map backup software reads) and ``<disk>.vhdx.mrt`` (the
modified regions, used to rebuild the map after a crash). Hyper-V creates, grows and removes
them with the disk; a pair left behind when the disk was deleted, renamed or moved by hand, or
by a restore that brought the disk back elsewhere, is an orphan. Their size follows the disk's
block count, a few MiB for common disks; one grown far beyond that (absolute threshold
``CheckOptions.extra["rct_max_bytes"]``, or a tenth of its disk's size,
``extra["rct_max_ratio"]``) points at tracking that is never reset, which backup vendors
answer with a reset of change tracking and a full backup.

Findings: ``inventory.rct-orphan`` (params ``file``, ``disk``) and ``inventory.rct-oversized``
(params ``file``, ``size``, ``limit``, ``disk``, ``disk_size``). Neither name a disk's
contents: they read names and sizes only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hvrescue.findings import Finding, Severity

if TYPE_CHECKING:
    from hvrescue.inventory import CheckOptions, Inventory

SUFFIXES = (".rct", ".mrt")
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_RATIO = 0.1
# Below this a tracking file is never called oversized, whatever its disk (a tiny test disk).
FLOOR_BYTES = 256 << 20


def tracked_disk(path: str) -> str | None:
    """The disk a change-tracking file belongs to (``a.vhdx.rct`` -> ``a.vhdx``), or None."""
    lower = path.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return None


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return default
    return float(value)


def size_limit(
    disk_size: int, max_bytes: int = DEFAULT_MAX_BYTES, ratio: float = DEFAULT_MAX_RATIO
) -> int:
    """The size above which a tracking file of a disk of ``disk_size`` bytes is oversized."""
    if disk_size <= 0:
        return max_bytes
    return min(max_bytes, max(FLOOR_BYTES, int(disk_size * ratio)))


def listed_leftovers(entries: list[tuple[str, int]]) -> list[tuple[str, str, dict[str, Any]]]:
    """The same checks over a file listing (Windows paths and sizes, as ``dir`` or
    Get-ChildItem printed them): ``(code, path, params)``. A disk is looked for in the listing
    only, so only folders the listing shows are judged."""
    sizes = {path.casefold(): size for path, size in entries}
    out: list[tuple[str, str, dict[str, Any]]] = []
    for path, size in entries:
        disk = tracked_disk(path)
        if disk is None:
            continue
        disk_size = sizes.get(disk.casefold())
        if disk_size is None:
            out.append(("inventory.rct-orphan", path, {"file": path, "disk": disk}))
            continue
        limit = size_limit(disk_size)
        if size > limit:
            params = {"file": path, "size": size, "limit": limit, "disk": disk}
            out.append(("inventory.rct-oversized", path, {**params, "disk_size": disk_size}))
    return out


def check(inv: Inventory, options: CheckOptions) -> list[Finding]:
    max_bytes = int(_number(options.extra.get("rct_max_bytes"), DEFAULT_MAX_BYTES))
    ratio = _number(options.extra.get("rct_max_ratio"), DEFAULT_MAX_RATIO)
    by_key = {f.path.casefold(): f for f in inv.files}
    findings: list[Finding] = []
    for info in inv.files:
        disk_path = tracked_disk(info.path)
        if disk_path is None or not info.rel:
            continue
        disk_rel = tracked_disk(info.rel) or disk_path
        # Windows names are case-insensitive: a copy on Linux may differ in case only.
        disk = by_key.get(disk_path.casefold())
        if disk is None and not os.path.isfile(disk_path):
            findings.append(
                Finding(
                    "inventory.rct-orphan",
                    Severity.WARNING,
                    info.path,
                    params={"file": info.rel, "disk": disk_rel},
                )
            )
            continue
        try:
            disk_size = disk.size if disk is not None else os.path.getsize(disk_path)
        except OSError:
            continue  # gone between the two looks: the next run judges it
        limit = size_limit(disk_size, max_bytes, ratio)
        if info.size > limit:
            findings.append(
                Finding(
                    "inventory.rct-oversized",
                    Severity.WARNING,
                    info.path,
                    params={
                        "file": info.rel,
                        "size": info.size,
                        "limit": limit,
                        "disk": disk_rel,
                        "disk_size": disk_size,
                    },
                )
            )
    return findings
