"""The state of each ext2/3/4 and XFS filesystem of the guest (``linux_filesystem``): as the
superblock on the disk says it was left (clean, journal needing recovery, errors recorded with
the first and last error), what hvrescue did about the journal (replayed in memory, never
written), and how full it is. XFS records no clean flag in its superblock: its state is what
its log says (``fs.xfs_log``: clean when the last record is an unmount record), ``unknown``
where the log cannot be read or lives on another device."""

from __future__ import annotations

from typing import Any

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext
from hvrescue.guest.linux_volumes import ext_space, ext_state, xfs_space

EXT = ("ext2", "ext3", "ext4")


def filesystem_attrs(
    fs: str | None,
    raw_superblock: bytes,
    source: Any,
    notes: list[dict[str, Any]],
    desc: dict[str, Any],
    log_state: str | None = None,
) -> dict[str, Any] | None:
    """The ``linux_filesystem`` attributes of a volume (``desc``: its entry in the guest's
    volume list; ``log_state``: an XFS log's, as ``fs.xfs_log`` found it); None when an ext
    superblock cannot be read. ``source`` None: the volume could not be opened, only the
    superblock speaks (its space is not computed)."""
    attrs: dict[str, Any] = {
        "volume": desc.get("id"),
        "filesystem": fs,
        "uuid": desc.get("uuid"),
        "label": desc.get("label"),
        "readable": source is not None,
    }
    if fs in EXT:
        state = ext_state(raw_superblock)
        if state is None:
            return None
        attrs.update(state)
        space = ext_space(source) if source is not None else None
    else:
        attrs.update(_xfs_state(log_state), error_count=None)
        space = xfs_space(source) if source is not None else None
    attrs["journal"] = _journal(notes, attrs.get("needs_recovery"))
    attrs["journal_detail"] = notes[0].get("params") if notes else None
    if space is not None:
        attrs.update(space)
    return attrs


def read_filesystem(ctx: GuestContext) -> None:
    fs = ctx.volume.type
    notes = list(getattr(ctx.volume, "notes", []) or [])
    attrs = filesystem_attrs(
        fs,
        ctx.raw_superblock,
        getattr(ctx.volume, "source", None),
        notes,
        ctx.volume_info,
        getattr(ctx.volume, "log_state", None),
    )
    if attrs is None:
        ctx.problem("/", "guest.linux-superblock-unreadable", fs)
        return
    attrs["root"] = "linux" in ctx.roles
    ctx.fact("linux_filesystem", attrs, "/", "superblock")


def _xfs_state(log_state: str | None) -> dict[str, Any]:
    """An XFS filesystem's state as its log tells it (no clean flag in its superblock)."""
    if log_state == "clean":
        return {"state": "clean", "needs_recovery": False}
    if log_state == "dirty":
        return {"state": "not-clean", "needs_recovery": True}
    return {"state": "unknown", "needs_recovery": None}


def _journal(notes: list[dict[str, Any]], needs_recovery: bool | None) -> str:
    """What became of the journal (an XFS log): ``replayed-in-memory`` (the view is after
    recovery, as the kernel would leave it), ``not-replayed`` (an XFS log that needs recovery:
    the view is before it), ``empty``, ``unreadable``, ``external``, ``clean`` or ``n/a``."""
    keys = {n.get("key") for n in notes}
    if "ui.fs.journal-replayed" in keys:
        return "replayed-in-memory"
    if "ui.fs.xfs-log-dirty" in keys:
        return "not-replayed"
    if "ui.fs.journal-empty" in keys:
        return "empty"
    if keys & {"ui.fs.journal-unreadable", "ui.fs.xfs-log-unreadable"}:
        return "unreadable"
    if keys & {"ui.fs.journal-external", "ui.fs.xfs-log-external"}:
        return "external"
    if needs_recovery is None:
        return "n/a"
    return "clean"


READER = Artefact(
    name="linux-filesystem",
    reads=("superblock", "group descriptors / AG headers"),
    run=read_filesystem,
    roles=frozenset({"linuxfs"}),
)
