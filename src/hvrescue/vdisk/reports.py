"""What `info`, `chain`, `check` and `hash` report, as plain data for any caller.

Each function opens what it needs, decides what the answer is (complete or not, clean or not)
and closes it again; renderers (the CLI, a script) only show the result. Domain errors
(:class:`~hvrescue.errors.NotADiskError`, a missing parent...) are raised as they are.

    >>> report = chain_report("child.avhdx", search=["/evidence"])
    >>> report.complete, [row.link_state for row in report.rows()]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.findings import Finding, Severity
from hvrescue.vdisk.check import FileCheck, check_file, dedupe
from hvrescue.vdisk.layer import Gap


# ---------------------------------------------------------------- info
@dataclass
class InfoReport:
    path: str
    structures: dict[str, Any]
    findings: list[Finding]

    @property
    def format(self) -> str:
        return str(self.structures.get("format"))


def info_report(path: str) -> InfoReport:
    """Every structure of one disk file, with the findings met reading them, and Get-VHD's
    FragmentationPercentage, MinimumSize (through the chain) and Alignment
    (:mod:`hvrescue.vdisk.usage`)."""
    from hvrescue.vdisk.detect import open_image
    from hvrescue.vdisk.usage import usage

    image = open_image(path)
    try:
        structures = {**image.describe(), **usage(image).as_dict()}
        return InfoReport(path, structures, list(image.findings))
    finally:
        image.close()


# ---------------------------------------------------------------- chain
@dataclass(frozen=True)
class ChainRow:
    """One file of a chain, leaf first, with the link to its parent."""

    level: int
    path: str
    format: str
    virtual_size: int | None
    identity: str | None
    # "base" (no parent needed), "ok" (parent found, identity matches), "mismatch" (found,
    # another identity), "missing" (needs a parent, none found).
    link_state: str
    found_via: str | None


@dataclass
class ChainReport:
    path: str
    complete: bool
    layers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    findings: list[Finding]

    @property
    def broken(self) -> bool:
        """Incomplete, or a finding of error or worse."""
        return not self.complete or any(f.severity >= Severity.ERROR for f in self.findings)

    def rows(self) -> list[ChainRow]:
        out = []
        for i, layer in enumerate(self.layers):
            link = self.links[i] if i < len(self.links) else None
            if link is None:
                state, via = ("missing" if layer["differencing"] else "base"), None
            elif link["parent"] is None:
                state, via = "missing", None
            else:
                state = "ok" if link["identity_ok"] else "mismatch"
                via = link["found_via"]
            out.append(
                ChainRow(
                    i,
                    layer["path"],
                    layer["format"],
                    layer["virtual_size"],
                    layer["identity"],
                    state,
                    via,
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "complete": self.complete,
            "layers": self.layers,
            "links": self.links,
            "findings": [f.as_dict() for f in self.findings],
        }


def chain_report(path: str, search: list[str] | None = None) -> ChainReport:
    """The chain of ``path``: each file, each link, what was found where."""
    from hvrescue.vdisk.chain import resolve_chain

    ch = resolve_chain(path, search)
    try:
        layers = [
            {
                "path": layer.path,
                "format": layer.format,
                "readable": layer.readable,
                "virtual_size": layer.size if layer.readable else None,
                "logical_sector_size": layer.logical_sector_size,
                "differencing": layer.is_differencing,
                "identity": layer.identity,
            }
            for layer in ch.layers
        ]
        links = [link.describe() for link in ch.links]
        return ChainReport(path, ch.complete, layers, links, list(ch.findings))
    finally:
        ch.close()


# ---------------------------------------------------------------- check
@dataclass
class CheckReport:
    files: list[FileCheck]
    # Every finding once: a file named and also reached through a child's chain is listed once.
    findings: list[Finding]

    @property
    def status(self) -> str:
        """``error`` (a file could not be checked), ``findings`` (warning or worse), ``clean``."""
        if any(r.error is not None for r in self.files):
            return "error"
        if any(f.severity >= Severity.WARNING for f in self.findings):
            return "findings"
        return "clean"


def check_files(
    paths: list[str], search: list[str] | None = None, deep: bool = False
) -> CheckReport:
    """Integrity of each file and its whole chain (see :func:`hvrescue.vdisk.check.check_file`)."""
    results = [check_file(p, search, deep=deep) for p in paths]
    return CheckReport(results, dedupe([f for r in results for f in r.findings]))


# ---------------------------------------------------------------- hash
@dataclass
class HashReport:
    sha256: str | None  # None when SHA-256 was not asked for (``--hash blake3``)
    size: int
    chain: list[str]
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    undefined: list[Gap] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # every digest asked for, by name

    @property
    def complete(self) -> bool:
        """Every byte hashed is content: no read error, no undefined range."""
        return not self.unreadable and not self.undefined

    @property
    def undefined_bytes(self) -> int:
        return sum(g.length for g in self.undefined)

    def as_dict(self) -> dict[str, Any]:
        return {
            **({"sha256": self.sha256} if self.sha256 is not None else {}),
            "hashes": dict(self.hashes),
            "algorithms": list(self.hashes),
            "size": self.size,
            "complete": self.complete,
            "chain": self.chain,
            "unreadable": self.unreadable,
            "undefined": [g.as_dict() for g in self.undefined],
            "undefined_bytes": self.undefined_bytes,
            "findings": [f.as_dict() for f in self.findings],
        }


def hash_disk(
    path: str,
    search: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_gaps: bool = False,
    algorithms: tuple[str, ...] = ("sha256",),
) -> HashReport:
    """Digests (SHA-256 by default; ``algorithms`` in one pass) of the virtual content as the
    guest sees it (log replayed, through the chain); undefined ranges hash as zeros and are
    listed. ``progress(done, total)`` follows the bytes hashed. Undefined ranges far larger
    than the files are refused unless ``allow_gaps`` (see
    :func:`hvrescue.vdisk.disk.check_hash_cost`)."""
    from hvrescue.vdisk.digest import disk_digests
    from hvrescue.vdisk.disk import Disk

    with Disk.open(path, search, allow_incomplete=True) as disk:
        total, done = disk.size, 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        gaps: list[Gap] = []
        hashes = disk_digests(
            disk,
            algorithms or ("sha256",),
            step if progress is not None else None,
            gaps=gaps,
            allow_gaps=allow_gaps,
        )
        unreadable = [
            {"path": p, "offset": r.offset, "length": r.length, "errno": r.errno}
            for p, r in disk.bad_ranges
        ]
        return HashReport(
            hashes.get("sha256"),
            disk.size,
            [layer.path for layer in disk.layers],
            unreadable,
            gaps,
            list(disk.findings),
            hashes,
        )
