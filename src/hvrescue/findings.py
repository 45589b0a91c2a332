"""Findings: what a validator says about a file, with a stable code and evidence.

A finding carries a message *key* and parameters, never rendered text, so that the same finding
serves every language and every renderer. The key defaults to the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: str
    offset: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    key: str | None = None

    @property
    def message_key(self) -> str:
        return self.key or self.code

    @property
    def message_params(self) -> dict[str, Any]:
        """The parameters a message is filled from: the finding's own, and its offset."""
        if self.offset is None or "offset" in self.params:
            return dict(self.params)
        return {"offset": self.offset, **self.params}

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.label,
            "path": self.path,
            "offset": self.offset,
            "params": dict(self.params),
        }


class FindingSink:
    """Collects findings for one file; validators append, callers read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Finding] = []

    def add(
        self,
        code: str,
        severity: Severity,
        offset: int | None = None,
        key: str | None = None,
        **params: Any,
    ) -> Finding:
        finding = Finding(code, severity, self.path, offset, params, key)
        self.items.append(finding)
        return finding

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.items)


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)
