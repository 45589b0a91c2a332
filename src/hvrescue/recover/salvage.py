"""`salvage`: read a damaged chain with error tolerance into a raw image and a ddrescue map.

What cannot be read becomes zeros in OUT and a ``-`` range in the map, in virtual-disk offsets:
read errors in any layer's file, blocks whose BAT entry points past the end of the file, and
ranges a differencing disk leaves to a parent that is missing or unreadable. Everything else is
``+``. The map is GNU ddrescue's format, so ddrescue's tools (ddrescuelog) read it; run again
with the same OUT and map, only the ranges not yet ``+`` are read again, and OUT is filled in
where they now read.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvrescue import __version__
from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.vdisk.disk import Disk, coalesce, merge_ranges
from hvrescue.vdisk.layer import RunKind
from hvrescue.vdisk.vhdx.image import VhdxImage

CHUNK = 4 * 1024 * 1024
MAX_MAP_LINES = 10_000_000
GOOD, BAD = "+", "-"
NOT_DONE = "?*/-"
_ZERO = bytes(CHUNK)


@dataclass
class SalvageResult:
    out: str
    map: str
    size: int
    bad: list[tuple[int, int]]
    retried: bool
    recovered: int  # bytes that read on this run after failing before

    @property
    def bad_bytes(self) -> int:
        return sum(n for _o, n in self.bad)

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "map": self.map,
            "size": self.size,
            "bad": [[o, n] for o, n in self.bad],
            "bad_bytes": self.bad_bytes,
            "complete": not self.bad,
            "retried": self.retried,
            "recovered_bytes": self.recovered,
        }


def _file_end(layer: Any) -> int:
    return int(getattr(layer, "file_size", 0) or layer.source.size)


def read_tolerant(disk: Disk, offset: int, length: int) -> tuple[bytearray, list[tuple[int, int]]]:
    """Virtual bytes and the virtual ranges among them that could not be read (as zeros)."""
    buf = bytearray(length)
    bad: list[tuple[int, int]] = []
    _resolve(disk, 0, offset, length, buf, 0, bad)
    merged = list(merge_ranges(sorted(bad)))
    for lo, n in merged:  # what is not known is zeros, never a guess from another layer
        buf[lo - offset : lo - offset + n] = bytes(n)
    return buf, merged


def _resolve(
    disk: Disk,
    level: int,
    offset: int,
    length: int,
    buf: bytearray,
    buf_off: int,
    bad: list[tuple[int, int]],
) -> None:
    layer = disk.layers[level]
    depth = disk._depth
    bad.extend(_bitmaps_missing(layer, offset, length))
    for run in coalesce(layer.map(offset, length)):
        dst = buf_off + (run.offset - offset)
        if run.kind is RunKind.DATA:
            source = layer.source
            before = len(source.bad_ranges)
            data = layer.read_file(run.file_offset, run.length)
            buf[dst : dst + run.length] = data
            for r in source.bad_ranges[before:]:
                lo = max(r.offset, run.file_offset)
                hi = min(r.offset + r.length, run.file_offset + run.length)
                if hi > lo:
                    bad.append((run.offset + lo - run.file_offset, hi - lo))
            end = _file_end(layer)
            if run.file_offset + run.length > end:
                start = max(0, end - run.file_offset)
                bad.append((run.offset + start, run.length - start))
        elif run.kind is RunKind.PARENT:
            if level + 1 < depth and disk.layers[level + 1].readable:
                _resolve(disk, level + 1, run.offset, run.length, buf, dst, bad)
            else:
                bad.append((run.offset, run.length))


def _bitmaps_missing(layer: Any, offset: int, length: int) -> list[tuple[int, int]]:
    """Partly present VHDX blocks whose sector bitmap lies past the end of the file: which of
    their sectors are the child's cannot be known, so the whole block is a gap."""
    if not isinstance(layer, VhdxImage) or not layer.has_parent or not layer.block_size:
        return []
    bs, cr = layer.block_size, layer.chunk_ratio
    end = _file_end(layer)
    out: list[tuple[int, int]] = []
    for block in range(offset // bs, (offset + length - 1) // bs + 1):
        if layer.bat_entry(block + block // cr) & 7 != 7:  # PAYLOAD_BLOCK_PARTIALLY_PRESENT
            continue
        sb = layer.bat_entry((block // cr) * (cr + 1) + cr)
        sb_offset = (sb >> 20) << 20
        if sb & 7 == 6 and sb_offset + 1024 * 1024 <= end:
            continue
        lo = max(offset, block * bs)
        hi = min(offset + length, (block + 1) * bs)
        out.append((lo, hi - lo))
    return out


# ---------------------------------------------------------------------------- the map file
def read_map(path: str) -> tuple[int, list[tuple[int, int, str]]]:
    """(size covered, [(pos, size, status)]) from a ddrescue map."""
    entries: list[tuple[int, int, str]] = []
    seen_status_line = False
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for count, line in enumerate(f):
                if count > MAX_MAP_LINES:
                    raise InputError("error.salvage.map-invalid", path=path, reason="too long")
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                words = text.split()
                if not seen_status_line:
                    seen_status_line = True  # current_pos current_status [current_pass]
                    continue
                if len(words) != 3 or len(words[2]) != 1 or words[2] not in "?*/-+":
                    raise InputError("error.salvage.map-invalid", path=path, reason=line.strip())
                entries.append((int(words[0], 0), int(words[1], 0), words[2]))
    except (OSError, ValueError) as exc:
        raise InputError("error.salvage.map-invalid", path=path, reason=str(exc)) from exc
    pos = 0
    for start, size, _st in entries:
        if start != pos or size <= 0:
            raise InputError("error.salvage.map-invalid", path=path, reason="gaps or overlaps")
        pos += size
    return pos, entries


def write_map(path: str, size: int, bad: list[tuple[int, int]], argv: list[str]) -> None:
    """The map (good '+' and bad '-' ranges covering [0, size)), replaced atomically."""
    lines = [
        f"# Mapfile. Created by hvrescue {__version__} (GNU ddrescue format)",
        f"# Command line: {shlex.join(argv)}",
        f"# Current time: {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}",
        "# Finished" if not bad else f"# {len(bad)} bad area(s)",
        "# current_pos  current_status  current_pass",
        f"0x{0:08X}     +               1",
        "#      pos        size  status",
    ]
    pos = 0
    for lo, n in bad:
        if lo > pos:
            lines.append(f"0x{pos:08X}  0x{lo - pos:08X}  {GOOD}")
        lines.append(f"0x{lo:08X}  0x{n:08X}  {BAD}")
        pos = lo + n
    if pos < size:
        lines.append(f"0x{pos:08X}  0x{size - pos:08X}  {GOOD}")
    text = "\n".join(lines) + "\n"
    tmp = f"{path}.hvrescue-{os.getpid()}.part"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # the map is ours, updated run after run as ddrescue does


# ---------------------------------------------------------------------------- the command
def _read_ranges(
    disk: Disk,
    ranges: list[tuple[int, int]],
    fd: int,
    progress: Callable[[int], None] | None,
) -> list[tuple[int, int]]:
    bad: list[tuple[int, int]] = []
    for lo, n in ranges:
        pos, end = lo, lo + n
        while pos < end:
            step = min(CHUNK - pos % CHUNK, end - pos)
            data, chunk_bad = read_tolerant(disk, pos, step)
            # OUT starts as a sparse file of zeros (and a retried range was zero-filled before):
            # zeros need no write, so a missing parent's gap costs no space.
            if data != (_ZERO if len(data) == CHUNK else bytes(len(data))):
                view = memoryview(data)
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], pos + done)
            bad.extend(chunk_bad)
            pos += step
            if progress:
                progress(step)
    return list(merge_ranges(sorted(bad)))


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
        if os.path.exists(map_path):
            if not os.path.isfile(out):
                raise InputError("error.salvage.map-without-output", map=map_path, out=out)
            covered, entries = read_map(map_path)
            if covered != size or os.path.getsize(out) != size:
                raise InputError("error.salvage.map-mismatch", map=map_path, size=size)
            todo = [(p, n) for p, n, st in entries if st in NOT_DONE]
            before = sum(n for _p, n in todo)
            fd = os.open(out, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                bad = _read_ranges(disk, todo, fd, progress)
                os.fsync(fd)
            finally:
                os.close(fd)
            write_map(map_path, size, bad, argv)
            recovered = before - sum(n for _o, n in bad)
            return SalvageResult(out, map_path, size, bad, True, recovered)
        if os.path.lexists(out):
            raise InputError("error.output.exists", path=out)
        # Only what some layer holds (or leaves to a parent) has to be read; the rest is zeros.
        extents = list(disk.extents())
        missing_parent = not disk.complete
        if missing_parent:
            extents = [(0, size)]  # every PARENT run of the last readable layer is a gap
        with atomic_output(out) as fd:
            os.ftruncate(fd, size)
            bad = _read_ranges(disk, extents, fd, progress)
        write_map(map_path, size, bad, argv)
        return SalvageResult(out, map_path, size, bad, False, 0)
    finally:
        disk.close()
