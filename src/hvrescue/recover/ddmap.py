"""GNU ddrescue map files (the "mapfile" of ddrescue 1.x): read, validate, write atomically.

A map covers [0, size) with ranges of one status each: ``+`` read, ``-`` bad (here: undefined
or unreadable), ``?`` not tried yet (``*`` and ``/`` are ddrescue's non-trimmed/non-scraped
states, treated as not done). ddrescue's own tools (ddrescuelog) read what is written here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import shlex
import stat
from collections.abc import Iterable

from hvrescue import __version__
from hvrescue.errors import HvrescueError, InputError
from hvrescue.io.atomic import link_into_place
from hvrescue.io.files import NotRegularFileError, mode_kind
from hvrescue.io.nofollow import lstat_or_none, open_existing, open_new, refuse_link

MAX_MAP_LINES = 10_000_000
# A line of a map is short (``0x... 0x... +``); a longer one is cut there, never read whole.
MAX_LINE = 4096
GOOD, BAD, UNTRIED = "+", "-", "?"
NOT_DONE = "?*/-"


SOURCE_TAG = "# hvrescue-source:"


def _open_map(path: str) -> io.TextIOWrapper:
    """A map of ours opened for reading: never through a link, never blocking on a FIFO."""
    fd = open_existing(path)
    try:
        return io.TextIOWrapper(io.FileIO(fd, "r"), encoding="ascii", errors="replace")
    except BaseException:
        os.close(fd)
        raise


def read_source_tag(path: str) -> str | None:
    """The source a map was written for (see :func:`write_map`), or None."""
    try:
        with _open_map(path) as f:
            for count, line in enumerate(f):
                if line.startswith(SOURCE_TAG):
                    return line[len(SOURCE_TAG) : len(SOURCE_TAG) + 4096].strip()
                if count > 20:
                    break
    except (OSError, HvrescueError):
        return None
    return None


def read_map(path: str) -> tuple[int, list[tuple[int, int, str]]]:
    """(size covered, [(pos, size, status)]) from a ddrescue map."""
    entries: list[tuple[int, int, str]] = []
    seen_status_line = False
    try:
        with _open_map(path) as f:
            for count, line in enumerate(iter(lambda: f.readline(MAX_LINE), "")):
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
                    raise InputError(
                        "error.salvage.map-invalid", path=path, reason=line.strip()[:200]
                    )
                entries.append((int(words[0], 0), int(words[1], 0), words[2]))
    except (OSError, ValueError) as exc:
        raise InputError("error.salvage.map-invalid", path=path, reason=str(exc)) from exc
    pos = 0
    for start, size, _st in entries:
        if start != pos or size <= 0:
            raise InputError("error.salvage.map-invalid", path=path, reason="gaps or overlaps")
        pos += size
    return pos, entries


def entries_for(
    size: int, bad: Iterable[tuple[int, int]], done_upto: int | None = None
) -> list[tuple[int, int, str]]:
    """Map entries: ``bad`` ranges ``-``, the rest ``+`` up to ``done_upto`` and ``?`` after."""
    upto = size if done_upto is None else min(size, done_upto)
    out: list[tuple[int, int, str]] = []

    def add(lo: int, hi: int, status: str) -> None:
        if hi <= lo:
            return
        if out and out[-1][2] == status and out[-1][0] + out[-1][1] == lo:
            out[-1] = (out[-1][0], out[-1][1] + hi - lo, status)
        else:
            out.append((lo, hi - lo, status))

    pos = 0
    for lo, n in sorted(bad):
        lo, hi = max(lo, pos), min(lo + n, size)
        if hi <= lo:
            continue
        add(pos, min(lo, upto), GOOD)
        add(max(pos, upto), lo, UNTRIED)
        add(lo, hi, BAD)
        pos = hi
    add(pos, upto, GOOD)
    add(max(pos, upto), size, UNTRIED)
    return out


def write_map(
    path: str,
    entries: list[tuple[int, int, str]],
    argv: list[str],
    current_pos: int = 0,
    source: str | None = None,
    *,
    replace: bool = False,
) -> None:
    """Write the map as a new file (never over an existing one), or with ``replace`` over the
    previous map of ours atomically (a map updated as the work goes on, as ddrescue does; a
    link or anything but a regular file there is refused, never replaced or written through).
    ``source`` names what it was made from, so that a later run can refuse a map of another
    disk."""
    bad = sum(1 for _p, _n, st in entries if st == BAD)
    untried = any(st in "?*/" for _p, _n, st in entries)
    status = UNTRIED if untried else GOOD
    lines = [
        f"# Mapfile. Created by hvrescue {__version__} (GNU ddrescue format)",
        f"# Command line: {shlex.join(argv)}",
        f"# Current time: {dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}",
        *([f"{SOURCE_TAG} {source}"] if source else []),
        "# Finished" if not bad and not untried else f"# {bad} bad area(s)",
        "# current_pos  current_status  current_pass",
        f"0x{current_pos:08X}     {status}               1",
        "#      pos        size  status",
    ]
    lines += [f"0x{lo:08X}  0x{n:08X}  {st}" for lo, n, st in entries]
    data = ("\n".join(lines) + "\n").encode("ascii")
    tmp = f"{path}.hvrescue-{os.getpid()}.part"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed run that had our process id (a link: removed itself)
    fd = open_new(tmp)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            refuse_link(path)
            st = lstat_or_none(path)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise NotRegularFileError(path, mode_kind(st.st_mode))
            os.replace(tmp, path)
        else:
            link_into_place(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
