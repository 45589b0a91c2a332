"""The state of each ext2/3/4 and XFS filesystem of the guest (``linux_filesystem``): as the
superblock on the disk says it was left (clean, journal needing recovery, errors recorded with
the first and last error), what hvrescue did about the journal (replayed in memory, never
written), and how full it is. XFS records no clean flag in its superblock: its state is
``unknown`` (``xfs_repair -n`` on a copy tells)."""

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
) -> dict[str, Any] | None:
    """The ``linux_filesystem`` attributes of a volume (``desc``: its entry in the guest's
    volume list); None when an ext superblock cannot be read. ``source`` None: the volume
    could not be opened, only the superblock speaks (its space is not computed)."""
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
        attrs.update(state="unknown", needs_recovery=None, error_count=None)
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
        fs, ctx.raw_superblock, getattr(ctx.volume, "source", None), notes, ctx.volume_info
    )
    if attrs is None:
        ctx.problem("/", "guest.linux-superblock-unreadable", fs)
        return
    attrs["root"] = "linux" in ctx.roles
    ctx.fact("linux_filesystem", attrs, "/", "superblock")


def _journal(notes: list[dict[str, Any]], needs_recovery: bool | None) -> str:
    """What became of the journal: ``replayed-in-memory`` (the view is after recovery, as the
    kernel would leave it), ``empty``, ``unreadable``, ``external``, ``clean`` or ``n/a``."""
    keys = {n.get("key") for n in notes}
    if "ui.fs.journal-replayed" in keys:
        return "replayed-in-memory"
    if "ui.fs.journal-empty" in keys:
        return "empty"
    if "ui.fs.journal-unreadable" in keys:
        return "unreadable"
    if "ui.fs.journal-external" in keys:
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
