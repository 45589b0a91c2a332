"""GNU ddrescue map files (the "mapfile" of ddrescue 1.x): read, validate, write atomically.

A map covers [0, size) with ranges of one status each: ``+`` read, ``-`` bad (here: undefined
or unreadable), ``?`` not tried yet (``*`` and ``/`` are ddrescue's non-trimmed/non-scraped
states, treated as not done). ddrescue's own tools (ddrescuelog) read what is written here.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
from collections.abc import Iterable

from hvrescue import __version__
from hvrescue.errors import InputError

MAX_MAP_LINES = 10_000_000
GOOD, BAD, UNTRIED = "+", "-", "?"
NOT_DONE = "?*/-"


SOURCE_TAG = "# hvrescue-source:"


def read_source_tag(path: str) -> str | None:
    """The source a map was written for (see :func:`write_map`), or None."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for count, line in enumerate(f):
                if line.startswith(SOURCE_TAG):
                    return line[len(SOURCE_TAG) :].strip()
                if count > 20:
                    break
    except OSError:
        return None
    return None


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
) -> None:
    """Write the map, replacing the previous one atomically (the map is ours, updated as the
    work goes on, as ddrescue does); ``source`` names what it was made from, so that a later
    run can refuse a map of another disk."""
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
    text = "\n".join(lines) + "\n"
    tmp = f"{path}.hvrescue-{os.getpid()}.part"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
