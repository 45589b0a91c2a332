"""Virtual ranges and runs: coalescing, merging, and the gaps of undefined content."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hvrescue.vdisk.layer import READ_ERROR, Gap, Run, RunKind


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


def file_gaps(path: str, run: Run, bad: list[tuple[int, int]]) -> list[Gap]:
    """File ranges that failed within a DATA run, as virtual gaps."""
    out = []
    for lo, n in bad:
        a = max(lo, run.file_offset)
        b = min(lo + n, run.file_offset + run.length)
        if b > a:
            out.append(Gap(run.offset + a - run.file_offset, b - a, READ_ERROR, path))
    return out
