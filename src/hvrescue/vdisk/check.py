"""Integrity check of one disk file and its whole chain, as a plain result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, NotADiskError
from hvrescue.findings import Finding, Severity
from hvrescue.vdisk.chain import resolve_chain
from hvrescue.vdisk.disk import CHUNK, Disk, merge_gaps
from hvrescue.vdisk.layer import BITMAP_CONTRADICTS, BITMAP_LOST, Gap

# Findings of one kind per file listed one by one; more are counted in one summary finding.
MAX_GAP_FINDINGS = 20


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
    undefined: list[dict[str, Any]] = field(default_factory=list)

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
        if leaf.readable:
            disk = Disk(chain, allow_incomplete=True)
            gaps = disk.undefined()
            if deep:
                gaps = gaps + _read_everything(disk)
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
            gaps = merge_gaps(gaps)
            result.undefined = [g.as_dict() for g in gaps]
            chain.findings.extend(gap_findings(disk, gaps))
        result.findings = dedupe(chain.all_findings())
    finally:
        chain.close()
    return result


def _read_everything(disk: Disk) -> list[Gap]:
    """Read every range that may hold data; the undefined ranges met (read errors included).
    Those are what the layers hold (``extents``), bounded by the files' sizes: the undefined
    ranges the metadata names hold nothing to read, however large the disk claims to be."""
    found: list[Gap] = []
    for lo, n in disk.extents():
        for pos in range(lo, lo + n, CHUNK):
            _data, gaps = disk.read_checked(pos, min(CHUNK, lo + n - pos))
            found.extend(gaps)
    return found


def gap_findings(disk: Disk, gaps: list[Gap]) -> list[Finding]:
    """Findings for undefined content: the sector bitmap ones per block (their own codes), and
    one ``disk.undefined`` for the whole disk, so that no undefined byte goes unreported."""
    out: list[Finding] = []
    if not gaps:
        return out
    layers = {layer.path: layer for layer in disk.layers}
    per_code: dict[tuple[str, str], int] = {}
    for g in gaps:
        layer = layers.get(g.path)
        block_size = int(getattr(layer, "block_size", 0) or 0)
        if g.cause not in (BITMAP_CONTRADICTS, BITMAP_LOST) or not block_size:
            continue
        code = "vhd.bitmap.inconsistent" if g.cause == BITMAP_CONTRADICTS else "vhdx.bitmap.lost"
        if layer is not None and layer.format == "vhd" and g.cause == BITMAP_LOST:
            code = "vhd.bitmap.lost"
        n = per_code.get((code, g.path), 0) + 1
        per_code[(code, g.path)] = n
        if n > MAX_GAP_FINDINGS:
            continue
        params: dict[str, Any] = {
            "block": g.offset // block_size,
            "virtual_offset": g.offset,
            "length": g.length,
        }
        if g.cause == BITMAP_CONTRADICTS:
            params["sectors"] = -(-g.length // 512)
        else:
            params["problem"] = "lost"
        out.append(Finding(code, Severity.ERROR, g.path, None, params))
    for (code, path), n in per_code.items():
        if n > MAX_GAP_FINDINGS:
            out.append(
                Finding(
                    code,
                    Severity.ERROR,
                    path,
                    None,
                    {"count": n - MAX_GAP_FINDINGS, "of": code},
                    key="finding.more",
                )
            )
    causes = sorted({g.cause for g in gaps})
    first = gaps[0]
    out.append(
        Finding(
            "disk.undefined",
            Severity.ERROR,
            disk.layers[0].path,
            None,
            {
                "count": len(gaps),
                "bytes": sum(g.length for g in gaps),
                "causes": ", ".join(causes),
                "first": f"{first.offset:#x}+{first.length:#x} ({first.cause}, {first.path})",
            },
        )
    )
    return out
