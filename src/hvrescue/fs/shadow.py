"""Volume Shadow Copies inside an NTFS volume (libvshadow through pyvshadow), each read like a
volume: ``2@vss1`` is the first shadow copy of volume 2. Copies are numbered by creation time,
**oldest first** (vss1 is the oldest), as ``vssadmin list shadows`` lists them.

A shadow copy's block either still lies where the volume holds it now or was copied, before
it changed, into the shadow storage of this or a later copy (16 KiB blocks, the store's
block list names both places). :meth:`ShadowSource.to_disk` follows that list, so a file of
a shadow copy that reads over an undefined range of the disk is named with those ranges, as
on the live volume; reads record the undefined ranges they meet in ``disk.touched`` too."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from hvrescue.errors import InputError
from hvrescue.fs.source import MappedSource

# The VSS volume header at 0x1e00 starts with this identifier
# ({3808876b-c176-4e48-b7ae-04046e6cc752}, libvshadow documentation, "Volume header").
VSS_IDENTIFIER = bytes.fromhex("6b87083876c1484eb7ae04046e6cc752")
VSS_HEADER = 0x1E00
BLOCK = 0x4000
MAX_STORES = 512  # Windows keeps at most 512 per volume (64 for shadows made by vssadmin)
MAX_BLOCKS = 8_000_000  # block descriptors kept for mapping (about 128 GiB of changes)


def _pyvshadow() -> Any:
    try:
        import pyvshadow
    except ImportError:
        return None
    return pyvshadow


def has_shadows(source: MappedSource) -> bool:
    return source.read(VSS_HEADER, 16) == VSS_IDENTIFIER


class _Shared:
    """One pyvshadow volume over a base volume, with the lock its reads take and the block
    maps of its stores (built on first use)."""

    def __init__(self, volume: Any, handle: Any, stores: list[Any]) -> None:
        self.volume = volume
        self.handle = handle
        self.stores = stores  # in libvshadow's order: each reads on into the later ones
        self.lock = threading.Lock()
        self._maps: list[dict[int, int]] | None = None

    def maps(self) -> list[dict[int, int]]:
        """Per store: {block offset in the copy: offset of its saved data in the volume}."""
        with self.lock:
            if self._maps is None:
                budget = MAX_BLOCKS
                maps: list[dict[int, int]] = []
                for store in self.stores:
                    count = min(int(store.number_of_blocks or 0), budget)
                    budget -= count
                    found: dict[int, int] = {}
                    for i in range(count):
                        block = store.get_block(i)
                        found.setdefault(int(block.original_offset), int(block.offset))
                    maps.append(found)
                self._maps = maps
            return self._maps


class ShadowSource(MappedSource):
    """The bytes of one shadow copy, mapped onto the disk through the base volume."""

    def __init__(self, base: MappedSource, shared: _Shared, index: int, size: int) -> None:
        super().__init__(base.disk, base.runs, size)
        self.base = base
        self.shared = shared
        self.index = index  # libvshadow's store index

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        store = self.shared.stores[self.index]
        with self.shared.lock:
            try:
                return bytes(store.read_buffer_at_offset(length, offset))
            except OSError:
                raise InputError("error.vss.read", offset=offset, length=length) from None

    def base_ranges(self, offset: int, length: int) -> list[tuple[int, int, int]]:
        """(copy offset, base-volume offset, length) under copy bytes [offset, offset+length)."""
        maps = self.shared.maps()[self.index :]
        end = min(offset + length, self.size)
        out: list[tuple[int, int, int]] = []
        pos = offset
        while pos < end:
            start = pos - pos % BLOCK
            n = min(start + BLOCK, end) - pos
            at = pos
            for found in maps:
                saved = found.get(start)
                if saved is not None:
                    at = saved + (pos - start)
                    break
            if out and out[-1][1] + out[-1][2] == at and out[-1][0] + out[-1][2] == pos:
                out[-1] = (out[-1][0], out[-1][1], out[-1][2] + n)
            else:
                out.append((pos, at, n))
            pos += n
        return out

    def to_disk(self, offset: int, length: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for _pos, at, n in self.base_ranges(offset, length):
            out += self.base.to_disk(at, n)
        return out

    def read_checked(self, offset: int, length: int) -> tuple[bytes, int | None]:
        first: int | None = None
        for pos, at, n in self.base_ranges(offset, length):
            _raw, gap = self.base.read_checked(at, n)
            if gap is not None:
                first = pos - offset + gap
                break
        return self.read(offset, length), first


def _when(store: Any) -> str | None:
    try:
        moment = store.get_creation_time()
    except (OSError, ValueError, OverflowError):
        return None
    return None if moment is None else moment.isoformat() + "Z"


def copies(info: Any) -> list[Any]:
    """The shadow copies of an NTFS volume (a fs.addressing.VolumeInfo), oldest first, each
    a VolumeInfo of its own with id ``<volume>@vss<k>``; one that cannot be read is listed
    with its problem."""
    if info.filesystem != "ntfs" or info.problem is not None or not has_shadows(info.source):
        return []
    pyvshadow = _pyvshadow()
    if pyvshadow is None:
        problem = ("error.vss.no-library", {"volume": info.id})
        return [_copy(info, f"{info.id}@vss?", info.source, {}, problem)]
    handle = info.source.file_object()
    volume = pyvshadow.volume()
    try:
        volume.open_file_object(handle)
        count = int(volume.number_of_stores or 0)
        stores = [volume.get_store(i) for i in range(min(count, MAX_STORES))]
    except OSError:
        problem = ("error.vss.unreadable", {"volume": info.id})
        return [_copy(info, f"{info.id}@vss?", info.source, {}, problem)]
    shared = _Shared(volume, handle, stores)
    order = sorted(range(len(stores)), key=lambda i: (_stamp(stores[i]), i))
    out = []
    for k, i in enumerate(order, start=1):
        store = stores[i]
        try:
            size = min(int(store.get_size()), info.source.size)
            detail: dict[str, Any] = {
                "shadow_of": info.id,
                "created": _when(store),
                "shadow_copy_id": str(store.copy_identifier or ""),
                "shadow_set_id": str(store.copy_set_identifier or ""),
                "store_id": str(store.identifier or ""),
            }
        except OSError:
            problem = ("error.vss.unreadable", {"volume": f"{info.id}@vss{k}"})
            out.append(_copy(info, f"{info.id}@vss{k}", info.source, {}, problem))
            continue
        if info.detail.get("encryption"):
            detail["encryption"] = info.detail["encryption"]
        source = ShadowSource(info.source, shared, i, size)
        out.append(_copy(info, f"{info.id}@vss{k}", source, detail, None))
    if count > MAX_STORES:
        vid = f"{info.id}@vss{MAX_STORES + 1}"
        problem = ("error.vss.too-many", {"volume": info.id, "count": count, "max": MAX_STORES})
        out.append(_copy(info, vid, info.source, {}, problem))
    return out


def _stamp(store: Any) -> int:
    try:
        return int(store.get_creation_time_as_integer() or 0)
    except (OSError, ValueError, OverflowError):
        return 0


def _copy(
    info: Any,
    vid: str,
    source: MappedSource,
    detail: dict[str, Any],
    problem: tuple[str, dict[str, Any]] | None,
) -> Any:
    return dataclasses.replace(
        info,
        id=vid,
        kind="shadow",
        source=source,
        detail={"shadow_of": info.id, **detail},
        problem=problem,
    )
