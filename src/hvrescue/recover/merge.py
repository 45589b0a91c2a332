"""`merge`: flatten a whole chain (logs replayed) into one new standalone disk.

Only blocks that hold data somewhere in the chain are read; a block whose merged content is all
zeros stays unallocated in the output. The output is a dynamic VHDX (block size as the base's
unless given) or a sparse raw image, written under a temporary name. The written file is opened
again with the engine and its content digest compared with the chain's; only then does it get
its final name, so a name never stands for an output that was not checked.

A chain with undefined ranges (see :meth:`Disk.undefined`) is refused: its output would present
unknown bytes as content. ``allow_gaps`` writes zeros there instead, writes a GNU ddrescue map
beside the output naming them, and the result's status is ``written-with-gaps``. "verified"
means exactly: the output equals the chain's content and the chain had no undefined range.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hvrescue.errors import InputError, UndefinedContentError
from hvrescue.io.atomic import atomic_output
from hvrescue.io.source import ReadOnlySource
from hvrescue.platform import pwrite, sees_holes
from hvrescue.recover import ddmap
from hvrescue.recover.digest import KIND, UNIT, ContentDigest, nonzero_units, unit_ranges
from hvrescue.vdisk.disk import Disk, gap_ranges, merge_gaps
from hvrescue.vdisk.layer import OVERLAP, Gap
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.builder import VhdxBuilder
from hvrescue.vdisk.vhdx.writer import VhdxSpec

DEFAULT_BLOCK = 32 * s.MiB
FORMATS = ("vhdx", "raw")


@dataclass
class MergeResult:
    out: str
    format: str
    virtual_size: int
    block_size: int
    chain: list[str]
    blocks_written: int
    data_bytes: int
    file_size: int
    digest: str
    output_digest: str
    gaps: list[Gap]
    map: str | None = None

    @property
    def verified(self) -> bool:
        """The output equals the chain's content, and all of that content was defined."""
        return self.digest == self.output_digest and not self.gaps

    @property
    def status(self) -> str:
        if self.digest != self.output_digest:
            return "mismatch"
        return "written-with-gaps" if self.gaps else "verified"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "out": self.out,
            "map": self.map,
            "undefined": [g.as_dict() for g in self.gaps],
            "undefined_bytes": sum(g.length for g in self.gaps),
            "format": self.format,
            "virtual_size": self.virtual_size,
            "block_size": self.block_size,
            "chain": self.chain,
            "blocks_written": self.blocks_written,
            "data_bytes": self.data_bytes,
            "file_size": self.file_size,
            "digest_kind": KIND,
            "chain_digest": self.digest,
            "output_digest": self.output_digest,
            "verified": self.verified,
        }


def _valid_block(size: int) -> bool:
    return s.MiB <= size <= 256 * s.MiB and size % s.MiB == 0 and size & (size - 1) == 0


def choose_block_size(disk: Disk, requested: int | None) -> int:
    if requested is not None:
        if not _valid_block(requested):
            raise InputError("error.merge.block-size", value=requested)
        return requested
    base_block = int(getattr(disk.layers[-1], "block_size", 0) or 0)
    return base_block if _valid_block(base_block) else DEFAULT_BLOCK


def check_geometry(disk: Disk, leaf: str, fmt: str) -> None:
    """A disk of 0 bytes has nothing to merge; a VHDX output needs a size of whole logical
    sectors within the format's 64 TiB (a damaged size field can claim anything)."""
    if disk.size <= 0:
        raise InputError("error.merge.empty", path=leaf)
    if fmt == "vhdx" and (disk.size % disk.logical_sector_size or disk.size > s.MAX_VIRTUAL_SIZE):
        raise InputError(
            "error.merge.geometry",
            path=leaf,
            size=disk.size,
            sector=disk.logical_sector_size,
            limit=s.MAX_VIRTUAL_SIZE,
        )


def overlap_summary(disk: Disk, limit: int = 5) -> tuple[str, int]:
    """The first overlapping BAT entries of the chain's files as ``file: entry↔other @offset``
    (an entry is a VHD block or a VHDX BAT index; the other an entry or a structure), and how
    many entries overlap in all."""
    parts: list[str] = []
    total = 0
    for layer in disk.layers:
        total += len(getattr(layer, "overlapping", ()) or ())
        for at, who, other in list(getattr(layer, "overlaps", ()) or ()):
            if len(parts) < limit:
                parts.append(f"{os.path.basename(layer.path)}: {who}↔{other} @{at:#x}")
    return "; ".join(parts), total


def data_blocks(disk: Disk, block_size: int) -> Iterator[int]:
    """Indexes of blocks that any layer holds data for, ascending, each once."""
    last = -1
    for lo, n in disk.extents():
        first = max(lo // block_size, last + 1)
        end = (lo + n - 1) // block_size
        yield from range(first, end + 1)
        last = max(last, end)


def map_path_for(out: str) -> str:
    """Where merge writes the ddrescue map of an output with gaps: beside it."""
    return out + ".map"


def merge(
    leaf: str,
    out: str,
    fmt: str = "vhdx",
    block_size: int | None = None,
    search: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
) -> MergeResult:
    if fmt not in FORMATS:
        raise InputError("error.merge.format", value=fmt)
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    map_path = map_path_for(out)
    if allow_gaps and os.path.lexists(map_path):
        raise InputError("error.output.exists", path=map_path)
    with Disk.open(leaf, search) as disk:
        check_geometry(disk, leaf, fmt)
        undefined = disk.undefined()
        if undefined and not allow_gaps:
            overlaps, entries = overlap_summary(disk)
            if entries and any(g.cause == OVERLAP for g in undefined):
                raise UndefinedContentError(
                    "error.merge.overlap",
                    gaps=undefined,
                    leaf=leaf,
                    overlaps=overlaps,
                    entries=entries,
                )
            raise UndefinedContentError("error.merge.undefined", gaps=undefined, leaf=leaf)
        bs = choose_block_size(disk, block_size)
        base = disk.layers[-1]
        spec = VhdxSpec(
            virtual_size=disk.size,
            block_size=bs,
            logical_sector_size=disk.logical_sector_size,
            physical_sector_size=int(getattr(base, "physical_sector_size", 0) or 4096)
            if disk.logical_sector_size <= int(getattr(base, "physical_sector_size", 0) or 4096)
            else disk.logical_sector_size,
            creator="hvrescue merge",
        )
        if spec.physical_sector_size not in (512, 4096):
            spec.physical_sector_size = 4096
        digest = ContentDigest(disk.size)
        total = disk.allocated_bytes()
        done = 0
        written = data_bytes = 0
        found: list[Gap] = list(undefined)
        size = disk.size
        outcome: dict[str, str] = {}

        def check_output(tmp: str) -> None:
            # Runs before the output gets its name: read it back and compare; with gaps, the
            # map goes beside it first, so the output never stands without it.
            outcome["digest"] = digest_of(tmp, fmt, size, written_ranges)
            if gaps:
                ddmap.write_map(
                    map_path,
                    ddmap.entries_for(size, gap_ranges(gaps)),
                    argv or ["hvrescue", "merge", leaf, out],
                )

        gaps: list[Gap] = []
        written_ranges: list[tuple[int, int]] = []
        try:
            with atomic_output(out, check=check_output) as fd:
                builder = VhdxBuilder(fd, spec) if fmt == "vhdx" else None
                if builder is None:
                    os.ftruncate(fd, disk.size)
                hasher = _DigestThread(digest, bs)
                try:
                    for block in data_blocks(disk, bs):
                        offset = block * bs
                        buffer = hasher.buffer()
                        view = memoryview(buffer)[: min(bs, disk.size - offset)]
                        n, block_gaps = disk.read_into_checked(offset, view)
                        if block_gaps:
                            found.extend(block_gaps)
                            if not allow_gaps:
                                raise UndefinedContentError(
                                    "error.merge.undefined",
                                    gaps=merge_gaps(found),
                                    leaf=leaf,
                                )
                        data = memoryview(buffer)[:n]
                        flags = nonzero_units(buffer, n)
                        hasher.add(offset, data, flags, buffer)
                        done += len(data)
                        if progress:
                            progress(min(done, total), total)
                        if not any(flags):
                            continue
                        if builder is not None:
                            builder.add_block(block, data)
                        else:
                            view = memoryview(data)
                            pos = 0
                            while pos < len(view):
                                pos += pwrite(fd, view[pos:], offset + pos)
                        written += 1
                        written_ranges.append((offset, len(data)))
                        data_bytes += len(data)
                finally:
                    hasher.finish()
                file_size = builder.finish() if builder is not None else disk.size
                gaps[:] = merge_gaps(found)
        except BaseException:
            if gaps and os.path.lexists(map_path) and not os.path.lexists(out):
                os.unlink(map_path)  # a map without its output would mislead
            raise
        chain = [layer.path for layer in disk.layers]
        chain_digest = digest.hexdigest()
    return MergeResult(
        out,
        fmt,
        size,
        bs,
        chain,
        written,
        data_bytes,
        file_size,
        chain_digest,
        outcome["digest"],
        gaps,
        map_path if gaps else None,
    )


class _DigestThread:
    """Digest blocks on a second thread while the next block is read and this one written;
    buffers (``buffer_size`` > 0) come from a small pool and return to it once digested."""

    def __init__(self, digest: ContentDigest, buffer_size: int = 0) -> None:
        self.digest = digest
        self.error: BaseException | None = None
        self._queue: queue.Queue[
            tuple[int, bytes | memoryview, list[bool], bytearray | None] | None
        ] = queue.Queue(maxsize=3)
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(5 if buffer_size else 0):
            self._free.put(bytearray(buffer_size))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def buffer(self) -> bytearray:
        return self._free.get()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            offset, data, flags, buffer = item
            if self.error is None:
                try:
                    self.digest.add(offset, data, flags)
                except BaseException as exc:
                    self.error = exc
            if buffer is not None:
                self._free.put(buffer)

    def add(
        self,
        offset: int,
        data: bytes | memoryview,
        flags: list[bool],
        buffer: bytearray | None = None,
    ) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((offset, data, flags, buffer))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


def _digest_ranges(
    read_into: Callable[[int, memoryview], int], extents: list[tuple[int, int]], size: int
) -> str:
    step = 8 * UNIT
    digest = ContentDigest(size)
    hasher = _DigestThread(digest, step)
    try:
        for lo, hi in unit_ranges(extents, size):
            pos = lo
            while pos < hi:
                buffer = hasher.buffer()
                n = read_into(pos, memoryview(buffer)[: min(step, hi - pos)])
                hasher.add(pos, memoryview(buffer)[:n], nonzero_units(buffer, n), buffer)
                pos += n
    finally:
        hasher.finish()
    return digest.hexdigest()


def _source_read_into(src: ReadOnlySource) -> Callable[[int, memoryview], int]:
    def read_into(offset: int, view: memoryview) -> int:
        got = src.read_into(offset, view)
        if got < len(view):
            view[got:] = bytes(len(view) - got)
        return len(view)

    return read_into


def digest_of(path: str, fmt: str, size: int, written: list[tuple[int, int]] | None = None) -> str:
    """The content digest of a finished output, read back from the file. For a raw image the
    ranges read are its data segments where the filesystem can tell them from holes, else
    (Windows) the ``written`` ranges: what was never written reads as zeros by definition,
    and reading a 520 GiB hole to learn so would cost the virtual size."""
    if fmt == "raw":
        with ReadOnlySource(path) as src:
            if written is not None and not sees_holes():
                return _digest_ranges(_source_read_into(src), written, size)
            extents = [(o, n) for o, n, is_data in src.data_segments() if is_data]
            return _digest_ranges(_source_read_into(src), extents, size)
    with Disk.open(path) as disk:
        return _digest_ranges(disk.read_into, list(disk.extents()), size)


def chain_digest(leaf: str, search: list[str] | None = None) -> str:
    """The content digest of a chain (for comparing against any output)."""
    with Disk.open(leaf, search) as disk:
        return _digest_ranges(disk.read_into, list(disk.extents()), disk.size)
