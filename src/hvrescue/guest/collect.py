"""Facts from inside a guest's virtual disk: each partition with a filesystem is given roles by
the detectors and read by the artefact readers that apply (:mod:`hvrescue.guest.artefacts`)."""

from __future__ import annotations

import tempfile
from typing import Any

from hvrescue.deps import require
from hvrescue.errors import HvrescueError
from hvrescue.fs import probe
from hvrescue.fs.volume import Volume
from hvrescue.guest.artefacts import ARTEFACTS, read_volume
from hvrescue.guest.artefacts.crash_dumps import crash_dump_header
from hvrescue.guest.context import GuestContext
from hvrescue.guest.result import ArtefactRun, GuestResult
from hvrescue.vdisk.disk import Disk

FEATURE = "guest"
# What reading a guest cannot do without: the filesystems (pytsk3) and the registry (regipy).
REQUIRED = ("pytsk3", "regipy")


def _gets_letter(part: Any, fstype: str | None) -> bool:
    """WinRE letters partitions with a filesystem it mounts, except EFI system, MSR and
    recovery partitions (GPT) and hidden types (MBR 0x27)."""
    if fstype is None:
        return False
    return part.type not in ("efi-system", "microsoft-reserved", "windows-recovery", "recovery")


def _winre_letter(before: int) -> str:
    # WinRE itself is X:; volumes are lettered from C: in partition order.
    return chr(ord("C") + min(before, 20))


def check_dependencies() -> None:
    """MissingDependencyError naming the package when one `guest` needs is not installed (else
    every partition would look empty and the result would be silently nothing)."""
    for module in REQUIRED:
        require(module, FEATURE)


def guest_facts(path: str, search: list[str] | None = None) -> GuestResult:
    """Read the guest on the disk at ``path`` (its parents looked for in ``search``), read-only:
    volumes, facts, problems and one :class:`ArtefactRun` per reader and volume."""
    check_dependencies()
    result = GuestResult(path)
    with (
        Disk.open(path, search) as disk,
        tempfile.TemporaryDirectory(prefix="hvrescue-guest-") as tmp,
    ):
        lettered = 0  # partitions before this one that WinRE gives a drive letter
        for part, fstype in probe(disk):
            if fstype is None:
                continue
            try:
                volume = Volume(disk, part)
            except HvrescueError:
                continue
            ctx = GuestContext(volume, f"{path}!p{part.index}", result, tmp, part.index)
            roles = read_volume(ctx)
            result.volumes.append({**part.as_dict(), "filesystem": fstype, "roles": roles})
            if "windows" in roles:
                ctx.fact(
                    "windows_volume",
                    {
                        "partition": part.index,
                        "scheme": part.scheme,
                        "winre_drive_guess": _winre_letter(lettered),
                    },
                    "/Windows",
                )
            if _gets_letter(part, fstype):
                lettered += 1
    return result


__all__ = [
    "ARTEFACTS",
    "ArtefactRun",
    "GuestContext",
    "GuestResult",
    "check_dependencies",
    "crash_dump_header",
    "guest_facts",
]
