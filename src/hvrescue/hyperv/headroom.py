"""Merge headroom: whether the volume that holds a differencing chain has room for the merge
that deleting its checkpoints starts (an inventory check, see ``hvrescue.inventory``).

Deleting a checkpoint makes Hyper-V merge each differencing disk into its parent: the parent
receives every block the child holds, so the volume must take the data allocated in the
differencing layers (their union, bounded by the virtual size: a block written in two layers is
written once into the base). A full flatten into a new file (``hvrescue merge``) writes what
the whole chain holds. Both are counted from the BATs, never from the file sizes (which include
metadata, sector bitmaps and the space of blocks the child rewrote), and never by reading data.

The free space comes from the caller: ``CheckOptions.free_space`` by the chain leaf's real path
(a live host), or ``CheckOptions.extra["volume_free"]`` by Windows drive letter (``"D:"``, from
collected ``Get-Volume`` output), matched with the Windows paths the VM configurations give
for their disks. Where the free space is unknown nothing is reported; :func:`merge_needs`
gives the bytes to whoever prints them (``audit``).
"""

from __future__ import annotations

import heapq
import ntpath
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.units import human_size
from hvrescue.vdisk.detect import open_image
from hvrescue.vdisk.ranges import merge_ranges

if TYPE_CHECKING:
    from hvrescue.inventory import CheckOptions, Inventory

CODE = "hyperv.merge-headroom.insufficient"
DEFAULT_MARGIN = 1.1


@dataclass(frozen=True)
class MergeNeed:
    """What merging one chain writes, in bytes. ``delete_checkpoints``: the data allocated in
    the differencing layers (what deleting the checkpoints merges into the base); ``flatten``:
    what the whole chain holds (a full merge into a new file); None where a layer could not be
    read (or, for ``flatten``, the chain has no base)."""

    leaf: str
    files: tuple[str, ...]  # real paths, base first
    differencing: int
    virtual_size: int
    delete_checkpoints: int | None
    flatten: int | None
    complete: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "leaf": self.leaf,
            "files": list(self.files),
            "differencing": self.differencing,
            "virtual_size": self.virtual_size,
            "delete_checkpoints": self.delete_checkpoints,
            "flatten": self.flatten,
            "complete": self.complete,
        }


def _clip(ranges: Iterator[tuple[int, int]], size: int) -> Iterator[tuple[int, int]]:
    for lo, n in ranges:
        if lo < size:
            yield lo, min(n, size - lo)


def _union_bytes(layers: list[list[tuple[int, int]]]) -> int:
    return sum(n for _lo, n in merge_ranges(heapq.merge(*layers)))


def chain_need(files: list[str]) -> MergeNeed:
    """The bytes merging the chain ``files`` (base first) writes, from each layer's BAT."""
    diff_ranges: list[list[tuple[int, int]]] = []
    all_ranges: list[list[tuple[int, int]]] = []
    differencing = 0
    size = 0
    readable = True
    has_base = False
    for path in reversed(files):  # the leaf's virtual size is the disk's
        try:
            image = open_image(path)
        except (HvrescueError, OSError):
            readable = False
            continue
        try:
            if not image.readable:
                readable = False
                continue
            size = size or image.size
            held = sorted(_clip(image.allocated(), size or image.size))
            all_ranges.append(held)
            if image.is_differencing:
                differencing += 1
                diff_ranges.append(held)
            else:
                has_base = True
        finally:
            image.close()
    merged = _union_bytes(diff_ranges) if readable else None
    flat = _union_bytes(all_ranges) if readable and has_base else None
    return MergeNeed(
        files[-1],
        tuple(files),
        differencing,
        size,
        None if merged is None else min(merged, size),
        None if flat is None else min(flat, size),
        readable and has_base,
    )


def merge_needs(inv: Inventory) -> dict[str, MergeNeed]:
    """Every chain of ``inv`` with a differencing disk, by its leaf's real path."""
    out: dict[str, MergeNeed] = {}
    for files in inv.chains:
        if len(files) < 2:
            continue
        out[files[-1]] = chain_need(files)
    return out


# ---------------------------------------------------------------- free space
def drive_of(windows_path: str) -> str | None:
    """``"D:"`` for ``D:\\VMs\\x.vhdx``; None for a UNC or relative path."""
    drive = ntpath.splitdrive(windows_path.strip())[0]
    if len(drive) == 2 and drive[1] == ":" and drive[0].isalpha():
        return drive.upper()
    return None


def normal_drive(name: str) -> str | None:
    """A Get-Volume drive letter (``D``, ``D:``, ``d:\\``) as ``D:``."""
    text = name.strip().rstrip("\\").rstrip(":")
    if len(text) == 1 and text.isalpha():
        return text.upper() + ":"
    return None


def _leaf_drives(inv: Inventory) -> dict[str, str]:
    """The Windows drive of each disk file the VM configurations name, by real path."""
    root = inv.root
    out: dict[str, str] = {}
    for vm in inv.vms:
        for disk in vm.get("disks") or []:
            drive = drive_of(str(disk.get("path") or ""))
            if drive is None:
                continue
            for rel in [disk.get("local"), *(disk.get("chain") or [])]:
                if not rel:
                    continue
                rel = str(rel)
                real = rel if os.path.isabs(rel) else os.path.join(root, *rel.split("/"))
                out.setdefault(os.path.realpath(real), drive)
    return out


def free_for(
    leaf: str, files: tuple[str, ...], options: CheckOptions, drives: dict[str, str]
) -> tuple[int, str] | None:
    """``(free bytes, volume)`` for the chain ending at ``leaf``, or None when unknown."""
    if leaf in options.free_space:
        return options.free_space[leaf], os.path.dirname(leaf)
    table = options.extra.get("volume_free") or {}
    volumes = {d: int(v) for k, v in table.items() if (d := normal_drive(str(k))) is not None}
    for path in (leaf, *reversed(files)):
        drive = drives.get(path)
        if drive is not None and drive in volumes:
            return volumes[drive], drive
    return None


def check(inv: Inventory, options: CheckOptions) -> list[Finding]:
    """``hyperv.merge-headroom.insufficient`` for each chain whose volume has less free space
    than the merge writes times the margin (``extra["headroom_margin"]``, 1.1 by default), and
    the sector-size check of the same volumes (:mod:`hvrescue.hyperv.sectors`)."""
    from hvrescue.hyperv import sectors

    findings = sectors.check(inv, options)
    margin = float(options.extra.get("headroom_margin", DEFAULT_MARGIN))
    drives = _leaf_drives(inv)
    for leaf, need in merge_needs(inv).items():
        if not need.complete or not need.delete_checkpoints:
            continue
        found = free_for(leaf, need.files, options, drives)
        if found is None:
            continue  # free space unknown: nothing to say (audit prints the need)
        free, volume = found
        if free >= need.delete_checkpoints * margin:
            continue
        findings.append(
            Finding(
                CODE,
                Severity.WARNING,
                leaf,
                None,
                {
                    "leaf": leaf,
                    "needed": need.delete_checkpoints,
                    "needed_size": human_size(need.delete_checkpoints),
                    "free": free,
                    "free_size": human_size(free),
                    "volume": volume,
                    "flatten": need.flatten,
                    "flatten_size": "?" if need.flatten is None else human_size(need.flatten),
                    "margin": margin,
                },
            )
        )
    return findings


def options_from_facts(facts: list[Any]) -> CheckOptions:
    """The check options the collected evidence gives: each drive's free space from ``volume``
    facts (Get-Volume) and its sector sizes from ``storage_sectors`` facts (fsutil fsinfo
    sectorinfo), for triage to pass to ``build_inventory``."""
    from hvrescue.inventory import CheckOptions

    free: dict[str, int] = {}
    sectors: dict[str, dict[str, Any]] = {}
    for fact in facts:
        a = fact.attributes
        if fact.kind == "volume":
            drive = normal_drive(str(a.get("drive_letter") or ""))
            if drive is not None and isinstance(a.get("free"), int):
                free[drive] = a["free"]
        elif fact.kind == "storage_sectors":
            drive = normal_drive(str(a.get("volume") or ""))
            if drive is not None and isinstance(a.get("logical"), int):
                sectors[drive] = {"logical": a["logical"], "physical": a.get("physical")}
    return CheckOptions(extra={"volume_free": free, "volume_sectors": sectors})
