"""`triage`: take whatever was dropped in (event exports, command outputs, VM folders, disks, zip
bundles), turn it all into facts, run the rules, and keep what the report needs.

Disks go through the engine (`check` with their chains) and folders holding VMs through
`inventory`; their findings become facts of kind ``finding``. Everything else goes through the
facts layer. Symptoms given on the command line become facts of kind ``symptom``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hvrescue.diagnose.engine import Diagnosis, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Problem, Provenance, Unrecognised
from hvrescue.vdisk.detect import DISK_SUFFIXES

SYMPTOMS = (
    "vm-wont-start",
    "merge-stuck",
    "parent-not-found",
    "host-slow",
    "guest-bsod",
    "backup-fails",
    "hypervisor-not-running",
)
MAX_DISKS = 500


@dataclass
class Triage:
    paths: list[str]
    facts: list[Fact] = field(default_factory=list)
    unrecognised: list[Unrecognised] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    disks: list[dict[str, Any]] = field(default_factory=list)  # chains, for the diagram

    def facts_summary(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.facts).items()))


def _disk_files(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if os.path.isfile(path) and path.lower().endswith(DISK_SUFFIXES):
            out.append(os.path.abspath(path))
        elif os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    if name.lower().endswith(DISK_SUFFIXES):
                        out.append(os.path.join(os.path.abspath(root), name))
                if len(out) >= MAX_DISKS:
                    return out[:MAX_DISKS]
    return out


def _finding_fact(code: str, severity: str, path: str, params: dict[str, Any], offset: Any) -> Fact:
    return Fact(
        "finding",
        {
            "code": code,
            "severity": severity,
            "path": path,
            **{f"param_{k}": v for k, v in params.items()},
        },
        Provenance(path, f"offset:{offset}" if offset is not None else None),
    )


def _disk_facts(triage: Triage, disks: list[str]) -> None:
    from hvrescue.vdisk.check import check_file, dedupe

    parents: set[str] = set()
    results = []
    for disk in disks:
        result = check_file(disk, [os.path.dirname(disk)])
        results.append(result)
        for layer in result.chain[1:]:
            parents.add(os.path.realpath(layer))
    findings = dedupe([f for r in results for f in r.findings])
    for f in findings:
        triage.facts.append(
            _finding_fact(f.code, f.severity.label, f.path, dict(f.params), f.offset)
        )
    for r in results:
        if os.path.realpath(r.path) in parents:
            continue  # shown as part of its child's chain
        triage.disks.append(
            {"path": r.path, "status": r.status, "chain": r.chain, "complete": r.complete}
        )
        if r.complete and r.error is None:
            _guest_facts(triage, r.path)


def _guest_facts(triage: Triage, disk: str) -> None:
    """What the guest on a readable disk says (registry, dumps, servicing, logs)."""
    from hvrescue.errors import HvrescueError
    from hvrescue.guest.collect import guest_facts

    try:
        found = guest_facts(disk, [os.path.dirname(disk)])
    except HvrescueError:
        return
    triage.facts.extend(found.facts)
    triage.problems.extend(found.problems)


def _inventory_facts(triage: Triage, folders: list[str]) -> None:
    from hvrescue.inventory import build_inventory

    for folder in folders:
        inv = build_inventory(folder)
        for f in inv.findings:
            if f.code.startswith(("vm.", "inventory.")):
                triage.facts.append(
                    _finding_fact(f.code, f.severity.label, f.path, dict(f.params), f.offset)
                )


def run_triage(paths: list[str], symptoms: list[str] | None = None) -> Triage:
    from hvrescue.logs.collect import collect

    triage = Triage([os.path.abspath(p) for p in paths])
    found = collect(list(paths))
    triage.facts.extend(found.facts)
    disks = _disk_files(paths)
    # Disk images are the engine's: they are not "unrecognised" here.
    disk_set = {os.path.realpath(d) for d in disks}
    triage.unrecognised = [
        u
        for u in found.unrecognised
        if not (u.reason == "disk-image" and os.path.realpath(u.path) in disk_set)
    ]
    triage.problems = list(found.problems)
    if disks:
        _disk_facts(triage, disks)
    folders = [os.path.abspath(p) for p in paths if os.path.isdir(p)]
    if folders:
        _inventory_facts(triage, folders)
    for name in symptoms or []:
        triage.facts.append(
            Fact("symptom", {"name": name}, Provenance("command line", "--symptom"))
        )
    triage.diagnoses = evaluate(load_rules(), triage.facts)
    return triage


def default_out_dir(paths: list[str], stamp: str) -> str:
    """A new folder beside the evidence, never inside it."""
    first = os.path.abspath(paths[0])
    root = first if os.path.isdir(first) else os.path.dirname(first)
    parent = os.path.dirname(root.rstrip(os.sep)) or root
    return os.path.join(
        parent, f"{os.path.basename(root.rstrip(os.sep)) or 'evidence'}-hvrescue-{stamp}"
    )
