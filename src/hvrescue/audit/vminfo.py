"""The VMs, their disks and checkpoints as Hyper-V's own cmdlets list them.

A `.vmcx` is read only with the optional AGPL extra ``hvrescue[vmcx]`` (docs/decisions.md): on a
plain install every modern VM's configuration stays unread, and with it which disks and which
checkpoints are whose. Hyper-V says it too: ``Get-VM``, ``Get-VMHardDiskDrive`` and
``Get-VMSnapshot``. Their outputs come from ``--vm-info`` files (ConvertTo-Json, Format-Table or
Format-List, English or Japanese, pasted or saved), from text files of the audited folders (a
collector's bundle keeps them), and on the Windows host from the cmdlets themselves, run
read-only through the collector's process runner with a time limit and an output cap.

The readers are the project's own (``logs.commands.powershell`` and ``pscmdlets``): facts of
kind ``vm``, ``vm_disk`` and ``checkpoint``. A JSON object's ``VMId`` is kept on the disk and
checkpoint facts (``vm_id``), so that two VMs of the same name stay apart.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from hvrescue import platform as plat
from hvrescue.audit.given import read_given
from hvrescue.evidence.text import decode_text, looks_binary
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs import repost
from hvrescue.logs.commands import powershell
from hvrescue.logs.textutil import Text

KINDS = frozenset({"vm", "vm_disk", "checkpoint"})
MAX_VM_INFO_FILE = 16 * 1024 * 1024  # Get-VM of a host of thousands of VMs stays far below
MAX_JSON_DOCUMENTS = 64  # ConvertTo-Json outputs appended to one file
MAX_OBJECTS = 100_000
TIMEOUT_S = 120
CAP = 16 * 1024 * 1024
_ENCODING = "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false); "
# What the audit runs on the host: each only lists (Get-*, Select-Object, ConvertTo-Json).
COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "get-vm",
        "Get-VM | Select-Object VMName,VMId,State,Path,ConfigurationLocation | ConvertTo-Json",
    ),
    (
        "get-vmharddiskdrive",
        "Get-VMHardDiskDrive -VMName * | Select-Object VMName,VMId,ControllerType,"
        "ControllerNumber,ControllerLocation,Path | ConvertTo-Json",
    ),
    (
        "get-vmsnapshot",
        "Get-VMSnapshot -VMName * | Select-Object VMName,VMId,Name,SnapshotType,CreationTime,"
        "ParentCheckpointName,Path | ConvertTo-Json",
    ),
)


def guid_text(value: Any) -> str | None:
    """A VM id as ConvertTo-Json or a table gives it (a string, or a Guid object with its
    members), lower case; None when there is none."""
    if isinstance(value, dict):
        value = value.get("Guid") or value.get("value")
    if not isinstance(value, str):
        return None
    text = value.strip().strip("{}").lower()
    return text or None


def _json_facts(text: str, path: str) -> list[Fact]:
    """The objects of every ConvertTo-Json output in ``text`` (one, or several appended, each
    after its prompt line or not), with their provenance line."""
    decoder = json.JSONDecoder()
    facts: list[Fact] = []
    lines = text.splitlines(keepends=True)
    offset = 0
    documents = objects = 0
    skip_to = 0
    for number, line in enumerate(lines, 1):
        start = offset
        offset += len(line)
        if start < skip_to or line.lstrip()[:1] not in ("[", "{"):
            continue
        at = start + len(line) - len(line.lstrip())
        try:
            data, end = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            continue
        skip_to = end
        documents += 1
        for obj in data if isinstance(data, list) else [data]:
            objects += 1
            if not isinstance(obj, dict) or objects > MAX_OBJECTS:
                continue
            fact = powershell.to_fact(obj, Provenance(path, f"line:{number}"))
            if fact is None or fact.kind not in KINDS:
                continue
            vm_id = guid_text(obj.get("VMId"))
            if fact.kind == "vm":
                fact.attributes["vm_id"] = vm_id or guid_text(obj.get("Id"))
            elif vm_id:
                fact.attributes.setdefault("vm_id", vm_id)
            facts.append(fact)
        if documents >= MAX_JSON_DOCUMENTS:
            break
    return facts


def facts_of_text(data: bytes, path: str) -> list[Fact]:
    """The ``vm``, ``vm_disk`` and ``checkpoint`` facts of one text (nothing for a binary)."""
    if looks_binary(data[:65536]):
        return []
    raw, _ = decode_text(data)
    text = repost.clean(raw)  # quotes, fences, odd spaces undone; line numbers kept
    facts = _json_facts(text, path)
    if not facts:
        facts = [f for f in powershell.parse(Text.of(text, path)) if f.kind in KINDS]
    for fact in facts:
        if fact.kind == "vm":
            fact.attributes["vm_id"] = guid_text(fact.attributes.get("vm_id"))
    return facts


def read_vm_info_files(paths: list[str]) -> list[Fact]:
    """The facts of the ``--vm-info`` files; a file that holds none is refused (a wrong file
    must not pass for a host without VMs)."""
    return read_given(paths, MAX_VM_INFO_FILE, facts_of_text, "vm-info", "vm-info-empty")


def live_vm_info() -> tuple[list[Fact], list[str]]:
    """The cmdlets run on this host (Windows): their facts, and the commands that gave no
    output to read (not a Hyper-V host, no rights, a timeout), by id."""
    from hvrescue.collector import process

    facts: list[Fact] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hvrescue-audit-") as work:
        for ident, script in COMMANDS:
            out = os.path.join(work, f"{ident}.json")
            err = os.path.join(work, f"{ident}.err")
            argv = ["powershell", "-NoProfile", "-NonInteractive", "-Command", _ENCODING + script]
            outcome = process.run(argv, out, err, TIMEOUT_S, CAP, work)
            if outcome.state != "exited" or outcome.exit_code not in (0, None):
                failed.append(ident)
                continue
            with open(out, "rb") as f:
                data = f.read(CAP + 1)
            if len(data) > CAP:
                failed.append(ident)
                continue
            # An empty output is a host without VMs (or checkpoints): nothing to add.
            facts.extend(facts_of_text(data, script))
    return facts, failed


def wanted_live(live: bool | None) -> bool:
    """Whether to run the cmdlets: asked (True/False), else on the Windows host itself."""
    return plat.on_windows() if live is None else live
