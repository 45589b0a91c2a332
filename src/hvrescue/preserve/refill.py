"""Read again what an earlier run could not: the unreadable ranges a copy's entry records.

``preserve --resume`` reads every recorded unreadable range from the original again (only those:
a failing disk is not read whole twice) and writes into the copy what now reads.

The copy is checked first against its recorded hashes with the recorded ranges taken as zeros,
which they are in a copy that no retry touched. Each retry then writes its recorded ranges whole
(what reads now, zeros where it still fails), so that the copy is exactly what the new hashes
say, and a retry cut short before the manifest was updated leaves a copy that the next retry
still recognises: the same check, with the same ranges as zeros, holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.io.atomic import output_error
from hvrescue.io.nofollow import Confined, open_existing
from hvrescue.io.source import ReadOnlySource
from hvrescue.preserve.copy import ALGORITHMS, CHUNK, _Hasher, _merge, _write_all
from hvrescue.preserve.manifest import recorded_ranges

Progress = Callable[[int], None]


@dataclass
class RefillResult:
    entry: dict[str, Any]  # the entry as it now stands (unchanged when nothing read)
    retried: int = 0  # bytes of recorded unreadable ranges read again
    recovered: int = 0  # bytes among them that read this time
    problem: str | None = None  # "copy-changed", "source-changed", "source-unavailable"
    detail: str = ""
    changed: bool = False


def _ranges(entry: dict[str, Any]) -> list[list[int]]:
    # Only well-formed [offset, length] pairs: the entry comes from a file a hand may have
    # edited (a manifest, the journal).
    return _merge([[o, n] for o, n in recorded_ranges(entry) if o >= 0 and n > 0])


def masked_hashes(
    path: str,
    algorithms: tuple[str, ...],
    zeros: list[list[int]],
    progress: Progress | None = None,
) -> tuple[dict[str, str], int]:
    """Hashes of the file ``path`` read as if ``zeros`` (sorted, disjoint) held zeros."""
    with ReadOnlySource.own(path) as src:
        hasher = _Hasher(algorithms)
        try:
            pos, i = 0, 0
            while pos < src.size:
                n = min(CHUNK, src.size - pos)
                data = bytearray(src.read(pos, n))
                if len(data) < n:
                    break
                while i < len(zeros) and zeros[i][0] + zeros[i][1] <= pos:
                    i += 1
                j = i
                while j < len(zeros) and zeros[j][0] < pos + n:
                    lo = max(zeros[j][0], pos) - pos
                    hi = min(zeros[j][0] + zeros[j][1], pos + n) - pos
                    data[lo:hi] = bytes(hi - lo)
                    j += 1
                hasher.update(bytes(data))
                pos += n
                if progress:
                    progress(n)
        finally:
            hashes = hasher.finish()
        return hashes, src.size


def refill(
    entry: dict[str, Any],
    copy: str,
    source: str | None = None,
    progress: Progress | None = None,
) -> RefillResult:
    """Retry the unreadable ranges of ``entry`` (a manifest entry) from its original into
    ``copy``; the result's entry carries the new hashes and the ranges that still fail."""
    ranges = _ranges(entry)
    if not ranges:
        return RefillResult(entry)
    origin = source or entry.get("source")
    if not isinstance(origin, str) or not origin:
        return RefillResult(entry, problem="source-unavailable", detail="no source recorded")
    algorithms = tuple(a for a in ALGORITHMS if isinstance(entry.get(a), str))
    recorded = {a: str(entry[a]).lower() for a in algorithms}
    try:
        before, size = masked_hashes(copy, algorithms, ranges, progress)
    except HvrescueError as exc:
        return RefillResult(entry, problem="copy-changed", detail=exc.key)
    if before != recorded or size != entry.get("size"):
        return RefillResult(entry, problem="copy-changed")
    try:
        src = ReadOnlySource(origin)
    except HvrescueError as exc:
        return RefillResult(entry, problem="source-unavailable", detail=exc.key)
    try:
        st = os.fstat(src._fd)
        if src.size != entry.get("size") or st.st_mtime_ns != entry.get("mtime_ns"):
            return RefillResult(entry, problem="source-changed")
        still_bad, recovered, wrote = _reread(src, copy, ranges)
    finally:
        src.close()
    if wrote:
        try:
            # The original's times (no link to follow: the copy was opened without one).
            os.utime(
                Confined(os.path.dirname(copy)).check(copy), ns=(st.st_atime_ns, st.st_mtime_ns)
            )
        except OSError as exc:
            raise output_error(exc, copy) from exc
    retried = sum(n for _o, n in ranges)
    if still_bad == ranges:
        # Nothing read: the copy holds the same zeros as before.
        return RefillResult(entry, retried=retried)
    after, _ = masked_hashes(copy, algorithms, [])
    new = {**entry, **after, "unreadable": still_bad}
    return RefillResult(new, retried=retried, recovered=recovered, changed=True)


def _reread(
    src: ReadOnlySource, copy: str, ranges: list[list[int]]
) -> tuple[list[list[int]], int, bool]:
    """Make each recorded range of ``copy`` what reads now, zeros where it still fails; a chunk
    the copy already holds is not written (a write-blocked DEST can still be retried)."""
    still_bad: list[list[int]] = []
    recovered = 0
    out = -1
    try:
        with ReadOnlySource.own(copy) as have:
            for lo, length in ranges:
                pos, end = lo, lo + length
                while pos < end:
                    n = min(CHUNK, end - pos)
                    data, bad = src.read_checked(pos, n, tolerant=True)
                    failed = [[b.offset, b.length] for b in bad]
                    if len(data) < n:  # the original is shorter now than it was: not there
                        failed.append([pos + len(data), n - len(data)])
                        data += bytes(n - len(data))
                    if have.read(pos, n) != data:
                        if out < 0:
                            # Never through a link, never into a file with another hard link
                            # (an original linked into DEST would be written otherwise).
                            out = open_existing(copy, os.O_WRONLY)
                        _write_all(out, data, pos)
                    recovered += n - sum(k for _o, k in failed)
                    still_bad.extend(failed)
                    pos += n
        if out >= 0:
            os.fsync(out)
    except OSError as exc:
        raise output_error(exc, copy) from exc
    finally:
        if out >= 0:
            os.close(out)
    return _merge(still_bad), recovered, out >= 0
