"""`salvage`: read a damaged chain with error tolerance into a raw image and a ddrescue map.

What has no defined content becomes zeros in OUT and a ``-`` range in the map, in virtual-disk
offsets: read errors in any layer's file (exact to the sector), blocks past the end of a file or
cut by it, invalid BAT states, lost or contradicting sector bitmaps, unreadable BAT entries, and
ranges a differencing disk leaves to a parent that is missing or unreadable. Everything read is
``+``. The map is GNU ddrescue's format, so ddrescue's tools (ddrescuelog) read it.

The map is written first and kept up to date as the work goes on (``?`` for what is not tried
yet), and the image is written under ``OUT.hvrescue-partial`` until the first pass is over; an
interrupted run (Ctrl-C, a kill, a power cut) continues where it stopped when the same command
is given again. Once OUT exists, the same command retries only the ranges not yet ``+`` and
fills OUT in where they now read.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError, OutputError
from hvrescue.io.atomic import check_output_folder, link_into_place, output_error
from hvrescue.io.nofollow import open_existing, open_new
from hvrescue.platform import pwrite, set_size
from hvrescue.recover import ddmap
from hvrescue.recover.ddmap import BAD, GOOD, NOT_DONE, UNTRIED, read_map, write_map
from hvrescue.vdisk.disk import Disk, merge_gaps
from hvrescue.vdisk.layer import Gap

CHUNK = 4 * 1024 * 1024
# The map is rewritten (after the image is flushed) at most this often while reading.
MAP_INTERVAL = 5.0
PARTIAL_SUFFIX = ".hvrescue-partial"
_ZERO = bytes(CHUNK)


@dataclass
class SalvageResult:
    out: str
    map: str
    size: int
    bad: list[tuple[int, int]]
    retried: bool
    recovered: int  # bytes that read on this run after failing before
    resumed: bool = False
    gaps: list[Gap] = field(default_factory=list)

    @property
    def bad_bytes(self) -> int:
        return sum(n for _o, n in self.bad)

    @property
    def status(self) -> str:
        """``complete`` (everything read) or ``bad-ranges`` (zeros stand in the image)."""
        return "bad-ranges" if self.bad else "complete"

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "map": self.map,
            "size": self.size,
            "bad": [[o, n] for o, n in self.bad],
            "bad_bytes": self.bad_bytes,
            "undefined": [g.as_dict() for g in self.gaps],
            "complete": not self.bad,
            "retried": self.retried,
            "resumed": self.resumed,
            "recovered_bytes": self.recovered,
        }


class MapState:
    """The map in memory: ranges covering [0, size), each with one status."""

    def __init__(self, entries: list[tuple[int, int, str]]) -> None:
        self.starts = [p for p, _n, _s in entries]
        self.ends = [p + n for p, n, _s in entries]
        self.status = [s for _p, _n, s in entries]

    def entries(self) -> list[tuple[int, int, str]]:
        return [(a, b - a, s) for a, b, s in zip(self.starts, self.ends, self.status, strict=True)]

    def todo(self) -> list[tuple[int, int]]:
        return [
            (a, b - a)
            for a, b, s in zip(self.starts, self.ends, self.status, strict=True)
            if s in NOT_DONE
        ]

    def ranges(self, status: str) -> list[tuple[int, int]]:
        return [
            (a, b - a)
            for a, b, s in zip(self.starts, self.ends, self.status, strict=True)
            if s == status
        ]

    def mark(self, lo: int, hi: int, status: str) -> None:
        """Give [lo, hi) one status, splitting and joining entries as needed."""
        if hi <= lo:
            return
        i = bisect.bisect_right(self.starts, lo) - 1
        j = bisect.bisect_left(self.ends, hi)
        new_s: list[int] = []
        new_e: list[int] = []
        new_t: list[str] = []
        if self.starts[i] < lo:
            new_s.append(self.starts[i])
            new_e.append(lo)
            new_t.append(self.status[i])
        new_s.append(lo)
        new_e.append(hi)
        new_t.append(status)
        if self.ends[j] > hi:
            new_s.append(hi)
            new_e.append(self.ends[j])
            new_t.append(self.status[j])
        self.starts[i : j + 1] = new_s
        self.ends[i : j + 1] = new_e
        self.status[i : j + 1] = new_t
        # Join equal neighbours around the change.
        k = max(0, i - 1)
        stop = min(len(self.starts) - 1, i + len(new_s))
        while k < stop:
            if self.status[k] == self.status[k + 1]:
                self.ends[k] = self.ends[k + 1]
                del self.starts[k + 1], self.ends[k + 1], self.status[k + 1]
                stop -= 1
            else:
                k += 1


def _initial_map(disk: Disk) -> list[tuple[int, int, str]]:
    """``?`` for what has to be read (what any layer holds, every undefined range), ``+`` for
    the zeros the format defines (nothing to read, and OUT starts as zeros)."""
    size = disk.size
    out: list[tuple[int, int, str]] = []
    pos = 0
    for lo, n in disk.read_plan():
        if lo > pos:
            out.append((pos, lo - pos, GOOD))
        out.append((lo, n, UNTRIED))
        pos = lo + n
    if pos < size:
        out.append((pos, size - pos, GOOD))
    return out or [(0, size, GOOD)]


def source_tag(disk: Disk) -> str:
    """What a map was made from: the virtual size and the identity of every layer."""
    ids = ">".join(str(layer.identity or "-") for layer in disk.layers)
    return f"size={disk.size} chain={ids}"


def _open_target(path: str, disk: Disk) -> int:
    """OUT (or its partial image) of an earlier run, reopened for writing: never through a
    link, never a file with another hard link, never one of the chain's own files."""
    fd = open_existing(path, os.O_RDWR)
    try:
        st = os.fstat(fd)
        for layer in disk.layers:
            try:
                other = os.stat(layer.path)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise InputError("error.links.output-is-input", path=path, source=layer.path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def salvage(
    leaf: str,
    out: str,
    map_path: str,
    argv: list[str],
    search: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> SalvageResult:
    disk = Disk.open(leaf, search, allow_incomplete=True)
    try:
        size = disk.size
        partial = out + PARTIAL_SUFFIX
        if size == 0:
            raise InputError("error.salvage.empty", path=leaf)
        retried = resumed = False
        tag = source_tag(disk)
        if os.path.lexists(map_path):
            # An earlier run's map and image: each reopened without following a link (a link
            # at either is refused: error.links.*), so a retry never writes elsewhere.
            covered, entries = read_map(map_path)
            if os.path.lexists(out):
                target, retried = out, True
            elif os.path.lexists(partial):
                target, resumed = partial, True
            else:
                raise InputError("error.salvage.map-without-output", map=map_path, out=out)
            fd = _open_target(target, disk)
            try:
                target_size = os.fstat(fd).st_size
            except BaseException:
                os.close(fd)
                raise
            if covered != size or target_size != size:
                os.close(fd)
                raise InputError("error.salvage.map-mismatch", map=map_path, size=size)
            made_from = ddmap.read_source_tag(map_path)
            if made_from != tag:
                # Another disk's map (or one not made by salvage): continuing would mix two
                # disks' content in one image and call it complete.
                os.close(fd)
                raise InputError(
                    "error.salvage.map-other-source",
                    map=map_path,
                    found=made_from or "-",
                    expected=tag,
                )
            state = MapState(entries)
        else:
            for path in (out, partial):
                if os.path.lexists(path):
                    raise InputError("error.output.exists", path=path)
            check_output_folder(out)
            check_output_folder(map_path)
            state = MapState(_initial_map(disk))
            # The map first: if it cannot be written, nothing else is. Both are new files,
            # never opened through a link (O_EXCL | O_NOFOLLOW).
            try:
                write_map(map_path, state.entries(), argv, source=tag)
            except FileExistsError as exc:
                raise InputError("error.output.exists", path=map_path) from exc
            except OSError as exc:
                raise output_error(exc, map_path) from exc
            target = partial
            fd = -1
            try:
                fd = open_new(partial, os.O_RDWR)
                set_size(fd, size)  # sparse: a gap of zeros costs no space
            except BaseException as exc:
                if fd >= 0:
                    os.close(fd)
                    os.unlink(partial)  # ours: made just now
                os.unlink(map_path)
                if isinstance(exc, FileExistsError):
                    raise InputError("error.output.exists", path=partial) from exc
                if isinstance(exc, OSError):
                    raise output_error(exc, out) from exc
                raise
        before = sum(n for _p, n in state.ranges(BAD))
        gaps: list[Gap] = []
        try:
            _read_todo(disk, state, fd, map_path, argv, gaps, progress, tag)
            os.fsync(fd)
        except BaseException as exc:
            # Interrupted or failed: what was written is flushed and the map says how far the
            # work got, so the same command continues from there.
            try:
                os.fsync(fd)
                write_map(map_path, state.entries(), argv, source=tag, replace=True)
            except (OSError, HvrescueError):
                pass
            if isinstance(exc, OSError):
                # The work so far is kept (image and map) so that it can go on later.
                failed = output_error(exc, target)
                raise OutputError(
                    "error.salvage.output-kept",
                    path=target,
                    map=map_path,
                    reason=failed.params.get("reason", ""),
                    errno=failed.params.get("errno", ""),
                ) from exc
            raise
        finally:
            os.close(fd)
        try:
            write_map(map_path, state.entries(), argv, source=tag, replace=True)
        except OSError as exc:
            raise output_error(exc, map_path) from exc
        if target == partial:
            link_into_place(partial, out)
        bad = state.ranges(BAD)
        recovered = max(0, before - sum(n for _o, n in bad)) if retried else 0
        return SalvageResult(
            out, map_path, size, bad, retried, recovered, resumed, merge_gaps(gaps)
        )
    finally:
        disk.close()


def _read_todo(
    disk: Disk,
    state: MapState,
    fd: int,
    map_path: str,
    argv: list[str],
    gaps: list[Gap],
    progress: Callable[[int], None] | None,
    tag: str,
) -> None:
    last_save = time.monotonic()
    # What the metadata already says is undefined needs no reading (a missing parent of a
    # 64 TiB disk costs nothing): it is marked bad at once, with its cause.
    known = disk.undefined()
    starts = [g.offset for g in known]
    for lo, n in state.todo():
        pos, end = lo, lo + n
        while pos < end:
            i = bisect.bisect_right(starts, pos) - 1
            if i >= 0 and pos < known[i].offset + known[i].length:
                g = known[i]
                stop = min(end, g.offset + g.length)
                state.mark(pos, stop, BAD)
                gaps.append(Gap(pos, stop - pos, g.cause, g.path))
                if progress:
                    progress(stop - pos)
                pos = stop
                continue
            nxt = starts[i + 1] if i + 1 < len(starts) else end
            step = min(CHUNK - pos % CHUNK, end - pos, max(1, nxt - pos))
            data, found = disk.read_checked(pos, step)
            # OUT starts as a sparse file of zeros and a retried range was zero-filled before:
            # zeros need no write, so a missing parent's gap costs no space.
            if data != (_ZERO if len(data) == CHUNK else bytes(len(data))):
                view = memoryview(data)
                done = 0
                while done < len(view):
                    done += pwrite(fd, view[done:], pos + done)
            state.mark(pos, pos + step, GOOD)
            for g in found:
                state.mark(g.offset, g.offset + g.length, BAD)
            gaps.extend(found)
            pos += step
            if progress:
                progress(step)
            if time.monotonic() - last_save >= MAP_INTERVAL:
                os.fsync(fd)
                write_map(map_path, state.entries(), argv, pos, source=tag, replace=True)
                last_save = time.monotonic()


__all__ = ["CHUNK", "SalvageResult", "ddmap", "read_map", "salvage"]
