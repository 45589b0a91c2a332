"""The one read API above ``vdisk/``: a disk is ``size``, ``read(offset, length)``, ``extents()``.

A Disk hides the format, the replayed log and the whole differencing chain. Reading costs what
the allocated data costs: ranges no layer holds are zeros without any file access.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator

from hvrescue.errors import ChainError
from hvrescue.findings import Finding
from hvrescue.io.source import BadRange
from hvrescue.vdisk.chain import Chain, resolve_chain
from hvrescue.vdisk.detect import AnyImage
from hvrescue.vdisk.layer import Run, RunKind

CHUNK = 4 * 1024 * 1024
_ZERO_CHUNK = bytes(CHUNK)


def _zeros(length: int) -> bytes:
    # Sharing one immutable zero buffer avoids page-faulting a fresh one for every read.
    return _ZERO_CHUNK if length == CHUNK else bytes(length)


def coalesce(runs: Iterable[Run]) -> Iterator[Run]:
    """Merge neighbouring runs of one kind (and contiguous file offsets for data)."""
    pending: Run | None = None
    for run in runs:
        if (
            pending is not None
            and pending.kind is run.kind
            and (
                run.kind is not RunKind.DATA
                or pending.file_offset + pending.length == run.file_offset
            )
        ):
            pending = Run(
                pending.offset, pending.length + run.length, run.kind, pending.file_offset
            )
            continue
        if pending is not None:
            yield pending
        pending = run
    if pending is not None:
        yield pending


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Coalesce sorted (offset, length) ranges that touch or overlap."""
    cur_lo = cur_hi = -1
    for lo, length in ranges:
        hi = lo + length
        if cur_hi >= lo and cur_lo >= 0:
            cur_hi = max(cur_hi, hi)
            continue
        if cur_lo >= 0:
            yield cur_lo, cur_hi - cur_lo
        cur_lo, cur_hi = lo, hi
    if cur_lo >= 0:
        yield cur_lo, cur_hi - cur_lo


class Disk:
    """A readable virtual disk: one file or a whole chain, leaf first."""

    def __init__(self, chain: Chain, allow_incomplete: bool = False) -> None:
        self.chain = chain
        self.layers: list[AnyImage] = chain.layers
        leaf = self.layers[0]
        if not leaf.readable:
            raise ChainError("error.chain.unreadable", path=leaf.path)
        if not chain.complete and not allow_incomplete:
            raise ChainError("error.chain.incomplete", path=leaf.path)
        self.size = leaf.size
        self.logical_sector_size = leaf.logical_sector_size
        self.complete = chain.complete
        # Layers that can be read, leaf first; an incomplete chain opened on purpose stops
        # before its first unreadable file, and what only that file holds reads as zeros.
        self._depth = next(
            (i for i, layer in enumerate(self.layers) if not layer.readable), len(self.layers)
        )

    @classmethod
    def open(
        cls, path: str, search: list[str] | None = None, allow_incomplete: bool = False
    ) -> Disk:
        chain = resolve_chain(path, search)
        try:
            return cls(chain, allow_incomplete)
        except ChainError:
            chain.close()
            raise

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> Disk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def findings(self) -> list[Finding]:
        return self.chain.all_findings()

    @property
    def bad_ranges(self) -> list[tuple[str, BadRange]]:
        return [(layer.path, r) for layer in self.layers for r in layer.source.bad_ranges]

    def read(self, offset: int, length: int) -> bytes:
        """Virtual bytes [offset, offset+length), clipped to the disk's size."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        length = max(0, min(length, self.size - offset))
        if not length:
            return b""
        # Fast path: most requests fall in one run of one layer; no assembly buffer needed.
        level = 0
        while True:
            runs = list(coalesce(self.layers[level].map(offset, length)))
            if len(runs) != 1 or runs[0].length != length:
                break
            run = runs[0]
            if run.kind is RunKind.DATA:
                return self.layers[level].read_file(run.file_offset, length)
            if run.kind is RunKind.ZERO or level + 1 >= self._depth:
                return _zeros(length)
            level += 1
        buf = bytearray(length)
        self._read_into(level, offset, length, buf, 0)
        return bytes(buf)

    def read_into(self, offset: int, view: memoryview) -> int:
        """Like :meth:`read` into a caller's buffer (reused across calls: no fresh allocation,
        no page faults); returns the bytes placed."""
        length = max(0, min(len(view), self.size - offset))
        if not length:
            return 0
        runs = list(coalesce(self.layers[0].map(offset, length)))
        if len(runs) == 1 and runs[0].length == length:
            run, layer = runs[0], self.layers[0]
            overlay = getattr(layer, "overlay", None)
            if run.kind is RunKind.DATA and (overlay is None or overlay.empty):
                got = layer.source.read_into(run.file_offset, view[:length], tolerant=True)
                if got < length:  # past the end of the file reads as zeros
                    view[got:length] = bytes(length - got)
                return length
            if run.kind is RunKind.ZERO or (run.kind is RunKind.PARENT and self._depth == 1):
                view[:length] = bytes(length)
                return length
        view[:length] = self.read(offset, length)
        return length

    def _read_into(
        self, level: int, offset: int, length: int, buf: bytearray, buf_off: int
    ) -> None:
        layer = self.layers[level]
        for run in coalesce(layer.map(offset, length)):
            dst = buf_off + (run.offset - offset)
            if run.kind is RunKind.DATA:
                buf[dst : dst + run.length] = layer.read_file(run.file_offset, run.length)
            elif run.kind is RunKind.PARENT and level + 1 < self._depth:
                self._read_into(level + 1, run.offset, run.length, buf, dst)
            # ZERO (and PARENT of an incomplete chain opened on purpose) stay zero.

    def extents(self) -> Iterator[tuple[int, int]]:
        """Ranges that may hold non-zero data; everything outside reads as zeros."""
        per_layer = [layer.allocated() for layer in self.layers[: self._depth]]
        clipped = (
            (lo, min(n, self.size - lo)) for lo, n in heapq.merge(*per_layer) if lo < self.size
        )
        return merge_ranges(clipped)

    def allocated_bytes(self) -> int:
        return sum(n for _lo, n in self.extents())

    def iter_content(self, chunk: int = CHUNK) -> Iterator[bytes | memoryview]:
        """The whole virtual content in order; zero stretches come from one shared buffer."""
        zeros = memoryview(bytes(chunk))
        pos = 0
        for lo, n in self.extents():
            while pos < lo:
                step = min(chunk, lo - pos)
                yield zeros[:step]
                pos += step
            end = lo + n
            while pos < end:
                step = min(chunk, end - pos)
                yield self.read(pos, step)
                pos += step
        while pos < self.size:
            step = min(chunk, self.size - pos)
            yield zeros[:step]
            pos += step

    def sha256(self, progress: Callable[[int], None] | None = None) -> str:
        h = hashlib.sha256()
        for piece in self.iter_content():
            h.update(piece)
            if progress is not None:
                progress(len(piece))
        return h.hexdigest()
