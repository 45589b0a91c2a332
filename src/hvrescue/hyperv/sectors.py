"""Sector sizes of a chain against the storage that holds it (an inventory check, see
``hvrescue.inventory``).

A VHD always presents 512-byte logical sectors, and a VHDX presents the logical sector size it
was created with (512 or 4096). On storage with 4096-byte logical sectors ("4K native": what
``fsutil fsinfo sectorinfo`` calls "LogicalBytesPerSector : 4096") every 512-byte write of the
guest costs the host a read-modify-write of 4 KiB, Windows Server 2008 R2 refuses such a disk
outright (0xC03A001D, "The sector size of the physical disk on which the virtual disk resides is
not supported", Microsoft KB 2515143), and copying the chain there by hand is how people meet
it. Layers of one chain with different logical sector sizes are ``chain.sector-size-mismatch``
(the chain's own validation); this module compares the chain with its volume.

The volume's sector sizes come from ``CheckOptions.extra["volume_sectors"]``: ``{"D:":
{"logical": 4096, "physical": 4096}}``, built from ``storage_sectors`` facts (pasted or
collected ``fsutil fsinfo sectorinfo``), matched by the Windows paths the VM configurations
give for their disks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.hyperv.headroom import _leaf_drives, normal_drive
from hvrescue.vdisk.detect import open_image

if TYPE_CHECKING:
    from hvrescue.inventory import CheckOptions, Inventory

CODE = "hyperv.sector-size.storage-mismatch"
NATIVE_4K = 4096


def _volumes(options: CheckOptions) -> dict[str, dict[str, Any]]:
    table = options.extra.get("volume_sectors") or {}
    out: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        drive = normal_drive(str(key))
        if drive is not None and isinstance(value, dict):
            out[drive] = value
    return out


def _sector(path: str) -> tuple[str, int] | None:
    """(format, logical sector size) of a disk file, or None when it cannot be read."""
    try:
        image = open_image(path)
    except (HvrescueError, OSError):
        return None
    try:
        return (image.format, image.logical_sector_size) if image.readable else None
    finally:
        image.close()


def check(inv: Inventory, options: CheckOptions) -> list[Finding]:
    """``hyperv.sector-size.storage-mismatch`` for each disk of a chain that presents 512-byte
    sectors while its volume has 4096-byte logical sectors."""
    volumes = _volumes(options)
    if not volumes:
        return []
    drives = _leaf_drives(inv)
    findings: list[Finding] = []
    for files in inv.chains:
        for path in files:
            drive = drives.get(path)
            volume = volumes.get(drive or "")
            if drive is None or volume is None:
                continue
            logical = volume.get("logical")
            if not isinstance(logical, int) or logical < NATIVE_4K:
                continue
            found = _sector(path)
            if found is None or found[1] >= logical:
                continue
            fmt, sector = found
            findings.append(
                Finding(
                    CODE,
                    Severity.WARNING,
                    path,
                    None,
                    {
                        "format": fmt,
                        "disk_sector": sector,
                        "volume": drive,
                        "volume_logical": logical,
                        "volume_physical": volume.get("physical"),
                    },
                )
            )
    return findings
