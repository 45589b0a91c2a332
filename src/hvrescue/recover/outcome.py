"""What a copy-based recovery (replay-log, repair, reparent) left behind: the changes made, the
findings the new file still has, and whether zeros stand for content nobody could read.

A copy is judged by reading it again with the same checks as `check`; only findings of warning
or worse count, since an informational finding (a log replayed in memory, say) says nothing
against the copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvrescue.findings import Finding, Severity
from hvrescue.recover.rewrite import Change

WRITTEN_WITH_GAPS = "rewrite.written-with-gaps"


def findings_after(path: str, search: list[str] | None = None) -> list[Finding]:
    """The findings of warning or worse that ``check`` gives for the written copy."""
    from hvrescue.vdisk.check import check_file

    result = check_file(path, search)
    return [f for f in result.findings if f.severity >= Severity.WARNING]


def gaps_written(changes: list[Change]) -> dict[str, Any] | None:
    """The written-with-gaps record among a rewrite's changes (its ``map`` names the ddrescue
    map beside the copy), if it wrote any gap."""
    for change in changes:
        if change.code == WRITTEN_WITH_GAPS:
            return dict(change.params)
    return None


def gap_map(gaps: dict[str, Any] | None) -> str | None:
    """The ddrescue map named in a with-gaps summary, when there is one."""
    found = gaps.get("map") if gaps else None
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Notice:
    """A message for the user, as a catalogue key and its parameters (rendered by the caller)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "params": dict(self.params)}


@dataclass
class RewriteResult:
    """A new copy of one disk (``replay-log``, ``repair``) and how it checks."""

    out: str
    changes: list[Change]
    findings: list[Finding]
    gaps: dict[str, Any] | None = None

    @property
    def map(self) -> str | None:
        """The ddrescue map of the ranges written as zeros, when there are any."""
        return gap_map(self.gaps)

    @property
    def status(self) -> str:
        """``written-with-gaps``, ``clean`` or ``findings``."""
        if self.gaps:
            return "written-with-gaps"
        return "findings" if self.findings else "clean"

    @property
    def ok(self) -> bool:
        return self.status == "clean"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "map": self.map,
            "out": self.out,
            "changes": [ch.as_dict() for ch in self.changes],
            "findings": [f.as_dict() for f in self.findings],
        }
