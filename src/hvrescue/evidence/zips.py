"""Zip archives walked under the budget: nothing extracted to disk, every member bounded.

Before ``zipfile`` loads a central directory, its size (from the end record) is weighed against
the memory left; each member's head is read (64 KiB at most) to classify it; what is read in
full is counted as it comes (headers lie): against the member's limit, the archive's total and
the compression ratio. Nested zips are read into memory (held in the budget) and walked in
turn, to ``Budget.max_zip_depth``. Every failure of ``zipfile`` or of a decompressor on hostile
data fails its member alone (or the archive, when its directory cannot be read).
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hvrescue.evidence import bundle
from hvrescue.evidence import classify as cls
from hvrescue.evidence.budget import RATIO_FLOOR, Budget, LimitExceeded
from hvrescue.evidence.items import Item, ItemError, Stream
from hvrescue.facts.model import Skipped

# What zipfile and the decompressors raise on damaged or hostile archives: a bad or truncated
# directory, a CRC mismatch, an unsupported version or method, an encrypted member, a negative
# seek in a nested archive, names that do not decode, sizes that overflow.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
    IndexError,
    KeyError,
    OverflowError,
)
CHUNK = 1024 * 1024
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def directory_size(fh: Any) -> tuple[int, int] | None:
    """(members, bytes) of the central directory as the end record announces them (bytes at
    most the archive's size), or None when no end record is found (zipfile will say the
    archive is damaged). zipfile reads as many bytes as announced, whatever the count says."""
    fh.seek(0, 2)
    size = fh.tell()
    n = min(size, 22 + 65535)
    fh.seek(size - n)
    tail = fh.read(n)
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < 22:
        return None
    count, cd_size = struct.unpack_from("<HL", tail, pos + 10)
    if (count == 0xFFFF or cd_size == 0xFFFFFFFF) and pos >= 76:
        record = tail[pos - 76 : pos - 20]
        if tail[pos - 20 : pos - 16] == _EOCD64_LOCATOR and record[:4] == _EOCD64:
            count, cd_size = struct.unpack_from("<QQ", record, 32)
    return int(count), int(min(cd_size, size))


@dataclass
class Tally:
    """What one archive on disk has cost so far, its nested archives included."""

    expanded: int = 0
    members: int = 0


class MemberStream:
    """One member's bytes, counted as they come against ``limit``, the archive's total and the
    compression ratio; zipfile's and the decompressors' errors become ItemError."""

    def __init__(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, budget: Budget, tally: Tally
    ) -> None:
        self.limit = limit
        self.budget = budget
        self.tally = tally
        self.packed = max(1, info.compress_size)
        self.count = 0
        if info.file_size > RATIO_FLOOR and info.file_size > budget.max_ratio * self.packed:
            raise ItemError("zip-ratio", f"{info.file_size} from {info.compress_size} bytes")
        try:
            self.fh = zf.open(info)
        except ZIP_ERRORS as exc:
            raise ItemError("zip-member-unreadable", _why(exc)) from exc

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        try:
            data = self.fh.read(min(n, CHUNK))
        except ZIP_ERRORS as exc:
            raise ItemError("zip-member-unreadable", _why(exc)) from exc
        self.count += len(data)
        self.tally.expanded += len(data)
        if self.count > self.limit:
            raise ItemError("too-large", f"expands beyond {self.limit} bytes")
        if self.count > RATIO_FLOOR and self.count > self.budget.max_ratio * self.packed:
            raise ItemError("zip-ratio", f"{self.count} bytes from {self.packed}")
        if self.tally.expanded > self.budget.max_archive_bytes:
            raise ItemError("zip-total", f"archive expands beyond {self.budget.max_archive_bytes}")
        return data

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> MemberStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, tally: Tally) -> Any:
    def open_member(limit: int | None) -> Stream:
        return MemberStream(
            zf, info, budget.max_text_bytes if limit is None else limit, budget, tally
        )

    return open_member


def archive_items(
    source: Any, item: Item, budget: Budget, tally: Tally, depth: int
) -> Iterator[Item | Skipped]:
    """The archive ``item`` (a bundle when a collector's manifest is at its top), then its
    members read from ``source`` (a seekable stream) at ``depth``, classified, as items; nested
    zips walked in turn; what cannot be read as skipped entries."""
    path = item.path
    try:
        directory = directory_size(source)
        if directory is not None and directory[0] > budget.max_members:
            yield item
            yield Skipped(path, "zip-too-many-members", f"{directory[0]} > {budget.max_members}")
            return
        if directory is not None and not budget.directory_fits(directory[1]):
            yield item
            yield Skipped(path, "memory-budget", f"central directory of {directory[1]} bytes")
            return
        zf = zipfile.ZipFile(source)
        infos = zf.infolist()
    except ZIP_ERRORS as exc:
        yield item
        yield Skipped(path, "damaged-zip", _why(exc))
        return
    except ItemError as exc:
        yield item
        yield Skipped(path, exc.reason, exc.detail)
        return
    with zf:
        table: dict[str, bundle.Route] = {}
        manifests = [i for i in infos[:1000] if cls.is_bundle_manifest(i.filename)]
        if manifests:
            item.kind = cls.BUNDLE
            table = _bundle_table(zf, manifests[0], budget)
        yield item
        if len(infos) > budget.max_members:
            yield Skipped(path, "zip-too-many-members", f"{len(infos)} > {budget.max_members}")
            return
        for index, info in enumerate(infos):
            name = info.filename
            if name.endswith("/"):
                continue
            member = f"{path}!/{name}" if name else f"{path}!/#{index + 1}"
            tally.members += 1
            if tally.members > budget.max_members:
                yield Skipped(member, "zip-too-many-members", f"more than {budget.max_members}")
                return
            for found in _member(zf, info, member, item.root, depth, budget, tally):
                if table and isinstance(found, Item):
                    found.route = table.get(name.replace("\\", "/"))
                yield found


def _bundle_table(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget
) -> dict[str, bundle.Route]:
    """The routes of a bundle's members from its manifest (bounded; none when unreadable)."""
    limit = min(bundle.MAX_MANIFEST_BYTES, budget.member_limit())
    if info.file_size > limit:
        return {}
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except ZIP_ERRORS:
        return {}
    if len(data) > limit:
        return {}
    try:
        with budget.hold(len(data), "bundle manifest"):
            return bundle.table_from(data)
    except LimitExceeded:
        return {}


def _member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    member: str,
    root: str,
    depth: int,
    budget: Budget,
    tally: Tally,
) -> Iterator[Item | Skipped]:
    opener = _opener(zf, info, budget, tally)
    try:
        with opener(cls.HEAD_BYTES) as fh:
            head = fh.read(cls.HEAD_BYTES)
    except ItemError as exc:
        yield Skipped(member, exc.reason, exc.detail)
        return
    found = cls.classify(info.filename, head, info.file_size)
    item = Item(member, found.kind, found.format, found.content, info.file_size, opener, root,
                member=True, depth=depth)  # fmt: skip
    if found.content != cls.C_ZIP:
        yield item
        return
    if depth >= budget.max_zip_depth:
        yield Skipped(member, "zip-too-deep", f"deeper than {budget.max_zip_depth}")
        return
    try:
        data = item.read_all(budget, "nested zip")
        with budget.hold(len(data), "nested zip"):
            yield from archive_items(io.BytesIO(data), item, budget, tally, depth + 1)
    except ItemError as exc:
        yield Skipped(member, exc.reason, exc.detail)
    except LimitExceeded as exc:
        yield Skipped(member, exc.reason, exc.detail)
