"""Which disk and which VM an access-denied failure names (``denied_disk`` facts).

A post or a bundle often holds more than the failure: another VM's `icacls` output pasted for
comparison, a second VM in Get-VM, disk paths of healthy VMs. The grant a step gives must be for
the disk the failure could not open and for the VM that could not open it, so the failure's own
text decides: the disk paths on the lines that say access was denied (or, when no line does, in
the whole message), and the VM it names (``'NAME' failed to start``, ``'NAME': Failed to open``,
``(Virtual machine ID <GUID>)``); a VM named but without an id takes its id from a `vm` or
`vm_config` fact of the same name.

``denied_disk``: ``path`` (as the failure writes it), ``name`` and ``vm_name`` (the VM, or
None), ``vm_id`` (lower case, or None), ``source`` (the kind of the failure fact), with the
provenance of the failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hvrescue.facts.model import Fact

MAX_FAILURES = 1_000  # failure facts examined; a paste holds a handful
MAX_PATHS = 64  # disk paths taken from one failure
DENIED = re.compile(
    r"General access denied error|0x80070005|access (?:is )?denied|required security settings"
    r"|一般的なアクセス拒否エラー|アクセスが拒否されました|アクセス拒否|必要なセキュリティ設定"
    r"|Accès refusé|Zugriff verweigert",
    re.IGNORECASE,
)
DISK_PATH = re.compile(
    r"(?:[A-Za-z]:\\|\\\\[^\\\s'\"]+\\)[^'\"\r\n<>|?*]*?\.(?:a?vhdx?|iso)\b", re.IGNORECASE
)
VM_NAMED = re.compile(
    r"'([^'\r\n]{1,128})'\s*(?::|failed to|could not|was unable|は|の)"
    r"|state of '([^'\r\n]{1,128})'|「([^」\r\n]{1,128})」",
)
VM_ID = re.compile(
    r"(?:Virtual machine ID|仮想マシン ID|VM ID|ID de machine virtuelle"
    r"|ID des virtuellen Computers)"
    r"\s*[:：]?\s*\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})",
)


def _texts(fact: Fact) -> list[str]:
    a = fact.attributes
    keys = {
        "event": ("message",),
        "ps_error": ("message",),
        "dialog": ("instruction", "content", "expanded"),
        "backup_error": ("message",),
    }.get(fact.kind, ())
    out = [str(a[k]) for k in keys if isinstance(a.get(k), str)]
    data = a.get("data") if fact.kind == "event" else None
    if isinstance(data, dict):
        out += [v for v in data.values() if isinstance(v, str)]
    return out


def _vm_ids(facts: list[Fact]) -> dict[str, str]:
    """VM name (case-folded) → id, from Get-VM and the configurations."""
    ids: dict[str, str] = {}
    for fact in facts:
        if fact.kind not in ("vm", "vm_config"):
            continue
        name, vm_id = fact.attributes.get("name"), fact.attributes.get("vm_id")
        if isinstance(name, str) and isinstance(vm_id, str) and vm_id.strip():
            ids.setdefault(name.casefold(), vm_id.strip().strip("{}").lower())
    return ids


def _paths(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if DENIED.search(line)]
    found = [m.group(0) for line in lines for m in DISK_PATH.finditer(line)]
    if not found:
        found = [m.group(0) for m in DISK_PATH.finditer(text)]
    unique: list[str] = []
    for path in found:
        if path.casefold() not in {p.casefold() for p in unique}:
            unique.append(path)
    return unique[:MAX_PATHS]


def _vm_name(text: str) -> str | None:
    for m in VM_NAMED.finditer(text):
        name = next(g for g in m.groups() if g is not None).strip()
        if name and not DISK_PATH.search(name) and "\\" not in name:
            return name
    return None


def denied_disks(facts: Iterable[Fact]) -> list[Fact]:
    """One ``denied_disk`` per disk path an access-denied failure names."""
    facts = list(facts)
    failures = [f for f in facts if f.kind in ("event", "ps_error", "dialog", "backup_error")][
        :MAX_FAILURES
    ]
    ids: dict[str, str] | None = None
    out: list[Fact] = []
    for fact in failures:
        text = "\n".join(_texts(fact))
        if not text or not DENIED.search(text):
            continue
        paths = _paths(text)
        if not paths:
            continue
        name = _vm_name(text)
        found = VM_ID.search(text)
        vm_id = found.group(1).lower() if found else None
        if vm_id is None and name is not None:
            ids = _vm_ids(facts) if ids is None else ids
            vm_id = ids.get(name.casefold())
        for path in paths:
            attrs: dict[str, Any] = {
                "path": path,
                "name": name,
                "vm_name": name,
                "vm_id": vm_id,
                "source": fact.kind,
            }
            out.append(Fact("denied_disk", attrs, fact.provenance))
    return out
