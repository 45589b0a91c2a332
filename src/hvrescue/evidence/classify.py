"""What an item of evidence is, decided once, from its name and its first bytes.

Two answers: ``content`` (what the bytes are, by signature: a disk, an EVTX log, a zip, text,
binary, nothing) and ``kind`` (what the item is as evidence, which decides its reader: a
virtual disk, a VM configuration, a VM runtime file, an event log, text, an archive, a
collected bundle, binary, empty). Text is told apart further (an event export as XML or CSV,
or command outputs and pasted events) by :func:`text_format` on its first decoded piece.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hvrescue.evidence.text import looks_binary

# kinds
DISK = "disk"
VM_CONFIG = "vm-config"
VM_RUNTIME = "vm-runtime"
VM_FOLDER = "vm-folder"
FOLDER = "folder"
EVENT_LOG = "event-log"
TEXT = "text"  # command outputs and pasted events (event exports are EVENT_LOG once read)
ARCHIVE = "archive"
BUNDLE = "bundle"
BINARY = "binary"
EMPTY = "empty"

# content, by signature
C_DISK, C_EVTX, C_ZIP, C_TEXT, C_BINARY, C_EMPTY = "disk", "evtx", "zip", "text", "binary", "empty"
C_JOURNAL = "journal"

EVTX_MAGIC = b"ElfFile\0"  # the EVTX file header signature
JOURNAL_MAGIC = b"LPKSHHRH"  # a systemd journal file's header signature
ZIP_MAGIC = b"PK\x03\x04"  # a local file header: how every zip we can read begins
DISK_SIGNATURES = (b"vhdxfile", b"conectix")  # VHDX file identifier, VHD footer copy
DISK_SUFFIXES = (".vhdx", ".avhdx", ".vhd", ".avhd")
# Hyper-V's runtime files (saved state, guest state, memory): never disks nor configurations
# (the same list as hvrescue.preserve.plan.RUNTIME_SUFFIXES).
RUNTIME_SUFFIXES = (".vmrs", ".vmgs", ".bin", ".vsv", ".vmrs.tmp")
CONFIG_SUFFIXES = (".vmcx",)
# A VHD Set's own file: no published layout, never read as a disk (hvrescue.hyperv.vhds).
VHD_SET_SUFFIXES = (".vhds",)
# The file at the top of a bundle a collector wrote (a folder, or a zip). A collector that
# writes one adds its reader where the walker meets BUNDLE items; until then a bundle's files
# are read one by one like any folder's.
BUNDLE_MANIFESTS = ("hvrescue-bundle.json",)

# What is read of every file to classify it: signatures, binary or text, an XML root.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class Classification:
    kind: str
    format: str | None  # vhdx/vhd, xml/vmcx, evtx, zip
    content: str


def content_of(head: bytes, size: int) -> str:
    if size == 0 or not head:
        return C_EMPTY
    if head.startswith(DISK_SIGNATURES):
        return C_DISK
    if head.startswith(EVTX_MAGIC):
        return C_EVTX
    if head.startswith(JOURNAL_MAGIC):
        return C_JOURNAL
    if head.startswith(ZIP_MAGIC):
        return C_ZIP
    if looks_binary(head):
        return C_BINARY
    return C_TEXT


def _is_config_xml(head: bytes) -> bool:
    # As hvrescue.vmconfig.looks_like_config: the root of a Hyper-V XML configuration.
    sample = head[:4096]
    return any(
        "<configuration" in sample.decode(encoding, errors="ignore")
        for encoding in ("utf-16", "utf-8")
    )


def classify(
    name: str, head: bytes, size: int, disk_probe: Callable[[], str | None] | None = None
) -> Classification:
    """``name`` (any path; only its end counts), the first bytes, the size; ``disk_probe``
    looks for a disk's signatures beyond the head (a fixed VHD's footer at the end, the VHDX
    headers at 64 KiB), for files on disk."""
    lower = name.lower()
    content = content_of(head, size)
    if lower.endswith(RUNTIME_SUFFIXES):
        return Classification(VM_RUNTIME, None, content)
    if lower.endswith(VHD_SET_SUFFIXES):
        return Classification(EMPTY if content == C_EMPTY else BINARY, "vhds", content)
    if content == C_DISK:
        return Classification(DISK, "vhdx" if head.startswith(b"vhdxfile") else "vhd", content)
    if lower.endswith(DISK_SUFFIXES):
        probed = disk_probe() if disk_probe is not None and size else None
        return Classification(DISK, probed, content)
    if content == C_BINARY and disk_probe is not None:
        probed = disk_probe()
        if probed is not None:
            return Classification(DISK, probed, C_DISK)
    if lower.endswith(CONFIG_SUFFIXES):
        return Classification(VM_CONFIG, "vmcx", content)
    if lower.endswith(".xml") and _is_config_xml(head):
        return Classification(VM_CONFIG, "xml", content)
    if content == C_EVTX:
        return Classification(EVENT_LOG, "evtx", content)
    if content == C_JOURNAL:
        return Classification(EVENT_LOG, "journal", content)
    if content == C_ZIP:
        return Classification(ARCHIVE, "zip", content)
    if content == C_TEXT:
        return Classification(TEXT, None, content)
    return Classification(EMPTY if content == C_EMPTY else BINARY, None, content)


def is_bundle_manifest(name: str) -> bool:
    return name.replace("\\", "/").lower() in BUNDLE_MANIFESTS


# ---------------------------------------------------------------- text formats
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
# Event Viewer's CSV column headers (English, Japanese) -> our field names.
VIEWER_HEADERS = {
    "level": "level",
    "date and time": "time",
    "source": "source",
    "event id": "event_id",
    "task category": "task",
    "レベル": "level",
    "日付と時刻": "time",
    "ソース": "source",
    "イベント id": "event_id",
    "タスクのカテゴリ": "task",
}
# Columns every ``Get-WinEvent | Export-Csv`` has.
POWERSHELL_KEYS = {"id", "providername", "timecreated", "recordid"}


def looks_like_event_xml(text: str) -> bool:
    """An export starts with markup; a copied event whose text ends in its XML does not."""
    head = text[:4096].lstrip("\ufeff \t\n")
    return head.startswith("<") and "<Event" in head and EVENT_NS in head


def looks_like_event_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 2)
    line = first[1] if first and first[0].startswith("#TYPE") and len(first) > 1 else first[0]
    names = {h.strip().strip('"').lower() for h in line.split(",")}
    viewer = sum(1 for n in names if n in VIEWER_HEADERS)
    return viewer >= 4 or names >= POWERSHELL_KEYS


def text_format(text: str) -> str:
    """``xml`` or ``csv`` (event exports) or ``text`` (command outputs, pasted events), from
    the start of a decoded text."""
    if looks_like_event_xml(text):
        return "xml"
    if looks_like_event_csv(text):
        return "csv"
    return "text"
