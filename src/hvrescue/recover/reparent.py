"""`reparent`: point a differencing disk at a new parent, in a copy.

Three steps, each usable on its own:

- :func:`plan_reparent` decides whether PARENT may stand under CHILD. It must be a readable disk
  of the child's format, virtual size and logical sector size (else the child's sectors would
  land on other data: always refused), and its identity must be the one the child records
  (VHDX ``parent_linkage``/``parent_linkage2`` against the parent's DataWriteGuid, VHD parent
  unique id). Another identity is refused unless ``ignore_id_mismatch``, which Microsoft allows
  only for a parent that holds exactly the data the child was written against; the plan then
  carries that warning.
- :func:`locator_paths` computes what the new locator says: the parent relative to the copy's
  folder, and an absolute Windows path (given, this host's own on Windows, or the old absolute
  path's folder with the new parent's name).
- :func:`reparent` writes the copy and checks it: the new chain must resolve to PARENT through
  the locator, and the copy must check clean.
"""

from __future__ import annotations

import ntpath
import os
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.findings import Finding
from hvrescue.recover.outcome import Notice, findings_after, gap_map, gaps_written
from hvrescue.recover.rewrite import Change, relative_windows_path


@dataclass(frozen=True)
class LocatorPaths:
    """What the new parent locator holds: ``relative`` (``.\\base.vhdx``, ``..\\x\\base.vhdx``,
    relative to the copy's folder) and ``absolute`` (a Windows path, None when unknown)."""

    relative: str
    absolute: str | None


def locator_paths(
    out: str,
    parent: str,
    parent_windows_path: str | None = None,
    old_absolute: str | None = None,
) -> LocatorPaths:
    """The locator paths for a copy written to ``out`` whose parent is ``parent`` (a path on
    this host). The absolute path is ``parent_windows_path`` when given; else this host's
    absolute path on Windows; else the folder of the child's old absolute path
    (``old_absolute``) with the new parent's file name, since the files usually go back where
    they were; else None."""
    out_dir = os.path.dirname(os.path.abspath(out))
    relative = relative_windows_path(out_dir, os.path.abspath(parent))
    absolute = parent_windows_path
    if absolute is None and os.sep == "\\":
        absolute = os.path.abspath(parent)
    elif absolute is None and old_absolute:
        absolute = ntpath.join(ntpath.dirname(old_absolute), os.path.basename(parent))
    return LocatorPaths(relative, absolute)


@dataclass(frozen=True)
class ReparentPlan:
    """A reparent that may go ahead: what will be written and why it is allowed."""

    child: str
    parent: str
    out: str
    format: str  # "vhdx" or "vhd", the child's and the parent's
    parent_identity: str
    parent_timestamp: int
    expected_identity: str  # the identity the child records for its parent
    identity_ignored: bool
    locators: LocatorPaths

    @property
    def warnings(self) -> list[Notice]:
        if not self.identity_ignored:
            return []
        return [
            Notice(
                "ui.reparent.ignore-id-warning",
                {"expected": self.expected_identity, "found": self.parent_identity},
            )
        ]


def _old_absolute(image: Any) -> str | None:
    """The absolute Windows path the child's locator names for its parent today."""
    from hvrescue.vdisk.vhd.image import VhdImage
    from hvrescue.vdisk.vhdx.image import VhdxImage

    if isinstance(image, VhdxImage) and image.parent_locator:
        found = dict(image.parent_locator.entries).get("absolute_win32_path")
        return found if isinstance(found, str) else None
    if isinstance(image, VhdImage):
        return next(
            (e.get("path") for e in image.locators if e["platform"] in ("W2ku", "Wi2k")),
            None,
        )
    return None


def plan_reparent(
    child: str,
    parent: str,
    out: str,
    *,
    ignore_id_mismatch: bool = False,
    parent_windows_path: str | None = None,
) -> ReparentPlan:
    """Decide whether ``parent`` may become the parent of ``child`` in a copy at ``out``.

    Raises :class:`InputError` when refused: the child is no readable differencing disk
    (``error.reparent.not-differencing``), ``out``'s name says another format or its folder
    cannot be written, the parent is unreadable (``error.reparent.parent-unreadable``), of
    another format (``error.reparent.format``), size or sector size
    (``error.reparent.geometry``), or identity (``error.reparent.id-mismatch``, unless
    ``ignore_id_mismatch``)."""
    from hvrescue.io.atomic import check_output_folder
    from hvrescue.recover.names import check_output_name
    from hvrescue.vdisk.detect import open_image

    kid = open_image(child)
    try:
        if not kid.readable or not kid.is_differencing or kid.parent_ref is None:
            raise InputError("error.reparent.not-differencing", path=child)
        ref = kid.parent_ref
        kid_format = kid.format
        old_abs = _old_absolute(kid)
        size, sector = kid.size, kid.logical_sector_size
    finally:
        kid.close()
    # Before the parent is read: a name or folder that cannot take the copy is refused first.
    check_output_name(out, kid_format, like=child)
    check_output_folder(out)
    par = open_image(parent)
    try:
        if not par.readable or par.identity is None:
            raise InputError("error.reparent.parent-unreadable", path=parent)
        identity = par.identity
        parent_time = par.timestamp or 0
        if par.format != kid_format:
            raise InputError(
                "error.reparent.format",
                parent=parent,
                parent_format=par.format,
                child_format=kid_format,
            )
        if par.size != size or par.logical_sector_size != sector:
            raise InputError(
                "error.reparent.geometry",
                parent=parent,
                parent_size=par.size,
                child_size=size,
                parent_sector=par.logical_sector_size,
                child_sector=sector,
            )
    finally:
        par.close()
    wanted = {x.lower() for x in (ref.linkage, ref.linkage_alternate) if x}
    ignored = identity.lower() not in wanted
    if ignored and not ignore_id_mismatch:
        raise InputError(
            "error.reparent.id-mismatch",
            parent=parent,
            found=identity,
            expected=ref.linkage or "",
        )
    return ReparentPlan(
        child=child,
        parent=parent,
        out=out,
        format=kid_format,
        parent_identity=identity,
        parent_timestamp=parent_time,
        expected_identity=ref.linkage or "",
        identity_ignored=ignored,
        locators=locator_paths(out, parent, parent_windows_path, old_abs),
    )


@dataclass
class ReparentResult:
    """The copy written, where its chain now leads, and how it checks."""

    plan: ReparentPlan
    changes: list[Change]
    parent_found: str | None  # the parent the new chain resolves to (None: it does not)
    findings: list[Finding] = field(default_factory=list)
    gaps: dict[str, Any] | None = None

    @property
    def out(self) -> str:
        return self.plan.out

    @property
    def linked(self) -> bool:
        """The copy's chain resolves to the parent that was asked for."""
        found = self.parent_found
        return found is not None and os.path.realpath(found) == os.path.realpath(self.plan.parent)

    @property
    def map(self) -> str | None:
        return gap_map(self.gaps)

    @property
    def status(self) -> str:
        """``written-with-gaps``, ``clean`` (linked and no findings) or ``findings``."""
        if self.gaps:
            return "written-with-gaps"
        return "clean" if self.linked and not self.findings else "findings"

    @property
    def ok(self) -> bool:
        return self.status == "clean"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "map": self.map,
            "out": self.out,
            "parent": self.plan.parent,
            "parent_found": self.parent_found,
            "identity_ignored": self.plan.identity_ignored,
            "warnings": [w.as_dict() for w in self.plan.warnings],
            "changes": [ch.as_dict() for ch in self.changes],
            "findings": [f.as_dict() for f in self.findings],
        }


def write_reparented(
    plan: ReparentPlan, allow_gaps: bool = False, argv: list[str] | None = None
) -> list[Change]:
    """Write the copy a plan describes; the changes made."""
    if plan.format == "vhd":
        from hvrescue.recover.vhd_reparent import reparent_vhd

        return reparent_vhd(
            plan.child,
            plan.out,
            parent_identity=plan.parent_identity,
            parent_timestamp=plan.parent_timestamp,
            relative=plan.locators.relative,
            absolute=plan.locators.absolute,
            allow_gaps=allow_gaps,
            argv=argv,
        )
    from hvrescue.recover.rewrite import NewParent, rewrite_vhdx

    return rewrite_vhdx(
        plan.child,
        plan.out,
        parent=NewParent(
            plan.parent_identity, plan.locators.relative, plan.locators.absolute or ""
        ),
        allow_gaps=allow_gaps,
        argv=argv,
    )


def resolved_parent(path: str) -> str | None:
    """The file the chain of ``path`` resolves as its immediate parent (None: none)."""
    from hvrescue.vdisk.chain import resolve_chain

    chain = resolve_chain(path)
    try:
        link = chain.links[0] if chain.links else None
        return link.parent.path if link is not None and link.parent is not None else None
    finally:
        chain.close()


def reparent(
    child: str,
    parent: str,
    out: str,
    *,
    ignore_id_mismatch: bool = False,
    parent_windows_path: str | None = None,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
) -> ReparentResult:
    """A copy of ``child`` at ``out`` whose parent locator points at ``parent``, checked.

    Refusals raise as :func:`plan_reparent` says; undefined content in the child raises
    :class:`~hvrescue.errors.UndefinedContentError` unless ``allow_gaps``."""
    plan = plan_reparent(
        child,
        parent,
        out,
        ignore_id_mismatch=ignore_id_mismatch,
        parent_windows_path=parent_windows_path,
    )
    changes = write_reparented(plan, allow_gaps, argv)
    return ReparentResult(
        plan, changes, resolved_parent(out), findings_after(out), gaps_written(changes)
    )
