"""The one read API above ``vdisk/``: a disk is ``size``, ``read(offset, length)``, ``extents()``
and ``undefined()``.

A Disk hides the format, the replayed log and the whole differencing chain. Reading costs what
the allocated data costs: ranges no layer holds are zeros without any file access.

Every range of a disk is exactly one of: data from a layer, zeros the format defines, or
undefined (a :class:`Gap` with its cause: a block past the end of a file, an invalid BAT state,
a lost or contradicting sector bitmap, an unreadable BAT or data, a missing parent). Undefined
bytes read as zeros; ``undefined()`` lists them from the metadata before any data is read, and
``read_checked``/``read_into_checked`` return exactly those met by one read (read errors
included), so that no caller can present them as content.
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
from hvrescue.vdisk.layer import PARENT_MISSING, READ_ERROR, TRUNCATED, Gap, Run, RunKind

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
            and pending.cause == run.cause
            and (
                run.kind is not RunKind.DATA
                or pending.file_offset + pending.length == run.file_offset
            )
        ):
            pending = Run(
                pending.offset,
                pending.length + run.length,
                run.kind,
                pending.file_offset,
                pending.cause,
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


def merge_gaps(gaps: Iterable[Gap]) -> list[Gap]:
    """Sorted, with touching gaps of the same cause and file joined."""
    out: list[Gap] = []
    for g in sorted(gaps, key=lambda g: (g.offset, g.length)):
        if out:
            last = out[-1]
            end = last.offset + last.length
            if g.offset <= end and g.cause == last.cause and g.path == last.path:
                if g.offset + g.length > end:
                    out[-1] = Gap(last.offset, g.offset + g.length - last.offset, g.cause, g.path)
                continue
        out.append(g)
    return out


def gap_ranges(gaps: Iterable[Gap]) -> list[tuple[int, int]]:
    """The (offset, length) ranges the gaps cover, whatever their causes, merged."""
    return list(merge_ranges(sorted((g.offset, g.length) for g in gaps)))


# Undefined ranges are resolved through the chain in steps of this size (bounded memory).
_WALK_STEP = 1024 * 1024 * 1024


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
                return data, self._file_gaps(layer.path, run, bad)
            if run.kind is RunKind.UNDEFINED:
                return _zeros(length), [Gap(offset, length, run.cause, layer.path)]
            if run.kind is RunKind.ZERO:
                return _zeros(length), []
            if level + 1 >= self._depth:
                return _zeros(length), [Gap(offset, length, PARENT_MISSING, layer.path)]
            level += 1
        buf = bytearray(length)
        gaps: list[Gap] = []
        self._resolve(level, offset, length, memoryview(buf), 0, gaps, True)
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
                    view[got:length] = bytes(length - got)
                    lost.append((run.file_offset + got, length - got))
                return length, self._file_gaps(layer.path, run, lost)
            if run.kind is RunKind.ZERO:
                view[:length] = bytes(length)
                return length, []
        view[:length] = bytes(length)
        gaps: list[Gap] = []
        self._resolve(0, offset, length, view, 0, gaps, True)
        return length, merge_gaps(gaps)

    @staticmethod
    def _file_gaps(path: str, run: Run, bad: list[tuple[int, int]]) -> list[Gap]:
        """File ranges that failed within a DATA run, as virtual gaps."""
        out = []
        for lo, n in bad:
            a = max(lo, run.file_offset)
            b = min(lo + n, run.file_offset + run.length)
            if b > a:
                out.append(Gap(run.offset + a - run.file_offset, b - a, READ_ERROR, path))
        return out

    def _resolve(
        self,
        level: int,
        offset: int,
        length: int,
        view: memoryview | None,
        view_off: int,
        gaps: list[Gap],
        with_data: bool,
    ) -> None:
        """Walk [offset, offset+length) down the chain: data into ``view`` (already zeroed)
        when ``with_data``, every undefined range into ``gaps``."""
        layer = self.layers[level]
        for run in coalesce(layer.map(offset, length)):
            if run.kind is RunKind.DATA:
                if with_data and view is not None:
                    dst = view_off + (run.offset - offset)
                    data, bad = layer.read_file_checked(run.file_offset, run.length)
                    view[dst : dst + run.length] = data
                    gaps.extend(self._file_gaps(layer.path, run, bad))
            elif run.kind is RunKind.UNDEFINED:
                gaps.append(Gap(run.offset, run.length, run.cause or TRUNCATED, layer.path))
            elif run.kind is RunKind.PARENT:
                if level + 1 < self._depth:
                    self._resolve(
                        level + 1,
                        run.offset,
                        run.length,
                        view,
                        view_off + (run.offset - offset),
                        gaps,
                        with_data,
                    )
                else:
                    gaps.append(Gap(run.offset, run.length, PARENT_MISSING, layer.path))
            # ZERO stays zero.

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
            pos = lo
            while pos < end:
                step = min(_WALK_STEP, end - pos)
                self._resolve(0, pos, step, None, 0, gaps, False)
                pos += step
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
        """The whole virtual content in order; zero stretches come from one shared buffer.
        Undefined ranges come as zeros and are appended to ``gaps`` when given."""
        zeros = memoryview(bytes(chunk))
        pos = 0
        for lo, n in self.read_plan():
            while pos < lo:
                step = min(chunk, lo - pos)
                yield zeros[:step]
                pos += step
            end = lo + n
            while pos < end:
                step = min(chunk, end - pos)
                data, found = self.read_checked(pos, step)
                if found:
                    if gaps is not None:
                        gaps.extend(found)
                    else:
                        self._touch(found)
                yield data
                pos += step
        while pos < self.size:
            step = min(chunk, self.size - pos)
            yield zeros[:step]
            pos += step

    def sha256(
        self, progress: Callable[[int], None] | None = None, gaps: list[Gap] | None = None
    ) -> str:
        """SHA-256 of the whole content (undefined ranges as zeros, listed in ``gaps``)."""
        h = hashlib.sha256()
        found: list[Gap] = []
        for piece in self.iter_content(gaps=found):
            h.update(piece)
            if progress is not None:
                progress(len(piece))
        if gaps is not None:
            gaps.extend(merge_gaps(found))
        return h.hexdigest()


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
