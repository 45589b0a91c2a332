"""Facts from inside a guest's virtual disk: each partition with a filesystem is given roles by
the detectors and read by the artefact readers that apply (:mod:`hvrescue.guest.artefacts`)."""

from __future__ import annotations

import tempfile
from typing import Any

from hvrescue.deps import require
from hvrescue.errors import HvrescueError
from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.fs.addressing import VolumeInfo, discover, open_volume
from hvrescue.guest import disk_kind
from hvrescue.guest.artefacts import ARTEFACTS, LINUX_FILESYSTEMS, read_volume
from hvrescue.guest.artefacts.crash_dumps import crash_dump_header
from hvrescue.guest.artefacts.linux_fs import filesystem_attrs
from hvrescue.guest.context import GuestContext
from hvrescue.guest.linux_volumes import identity
from hvrescue.guest.result import ArtefactRun, GuestResult
from hvrescue.vdisk.disk import Disk

FEATURE = "guest"
# What reading a guest cannot do without: the filesystems (pytsk3) and the registry (regipy).
REQUIRED = ("pytsk3", "regipy")
VOLUME_KEYS = ("id", "kind", "filesystem", "uuid", "label", "partuuid", "partlabel", "vg", "lv")


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
    volumes, facts, problems and one :class:`ArtefactRun` per reader and volume. Every volume
    fs.addressing finds is read: partitions, a partitionless disk (volume ``1``) and LVM
    logical volumes (``3/vg0/root``)."""
    check_dependencies()
    result = GuestResult(path)
    with (
        Disk.open(path, search) as disk,
        tempfile.TemporaryDirectory(prefix="hvrescue-guest-") as tmp,
    ):
        # Shadow copies are yesterday's state of a volume: read as the guest now, their old
        # pending updates and dumps would stand beside today's, so they are left out here.
        found = [info for info in discover(disk) if info.kind != "shadow"]
        scheme = found[0].partition.scheme if found else _empty_table(disk)
        hint = disk_kind.from_name(path, scheme)
        listed = [(info, _describe(info)) for info in found]
        # A volume with no filesystem is not listed, unless it is one that could not be read
        # (LVM metadata that does not parse, an unsupported segment type).
        listed = [(i, d) for i, d in listed if d["filesystem"] is not None or i.problem]
        disk_volumes = [d for _i, d in listed]
        lettered = 0  # partitions before this one that WinRE gives a drive letter
        linux: list[GuestContext] = []
        for info, desc in listed:
            result.volumes.append(desc)
            ctx = _open(disk, info, desc, path, result, tmp)
            if ctx is None:
                continue
            ctx.disk_volumes, ctx.disk_hint = disk_volumes, hint
            desc["roles"] = read_volume(ctx)
            part = info.partition
            if "windows" in desc["roles"]:
                ctx.fact(
                    "windows_volume",
                    {
                        "partition": part.index,
                        "scheme": part.scheme,
                        "winre_drive_guess": _winre_letter(lettered),
                    },
                    "/Windows",
                )
            if "linuxfs" in desc["roles"]:
                linux.append(ctx)
            if info.kind == "partition" and _gets_letter(part, info.filesystem):
                lettered += 1
        _linux_disk(result, path, hint, linux, disk_volumes)
    return result


def _empty_table(disk: Disk) -> str:
    """The scheme of a partition table that lists no partition (a disk initialized in Disk
    Management and nothing more): ``gpt``, ``mbr`` or ``none``."""
    sector = disk.logical_sector_size or 512
    if disk.read(sector, 8) == b"EFI PART":
        return "gpt"
    return "mbr" if disk.read(510, 2) == b"\x55\xaa" else "none"


def _describe(info: VolumeInfo) -> dict[str, Any]:
    """The volume as `guest --json` lists it: the partition's fields (an LVM logical volume
    keeps its physical volume's ``index``), its address, filesystem and identity."""
    desc: dict[str, Any] = {**info.partition.as_dict(), **info.as_dict(), "roles": []}
    ident = identity(info.source, info.filesystem) if info.problem is None else {}
    if ident.get("filesystem") == "swap":
        desc["filesystem"] = "swap"
    if info.kind == "lvm":
        desc.update(type="lvm-logical-volume", offset=None)
    desc["uuid"] = ident.get("uuid")
    desc["label"] = ident.get("label")
    desc["partuuid"] = info.partition.guid if info.kind == "partition" else None
    desc["partlabel"] = info.partition.name or None if info.kind == "partition" else None
    desc.setdefault("vg", None)
    desc.setdefault("lv", None)
    return desc


def _open(
    disk: Disk, info: VolumeInfo, desc: dict[str, Any], path: str, result: GuestResult, tmp: str
) -> GuestContext | None:
    """The volume's context, or None when it cannot be read (``problem`` says why)."""
    raw = info.source.read(1024, 1024) if info.filesystem in LINUX_FILESYSTEMS else b""
    if not info.readable:
        _unreadable(info, desc, raw, path, result)
        return None
    try:
        volume = open_volume(disk, info)
    except HvrescueError as exc:
        desc["problem"] = {"key": exc.key, "params": dict(exc.params)}
        _unreadable(info, desc, raw, path, result)
        return None
    label = f"{path}!p{info.id}"
    ctx = GuestContext(volume, label, result, tmp, info.partition.index)
    ctx.volume_id, ctx.volume_info, ctx.raw_superblock = info.id, desc, raw
    return ctx


def _unreadable(
    info: VolumeInfo, desc: dict[str, Any], raw: bytes, path: str, result: GuestResult
) -> None:
    """A volume with a filesystem that cannot be read is said (never skipped silently); an
    ext superblock still tells the filesystem's state."""
    if desc["filesystem"] in ("lvm2", "swap"):
        return  # read through its logical volumes / holds no files
    where = f"{path}!p{info.id}"
    key, params = (desc.get("problem") or {}).get("key"), (desc.get("problem") or {}).get("params")
    detail = f"{desc['filesystem']}: {key or 'unsupported'} {params or ''}".strip()
    result.problems.append(
        Problem(where, "guest.volume-unreadable", None, {"detail": detail[:300], "volume": info.id})
    )
    if info.filesystem in ("ext2", "ext3", "ext4"):
        attrs = filesystem_attrs(info.filesystem, raw, None, [], desc)
        if attrs is not None:
            result.facts.append(
                Fact("linux_filesystem", attrs, Provenance(f"{where}:/", "superblock"))
            )


def _linux_disk(
    result: GuestResult,
    path: str,
    hint: dict[str, Any],
    linux: list[GuestContext],
    disk_volumes: list[dict[str, Any]],
) -> None:
    """The kind of Linux disk (WSL, Docker Desktop, a VM's) and one ``linux_volume`` fact per
    volume with the identity fstab names it by; nothing for a disk without Linux."""
    if not linux and hint["disk_kind"] is None:
        return
    roots = [c for c in linux if "linux" in c.roles]
    kind = disk_kind.settle(hint, roots[0] if roots else None, linux)
    result.disk_kind = kind
    where = f"{path}!p{kind['root_volume']}:/" if kind["root_volume"] else path
    result.facts.append(Fact("guest_disk", {"path": path, **kind}, Provenance(where)))
    for desc in disk_volumes:
        attrs = {k: desc.get(k) for k in VOLUME_KEYS}
        attrs["root"] = desc["id"] == kind["root_volume"]
        result.facts.append(Fact("linux_volume", attrs, Provenance(f"{path}!p{desc['id']}")))


__all__ = [
    "ARTEFACTS",
    "ArtefactRun",
    "GuestContext",
    "GuestResult",
    "check_dependencies",
    "crash_dump_header",
    "guest_facts",
]
