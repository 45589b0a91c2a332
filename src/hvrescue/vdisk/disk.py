"""The one read API above ``vdisk/``: a disk is ``size``, ``read(offset, length)``, ``extents()``
and ``undefined()``.

A Disk hides the format, the replayed log and the whole differencing chain. Reading costs what
the allocated data costs: ranges no layer holds are zeros without any file access, and what the
layers hold (``extents()``) is bounded by their files' sizes, whatever sizes and tables the
files claim (blocks past the end of a file, or sharing file space, are undefined, not data).

Every range of a disk is exactly one of: data from a layer, zeros the format defines, or undefined
(a :class:`Gap` with its cause: a block past the end of a file, an invalid BAT state, a lost or
contradicting sector bitmap, an unreadable BAT or data, a block whose file space overlaps another
block or a structure, a missing parent). Undefined bytes read as zeros; ``undefined()`` lists them
from the metadata before any data is read, and ``read_checked``/``read_into_checked`` return
exactly those met by one read (read errors included), so no caller can present them as content.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from hvrescue.errors import ChainError, UndefinedContentError
from hvrescue.findings import Finding
from hvrescue.io.source import BadRange
from hvrescue.vdisk.chain import Chain, resolve_chain
from hvrescue.vdisk.layer import (
    BEYOND_PARENT,
    PARENT_MISSING,
    TRUNCATED,
    Gap,
    Run,
    RunKind,
)
from hvrescue.vdisk.ranges import coalesce, file_gaps, gap_ranges, merge_gaps, merge_ranges

if TYPE_CHECKING:  # the readers, imported when a file is opened
    from hvrescue.vdisk.detect import AnyImage

__all__ = [
    "CHUNK",
    "Disk",
    "check_hash_cost",
    "coalesce",
    "gap_ranges",
    "layer_undefined",
    "merge_gaps",
    "merge_ranges",
]

CHUNK = 4 * 1024 * 1024
_ZERO_CHUNK = bytes(CHUNK)
_ZERO_VIEW = memoryview(_ZERO_CHUNK)


def _zeros(length: int) -> bytes:
    # Sharing one immutable zero buffer avoids page-faulting a fresh one for every read.
    return _ZERO_CHUNK if length == CHUNK else bytes(length)


def _zero_fill(view: memoryview) -> None:
    """Set ``view`` to zeros (from the shared zero buffer: no allocation up to a chunk)."""
    view[:] = _ZERO_VIEW[: len(view)] if len(view) <= CHUNK else bytes(len(view))


# The undefined ranges found are merged whenever more than this many are pending.
_MERGE_EVERY = 100_000


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
        # Undefined ranges met by plain reads (read()/read_into()), for callers such as the
        # filesystem readers that cannot take a gap list from each read.
        self.touched: list[Gap] = []
        self._undefined: list[Gap] | None = None

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
        """Virtual bytes [offset, offset+length), clipped to the disk's size; undefined ranges
        read as zeros and are remembered in :attr:`touched` (see :meth:`read_checked`)."""
        data, gaps = self.read_checked(offset, length)
        if gaps:
            self._touch(gaps)
        return data

    def read_checked(self, offset: int, length: int) -> tuple[bytes, list[Gap]]:
        """Virtual bytes (zeros where undefined) and exactly the undefined ranges among them."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        length = max(0, min(length, self.size - offset))
        if not length:
            return b"", []
        # Fast path: most requests fall in one run of one layer; no assembly buffer needed.
        level = 0
        while True:
            runs = list(coalesce(self.layers[level].map(offset, length)))
            if len(runs) != 1 or runs[0].length != length:
                break
            run = runs[0]
            layer = self.layers[level]
            if run.kind is RunKind.DATA:
                data, bad = layer.read_file_checked(run.file_offset, length)
                return data, file_gaps(layer.path, run, bad)
            if run.kind is RunKind.UNDEFINED:
                return _zeros(length), [Gap(offset, length, run.cause, layer.path)]
            if run.kind is RunKind.ZERO:
                return _zeros(length), []
            if level + 1 >= self._depth:
                return _zeros(length), [Gap(offset, length, PARENT_MISSING, layer.path)]
            level += 1
        buf = bytearray(length)
        gaps: list[Gap] = []
        self._resolve(level, offset, length, memoryview(buf), 0, gaps, True, zeroed=True)
        return bytes(buf), merge_gaps(gaps)

    def read_into(self, offset: int, view: memoryview) -> int:
        """Like :meth:`read` into a caller's buffer (reused across calls: no fresh allocation,
        no page faults); returns the bytes placed."""
        n, gaps = self.read_into_checked(offset, view)
        if gaps:
            self._touch(gaps)
        return n

    def read_into_checked(self, offset: int, view: memoryview) -> tuple[int, list[Gap]]:
        """:meth:`read_checked` into a caller's buffer; returns the bytes placed and the gaps."""
        length = max(0, min(len(view), self.size - offset))
        if not length:
            return 0, []
        layer = self.layers[0]
        runs = list(coalesce(layer.map(offset, length)))
        if len(runs) == 1 and runs[0].length == length:
            run = runs[0]
            overlay = getattr(layer, "overlay", None)
            if run.kind is RunKind.DATA and (overlay is None or overlay.empty):
                got, bad = layer.source.read_into_checked(run.file_offset, view[:length])
                lost = [(r.offset, r.length) for r in bad]
                if got < length:  # map clips DATA to the file: a file shrinking meanwhile
                    _zero_fill(view[got:length])
                    lost.append((run.file_offset + got, length - got))
                return length, file_gaps(layer.path, run, lost)
            if run.kind is RunKind.ZERO:
                _zero_fill(view[:length])
                return length, []
        # Assembled in place: _resolve zeroes what no run fills (not the whole view first).
        gaps: list[Gap] = []
        self._resolve(0, offset, length, view[:length], 0, gaps, True, runs=runs)
        return length, merge_gaps(gaps)

    def _resolve(
        self,
        level: int,
        offset: int,
        length: int,
        view: memoryview | None,
        view_off: int,
        gaps: list[Gap],
        with_data: bool,
        zeroed: bool = False,
        runs: list[Run] | None = None,
    ) -> None:
        """Walk [offset, offset+length) down the chain: data into ``view`` when
        ``with_data``, every undefined range into ``gaps``. Whatever no DATA run fills (zero,
        undefined, a missing parent's, or not mapped at all) is set to zeros, unless the caller
        says the view is ``zeroed`` already. ``runs``: this level's map, if already known."""
        layer = self.layers[level]
        fill = view if with_data and not zeroed else None  # where zeros are to be set
        if level and offset + length > layer.size:  # a parent smaller than its child
            cut = max(offset, layer.size)  # its map ends there: zeros below, listed here
            gaps.append(Gap(cut, offset + length - cut, BEYOND_PARENT, layer.path))
        pos = offset  # where the runs seen so far end
        for run in runs if runs is not None else coalesce(layer.map(offset, length)):
            if fill is not None and run.offset > pos:
                _zero_fill(fill[view_off + pos - offset : view_off + run.offset - offset])
            pos = max(pos, run.offset + run.length)
            dst = view_off + (run.offset - offset)
            if run.kind is RunKind.DATA:
                if with_data and view is not None:
                    self._read_run(layer, run, view[dst : dst + run.length], gaps)
                continue
            if run.kind is RunKind.PARENT and level + 1 < self._depth:
                self._resolve(
                    level + 1,
                    run.offset,
                    run.length,
                    view,
                    view_off + (run.offset - offset),
                    gaps,
                    with_data,
                    zeroed,
                )
                continue
            if run.kind is RunKind.UNDEFINED:
                gaps.append(Gap(run.offset, run.length, run.cause or TRUNCATED, layer.path))
            elif run.kind is RunKind.PARENT:
                gaps.append(Gap(run.offset, run.length, PARENT_MISSING, layer.path))
            if fill is not None:  # ZERO, UNDEFINED, a missing parent's: zeros
                _zero_fill(fill[dst : dst + run.length])
        if fill is not None and pos < offset + length:
            _zero_fill(fill[view_off + pos - offset : view_off + length])

    def _read_run(self, layer: AnyImage, run: Run, view: memoryview, gaps: list[Gap]) -> None:
        """A DATA run's file bytes into ``view`` (zeros where they cannot be read): straight
        from the file into the buffer where no replayed log rewrites the file (a chain's block
        is assembled without an intermediate copy), through the layer otherwise."""
        overlay = getattr(layer, "overlay", None)
        if overlay is None or overlay.empty:
            got, failed = layer.source.read_into_checked(run.file_offset, view)
            lost = [(r.offset, r.length) for r in failed]
            if got < run.length:  # map clips DATA to the file: a file shrinking meanwhile
                _zero_fill(view[got : run.length])
                lost.append((run.file_offset + got, run.length - got))
            gaps.extend(file_gaps(layer.path, run, lost))
            return
        data, bad = layer.read_file_checked(run.file_offset, run.length)
        view[:] = data
        gaps.extend(file_gaps(layer.path, run, bad))

    def _touch(self, gaps: list[Gap]) -> None:
        self.touched.extend(gaps)
        if len(self.touched) > 100_000:
            self.touched[:] = merge_gaps(self.touched)[-50_000:]

    def undefined(self) -> list[Gap]:
        """Every undefined range of the disk, from the metadata (no data is read, except the
        sector bitmaps and the sectors they call unwritten). Read errors in data show up only
        when read: see :meth:`read_checked`."""
        if self._undefined is not None:
            return list(self._undefined)
        layers = self.layers[: self._depth]
        candidates: list[tuple[int, int]] = []
        for layer in layers:
            candidates.extend(layer.suspect())
        candidates.extend((x.size, self.size - x.size) for x in layers[1:] if x.size < self.size)
        gaps: list[Gap] = []
        if layers and (self._depth < len(self.layers) or layers[-1].is_differencing):
            # The parent of the last readable layer cannot be read: whatever no readable layer
            # holds, zeroes or names as suspect is left to it (found without walking every
            # block); the ranges they do hold are walked, for sectors they leave to it.
            held: list[tuple[int, int]] = []
            for layer in layers:
                held.extend(layer.allocated())
                held.extend(getattr(layer, "zeroed", lambda: iter(()))())
            held.extend(candidates)
            pos = 0
            for lo, n in merge_ranges(sorted(held)):
                if lo > pos:
                    gaps.append(Gap(pos, lo - pos, PARENT_MISSING, layers[-1].path))
                pos = max(pos, lo + n)
            if pos < self.size:
                gaps.append(Gap(pos, self.size - pos, PARENT_MISSING, layers[-1].path))
            candidates.extend(held)
        for lo, n in merge_ranges(sorted(candidates)):
            end = min(lo + n, self.size)
            if end > lo:
                # One walk per range: the layers map runs without a block walk where nothing
                # is mapped (a 2^63-byte tail is one run), and gaps are merged as they pile up.
                self._resolve(0, lo, end - lo, None, 0, gaps, False)
            if len(gaps) > _MERGE_EVERY:
                gaps[:] = merge_gaps(gaps)
        self._undefined = merge_gaps(gaps)
        return list(self._undefined)

    def extents(self) -> Iterator[tuple[int, int]]:
        """Ranges that may hold non-zero data; everything outside reads as zeros."""
        per_layer = [layer.allocated() for layer in self.layers[: self._depth]]
        clipped = (
            (lo, min(n, self.size - lo)) for lo, n in heapq.merge(*per_layer) if lo < self.size
        )
        return merge_ranges(clipped)

    def allocated_bytes(self) -> int:
        return sum(n for _lo, n in self.extents())

    def read_plan(self) -> list[tuple[int, int]]:
        """The ranges a whole-content reader must read: what any layer holds, and every
        undefined range (the rest is zeros the format defines)."""
        ranges = list(self.extents()) + [(g.offset, g.length) for g in self.undefined()]
        return list(merge_ranges(sorted(ranges)))

    def iter_content(
        self, chunk: int = CHUNK, gaps: list[Gap] | None = None
    ) -> Iterator[bytes | memoryview]:
        """The whole virtual content in order. Only what some layer holds is read; every other
        stretch (zeros the format defines, and the undefined ranges :meth:`undefined` lists
        from the metadata) comes from one shared zero buffer. Undefined ranges come as zeros
        and are appended to ``gaps`` when given (else remembered in :attr:`touched`)."""
        known = self.undefined()
        found: list[Gap] = list(known)
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
                data, met = self.read_checked(pos, step)
                found.extend(met)
                yield data
                pos += step
        while pos < self.size:
            step = min(chunk, self.size - pos)
            yield zeros[:step]
            pos += step
        if gaps is not None:
            gaps.extend(merge_gaps(found))
        elif found:
            self._touch(found)

    def sha256(
        self,
        progress: Callable[[int], None] | None = None,
        gaps: list[Gap] | None = None,
        allow_gaps: bool = False,
    ) -> str:
        """SHA-256 of the whole content (undefined ranges as zeros, listed in ``gaps``).

        SHA-256 has no shortcut for zeros: they are hashed (never read), at the hash's speed.
        Undefined ranges hashed as zeros give the digest of our zeros, not of the disk; where they
        far exceed what the files hold (:func:`check_hash_cost`: a 2 MB file claiming 520 GiB),
        that long digest would say nothing, so it is refused unless ``allow_gaps``."""
        import hashlib  # here: OpenSSL's module is 3 ms of a `check` that hashes nothing

        if not allow_gaps:
            check_hash_cost(self)
        h = hashlib.sha256()
        found: list[Gap] = []
        for piece in self.iter_content(gaps=found):
            h.update(piece)
            if progress is not None:
                progress(len(piece))
        if gaps is not None:
            gaps.extend(merge_gaps(found))
        return h.hexdigest()

    def file_bytes(self) -> int:
        """What the readable files of the chain hold, in bytes (their sizes)."""
        return sum(layer.source.size for layer in self.layers[: self._depth])


# `hash` refuses (unless allowed) a disk whose undefined ranges add up to more than both of
# these: hashing them is as slow as hashing data and yields only the digest of our zeros.
HASH_UNDEFINED_FLOOR = 1024**3
HASH_UNDEFINED_FACTOR = 16


def check_hash_cost(disk: Disk) -> None:
    """Refuse to hash a disk whose undefined content dwarfs its files: more than
    :data:`HASH_UNDEFINED_FLOOR` bytes and more than :data:`HASH_UNDEFINED_FACTOR` times the
    bytes its files hold (:class:`UndefinedContentError`, key ``error.hash.undefined-span``)."""
    undefined = disk.undefined()
    total = sum(g.length for g in undefined)
    held = disk.file_bytes()
    if total > max(HASH_UNDEFINED_FLOOR, HASH_UNDEFINED_FACTOR * held):
        raise UndefinedContentError(
            "error.hash.undefined-span",
            gaps=undefined,
            path=disk.layers[0].path,
            file_bytes=held,
            causes=", ".join(sorted({g.cause for g in undefined})),
        )


def layer_undefined(layer: AnyImage) -> list[Gap]:
    """The undefined ranges of one file on its own (what it leaves to a parent is not one of
    them): for commands that copy a file rather than read a disk."""
    if not layer.readable:
        return []
    gaps = []
    for lo, n in merge_ranges(sorted(layer.suspect())):
        for run in coalesce(layer.map(lo, n)):
            if run.kind is RunKind.UNDEFINED:
                gaps.append(Gap(run.offset, run.length, run.cause, layer.path))
    return merge_gaps(gaps)
