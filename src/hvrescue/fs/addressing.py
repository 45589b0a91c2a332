"""Every volume a disk holds, each with its address (the ``ID`` of ``ID:/path``):

    "1", "2" ...        a partition of the MBR or GPT, by its number; a disk without a
                        partition table (a filesystem or an LVM physical volume at sector 0,
                        as in WSL's and Docker Desktop's ext4.vhdx) is volume "1"
    "3/vg0/root"        the logical volume ``root`` of volume group ``vg0``, whose physical
                        volume is partition 3 (the first partition of the group on this disk)
    "2@vss1"            the oldest shadow copy of NTFS volume 2 (vss2 the next; fs.shadow)

An unlocked BitLocker volume keeps the id of the partition it is on. Each volume says its
``filesystem`` ("ntfs", "fat32", "ext4", "xfs", "btrfs", "lvm2", "bitlocker", None when
unknown) and, when it cannot be read, a ``problem``: a catalogue key and its parameters.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs import bitlocker, lvm, shadow
from hvrescue.fs.partitions import Partition, partitions
from hvrescue.fs.source import MappedSource
from hvrescue.vdisk.disk import Disk

# ``ID:/path``: an id starts with the partition number; "@name" and "/vg/lv" may follow.
SPEC = re.compile(r"^(\d+(?:@[\w.+-]+)?(?:/[\w.+-]+/[\w.+-]+)?(?:@[\w.+-]+)?):(.*)$", re.S)
READABLE = ("ntfs", "fat12", "fat16", "fat32", "exfat", "ext2", "ext3", "ext4", "xfs")
LINUX = ("ext2", "ext3", "ext4", "xfs")
TSK = ("ntfs", "fat12", "fat16", "fat32", "exfat")
EXT_COMPAT_JOURNAL = 0x4
EXT_COMPAT_FAST_COMMIT = 0x400
EXT4_INCOMPAT = 0x40 | 0x80 | 0x200 | 0x1000 | 0x8000  # extents, 64bit, flex_bg, ...


@dataclass
class VolumeInfo:
    id: str
    kind: str  # "partition" or "lvm"
    filesystem: str | None
    partition: Partition
    source: MappedSource
    problem: tuple[str, dict[str, Any]] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.problem is None and self.filesystem in READABLE

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "filesystem": self.filesystem,
            "partition": self.partition.index,
            "offset": self.partition.offset if self.kind == "partition" else None,
            "size": self.source.size,
            "readable": self.readable,
            "problem": None,
            **self.detail,
        }
        if self.problem is not None:
            out["problem"] = {"key": self.problem[0], "params": self.problem[1]}
        return out


def sniff(source: MappedSource) -> str | None:
    """The filesystem (or volume format) whose signature starts the volume."""
    head = source.read(0, 4096)
    if len(head) < 512:
        return None
    if head[3:11] == b"-FVE-FS-" or (head[3:11] == b"MSWIN4.1" and b"-FVE-FS-" in head[:512]):
        return "bitlocker"
    if head[3:11] == b"NTFS    ":
        return "ntfs"
    if head[3:11] == b"EXFAT   ":
        return "exfat"
    if any(head[i * 512 : i * 512 + 8] == lvm.LABEL for i in range(4)):
        return "lvm2"
    if head[:4] == b"XFSB":
        return "xfs"
    if len(head) >= 1024 + 0x68 and head[1024 + 56 : 1024 + 58] == b"\x53\xef":
        compat, incompat = struct.unpack_from("<II", head, 1024 + 0x5C)
        if incompat & EXT4_INCOMPAT:
            return "ext4"
        return "ext3" if compat & EXT_COMPAT_JOURNAL else "ext2"
    if source.read(0x10040, 8) == b"_BHRfS_M":
        return "btrfs"
    if head[82:90] == b"FAT32   ":
        return "fat32"
    if head[54:62] == b"FAT16   ":
        return "fat16"
    if head[54:62] == b"FAT12   ":
        return "fat12"
    return None


def discover(disk: Disk) -> list[VolumeInfo]:
    """Every volume of ``disk``: partitions (or the whole disk), then LVM logical volumes."""
    out: list[VolumeInfo] = []
    pvs: list[tuple[Partition, lvm.PhysicalVolume]] = []
    for part in partitions(disk):
        source = MappedSource.whole(disk, part.offset, part.size)
        fs = sniff(source)
        info = VolumeInfo(str(part.index), "partition", fs, part, source)
        if fs is None or fs in TSK:
            # The Sleuth Kit has the last word on what it reads (a damaged boot sector).
            info.filesystem = _tsk_type(disk, info)
        elif fs == "lvm2":
            pv = lvm.read_pv(disk, part.offset, part.size)
            if pv is not None:
                pvs.append((part, pv))
                info.detail["pv_uuid"] = pv.uuid
        elif fs == "btrfs":
            info.problem = ("error.fs.btrfs-unsupported", {"volume": info.id})
        elif fs == "bitlocker":
            _unlock(disk, info)
        out.append(info)
    if pvs:
        out += _logical(disk, pvs)
    bitlocker.check_all_refused(out)
    return [each for info in out for each in (info, *shadow.copies(info))]


def _unlock(disk: Disk, info: VolumeInfo) -> None:
    """A BitLocker volume: described, and read as its inner filesystem once unlocked."""
    bitlocker.examine(info)
    if info.problem is None:
        inner = sniff(info.source)
        info.filesystem = _tsk_type(disk, info) if inner is None or inner in TSK else inner
        if info.filesystem is None and inner is not None:  # a boot sector, nothing behind it
            info.filesystem = inner
            info.problem = ("error.bitlocker.inner-unreadable", {"volume": info.id, "fs": inner})


def _tsk_type(disk: Disk, info: VolumeInfo) -> str | None:
    from hvrescue.fs.volume import Volume

    try:
        return Volume(disk, info.partition, info.source, info.id).type
    except HvrescueError:
        return None


def _logical(disk: Disk, pvs: list[tuple[Partition, lvm.PhysicalVolume]]) -> list[VolumeInfo]:
    try:
        _groups, lvs = lvm.logical_volumes([pv for _p, pv in pvs])
    except (lvm.MetadataError, RecursionError) as exc:
        # The physical volumes stay listed as "lvm2"; their logical volumes cannot be named.
        part = pvs[0][0]
        return [
            VolumeInfo(
                f"{part.index}/?/?",
                "lvm",
                None,
                part,
                MappedSource(disk, [], 0),
                ("error.fs.lvm-metadata", {"volume": str(part.index), "reason": str(exc)[:200]}),
            )
        ]
    out = []
    for lv in lvs:
        if lv.hidden:
            continue  # mirror legs, thin pool data/metadata: parts of a visible volume
        part = _first_home(lv, pvs) or pvs[0][0]
        source = MappedSource(disk, lv.runs, lv.size)
        info = VolumeInfo(
            f"{part.index}/{lv.vg}/{lv.name}",
            "lvm",
            None,
            part,
            source,
            detail={"vg": lv.vg, "lv": lv.name, "lv_uuid": lv.uuid, "segments": lv.segment_types},
        )
        if lv.unsupported is not None:
            info.problem = ("error.fs.lvm-unsupported", {"volume": info.id, "type": lv.unsupported})
        elif lv.missing_pv is not None:
            info.problem = ("error.fs.lvm-missing-pv", {"volume": info.id, "pv": lv.missing_pv})
        else:
            info.filesystem = sniff(source)
            if info.filesystem is None or info.filesystem in TSK:
                info.filesystem = _tsk_type(disk, info)
            if info.filesystem == "btrfs":
                info.problem = ("error.fs.btrfs-unsupported", {"volume": info.id})
        out.append(info)
    return out


def _first_home(
    lv: lvm.LogicalVolume, pvs: list[tuple[Partition, lvm.PhysicalVolume]]
) -> Partition | None:
    """The partition holding the logical volume's first extent on this disk."""
    for run in lv.runs:
        if run.disk_offset is None:
            continue
        for part, pv in pvs:
            if pv.offset <= run.disk_offset < pv.offset + pv.size:
                return part
    return None


def parse_spec(spec: str) -> tuple[str | None, str]:
    """``ID:/path`` -> (ID, /path); a bare path -> (None, path)."""
    match = SPEC.match(spec)
    if match:
        return match.group(1), match.group(2) or "/"
    return None, spec or "/"


def open_volume(disk: Disk, info: VolumeInfo) -> Any:
    """The filesystem of a volume, ready to list and read; a volume that cannot be read
    raises its problem (or why its filesystem is not one hvrescue reads)."""
    if info.problem is not None:
        raise InputError(info.problem[0], **info.problem[1])
    fs = info.filesystem
    if fs in LINUX:
        from hvrescue.fs.linuxfs import LinuxVolume

        compat = struct.unpack_from("<I", info.source.read(1024 + 0x5C, 4) or bytes(4))[0]
        if fs != "xfs" and compat & EXT_COMPAT_FAST_COMMIT:
            raise InputError("error.fs.ext-fast-commit", volume=info.id)
        return LinuxVolume(info.id, fs, info.source, info.partition)
    if fs == "lvm2":
        raise InputError("error.fs.lvm-pv", volume=info.id)
    if fs is not None:
        from hvrescue.fs.volume import Volume

        return Volume(disk, info.partition, info.source, info.id)
    raise InputError("error.fs.unsupported-volume", volume=info.id, filesystem=fs or "?")
