"""Differencing chains: find each parent, prove it is the right one, and say how it was found.

Order of search for a parent (MS-VHDX 2.6.2.6.1; VHD 2.2.5): the locator entries (relative path,
volume path, absolute Windows path; for VHD W2ru, W2ku and the parent's name), then the child's
own folder and every ``--search`` directory, matching candidates by identity only (VHDX
parent_linkage = the parent's DataWriteGuid, VHD parent unique id). A file at the located path
whose identity does not match is never used silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, FindingSink, Severity
from hvrescue.io.files import MISSING, OTHER, REGULAR, file_kind
from hvrescue.vdisk.detect import DISK_SUFFIXES, open_image
from hvrescue.vdisk.layer import PARENT_MISSING, ParentRef
from hvrescue.vdisk.locate import Searcher, candidate_paths, resolve_casefold

if TYPE_CHECKING:
    from hvrescue.vdisk.detect import AnyImage  # the readers imported when a file is opened

MAX_DEPTH = 128
MAX_SKIPPED_FINDINGS = 20


@dataclass
class Attempt:
    kind: str
    locator: str
    path: str | None
    result: str  # "match", "mismatch", "absent", "not-a-disk", "cycle", "unusable"
    identity: str | None = None


@dataclass
class Link:
    child: AnyImage
    parent: AnyImage | None
    ref: ParentRef
    found_via: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    identity_ok: bool | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "child": self.child.path,
            "parent": self.parent.path if self.parent else None,
            "expected_identity": self.ref.linkage,
            "expected_identity_alternate": self.ref.linkage_alternate,
            "parent_identity": self.parent.identity if self.parent else None,
            "identity_ok": self.identity_ok,
            "found_via": self.found_via,
            "locators": [{"kind": k, "value": v} for k, v in self.ref.paths],
            "attempts": [a.__dict__ for a in self.attempts],
        }


@dataclass
class Chain:
    layers: list[AnyImage]
    links: list[Link]
    findings: list[Finding]

    @property
    def complete(self) -> bool:
        return (
            bool(self.layers)
            and not self.layers[-1].is_differencing
            and all(layer.readable for layer in self.layers)
        )

    def missing_parents(self) -> list[tuple[str, str]]:
        """``(child, parent)`` for each link whose parent was not found or cannot be read:
        ``parent`` is the file found, else the first path a locator led to, else the first
        locator's text ("-" when the child names none)."""
        out: list[tuple[str, str]] = []
        for link in self.links:
            if link.parent is not None:
                if not link.parent.readable:
                    out.append((link.child.path, link.parent.path))
                continue
            where = next((a.path for a in link.attempts if a.path), None)
            out.append((link.child.path, where or next((v for _k, v in link.ref.paths), "-")))
        last = self.layers[-1] if self.layers else None
        if (
            last is not None
            and last.readable
            and last.is_differencing
            and all(link.child is not last for link in self.links)
        ):
            out.append((last.path, "-"))  # its parent was never looked for (none named)
        return out

    def all_findings(self) -> list[Finding]:
        out: list[Finding] = []
        for layer in self.layers:
            out.extend(layer.findings)
        out.extend(self.findings)
        return out

    def close(self) -> None:
        for layer in self.layers:
            layer.close()
        for link in self.links:
            if link.parent is not None and link.parent not in self.layers:
                link.parent.close()


def missing_parents_of(
    path: str, search: list[str] | None = None, gaps: list[Any] | None = None
) -> list[tuple[str, str]]:
    """:meth:`Chain.missing_parents` of the chain ending at ``path`` (headers only); with
    ``gaps`` (undefined ranges), only when one of them is left to a missing parent."""
    if gaps is not None and not any(getattr(g, "cause", None) == PARENT_MISSING for g in gaps):
        return []
    chain = resolve_chain(path, search)
    try:
        return chain.missing_parents()
    finally:
        chain.close()


def _matches(ref: ParentRef, identity: str | None) -> bool:
    if identity is None:
        return False
    wanted = {x.lower() for x in (ref.linkage, ref.linkage_alternate) if x}
    return identity.lower() in wanted


def resolve_chain(
    path: str,
    search: list[str] | None = None,
    max_depth: int = MAX_DEPTH,
    leaf: AnyImage | None = None,
) -> Chain:
    """Open ``path`` and every ancestor it names. Never raises for a broken chain. ``leaf``:
    ``path`` already open (not parsed again: a VHDX's replayed log is held once)."""
    leaf = leaf if leaf is not None else open_image(path)
    layers: list[AnyImage] = [leaf]
    links: list[Link] = []
    sink = FindingSink(path)
    searcher = Searcher(list(search or []))
    seen = {os.path.realpath(path)}
    current = leaf
    while current.readable and current.is_differencing:
        ref = current.parent_ref
        if ref is None:
            break
        if len(layers) > max_depth:
            sink.add("chain.too-deep", Severity.ERROR, None, depth=len(layers), limit=max_depth)
            break
        link = _find_parent(current, ref, searcher, seen, sink)
        links.append(link)
        if link.parent is None:
            break
        _validate_link(link, sink)
        layers.append(link.parent)
        seen.add(os.path.realpath(link.parent.path))
        current = link.parent
    return Chain(layers, links, sink.items)


def _find_parent(
    child: AnyImage, ref: ParentRef, searcher: Searcher, seen: set[str], chain_sink: FindingSink
) -> Link:
    link = Link(child, None, ref)
    sink = FindingSink(child.path)
    mismatched: list[Attempt] = []
    tried: set[str] = set()
    for kind, text in ref.paths:
        for candidate in candidate_paths(child.path, kind, text):
            real = os.path.realpath(candidate)
            if real in tried:
                continue
            tried.add(real)
            if real in seen:
                link.attempts.append(Attempt(kind, text, candidate, "cycle"))
                sink.add("chain.cycle", Severity.ERROR, None, parent=candidate, locator=kind)
                chain_sink.items.extend(sink.items)
                return link
            attempt = _try_candidate(kind, text, candidate, ref, searcher)
            link.attempts.append(attempt)
            if attempt.result == "match":
                return _accept(link, candidate, kind, sink, chain_sink)
            if attempt.result == "mismatch":
                mismatched.append(attempt)
    # Not where the locators point: look by identity in the child's folder and the search dirs.
    child_dir = os.path.dirname(os.path.abspath(child.path))
    try:
        names = sorted(os.listdir(child_dir))
    except OSError:
        names = []  # an unlistable folder only means no candidates there
    local = [os.path.join(child_dir, n) for n in names if n.lower().endswith(DISK_SUFFIXES)]
    special: list[tuple[str, str]] = []
    for candidate in local + searcher.files():
        real = os.path.realpath(candidate)
        if real in tried or real in seen:
            continue
        tried.add(real)
        what = file_kind(candidate)
        if what not in (REGULAR, OTHER):
            special.append((candidate, what))  # never opened: a FIFO would block
            continue
        probe = searcher.identity(candidate)
        if probe is not None and _matches(ref, probe[1]):
            link.attempts.append(Attempt("search", candidate, candidate, "match", probe[1]))
            where = [a.path or a.locator for a in link.attempts[:-1]] or [v for _k, v in ref.paths]
            sink.add(
                "chain.parent.found-elsewhere",
                Severity.WARNING,
                None,
                parent=candidate,
                expected=", ".join(str(w) for w in where) or "-",
            )
            return _accept(link, candidate, "search", sink, chain_sink)
    for attempt in mismatched:
        sink.add(
            "chain.parent.linkage-mismatch",
            Severity.ERROR,
            None,
            parent=attempt.path,
            expected=ref.linkage,
            found=attempt.identity,
        )
    for attempt in link.attempts:
        # The located file is there but cannot be the parent: say what is wrong with it.
        if attempt.result == "empty" and attempt.path:
            chain_sink.items.append(Finding("file.empty", Severity.CRITICAL, attempt.path, 0))
        elif attempt.result in ("not-a-disk", "unreadable") or attempt.result.startswith(
            "not-a-file"
        ):
            sink.add(
                "chain.parent.unusable",
                Severity.ERROR,
                None,
                parent=attempt.path,
                reason=attempt.result,
            )
    # Named like a disk but not a regular file: said when it matters (no parent found).
    for candidate, what in special[:MAX_SKIPPED_FINDINGS]:
        sink.add("chain.search.skipped", Severity.INFO, None, candidate=candidate, kind=what)
    if not mismatched:
        sink.add(
            "chain.parent.missing",
            Severity.ERROR,
            None,
            expected=ref.linkage,
            locators="; ".join(f"{k}={v}" for k, v in ref.paths) or "-",
        )
    chain_sink.items.extend(sink.items)
    return link


def _try_candidate(
    kind: str, text: str, candidate: str, ref: ParentRef, searcher: Searcher
) -> Attempt:
    what = file_kind(candidate)
    if what == MISSING:
        return Attempt(kind, text, candidate, "absent")
    if what not in (REGULAR, OTHER):
        # A FIFO, socket, device or folder where the locator points: said, never opened.
        return Attempt(kind, text, candidate, f"not-a-file ({what})")
    if not os.path.isfile(candidate):
        return Attempt(kind, text, candidate, "absent")
    try:
        if os.path.getsize(candidate) == 0:
            return Attempt(kind, text, candidate, "empty")
    except OSError:
        return Attempt(kind, text, candidate, "unreadable")
    probe = searcher.identity(candidate)
    if probe is None:
        return Attempt(kind, text, candidate, "not-a-disk")
    if _matches(ref, probe[1]):
        return Attempt(kind, text, candidate, "match", probe[1])
    return Attempt(kind, text, candidate, "mismatch", probe[1])


def _accept(
    link: Link, candidate: str, via: str, sink: FindingSink, chain_sink: FindingSink
) -> Link:
    try:
        link.parent = open_image(candidate)
    except HvrescueError as exc:
        link.attempts.append(Attempt(via, candidate, candidate, "unusable"))
        sink.add("chain.parent.unusable", Severity.ERROR, None, parent=candidate, reason=exc.key)
        chain_sink.items.extend(sink.items)
        return link
    link.found_via = via
    link.identity_ok = True
    chain_sink.items.extend(sink.items)
    return link


def _validate_link(link: Link, sink: FindingSink) -> None:
    child, parent, ref = link.child, link.parent, link.ref
    assert parent is not None
    if parent.format != child.format:
        sink.add(
            "chain.format-mismatch",
            Severity.WARNING,
            None,
            child=child.path,
            parent=parent.path,
            child_format=child.format,
            parent_format=parent.format,
        )
    if parent.readable and parent.size != child.size:
        sink.add(
            "chain.size-mismatch",
            Severity.ERROR,
            None,
            child=child.path,
            parent=parent.path,
            child_size=child.size,
            parent_size=parent.size,
        )
    if parent.readable and parent.logical_sector_size != child.logical_sector_size:
        sink.add(
            "chain.sector-size-mismatch",
            Severity.ERROR,
            None,
            child=child.path,
            parent=parent.path,
            child_sector=child.logical_sector_size,
            parent_sector=parent.logical_sector_size,
        )
    # A zero parent time stamp means the writer did not record one (qemu, some converters).
    if ref.timestamp and parent.timestamp is not None and (ref.timestamp != parent.timestamp):
        sink.add(
            "chain.parent.timestamp-mismatch",
            Severity.WARNING,
            None,
            child=child.path,
            parent=parent.path,
            expected=ref.timestamp,
            found=parent.timestamp,
        )
    if not parent.readable:
        sink.add(
            "chain.parent.unusable", Severity.ERROR, None, parent=parent.path, reason="damaged"
        )


__all__ = [
    "Attempt",
    "Chain",
    "Link",
    "candidate_paths",
    "missing_parents_of",
    "resolve_casefold",
    "resolve_chain",
]
