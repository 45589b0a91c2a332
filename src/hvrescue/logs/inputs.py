"""Per-input recognition: for every file or zip member of the evidence, whether anything in it was
recognised, by which readers, how many facts it gave, and if nothing, why, so a person sees at once
what a diagnosis did not look at.

Each entry: ``path``, ``recognised``, ``formats`` (the layouts or parsers that gave facts:
"evtx", "viewer-text", "systeminfo", "signature", "signal" ...), ``facts``, ``reason`` (a
code, when nothing was recognised: ``no-known-content``, ``binary``, ``disk-image``,
``too-large``, ``empty-log``, ``damaged``, or a skipped reason such as ``not-regular``),
``detail`` and ``signals_only`` (only free-text signals, of low confidence, were found).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.facts.model import Fact, FactSet, Skipped, Unrecognised
from hvrescue.logs.commands import sc

# The reader behind each kind of fact that carries no ``format`` of its own.
KIND_FORMATS = {
    "vss_writer": "vssadmin",
    "vss_writer_list": "vssadmin",
    "vss_provider": "vssadmin",
    "vss_provider_list": "vssadmin",
    "process": "tasklist",
    "service_config": "sc",
    "service_status": "sc",
    "service_security": "sc",
    "package": "dism",
    "hotfix": "hotfix",
    "system_info": "systeminfo",
    "bcd_entry": "bcdedit",
    "vm": "powershell",
    "vhd": "powershell",
    "checkpoint": "powershell",
    "vm_disk": "powershell",
    "volume": "powershell",
    "ps_error": "powershell-error",
    "dialog": "dialog",
    "signal": "signal",
    "disk_check": "virtual-disk",
    "bitlocker_volume": "manage-bde",
    "acl": "icacls",
    "vm_host": "powershell",
    "minifilter": "fltmc",
    "storage_sectors": "fsutil",
    "backup_error": "backup-log",
    "servicing_log": "cbs-log",
    "cluster_object": "powershell",
    "chkdsk_result": "chkdsk",
    "integration_service": "powershell",
    "vm_replication": "powershell",
    "storage_object": "powershell",
    "crash_analysis": "windbg",
    "boot_failure": "boot-summary",
    "diskpart_result": "diskpart",
    "vdisk_detail": "diskpart",
    "wbadmin_result": "wbadmin",
    "linux_log_event": "linux-log",
}
# Facts about a file rather than read from it.
ABOUT_FILES = ("finding", "evidence_problem")
EVTX = "evtx"
# Kinds whose ``source`` attribute names the command that printed them.
SOURCED = ("hotfix", "system_info", "service_status", "minifilter")


def fact_format(fact: Fact) -> str:
    """The layout or reader a fact came from."""
    a = fact.attributes
    if fact.kind == "disk_check":
        return "virtual-disk"  # its "format" is the disk's (vhdx, vhd), not a reader's
    fmt = a.get("format")
    if isinstance(fmt, str) and fmt:
        return fmt
    if fact.kind == "backup_error" and isinstance(a.get("tool"), str):
        return str(a["tool"])
    if fact.kind in SOURCED and isinstance(a.get("source"), str) and a["source"]:
        return str(a["source"])  # "systeminfo", "get-hotfix", "wmic-qfe", "msinfo32" ...
    return KIND_FORMATS.get(fact.kind, fact.kind)


def recognition(
    found: FactSet,
    items: Iterable[tuple[str, str]],
    facts: list[Fact] | None = None,
    disks: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The entries for ``items`` (path, content class) and for every path ``found`` lists as
    unrecognised or skipped, in the order of the walk."""
    facts = found.facts if facts is None else facts
    per_path: dict[str, list[Fact]] = {}
    for fact in facts:
        per_path.setdefault(fact.provenance.path, []).append(fact)
    unrecognised: dict[str, Unrecognised] = {}
    for u in found.unrecognised:
        unrecognised.setdefault(u.path, u)
    skipped: dict[str, Skipped] = {}
    for s in found.skipped:
        skipped.setdefault(s.path, s)
    problems = {p.path for p in found.problems}
    checked = {os.path.realpath(d) for d in disks}
    order: list[tuple[str, str | None]] = []
    known: set[str] = set()
    for path, content in items:
        if path not in known:
            known.add(path)
            order.append((path, content))
    for path in list(unrecognised) + list(skipped):
        if path not in known:
            known.add(path)
            order.append((path, None))
    return [
        _entry(path, content, per_path.get(path, []), unrecognised, skipped, problems, checked)
        for path, content in order
    ]


def _entry(
    path: str,
    content: str | None,
    facts: list[Fact],
    unrecognised: dict[str, Any],
    skipped: dict[str, Any],
    problems: set[str],
    checked: set[str],
) -> dict[str, Any]:
    disk_checks = [f for f in facts if f.kind == "disk_check"]
    # What other readers say about a file (an inventory's "empty file", a problem) is not
    # something recognised in it.
    facts = [f for f in facts if f.kind not in ABOUT_FILES]
    # Loose signals last: they are found in any text; the formats before them say what it is.
    formats = sorted(Counter(fact_format(f) for f in facts), key=lambda f: f == "signal")
    entry: dict[str, Any] = {
        "path": path,
        "recognised": bool(facts),
        "formats": formats,
        "facts": len(facts),
        "reason": None,
        "detail": None,
        "signals_only": bool(facts) and all(f.kind == "signal" for f in facts),
    }
    if not path.count("!/") and os.path.realpath(path) in checked:
        if any(f.attributes.get("status") == "error" for f in disk_checks):
            entry.update(recognised=False, reason="disk-unreadable", formats=[], facts=0)
            entry["detail"] = next((f.attributes.get("error") for f in disk_checks), None)
            return entry
        entry["recognised"] = True
        if "virtual-disk" not in formats:
            entry["formats"] = ["virtual-disk", *formats]
        return entry
    u, s = unrecognised.get(path), skipped.get(path)
    if facts:
        if s is not None:  # read in part: the facts stand, the rest was not read
            entry["detail"] = s.detail or s.reason
        return entry
    if u is not None:
        entry["reason"], entry["detail"] = u.reason, u.detail
    elif s is not None:
        entry["reason"], entry["detail"] = s.reason, s.detail
    elif path in problems:
        entry["reason"] = "damaged"
    elif content == EVTX:
        entry["reason"] = "empty-log"
    else:
        entry["reason"] = "no-known-content"
    return entry


@dataclass
class Collected(FactSet):
    """A fact set that also remembers each item read, in the order of the walk: (path, content
    class), for the per-input recognition list (``inputs()``)."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def inputs(
        self, facts: list[Fact] | None = None, disks: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """For every input file or member: recognised or not, by which formats, how many facts,
        and why not (``facts``: all facts of a run, when more than this set's; ``disks``: the
        disk images the disk engine read)."""
        return recognition(self, self.items, facts, disks)


def label_services(facts: list[Fact]) -> list[Fact]:
    """Saved `sc sdshow` outputs labelled only by their file name, named again now that the
    whole evidence is known: a file-name word that is a service some other fact names wins."""
    named = {
        str(f.attributes["service_name"])
        for f in facts
        if f.kind in ("service_config", "service_status", "process")
        and f.attributes.get("service_name")
    }
    for f in facts:
        if f.kind == "process":
            named.update(str(s) for s in f.attributes.get("services") or [] if s)
    if not named:
        return facts
    out = []
    for f in facts:
        words = f.attributes.get("file_name_words")
        if f.kind == "service_security" and words:
            service = sc.service_from_words(list(words), named)
            if service != f.attributes.get("service_name"):
                f = Fact(f.kind, {**f.attributes, "service_name": service}, f.provenance)
        out.append(f)
    return out
