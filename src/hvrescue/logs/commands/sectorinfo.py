"""The sector sizes of the storage under the virtual disks, one ``storage_sectors`` fact per
volume or disk: ``fsutil fsinfo sectorinfo D:`` (the FILE_FS_SECTOR_SIZE_INFORMATION fields,
whose names fsutil prints untranslated in every language), the sector lines of
``fsutil fsinfo ntfsinfo D:`` (translated: "Bytes Per Physical Sector", "物理セクターあたりの
バイト数"), and ``Get-PhysicalDisk | Format-Table FriendlyName, LogicalSectorSize,
PhysicalSectorSize``.

Attributes: ``volume`` (``"D:"`` from the command typed at the prompt, or None), ``disk`` (the
physical disk's friendly name), ``logical``, ``physical`` (the atomic-write unit),
``physical_atomicity``, ``physical_performance``, ``fs_effective_physical`` (None where the
output does not say), ``kind`` (``4kn``, ``512e``, ``512n``) and ``source``.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

# A note people add after a value when they post it ("4096   << 4K native", "512 <- here",
# "4096 (4Kn)"): the value stays readable.
NOTE = r"(?:\s+(?:<<?|<-+|←|#|//|\()[^\r\n]*)?\s*$"
# "LogicalBytesPerSector :     512" and its siblings, as fsutil prints them.
FIELD = re.compile(
    r"^\s*(?P<key>LogicalBytesPerSector|PhysicalBytesPerSectorForAtomicity"
    r"|PhysicalBytesPerSectorForPerformance|FileSystemEffectivePhysicalBytesPerSectorForAtomicity)"
    r"\s*[:：]\s*(?P<value>[\d,]+)" + NOTE
)
KEYS = {
    "LogicalBytesPerSector": "logical",
    "PhysicalBytesPerSectorForAtomicity": "physical_atomicity",
    "PhysicalBytesPerSectorForPerformance": "physical_performance",
    "FileSystemEffectivePhysicalBytesPerSectorForAtomicity": "fs_effective_physical",
}
# fsutil fsinfo ntfsinfo: the two sector lines, English and Japanese.
NTFS_FIELD = re.compile(
    r"^\s*(?P<key>Bytes Per Sector|Bytes Per Physical Sector|セクターあたりのバイト数"
    r"|物理セクターあたりのバイト数)\s*[:：]\s*(?P<value>[\d,]+)" + NOTE,
    re.IGNORECASE,
)
NTFS_KEYS = {
    "bytes per sector": "logical",
    "bytes per physical sector": "physical_atomicity",
    "セクターあたりのバイト数": "logical",
    "物理セクターあたりのバイト数": "physical_atomicity",
}
VOLUME = re.compile(r"fsinfo\s+(?:sectorinfo|ntfsinfo)\s+\"?(?P<drive>[A-Za-z]):", re.I)
SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MAX_BLOCKS = 1024
GAP = 3  # lines without a field that end a block (a paste's doubled blank lines stay inside)


def parse(text: Text) -> list[Fact]:
    facts = _fsutil(text)
    facts.extend(_physical_disks(text))
    return facts


def _number(value: str) -> int | None:
    n = int(value.replace(",", ""))
    return n if n in SIZES else None


def _fsutil(text: Text) -> list[Fact]:
    out: list[Fact] = []
    block: dict[str, Any] = {}
    first = -1
    since = 0
    source = ""
    for i, line in enumerate(text.lines):
        if len(out) >= MAX_BLOCKS:
            break
        m = FIELD.match(line)
        key, kind = None, ""
        if m is not None:
            key, kind = KEYS[m.group("key")], "fsutil-sectorinfo"
        elif ":" in line or "：" in line:
            n = NTFS_FIELD.match(line)
            if n is not None:
                key, kind = NTFS_KEYS[n.group("key").lower()], "fsutil-ntfsinfo"
                m = n
        if key is None or m is None:
            since += 1
            if block and (since > GAP or text.is_prompt(i)):
                out.append(_fact(text, block, first, source))
                block = {}
            continue
        if key in block or (block and kind != source):
            out.append(_fact(text, block, first, source))  # the next volume's output
            block = {}
        if not block:
            first, source = i, kind
        block[key] = _number(m.group("value"))
        since = 0
    if block:
        out.append(_fact(text, block, first, source))
    return [f for f in out if f.attributes.get("logical")]


def _volume(text: Text, index: int) -> str | None:
    """The drive of the fsutil command typed at the prompt above the output (on the line
    itself in a paste that begins at the prompt)."""
    for at in (index - 1, index):
        if at >= 0:
            m = VOLUME.search(text.lines[at])
            if m is not None:
                return m.group("drive").upper() + ":"
    command = text.command_at(index)
    m = VOLUME.search(command or "")
    return m.group("drive").upper() + ":" if m else None


def _kind(logical: int | None, physical: int | None) -> str | None:
    if logical is None:
        return None
    if logical >= 4096:
        return "4kn"
    if physical is not None and physical > logical:
        return "512e"
    return "512n"


def _fact(text: Text, block: dict[str, Any], first: int, source: str) -> Fact:
    physical = block.get("physical_atomicity")
    attrs = {
        "volume": _volume(text, first),
        "disk": None,
        "logical": block.get("logical"),
        "physical": physical,
        "physical_atomicity": physical,
        "physical_performance": block.get("physical_performance"),
        "fs_effective_physical": block.get("fs_effective_physical"),
        "kind": _kind(block.get("logical"), physical),
        "source": source,
    }
    return Fact("storage_sectors", attrs, Provenance(text.path, text.locator(first)))


def _physical_disks(text: Text) -> list[Fact]:
    """Get-PhysicalDisk tables that show both sector sizes (Format-Table of any columns)."""
    if not any("LogicalSectorSize" in line for line in text.lines):
        return []
    from hvrescue.logs.commands import pstable
    from hvrescue.logs.commands.repost import cleaned

    out: list[Fact] = []
    for table in pstable.read_tables(text, cleaned(text)):
        if not {"LogicalSectorSize", "PhysicalSectorSize"} <= set(table.columns):
            continue
        if {"VhdFormat", "VhdType", "Path"} & set(table.columns):
            continue  # Get-VHD's own sector sizes: the virtual disk's, not the storage's
        for row in table.rows[:MAX_BLOCKS]:
            logical = _cell(row.cells.get("LogicalSectorSize"))
            physical = _cell(row.cells.get("PhysicalSectorSize"))
            if logical is None:
                continue
            attrs = {
                "volume": None,
                "disk": row.cells.get("FriendlyName") or row.cells.get("DeviceId") or None,
                "logical": logical,
                "physical": physical,
                "physical_atomicity": physical,
                "physical_performance": None,
                "fs_effective_physical": None,
                "kind": _kind(logical, physical),
                "source": "get-physicaldisk",
            }
            where = Provenance(text.path, text.locator(row.index))
            out.append(Fact("storage_sectors", attrs, where))
    return out


def _cell(value: str | None) -> int | None:
    text = (value or "").strip().replace(",", "")
    return _number(text) if text.isdigit() else None
