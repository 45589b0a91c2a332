"""`merge`: flatten a whole chain (logs replayed) into one new standalone disk.

Only blocks that hold data somewhere in the chain are read; a block whose merged content is all
zeros stays unallocated in the output. The output is a dynamic VHDX (block size as the base's
unless given) or a sparse raw image, written under a temporary name and renamed when complete.
Afterwards the output is opened again with the engine and its content digest compared with the
chain's.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.io.source import ReadOnlySource
from hvrescue.recover.digest import KIND, UNIT, ContentDigest, nonzero_units, unit_ranges
from hvrescue.vdisk.disk import Disk
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

    @property
    def verified(self) -> bool:
        return self.digest == self.output_digest

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
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


def data_blocks(disk: Disk, block_size: int) -> Iterator[int]:
    """Indexes of blocks that any layer holds data for, ascending, each once."""
    last = -1
    for lo, n in disk.extents():
        first = max(lo // block_size, last + 1)
        end = (lo + n - 1) // block_size
        yield from range(first, end + 1)
        last = max(last, end)


def merge(
    leaf: str,
    out: str,
    fmt: str = "vhdx",
    block_size: int | None = None,
    search: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MergeResult:
    if fmt not in FORMATS:
        raise InputError("error.merge.format", value=fmt)
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    with Disk.open(leaf, search) as disk:
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
        with atomic_output(out) as fd:
            builder = VhdxBuilder(fd, spec) if fmt == "vhdx" else None
            if builder is None:
                os.ftruncate(fd, disk.size)
            hasher = _DigestThread(digest, bs)
            try:
                for block in data_blocks(disk, bs):
                    offset = block * bs
                    buffer = hasher.buffer()
                    n = disk.read_into(offset, memoryview(buffer)[: min(bs, disk.size - offset)])
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
                            pos += os.pwrite(fd, view[pos:], offset + pos)
                    written += 1
                    data_bytes += len(data)
            finally:
                hasher.finish()
            file_size = builder.finish() if builder is not None else disk.size
        chain = [layer.path for layer in disk.layers]
        chain_digest = digest.hexdigest()
        size = disk.size
    output_digest = digest_of(out, fmt, size)
    return MergeResult(
        out, fmt, size, bs, chain, written, data_bytes, file_size, chain_digest, output_digest
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


def digest_of(path: str, fmt: str, size: int) -> str:
    """The content digest of a finished output, read back from the file."""
    if fmt == "raw":
        with ReadOnlySource(path) as src:
            extents = [(o, n) for o, n, is_data in src.data_segments() if is_data]
            return _digest_ranges(_source_read_into(src), extents, size)
    with Disk.open(path) as disk:
        return _digest_ranges(disk.read_into, list(disk.extents()), size)


def chain_digest(leaf: str, search: list[str] | None = None) -> str:
    """The content digest of a chain (for comparing against any output)."""
    with Disk.open(leaf, search) as disk:
        return _digest_ranges(disk.read_into, list(disk.extents()), disk.size)
