"""What merge reads, and the loop that reads it into the pipeline.

Cost follows the data, also inside blocks: a block of a dynamic VHDX is allocated whole, but a
file made by qemu-img, Hyper-V or a copy that kept holes stores only what was written, and a
block a quarter full is three quarters hole. Reading the hole would cost the block size in
zero-filled copies and scans, so what each layer holds is narrowed to the parts of its file
that hold data (the file system's allocated ranges, as the platform module finds them,
FSCTL_QUERY_ALLOCATED_RANGES). That is exact, not a guess: a hole reads as zeros, and a range
that every layer leaves to a hole or does not hold reads as zeros from the disk too (a child's
hole over its parent's data is read, because the parent's data keeps the range in the plan,
and then the child's zeros win as the map says).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hvrescue.recover.digest import ContentDigest, nonzero_units, unit_ranges
from hvrescue.recover.merge_pipe import CHUNK, Chunk, Pipeline, nonzero_runs
from hvrescue.vdisk.detect import AnyImage
from hvrescue.vdisk.disk import Disk, merge_gaps
from hvrescue.vdisk.layer import Gap, RunKind
from hvrescue.vdisk.ranges import coalesce, merge_ranges
from hvrescue.vdisk.vhdx.builder import VhdxBuilder


def _file_data(layer: AnyImage) -> list[tuple[int, int]] | None:
    """The ``(start, end)`` data ranges of the layer's file, or None where all of it counts
    (no holes, no way to tell, or a replayed log that rewrites file bytes in memory)."""
    overlay = getattr(layer, "overlay", None)
    source = getattr(layer, "source", None)
    if source is None or (overlay is not None and not overlay.empty):
        return None
    found = [(o, o + n) for o, n, is_data in source.data_segments() if is_data]
    if found == [(0, source.size)]:
        return None
    return found


def _held(layer: AnyImage) -> Iterator[tuple[int, int]]:
    """The layer's allocated virtual ranges, less what its file keeps as holes."""
    segments = _file_data(layer)
    if segments is None:
        yield from layer.allocated()
        return
    starts = [a for a, _b in segments]
    for lo, n in layer.allocated():
        for run in coalesce(layer.map(lo, n)):
            if run.kind is RunKind.UNDEFINED:  # read, so that the gap is met and named
                yield run.offset, run.length
            if run.kind is not RunKind.DATA:  # PARENT: the parent's own ranges; ZERO: zeros
                continue
            f0, f1 = run.file_offset, run.file_offset + run.length
            i = max(0, bisect.bisect_right(starts, f0) - 1)
            while i < len(segments) and segments[i][0] < f1:
                a, b = max(segments[i][0], f0), min(segments[i][1], f1)
                if b > a:
                    yield run.offset + a - f0, b - a
                i += 1


def data_extents(disk: Disk) -> list[tuple[int, int]]:
    """Like :meth:`Disk.extents` (ranges that may hold non-zero data), without file holes."""
    readable = list(itertools.takewhile(lambda layer: layer.readable, disk.layers))
    per_layer = [sorted(_held(layer)) for layer in readable]
    clipped = ((lo, min(n, disk.size - lo)) for lo, n in heapq.merge(*per_layer) if lo < disk.size)
    return list(merge_ranges(clipped))


def pieces(extents: list[tuple[int, int]], size: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` reads covering ``extents`` widened to whole 1 MiB units (the
    digest's), none longer than ``chunk`` nor crossing a multiple of it (so never a block)."""
    for lo, hi in unit_ranges(extents, size):
        pos = lo
        while pos < hi:
            end = min(hi, (pos // chunk + 1) * chunk)
            yield pos, end - pos
            pos = end


@dataclass
class CopyStats:
    blocks: set[int]
    data_bytes: int
    gaps: list[Gap]
    written: list[tuple[int, int, int]]
    matched: bool


def copy_chain(
    disk: Disk,
    fd: int,
    builder: VhdxBuilder | None,
    bs: int,
    digest: ContentDigest | None,
    check_fd: int | None,
    progress: Callable[[int, int], None] | None,
    allow_gaps: bool,
) -> CopyStats:
    """Read the chain's data piece by piece and hand it to the pipeline; a piece never spans
    two blocks, so each of its runs of non-zero units goes to one place in the file. A gap
    met stops the copy at the end of its block unless ``allow_gaps`` (the caller refuses)."""
    chunk = min(bs, CHUNK)
    extents = data_extents(disk)
    total = sum(n for _lo, n in extents)
    pipe = Pipeline(fd, chunk, digest, check_fd)
    blocks: set[int] = set()
    met: list[Gap] = []
    done = data_bytes = 0
    refuse_at = -1  # where the block ends in which a refused gap was met
    try:
        for offset, length in pieces(extents, disk.size, chunk):
            if 0 <= refuse_at <= offset:
                break
            buffer = pipe.buffer()
            n, piece_gaps = disk.read_into_checked(offset, memoryview(buffer)[:length])
            if piece_gaps:
                met.extend(piece_gaps)
                if refuse_at < 0 and not allow_gaps:
                    # Refused; the rest of the block is still read to name all its gaps.
                    refuse_at = (offset // bs + 1) * bs
            if refuse_at >= 0:
                pipe.give_back(buffer)
                continue
            flags = nonzero_units(buffer, n)
            done += n
            item = Chunk(offset, buffer, n, flags)
            block = offset // bs
            for start, run in nonzero_runs(flags, n):
                if builder is not None:
                    at = builder.place(block) + offset - block * bs + start
                else:
                    at = offset + start
                item.places.append((at, start, run))
            if item.places and block not in blocks:
                blocks.add(block)
                data_bytes += min(bs, disk.size - block * bs)
            pipe.submit(item)
            if progress:
                progress(min(done, total), total)
    finally:
        pipe.finish()
    return CopyStats(blocks, data_bytes, merge_gaps(met), pipe.written, pipe.matched)
