"""Recovery on copies, one call per job: what the `merge`, `replay-log`, `repair`, `reparent`
and `salvage` commands run, for Python users too.

Each function first refuses an output whose name says another format (``out.vhd`` for a VHDX)
or whose folder is missing or cannot be written, before any long work; then writes the new file
under a temporary name and gives it its name only once checked. Inputs are only ever read.
Refusals raise :class:`~hvrescue.errors.HvrescueError` subclasses with a catalogue key; undefined
content in the source raises :class:`~hvrescue.errors.UndefinedContentError` (with its ranges)
unless ``allow_gaps``.
"""

from __future__ import annotations

from collections.abc import Callable

from hvrescue.errors import InputError
from hvrescue.io.atomic import check_output_folder
from hvrescue.recover.merge import MergeResult
from hvrescue.recover.names import check_output_name
from hvrescue.recover.outcome import RewriteResult, findings_after, gaps_written
from hvrescue.recover.reparent import (
    LocatorPaths,
    ReparentPlan,
    ReparentResult,
    locator_paths,
    plan_reparent,
    reparent,
)
from hvrescue.recover.salvage import SalvageResult

__all__ = [
    "LocatorPaths",
    "MergeResult",
    "ReparentPlan",
    "ReparentResult",
    "RewriteResult",
    "SalvageResult",
    "locator_paths",
    "merge_chain",
    "plan_reparent",
    "repair",
    "reparent",
    "replay_log",
    "rewrite_copy",
    "salvage_chain",
]


def merge_chain(
    leaf: str,
    out: str,
    fmt: str = "vhdx",
    block_size: int | None = None,
    search: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
    verify: bool = True,
) -> MergeResult:
    """Flatten the chain ending at ``leaf`` into one standalone disk ``out`` (``fmt`` "vhdx"
    or "raw"; ``block_size`` in bytes, default the base disk's), read back and compared with
    the chain before it gets its name (``verify=False``: not, and the status says
    ``unverified``). ``progress(done, total)`` is called as blocks go by."""
    from hvrescue.recover.merge import merge

    check_output_name(out, fmt, like=leaf, merge=True)
    check_output_folder(out)
    return merge(
        leaf,
        out,
        fmt,
        block_size,
        list(search or []),
        progress,
        allow_gaps=allow_gaps,
        argv=argv,
        verify=verify,
    )


def rewrite_copy(
    disk: str,
    out: str,
    *,
    repair: bool,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
) -> RewriteResult:
    """A copy of ``disk`` at ``out`` with its log applied and cleared and, with ``repair``,
    damaged twins rebuilt (VHDX) or footer and header fixed (VHD); then checked."""
    from hvrescue.recover.rewrite import rewrite_vhdx
    from hvrescue.vdisk.detect import open_image

    image = open_image(disk)
    fmt = image.format
    image.close()
    del image  # its replayed log (up to 256 MiB) is not held while the copy is written
    check_output_name(out, fmt, like=disk)
    check_output_folder(out)
    if fmt != "vhdx":
        if not repair:
            raise InputError("error.rewrite.not-vhdx", path=disk)
        from hvrescue.recover.vhd_fix import repair_vhd

        changes = repair_vhd(disk, out, allow_gaps, argv)
    else:
        changes = rewrite_vhdx(disk, out, repair=repair, allow_gaps=allow_gaps, argv=argv)
    return RewriteResult(out, changes, findings_after(out), gaps_written(changes))


def replay_log(
    disk: str, out: str, allow_gaps: bool = False, argv: list[str] | None = None
) -> RewriteResult:
    """A copy of a VHDX with its log applied and cleared, as Hyper-V would leave it."""
    return rewrite_copy(disk, out, repair=False, allow_gaps=allow_gaps, argv=argv)


def repair(
    disk: str, out: str, allow_gaps: bool = False, argv: list[str] | None = None
) -> RewriteResult:
    """A copy with damaged structures rebuilt from their valid twins; the changes listed."""
    return rewrite_copy(disk, out, repair=True, allow_gaps=allow_gaps, argv=argv)


def salvage_chain(
    leaf: str,
    out: str,
    map_path: str,
    search: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    argv: list[str] | None = None,
    on_start: Callable[[], None] | None = None,
) -> SalvageResult:
    """Read the chain ending at ``leaf`` with error tolerance into the raw image ``out``,
    unreadable ranges as zeros and listed in the GNU ddrescue map ``map_path``; the same call
    again retries only those ranges. ``on_start()`` is called once both outputs are known to
    be writable, before the reading begins (a caller can say from then on what an
    interruption keeps); ``progress(n)`` with each ``n`` bytes done."""
    from hvrescue.recover.salvage import salvage

    # Both the image and its map must be writable before hours of reading begin.
    check_output_name(out, "raw")
    check_output_folder(out)
    check_output_folder(map_path)
    if on_start is not None:
        on_start()
    command = argv or ["hvrescue", "salvage", leaf, out, "--map", map_path]
    return salvage(leaf, out, map_path, command, list(search or []), progress)
