"""VHD Set (`.vhds`): the small file of a shared disk of a guest cluster, beside the `.avhdx`
files that hold its data (Windows Server 2016 and later).

Microsoft has published no layout of the `.vhds` file itself (docs/formats/vhds.md records what
public sources show and what stays unknown). So this module reads only what is certain: the
file's size and first bytes (its signature, whether it carries a VHDX identifier), the file
names written in it as UTF-16 text (with their offsets; names, not parsed structures), and the
`.avhdx` files beside it named after it, each identified by the disk engine. The layout itself
is reported as not understood, never guessed into snapshots or parents.
"""

from __future__ import annotations

import ntpath
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.reports import InfoReport

# Public descriptions put a `.vhds` at about 260 KB; reading more than this for names would
# be reading something that is not a VHD Set file as we know it.
MAX_SCAN = 8 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_NAMES = 256
MAX_SIBLINGS = 256
VHDX_IDENTIFIER = b"vhdxfile"
# A Windows path or file name ending in .avhdx/.vhdx, in UTF-16 LE as Windows writes names.
_NAME = re.compile(r"[^\x00-\x1f\"<>|?*]{1,260}?\.a?vhdx(?![a-z0-9])", re.IGNORECASE)
# Where a path starts (a drive or a UNC/device prefix): text before it is not part of it.
_ROOT = re.compile(r"[A-Za-z]:\\|\\\\")
# A bare file name: the run of characters file names are made of, up to the extension.
_BARE = re.compile(r"[\w .()\-{}\[\]~$#@&+,;=!'%]+\.a?vhdx$", re.IGNORECASE)


def _trimmed(text: str) -> str | None:
    root = _ROOT.search(text)
    if root is not None:
        return text[root.start() :]
    bare = _BARE.search(text)
    return bare.group(0).strip() if bare else None


@dataclass(frozen=True)
class TextReference:
    offset: int
    text: str
    found: bool  # a file of that name is beside the .vhds

    def as_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "text": self.text, "found_beside": self.found}


@dataclass(frozen=True)
class Sibling:
    name: str
    size: int
    format: str | None
    identity: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "format": self.format, "id": self.identity}


@dataclass
class VhdsReport:
    path: str
    size: int = 0
    signature: str = ""
    vhdx_identifier: bool = False
    scanned: int = 0
    references: list[TextReference] = field(default_factory=list)
    siblings: list[Sibling] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "vhds",
            "layout": "not-understood",
            "size": self.size,
            "signature": self.signature,
            "vhdx_identifier": self.vhdx_identifier,
            "scanned_bytes": self.scanned,
            "names_in_file": [r.as_dict() for r in self.references],
            "snapshot_files_beside": [s.as_dict() for s in self.siblings],
        }


def _printable(head: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in head)


def _scan(source: ReadOnlySource, limit: int) -> list[tuple[int, str]]:
    """UTF-16 LE names ending in .avhdx/.vhdx, at either byte parity, with their offsets;
    chunks overlap by the longest name so that none is cut in two."""
    overlap = 2 * 262
    found: dict[int, tuple[int, str]] = {}  # by end offset: a name cut at a chunk's start
    pos = 0  # is a suffix of the same name read whole in the chunk before
    while pos < limit and len(found) < MAX_NAMES:
        length = min(CHUNK + overlap, limit - pos)
        data = source.read(pos, length, tolerant=True)
        for parity in (0, 1):
            text = data[parity : parity + (len(data) - parity) // 2 * 2].decode(
                "utf-16-le", errors="replace"
            )
            for match in _NAME.finditer(text):
                name = _trimmed(match.group(0))
                end = pos + parity + 2 * match.end()
                if not name or "\ufffd" in name or len(found.get(end, (0, ""))[1]) >= len(name):
                    continue
                found[end] = (end - 2 * len(name), name)
        pos += CHUNK
    return sorted(found.values())[:MAX_NAMES]


def _siblings(path: str) -> list[Sibling]:
    """The `.avhdx` files in the same folder whose name starts with the set's own name."""
    from hvrescue.vdisk.detect import probe_identity

    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    out: list[Sibling] = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return out
    for name in names:
        lower = name.lower()
        if not (lower.endswith(".avhdx") and lower.startswith(stem)):
            continue
        full = os.path.join(folder, name)
        if not os.path.isfile(full):
            continue
        probe = probe_identity(full)
        out.append(
            Sibling(
                name,
                os.path.getsize(full),
                probe[0] if probe else None,
                probe[1] if probe else None,
            )
        )
        if len(out) >= MAX_SIBLINGS:
            break
    return out


def read_vhds(path: str) -> VhdsReport:
    report = VhdsReport(path)

    def add(code: str, severity: Severity, offset: int | None = None, **params: Any) -> None:
        report.findings.append(Finding(code, severity, path, offset, params))

    try:
        with ReadOnlySource(path) as source:
            report.size = source.size
            if source.size == 0:
                add("vhds.empty", Severity.ERROR, 0)
                return report
            head = source.read(0, 8, tolerant=True)
            report.signature = _printable(head)
            report.vhdx_identifier = head == VHDX_IDENTIFIER
            report.scanned = min(source.size, MAX_SCAN)
            names = _scan(source, report.scanned)
            if source.size > MAX_SCAN:
                add("vhds.scan-limited", Severity.INFO, MAX_SCAN, size=source.size)
    except HvrescueError as exc:
        add("vhds.unreadable", Severity.ERROR, None, detail=exc.key)
        return report
    folder = os.path.dirname(os.path.abspath(path))
    present = {n.lower() for n in os.listdir(folder)} if os.path.isdir(folder) else set()
    for offset, text in names:
        base = ntpath.basename(text).lower()
        report.references.append(TextReference(offset, text, base in present))
    report.siblings = _siblings(path)
    add("vhds.layout-unknown", Severity.INFO, 0)
    for ref in report.references:
        if not ref.found and ref.text.lower().endswith(".avhdx"):
            add("vhds.named-file-missing", Severity.WARNING, ref.offset, name=ref.text)
    return report


def info_report(path: str) -> InfoReport:
    report = read_vhds(path)
    return InfoReport(path, report.as_dict(), report.findings)
