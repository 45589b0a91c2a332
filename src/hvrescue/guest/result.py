"""What `guest` found on one disk: volumes, facts, problems and one entry per artefact reader run
(its status, time, counts and error), as plain data that serialises to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvrescue.facts.model import Fact, Problem

# Kinds a person wants to see on the terminal (the rest are counted): the ones that usually decide
# a guest's case, and packages that are not simply installed.
NOTABLE_KINDS = frozenset(
    {
        "crash_dump",
        "bcd_entry",
        "servicing_state",
        "safeboot_msiserver",
        "folder_count",
        "hive_replay",
        "guest_disk",
        "linux_os",
        "linux_filesystem",
    }
)


@dataclass
class ArtefactRun:
    """One artefact reader on one volume: ``status`` is ``ok``, ``failed`` (the reader raised;
    ``error`` says what, the other readers still ran) or ``missing-dependency``."""

    name: str
    partition: int
    status: str = "ok"
    seconds: float = 0.0
    facts: int = 0
    problems: int = 0
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "partition": self.partition,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "facts": self.facts,
            "problems": self.problems,
            "error": self.error,
        }


@dataclass
class GuestResult:
    disk: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    artefacts: list[ArtefactRun] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per artefact, all volumes
    # A Linux disk's kind (guest.disk_kind: WSL, Docker Desktop, a VM's), None for the others.
    disk_kind: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `guest --json`."""
        return {
            "disk": self.disk,
            "volumes": self.volumes,
            "facts": [f.as_dict() for f in self.facts],
            "problems": [p.as_dict() for p in self.problems],
            "artefacts": [a.as_dict() for a in self.artefacts],
            "disk_kind": self.disk_kind,
        }

    def kind_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.facts:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return dict(sorted(counts.items()))

    def notable(self) -> list[Fact]:
        """The facts worth a line of their own in the terminal summary."""
        return [
            f
            for f in self.facts
            if f.kind in NOTABLE_KINDS
            or (f.kind == "package" and f.attributes.get("state_code") != "installed")
            or (f.kind == "fstab_entry" and f.attributes.get("resolved") is False)
        ]
