"""Reading a Linux guest's files through the volume: symbolic links resolved inside the volume
(``/etc/os-release`` is usually a link to ``../usr/lib/os-release``; a link that leaves the
volume or loops is not followed), and the tail of a log without holding the whole file."""

from __future__ import annotations

import posixpath

from hvrescue.errors import HvrescueError
from hvrescue.fs.volume import Entry
from hvrescue.guest.context import GuestContext

MAX_LINKS = 16


def resolve(ctx: GuestContext, path: str) -> Entry | None:
    """The entry ``path`` names once its symbolic links are followed inside the volume."""
    for _ in range(MAX_LINKS):
        entry = ctx.stat(path)
        if entry is None or entry.kind != "symlink":
            return entry
        target = entry.link or ""
        if not target:
            return None
        path = posixpath.normpath(
            target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
        )
    return None


def read_text(ctx: GuestContext, path: str, limit: int) -> tuple[str, str] | None:
    """(text, the path really read) of a small text file, links followed; None when absent,
    over ``limit`` or unreadable (each of those but absence said as a problem by ``ctx.read``)."""
    entry = resolve(ctx, path)
    if entry is None or entry.is_dir or entry.kind is not None:
        return None
    data = ctx.read(entry.path, limit)
    if data is None:
        return None
    return data.decode("utf-8", "replace"), entry.path


def tail(ctx: GuestContext, entry: Entry, size: int, scan_limit: int) -> bytes | None:
    """The last ``size`` bytes of a file no larger than ``scan_limit`` (None when larger, or
    when its content is unreadable or touches undefined ranges: said as a problem)."""
    if entry.size > scan_limit:
        return None
    mark = len(ctx.volume.disk.touched)
    kept = bytearray()
    try:
        for chunk in ctx.volume.read(entry):
            kept += chunk
            if len(kept) > 2 * size:  # trimmed now and then, not copied at every chunk
                del kept[: len(kept) - size]
    except (HvrescueError, OSError) as exc:
        ctx.problem(entry.path, "guest.unreadable", f"{type(exc).__name__}: {exc}"[:300])
        return None
    gaps = ctx.volume.file_gaps(entry, since=mark)
    if gaps:
        ctx.problem(
            entry.path, "guest.undefined-content", ", ".join(sorted({g.cause for g in gaps}))
        )
        return None
    return bytes(kept[-size:]) if size else b""
