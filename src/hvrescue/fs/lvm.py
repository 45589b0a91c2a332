"""LVM2 physical volumes, volume groups and logical volumes, read from the on-disk label and the
text metadata (the format lvm2 writes: ``man 5 lvm.conf``'s syntax, the label and metadata area
headers of lvm2's ``lib/format_text/layout.h``), mapped onto the disk extent by extent.

Linear and striped segments are read. Every other segment type (mirror, raid*, thin-pool,
thin, cache, snapshot, vdo...) is named and reported as not supported, never read as if it were
plain data. A logical volume that needs a physical volume this disk does not hold is reported
with the missing volume's id. libvslvm (pyvslvm) is the independent reader the tests compare with;
it is not used here because it cannot name unsupported segment types (it fails to open a volume
group holding a thin pool) and gives no disk mapping for undefined ranges (see docs/decisions.md).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

from hvrescue.fs.source import Run
from hvrescue.vdisk.disk import Disk

LABEL = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_MAGIC = b"\x20LVM2\x20x[5A%r0N*>"
SECTOR = 512
MAX_AREAS = 16
MAX_METADATA = 4 * 1024 * 1024  # one volume group's text metadata, at most
MAX_TOKENS = 2_000_000
MAX_DEPTH = 32
MAX_SEGMENTS = 100_000
MAX_STRIPE_RUNS = 200_000  # runs a striped logical volume is cut into, at most
SUPPORTED = {"striped", "linear"}


@dataclass(frozen=True)
class PhysicalVolume:
    uuid: str  # as lvm2 writes it: 32 characters in groups 6-4-4-4-4-4-6
    offset: int  # of the partition (or disk) that holds it
    size: int
    data_offset: int  # pe_start of the first data area (bytes, from the PV's start)
    metadata: str | None  # the volume group's text metadata, when readable


@dataclass
class LogicalVolume:
    vg: str
    name: str
    uuid: str
    size: int
    runs: list[Run] = field(default_factory=list)
    segment_types: list[str] = field(default_factory=list)
    unsupported: str | None = None  # the first segment type not read (mirror, thin-pool...)
    missing_pv: str | None = None  # a physical volume this disk does not hold
    hidden: bool = False  # a sub-volume of another (mirror legs, thin pool data and metadata)


def _dashed(raw: bytes) -> str:
    text = raw.decode("ascii", "replace")
    cuts = (6, 4, 4, 4, 4, 4, 6)
    out, pos = [], 0
    for n in cuts:
        out.append(text[pos : pos + n])
        pos += n
    return "-".join(out)


def read_pv(disk: Disk, offset: int, size: int) -> PhysicalVolume | None:
    """The physical volume whose label lies in the first four sectors at ``offset``."""
    head = disk.read(offset, 4 * SECTOR)
    for sector in range(4):
        block = head[sector * SECTOR : (sector + 1) * SECTOR]
        if block[:8] != LABEL or block[24:32] != LABEL_TYPE:
            continue
        (hdr_at,) = struct.unpack_from("<I", block, 20)
        if not 32 <= hdr_at <= SECTOR - 40:
            return None
        raw = disk.read(offset + sector * SECTOR + hdr_at, SECTOR * 2)
        if len(raw) < 40 + 32:
            return None
        uuid = _dashed(raw[:32])
        pos = 40
        areas: list[list[tuple[int, int]]] = [[], []]  # data areas, then metadata areas
        for kind in range(2):
            for _ in range(MAX_AREAS):
                if pos + 16 > len(raw):
                    break
                at, n = struct.unpack_from("<QQ", raw, pos)
                pos += 16
                if at == 0 and n == 0:
                    break
                areas[kind].append((at, n))
        if not areas[0]:
            return None
        metadata = None
        for at, n in areas[1]:
            metadata = _metadata(disk, offset + at, n)
            if metadata is not None:
                break
        return PhysicalVolume(uuid, offset, size, areas[0][0][0], metadata)
    return None


def _metadata(disk: Disk, at: int, size: int) -> str | None:
    hdr = disk.read(at, SECTOR)
    if len(hdr) < 64 or hdr[4:20] != MDA_MAGIC:
        return None
    _start, mda_size = struct.unpack_from("<QQ", hdr, 24)
    loc_at, loc_size = struct.unpack_from("<QQ", hdr, 40)
    if not loc_size or loc_size > MAX_METADATA or mda_size > size or loc_at >= mda_size:
        return None
    first = min(loc_size, mda_size - loc_at)
    text = disk.read(at + loc_at, first)
    if first < loc_size:  # the circular buffer wraps to just after the header
        text += disk.read(at + SECTOR, loc_size - first)
    return text.split(b"\0", 1)[0].decode("utf-8", "replace")


# ---------------------------------------------------------------- the text metadata
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([-+]?\d+)|([\w.+\-]+)|(\S))')
_COMMENT = re.compile(r'("(?:[^"\\]|\\.)*")|#[^\n]*')


class MetadataError(ValueError):
    pass


def parse_metadata(text: str) -> dict[str, Any]:
    """lvm2's config syntax: ``name = value``, ``name { ... }``, lists ``[a, b]``."""
    tokens: list[tuple[str, Any]] = []
    text = _COMMENT.sub(lambda m: m.group(1) or "", text)
    for m in _TOKEN.finditer(text):
        if len(tokens) > MAX_TOKENS:
            raise MetadataError("too many tokens")
        s, num, word, punct = m.groups()
        if s is not None:
            tokens.append(("str", s[1:-1].replace('\\"', '"').replace("\\\\", "\\")))
        elif num is not None:
            tokens.append(("num", int(num)))
        elif word is not None:
            tokens.append(("word", word))
        elif punct is not None:
            tokens.append(("p", punct))
    pos = 0

    def section(depth: int, close: str | None) -> dict[str, Any]:
        nonlocal pos
        if depth > MAX_DEPTH:
            raise MetadataError("nested too deep")
        out: dict[str, Any] = {}
        while pos < len(tokens):
            kind, val = tokens[pos]
            if kind == "p" and val == close:
                pos += 1
                return out
            if kind not in ("word", "str"):
                raise MetadataError(f"unexpected {val!r}")
            pos += 1
            if pos >= len(tokens):
                break
            kind2, val2 = tokens[pos]
            pos += 1
            if kind2 == "p" and val2 == "{":
                out[val] = section(depth + 1, "}")
            elif kind2 == "p" and val2 == "=":
                out[val] = value()
            else:
                raise MetadataError(f"unexpected {val2!r}")
        if close is not None:
            raise MetadataError("unterminated section")
        return out

    def value() -> Any:
        nonlocal pos
        if pos >= len(tokens):
            raise MetadataError("missing value")
        kind, val = tokens[pos]
        pos += 1
        if kind == "p" and val == "[":
            items: list[Any] = []
            while pos < len(tokens):
                k, v = tokens[pos]
                pos += 1
                if k == "p" and v == "]":
                    return items
                if k == "p" and v == ",":
                    continue
                items.append(v)
            raise MetadataError("unterminated list")
        return val

    return section(0, None)


def volume_group(text: str) -> tuple[str, dict[str, Any]] | None:
    """(name, section) of the one volume group the metadata describes."""
    tree = parse_metadata(text)
    for name, sect in tree.items():
        if isinstance(sect, dict) and "physical_volumes" in sect:
            return name, sect
    return None


def logical_volumes(pvs: list[PhysicalVolume]) -> tuple[list[str], list[LogicalVolume]]:
    """The volume groups (names) and logical volumes the physical volumes describe, each
    mapped onto the disk. Metadata that cannot be parsed raises :class:`MetadataError`."""
    by_uuid = {pv.uuid: pv for pv in pvs}
    groups: dict[str, tuple[int, dict[str, Any]]] = {}
    for pv in pvs:
        if pv.metadata is None:
            continue
        found = volume_group(pv.metadata)
        if found is None:
            continue
        name, sect = found
        seqno = int(sect.get("seqno", 0)) if isinstance(sect.get("seqno"), int) else 0
        if name not in groups or groups[name][0] < seqno:
            groups[name] = (seqno, sect)
    out: list[LogicalVolume] = []
    for vg_name, (_seq, vg) in sorted(groups.items()):
        out += _group_lvs(vg_name, vg, by_uuid)
    return sorted(groups), out


def _int(sect: dict[str, Any], key: str) -> int:
    val = sect.get(key)
    if not isinstance(val, int) or val < 0:
        raise MetadataError(f"bad {key}")
    return val


def _group_lvs(
    vg_name: str, vg: dict[str, Any], by_uuid: dict[str, PhysicalVolume]
) -> list[LogicalVolume]:
    extent = _int(vg, "extent_size") * SECTOR
    if not extent:
        raise MetadataError("extent_size 0")
    pv_names: dict[str, tuple[str, int]] = {}
    for key, pv in (vg.get("physical_volumes") or {}).items():
        if isinstance(pv, dict):
            pv_names[key] = (str(pv.get("id", "")), _int(pv, "pe_start") * SECTOR)
    out = []
    for lv_name, lv in (vg.get("logical_volumes") or {}).items():
        if not isinstance(lv, dict):
            continue
        status = lv.get("status") or []
        visible = "VISIBLE" in status if isinstance(status, list) else True
        vol = LogicalVolume(vg_name, lv_name, str(lv.get("id", "")), 0, hidden=not visible)
        segments = [v for k, v in lv.items() if k.startswith("segment") and isinstance(v, dict)]
        for seg in segments[:MAX_SEGMENTS]:
            _segment(vol, seg, extent, pv_names, by_uuid)
        out.append(vol)
    return out


def _segment(
    vol: LogicalVolume,
    seg: dict[str, Any],
    extent: int,
    pv_names: dict[str, tuple[str, int]],
    by_uuid: dict[str, PhysicalVolume],
) -> None:
    start = _int(seg, "start_extent") * extent
    length = _int(seg, "extent_count") * extent
    kind = str(seg.get("type", "?"))
    vol.segment_types.append(kind)
    vol.size = max(vol.size, start + length)
    if kind not in SUPPORTED:
        vol.unsupported = vol.unsupported or kind
        return
    stripes = seg.get("stripes") or []
    pairs = [(stripes[i], stripes[i + 1]) for i in range(0, len(stripes) - 1, 2)]
    count = len(pairs)
    if not count:
        raise MetadataError("segment without stripes")
    places: list[int | None] = []
    for pv_key, pe in pairs:
        pv_id, pe_start = pv_names.get(str(pv_key), ("", 0))
        pv = by_uuid.get(pv_id)
        if pv is None or not isinstance(pe, int):
            vol.missing_pv = vol.missing_pv or pv_id or str(pv_key)
            places.append(None)
        else:
            places.append(pv.offset + pe_start + pe * extent)
    if count == 1:
        vol.runs.append(Run(start, length, places[0]))
        return
    chunk = _int(seg, "stripe_size") * SECTOR
    if not chunk or length // chunk > MAX_STRIPE_RUNS:
        raise MetadataError("stripe_size")
    for i in range(length // chunk):
        row, col = divmod(i, count)
        place = places[col]
        vol.runs.append(
            Run(start + i * chunk, chunk, None if place is None else place + row * chunk)
        )
