"""`triage`: take whatever was dropped in (event exports, command outputs, VM folders, disks, zip
bundles), turn it all into facts, run the rules, and keep what the report needs.

The evidence is walked once (``hvrescue.evidence``): each item goes to the facts layer, disks
also through the engine (`check` with their chains) and each folder given through `inventory`
(with the files the walk found in it); their findings become facts of kind ``finding`` and each
disk checked a fact of kind ``disk_check``. What could not be read (a problem of the facts layer
or of the guest reader, an unreadable file, a damaged zip, a disk the engine could not open, an
item skipped at a limit of the memory budget) becomes a fact of kind ``evidence_problem``, so
that rules see it too. Symptoms given on the command line become facts of kind ``symptom``.

The verdict has three states: ``problems`` (anything of warning or worse: a diagnosis, a
finding, a problem, an unreadable file), ``healthy`` (evidence was read and none of that) and
``nothing-recognised``. It never says "healthy" or "nothing recognised" over damage.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hvrescue.diagnose.engine import Diagnosis, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.evidence import UNREAD, Budget, Folder, Item, Walk
from hvrescue.evidence.classify import DISK
from hvrescue.facts.model import Fact, Problem, Provenance, Skipped, Unrecognised
from hvrescue.findings import Finding

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
SERIOUS = ("warning", "error", "critical")
# Reasons of the facts layer that mean a file could not be read, not just that it was foreign.
UNREADABLE = ("unreadable", "damaged-zip")
VERDICT_STATES = ("problems", "healthy", "nothing-recognised")


@dataclass
class Triage:
    paths: list[str]
    facts: list[Fact] = field(default_factory=list)
    unrecognised: list[Unrecognised] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    disks: list[dict[str, Any]] = field(default_factory=list)  # chains, for the diagram
    # Per input file or member: recognised or not, how, and why not (hvrescue.logs.inputs).
    recognition: list[dict[str, Any]] = field(default_factory=list)

    def facts_summary(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.facts).items()))

    def basis(self) -> dict[str, int]:
        """What the verdict rests on, counted."""
        return {
            "serious_diagnoses": sum(1 for d in self.diagnoses if d.severity in SERIOUS),
            "serious_findings": sum(
                1
                for f in self.facts
                if f.kind == "finding" and f.attributes.get("severity") in SERIOUS
            ),
            "problems": len(self.problems),
            "unreadable": sum(1 for u in self.unrecognised if u.reason in UNREADABLE),
            "skipped": len(self.unread_skipped()),
            "disk_errors": sum(
                1
                for f in self.facts
                if f.kind == "disk_check" and f.attributes.get("status") == "error"
            ),
            "disks_read": sum(
                1
                for f in self.facts
                if f.kind == "disk_check" and f.attributes.get("status") != "error"
            ),
            "facts": len(self.facts),
        }

    def verdict_state(self) -> str:
        """``problems``, ``healthy`` or ``nothing-recognised`` (see the module's docstring)."""
        counts = self.basis()
        if any(counts[k] for k in ("serious_diagnoses", "serious_findings", "problems")) or any(
            counts[k] for k in ("unreadable", "disk_errors", "skipped")
        ):
            return "problems"
        # Codes and names found in sentences alone (signals) are not evidence of health: no
        # record was read.
        if self.disks or any(f.kind != "signal" for f in self.facts):
            return "healthy"
        return "nothing-recognised"

    def unread_skipped(self) -> list[Skipped]:
        """Skipped items that held evidence not read (in full), each path once, leaving out
        those a problem or an unreadable file already names."""
        covered = {p.path for p in self.problems}
        covered |= {u.path for u in self.unrecognised if u.reason in UNREADABLE}
        out = []
        for s in self.skipped:
            if s.reason in UNREAD and s.path not in covered:
                covered.add(s.path)
                out.append(s)
        return out


def _finding_fact(f: Finding, root: str | None = None) -> Fact:
    """A finding of `check` or `inventory` as a fact (``root``: the folder inventoried)."""
    attributes: dict[str, Any] = {
        "code": f.code,
        "severity": f.severity.label,
        "path": f.path,
        "offset": f.offset,
        **{f"param_{k}": v for k, v in dict(f.params).items()},
    }
    if f.message_key != f.code:
        attributes["message_key"] = f.message_key
    if root is not None:
        attributes["root"] = root
    return Fact(
        "finding",
        attributes,
        Provenance(f.path, f"offset:{f.offset}" if f.offset is not None else None),
    )


def _reader(path: str, outer: str) -> str:
    """The command that reads ``outer`` again: `guest` for a file inside a disk, `check` for a
    disk, `facts` for the rest."""
    from hvrescue.vdisk.detect import DISK_SUFFIXES  # the disk engine, only where it is needed

    if not outer.lower().endswith(DISK_SUFFIXES):
        return "facts"
    return "guest" if outer != path else "check"


def _problem_fact(
    code: str,
    path: str,
    locator: str | None,
    params: dict[str, Any],
    error_key: str | None = None,
) -> Fact:
    # The file to read again: a zip member or a file inside a disk is read through its outer file.
    outer = path.split("!", 1)[0]
    attributes: dict[str, Any] = {
        "code": code,
        "severity": "warning",
        "path": path,
        "file": outer,
        "reader": _reader(path, outer),
    }
    attributes.update({f"param_{k}": v for k, v in params.items() if v is not None})
    if error_key:
        attributes["error_key"] = error_key
    return Fact("evidence_problem", attributes, Provenance(path, locator))


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
        triage.facts.append(_finding_fact(f))
    for r in results:
        triage.facts.append(
            Fact(
                "disk_check",
                {
                    "path": r.path,
                    "status": r.status,
                    "format": r.format,
                    "virtual_size": r.virtual_size,
                    "chain": list(r.chain),
                    "complete": r.complete,
                    "error": r.error.key if r.error is not None else None,
                },
                Provenance(r.path),
            )
        )
        if r.error is not None and not r.findings:
            # The engine could not open it and said nothing more: it must not pass unseen.
            triage.facts.append(
                _problem_fact(
                    "evidence.disk-unreadable", r.path, None, dict(r.error.params), r.error.key
                )
            )
        if os.path.realpath(r.path) in parents:
            continue  # shown as part of its child's chain
        triage.disks.append(
            {"path": r.path, "status": r.status, "chain": r.chain, "complete": r.complete}
        )
        if r.complete and r.error is None:
            _guest_facts(triage, r.path)


def _guest_facts(triage: Triage, disk: str) -> None:
    """What the guest on a readable disk says (registry, dumps, servicing, logs)."""
    from hvrescue.deps import MissingDependencyError
    from hvrescue.errors import HvrescueError
    from hvrescue.guest.collect import guest_facts

    try:
        found = guest_facts(disk, [os.path.dirname(disk)])
    except MissingDependencyError as exc:  # the guest was not read: say so, never stay silent
        triage.problems.append(Problem(disk, "facts.dependency-missing", None, dict(exc.params)))
        return
    except HvrescueError as exc:
        # The guest could not be read (its volumes unreadable, a secret refused): what it would
        # have said is missing, so the verdict must not rest on silence.
        triage.problems.append(Problem(disk, "guest.not-read", None, {"detail": exc.key}))
        return
    triage.facts.extend(found.facts)
    triage.problems.extend(found.problems)


def _inventory_facts(
    triage: Triage, folders: list[tuple[str, list[Item]]], disks: set[str], budget: Budget
) -> None:
    from hvrescue.hyperv.headroom import options_from_facts
    from hvrescue.inventory import build_inventory

    options = options_from_facts(triage.facts)  # free space and sectors of Get-Volume, fsutil
    for folder, items in folders:
        inv = build_inventory(folder, budget=budget, items=items, options=options)
        for f in inv.findings:
            if f.code == "inventory.empty-file" and os.path.realpath(f.path) in disks:
                continue  # `check` reported it already (file.empty)
            if f.code.startswith(("vm.", "inventory.", "hyperv.")):
                triage.facts.append(_finding_fact(f, folder))
        for vm in inv.vms:
            triage.facts.append(_config_fact(vm, folder))


def _config_fact(vm: dict[str, Any], folder: str) -> Fact:
    """A VM configuration read from the evidence (``vm_config``): what `inventory --json` says
    of it (name, vm_id, disks with their chains, state files...) with ``path`` made absolute
    (``rel`` keeps the path under the folder)."""
    attributes = dict(vm)
    rel = str(vm.get("path") or "")
    attributes["rel"] = rel
    attributes["path"] = rel if os.path.isabs(rel) else os.path.join(folder, *rel.split("/"))
    return Fact("vm_config", attributes, Provenance(attributes["path"]))


def _problem_facts(triage: Triage) -> None:
    unread = triage.unread_skipped()
    for p in triage.problems:
        triage.facts.append(_problem_fact(p.code, p.path, p.locator, dict(p.params)))
    for u in triage.unrecognised:
        if u.reason in UNREADABLE:
            triage.facts.append(
                _problem_fact(f"evidence.{u.reason}", u.path, None, {"detail": u.detail})
            )
    for s in unread:
        triage.facts.append(
            _problem_fact(f"evidence.{s.reason}", s.path, None, {"detail": s.detail})
        )


def run_triage(
    paths: list[str],
    symptoms: list[str] | None = None,
    budget: Budget | None = None,
    jobs: int | None = None,
    all_events: bool = False,
) -> Triage:
    """Walk ``paths`` once and triage what it holds (``budget``: the walk's memory budget;
    ``jobs``: processes reading event logs, None for one per core). Events no rule and not
    the report's timeline need are counted, not kept (``hvrescue.diagnose.relevance``), unless
    ``all_events`` (for a timeline of every event)."""
    from hvrescue.diagnose.relevance import EventRelevance, evidence_facts
    from hvrescue.logs.collect import add_entry, facts_from_item
    from hvrescue.logs.inputs import Collected, label_services
    from hvrescue.logs.parallel import read_entries

    budget = budget or Budget()
    triage = Triage([os.path.abspath(p) for p in paths])
    found = Collected()
    disks: list[str] = []
    in_folder: dict[str, list[Item]] = {}
    folders: list[tuple[str, list[Item]]] = []
    walk = Walk(list(paths), budget)
    keep = None if all_events else EventRelevance(load_rules())
    for entry, got in read_entries(walk, budget, facts_from_item, jobs, keep=keep):
        if isinstance(entry, Folder):
            folders.append((os.path.abspath(entry.path), in_folder.pop(entry.path, [])))
            continue
        if isinstance(entry, Item) and not entry.member:
            if entry.kind == DISK and len(disks) < MAX_DISKS:
                disks.append(os.path.abspath(entry.path))
            if entry.root != entry.path:
                in_folder.setdefault(entry.root, []).append(entry)
        add_entry(found, entry, budget, got)
    facts = label_services(found.facts)
    triage.facts.extend(facts if keep is None else keep.trim(facts))
    # Disk images are the engine's: what the facts layer says of them does not count here
    # (also those without a signature: zeroed, empty, foreign; `check` says what they are).
    disk_set = {os.path.realpath(d) for d in disks}
    triage.unrecognised = [
        u for u in found.unrecognised if os.path.realpath(u.path) not in disk_set
    ]
    triage.skipped = [s for s in found.skipped if os.path.realpath(s.path) not in disk_set]
    triage.problems = list(found.problems)
    if disks:
        _disk_facts(triage, disks)
        from hvrescue.guest.reconcile import reconcile_fstab

        # fstab entries whose device is on another disk of the VM given are not missing
        triage.facts = reconcile_fstab(triage.facts)
    if folders:
        _inventory_facts(triage, folders, disk_set, budget)
    _problem_facts(triage)
    triage.recognition = found.inputs(triage.facts, disks)
    for name in symptoms or []:
        triage.facts.append(
            Fact("symptom", {"name": name}, Provenance("command line", "--symptom"))
        )
    triage.diagnoses = evaluate(load_rules(), evidence_facts(triage.facts))
    return triage


def default_out_dir(paths: list[str], stamp: str) -> str:
    """A new folder beside the evidence, never inside it."""
    first = os.path.abspath(paths[0])
    root = first if os.path.isdir(first) else os.path.dirname(first)
    parent = os.path.dirname(root.rstrip(os.sep)) or root
    return os.path.join(
        parent, f"{os.path.basename(root.rstrip(os.sep)) or 'evidence'}-hvrescue-{stamp}"
    )
