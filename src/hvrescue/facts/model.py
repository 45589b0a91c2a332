"""The fact model. A fact has a kind, plain JSON attributes and provenance (where it came from).

Attributes hold only JSON types (str, int, float, bool, None, lists and dicts of them), so a fact
serialises with ``json.dumps(fact.as_dict())`` (or ``msgspec.json.encode(fact)``) and stores
as-is in the case database later. Facts are frozen msgspec structs: a large event log makes
hundreds of thousands of them, and a struct is built seven times faster than a frozen
dataclass and is not tracked by the cyclic garbage collector (facts hold no cycles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec


class Provenance(msgspec.Struct, frozen=True, gc=False):
    path: str
    # Where in the source: "record:1234", "line:12", "offset:4096", "chunk:3".
    locator: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "locator": self.locator}


class Fact(msgspec.Struct, frozen=True, gc=False):
    kind: str
    attributes: dict[str, Any]
    provenance: Provenance

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "attributes": self.attributes,
            "provenance": self.provenance.as_dict(),
        }


@dataclass(frozen=True)
class Unrecognised:
    path: str
    # A code: binary, disk-image, no-known-content, too-large, zip-too-deep, damaged-zip,
    # unreadable.
    reason: str
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Skipped:
    """An item of evidence not read, or not read in full, and why: ``reason`` is a stable code
    (``not-regular``, ``link-outside``, ``too-large``, ``memory-budget``, ``damaged-zip``...;
    see hvrescue.evidence), ``detail`` says which limit or what went wrong."""

    path: str
    reason: str
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Problem:
    """Something wrong with a source that was still read (a damaged chunk, a bad zip member)."""

    path: str
    code: str
    locator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "code": self.code,
            "locator": self.locator,
            "params": dict(self.params),
        }


@dataclass
class FactSet:
    facts: list[Fact] = field(default_factory=list)
    unrecognised: list[Unrecognised] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def extend(self, other: FactSet) -> None:
        self.facts.extend(other.facts)
        self.unrecognised.extend(other.unrecognised)
        self.problems.extend(other.problems)
        self.skipped.extend(other.skipped)

    def of_kind(self, kind: str) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind]
