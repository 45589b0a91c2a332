"""Partitions and files inside a virtual disk, read-only (`ls`, `extract`, `mount`)."""

from __future__ import annotations

import re

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.partitions import Partition, partitions
from hvrescue.fs.volume import Volume
from hvrescue.vdisk.disk import Disk

_SPEC = re.compile(r"^(\d+):(.*)$")


def probe(disk: Disk) -> list[tuple[Partition, str | None]]:
    """Every partition with its filesystem type (None when none is recognised)."""
    out: list[tuple[Partition, str | None]] = []
    for part in partitions(disk):
        try:
            out.append((part, Volume(disk, part).type))
        except HvrescueError:
            out.append((part, None))
    return out


def open_path(disk: Disk, spec: str) -> tuple[Volume, str]:
    """``N:/path`` (partition N) or ``/path`` (the only partition with a filesystem)."""
    match = _SPEC.match(spec)
    parts = partitions(disk)
    if match:
        index = int(match.group(1))
        chosen = [p for p in parts if p.index == index]
        if not chosen:
            raise InputError("error.fs.no-partition", index=index)
        return Volume(disk, chosen[0]), match.group(2) or "/"
    volumes: list[Volume] = []
    for part in parts:
        try:
            volumes.append(Volume(disk, part))
        except HvrescueError:
            continue
    if len(volumes) == 1:
        return volumes[0], spec or "/"
    if not volumes:
        raise InputError("error.fs.none")
    choices = ", ".join(f"{v.partition.index}:{v.type}" for v in volumes)
    raise InputError("error.fs.which-partition", choices=choices, path=spec)
