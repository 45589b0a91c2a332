"""Integrity check of one disk file and its whole chain, as a plain result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, NotADiskError
from hvrescue.findings import Finding, Severity
from hvrescue.vdisk.chain import resolve_chain
from hvrescue.vdisk.disk import Disk


@dataclass
class FileCheck:
    path: str
    findings: list[Finding] = field(default_factory=list)
    error: HvrescueError | None = None
    format: str | None = None
    virtual_size: int | None = None
    chain: list[str] = field(default_factory=list)
    complete: bool = False
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if any(f.severity >= Severity.WARNING for f in self.findings):
            return "findings"
        return "clean"


def dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, int | None, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.path, f.offset, repr(sorted(f.params.items())))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def check_file(path: str, search: list[str] | None = None, deep: bool = False) -> FileCheck:
    """Structural findings of ``path`` and every file of its chain; with ``deep``, also read
    every allocated range so that unreadable ranges are found."""
    result = FileCheck(path)
    try:
        chain = resolve_chain(path, search)
    except NotADiskError as exc:
        result.error = exc
        code = "file.empty" if exc.key == "error.not-a-disk.empty" else "file.not-a-disk"
        result.findings.append(Finding(code, Severity.CRITICAL, path, 0))
        return result
    except HvrescueError as exc:
        result.error = exc
        return result
    try:
        leaf = chain.layers[0]
        result.format = leaf.format
        result.virtual_size = leaf.size if leaf.readable else None
        result.chain = [layer.path for layer in chain.layers]
        result.complete = chain.complete
        if deep and leaf.readable:
            disk = Disk(chain, allow_incomplete=True)
            for lo, n in disk.extents():
                for pos in range(lo, lo + n, 4 * 1024 * 1024):
                    disk.read(pos, min(4 * 1024 * 1024, lo + n - pos))
            for layer_path, bad in disk.bad_ranges:
                result.unreadable.append(
                    {
                        "path": layer_path,
                        "offset": bad.offset,
                        "length": bad.length,
                        "errno": bad.errno,
                    }
                )
                chain.findings.append(
                    Finding(
                        "io.read-error",
                        Severity.ERROR,
                        layer_path,
                        bad.offset,
                        {"length": bad.length, "errno": bad.errno},
                    )
                )
        result.findings = dedupe(chain.all_findings())
    finally:
        chain.close()
    return result
