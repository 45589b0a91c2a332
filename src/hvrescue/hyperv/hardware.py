"""What a surviving disk says about the VM that booted it, read offline and read-only: the
partition style (GPT or MBR, and whether an EFI system partition is there), the guest system
on it (Windows or Linux) and, for Linux, whether its EFI boot path goes through shim (signed
with Microsoft's UEFI CA, so Secure Boot with the MicrosoftUEFICertificateAuthority template
lets it start).

The volumes are found by :mod:`hvrescue.fs.addressing` and recognised by the guest readers'
own detectors (:func:`hvrescue.guest.artefacts.detect_roles`): a ``windows`` volume holds a
SYSTEM hive, a ``linux`` one an os-release file.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.fs.addressing import VolumeInfo, discover, open_volume
from hvrescue.fs.partitions import partitions
from hvrescue.guest.artefacts import detect_roles
from hvrescue.guest.artefacts.linux_files import read_text
from hvrescue.guest.artefacts.linux_os import OS_RELEASE, parse_os_release
from hvrescue.guest.context import GuestContext
from hvrescue.guest.result import GuestResult
from hvrescue.vdisk.disk import Disk

MAX_VOLUMES = 64
MAX_ESP_FOLDERS = 64
MAX_OS_RELEASE = 64 * 1024
SHIM_NAMES = ("shimx64.efi", "shimaa64.efi", "shimia32.efi", "shim.efi")


@dataclass
class DiskProbe:
    """``partition_style``: "gpt", "mbr" or "none" (a filesystem over the whole disk);
    ``guest_os``: "windows", "linux" or None (neither recognised); ``shim``: for a Linux
    guest, whether a shim loader was found on its EFI system partition (None: not looked at,
    no EFI system partition); ``problems``: catalogue keys of what could not be read."""

    path: str
    size: int = 0
    partition_style: str = "none"
    efi_system_partition: bool = False
    guest_os: str | None = None
    os_name: str | None = None
    shim: bool | None = None
    volumes: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "partition_style": self.partition_style,
            "efi_system_partition": self.efi_system_partition,
            "guest_os": self.guest_os,
            "os_name": self.os_name,
            "shim": self.shim,
        }


def _table_scheme(disk: Disk) -> str:
    """The scheme of a table even when it lists no partition."""
    sector = disk.logical_sector_size or 512
    if disk.read(sector, 8) == b"EFI PART":
        return "gpt"
    return "mbr" if disk.read(510, 2) == b"\x55\xaa" else "none"


def _is_esp(info: VolumeInfo) -> bool:
    return info.kind == "partition" and info.partition.type == "efi-system"


def _has_shim(ctx: GuestContext) -> bool:
    for folder in ctx.listdir("/EFI")[:MAX_ESP_FOLDERS]:
        if not folder.is_dir:
            continue
        names = {e.name.lower() for e in ctx.listdir(f"/EFI/{folder.name}")[:MAX_ESP_FOLDERS]}
        if any(name in names for name in SHIM_NAMES):
            return True
    return False


def _os_name(ctx: GuestContext) -> str | None:
    for path in OS_RELEASE:
        found = read_text(ctx, path, MAX_OS_RELEASE)
        if found is not None:
            fields = parse_os_release(found[0])
            return fields.get("PRETTY_NAME") or fields.get("NAME") or fields.get("ID")
    return None


def probe_disk(path: str, search: list[str] | None = None) -> DiskProbe:
    """Read the disk at ``path`` (its chain resolved through its parents, looked for in
    ``search`` too). A chain that cannot be opened raises its error; a volume that cannot be
    read is noted in ``problems`` and the others are still looked at."""
    probe = DiskProbe(path)
    with Disk.open(path, search) as disk, tempfile.TemporaryDirectory(prefix="hvrescue-") as tmp:
        probe.size = disk.size
        try:
            found = [i for i in discover(disk) if i.kind != "shadow"][:MAX_VOLUMES]
        except HvrescueError as exc:
            # The volumes cannot be told apart (a BitLocker key refused...): the table still can.
            probe.problems.append(exc.key)
            parts = partitions(disk)
            probe.partition_style = parts[0].scheme if parts else _table_scheme(disk)
            probe.efi_system_partition = any(p.type == "efi-system" for p in parts)
            return probe
        probe.partition_style = found[0].partition.scheme if found else _table_scheme(disk)
        probe.efi_system_partition = any(_is_esp(i) for i in found)
        probe.volumes = len(found)
        shim: bool | None = None
        result = GuestResult(path)
        for info in found:
            if not info.readable:
                if info.problem is not None:
                    probe.problems.append(info.problem[0])
                continue
            try:
                volume = open_volume(disk, info)
            except HvrescueError as exc:
                probe.problems.append(exc.key)
                continue
            ctx = GuestContext(volume, f"{path}!p{info.id}", result, tmp, info.partition.index)
            if _is_esp(info):
                shim = bool(shim) or _has_shim(ctx)
                continue
            roles = detect_roles(ctx)
            if "windows" in roles and probe.guest_os is None:
                probe.guest_os = "windows"
            elif "linux" in roles and probe.guest_os is None:
                probe.guest_os = "linux"
                probe.os_name = _os_name(ctx)
        if probe.guest_os == "linux" and probe.efi_system_partition:
            probe.shim = shim
    return probe
