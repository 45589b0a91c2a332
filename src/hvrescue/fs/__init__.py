"""Partitions, volumes and files inside a virtual disk, read-only (`ls`, `extract`, `mount`).

Volumes are addressed as fs.addressing describes: ``1``, ``2``, ``3/vg0/root`` (``ID:/path``)."""

from __future__ import annotations

from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.addressing import VolumeInfo, discover, open_volume, parse_spec
from hvrescue.fs.partitions import Partition, partitions
from hvrescue.vdisk.disk import Disk


def probe(disk: Disk) -> list[tuple[Partition, str | None]]:
    """Every partition with its filesystem type (None when none is recognised)."""
    return [(v.partition, v.filesystem) for v in discover(disk) if v.kind == "partition"]


def open_path(disk: Disk, spec: str, volumes: list[VolumeInfo] | None = None) -> tuple[Any, str]:
    """``ID:/path`` (volume ID: ``2``, ``3/vg0/root``) or ``/path`` (the only readable volume)."""
    vid, inner = parse_spec(spec)
    found = volumes if volumes is not None else discover(disk)
    if vid is not None:
        chosen = [v for v in found if v.id == vid]
        if not chosen:
            if vid.isdigit():
                raise InputError("error.fs.no-partition", index=int(vid))
            raise InputError(
                "error.fs.no-volume", volume=vid, choices=", ".join(v.id for v in found) or "-"
            )
        return open_volume(disk, chosen[0]), inner
    opened: list[Any] = []
    for info in found:
        if not info.readable or info.kind == "shadow":  # a shadow copy is named, never guessed
            continue
        try:
            opened.append(open_volume(disk, info))
        except HvrescueError:
            continue
    if len(opened) == 1:
        return opened[0], inner
    if not opened:
        raise InputError("error.fs.none")
    choices = ", ".join(f"{v.id}:{v.type}" for v in opened)
    raise InputError("error.fs.which-partition", choices=choices, path=spec)


__all__ = ["Partition", "VolumeInfo", "discover", "open_path", "partitions", "probe"]
