"""Reading a merge's output back: the proof behind "verified", and content digests of any disk.

What "verified" rests on (see :func:`digest_of` with a :class:`Proof`):

1. **Data.** Every byte merge wrote was read back from the output file through a second,
   read-only descriptor once it was written (a checker thread reads each piece back as soon
   as the writer has written all of it, while the writer goes on with the next) and compared
   byte for byte with the buffer it was written from, the same buffer the chain's digest was
   taken from (the data is hashed once). The read-back goes through the operating system's
   cache, as any reader's would: what it returns is what every later read of the file
   returns, and the output is fsynced before it is named.
2. **Nothing changed it afterwards.** Merge's writes of data go front to back and never
   overlap (each write is checked against the end of the previous one), and they all lie past
   the file's structures (identifier, headers, region tables, metadata, BAT), which are
   written last, below them.
3. **Structure.** Once the file is complete and closed, it is opened again with the engine,
   which reads and validates its headers, region tables, metadata and BAT from the file. Its
   map must send every block merge placed to exactly the file offset that block's data was
   written and compared at, and nothing else may be allocated or undefined: the rest of the
   disk reads as zeros by the format. Inside a placed block, what was never written is a hole
   of a new file and reads as zeros by the file system's definition; merge never wrote there
   because the source's bytes there are zeros.

So the output's virtual content, as any reader of the format sees it, is the source's. When
any of this does not hold, the output's digest is computed in full from a read of the whole
output, and the result says "mismatch" with that digest.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hvrescue.io.source import ReadOnlySource
from hvrescue.platform import sees_holes
from hvrescue.recover.digest import UNIT, ContentDigest, nonzero_units, unit_ranges
from hvrescue.vdisk.disk import Disk
from hvrescue.vdisk.layer import RunKind
from hvrescue.vdisk.ranges import coalesce, merge_ranges


@dataclass
class Proof:
    """What merge knows of an output it wrote, to be confirmed by reading it back."""

    digest: str  # the chain's content digest
    matched: bool  # every byte written was read back equal, no write overlapped another
    # (virtual offset, file offset, length) of every run written, ascending, merged.
    written: list[tuple[int, int, int]]
    payload_start: int = 0  # structures lie below it (VHDX), 0 for raw
    block_size: int = 0
    blocks: set[int] = field(default_factory=set)  # VHDX: every block placed


def structure_holds(path: str, fmt: str, size: int, proof: Proof) -> bool:
    """Points 2 and 3 of the module's proof, read from the finished file."""
    if not proof.matched:
        return False
    if proof.written and proof.written[0][1] < proof.payload_start:
        return False
    if fmt == "raw":
        inside = all(v == at and at + n <= size for v, at, n in proof.written)
        return inside and os.stat(path).st_size == size
    with Disk.open(path) as disk:
        if len(disk.layers) != 1 or disk.size != size or disk.undefined():
            return False
        layer = disk.layers[0]
        bs = proof.block_size
        expected = merge_ranges((b * bs, min(bs, size - b * bs)) for b in sorted(proof.blocks))
        if list(disk.extents()) != list(expected):
            return False
        for virtual, at, n in proof.written:
            runs = list(coalesce(layer.map(virtual, n)))
            if len(runs) != 1 or runs[0].kind is not RunKind.DATA or runs[0].file_offset != at:
                return False
    return True


class DigestThread:
    """Digest blocks on a second thread while the next block is read; buffers
    (``buffer_size`` > 0) come from a small pool and return to it once digested."""

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
                except BaseException as exc:  # handed to the caller by finish()
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


def digest_ranges(
    read_into: Callable[[int, memoryview], int], extents: list[tuple[int, int]], size: int
) -> str:
    step = 8 * UNIT
    digest = ContentDigest(size)
    hasher = DigestThread(digest, step)
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


def full_digest(
    path: str, fmt: str, size: int, written: list[tuple[int, int]] | None = None
) -> str:
    """The content digest of a finished output from a read of all its content. For a raw image
    the ranges read are its data segments where the filesystem can tell them from holes, else
    (Windows) the ``written`` ranges: what was never written reads as zeros by definition,
    and reading a 520 GiB hole to learn so would cost the virtual size."""
    if fmt == "raw":
        with ReadOnlySource(path) as src:
            if written is not None and not sees_holes():
                return digest_ranges(_source_read_into(src), written, size)
            extents = [(o, n) for o, n, is_data in src.data_segments() if is_data]
            return digest_ranges(_source_read_into(src), extents, size)
    with Disk.open(path) as disk:
        return digest_ranges(disk.read_into, list(disk.extents()), size)
