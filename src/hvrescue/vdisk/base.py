"""What every image class shares: the read-only source, findings with per-code limits, and
structure reads that turn read errors into findings instead of exceptions."""

from __future__ import annotations

from typing import Any

from hvrescue.errors import UnreadableRangeError
from hvrescue.findings import FindingSink, Severity
from hvrescue.io.source import ReadOnlySource

# More findings of one kind than this in one file are summarised, not listed one by one.
MAX_FINDINGS_PER_CODE = 20


class ImageBase:
    format = ""

    def __init__(self, source: ReadOnlySource) -> None:
        self.source = source
        self.path = source.path
        self.sink = FindingSink(self.path)
        self.findings = self.sink.items
        self.readable = False
        self._counts: dict[str, int] = {}

    def close(self) -> None:
        self.source.close()

    def _raw(self, offset: int, length: int) -> bytes:
        """Structure read: an unreadable range becomes a finding and zeros, a short read zeros."""
        try:
            data = self.source.read(offset, length)
        except UnreadableRangeError as exc:
            self._add(
                "io.read-error",
                Severity.ERROR,
                exc.offset,
                length=exc.length,
                errno=exc.params.get("errno"),
            )
            data = self.source.read(offset, length, tolerant=True)
        if len(data) < length:
            data += bytes(length - len(data))
        return data

    def _add(self, code: str, severity: Severity, offset: int | None = None, **params: Any) -> None:
        """Add a finding that may repeat many times (one per BAT entry, say), up to a limit."""
        n = self._counts.get(code, 0) + 1
        self._counts[code] = n
        if n <= MAX_FINDINGS_PER_CODE:
            self.sink.add(code, severity, offset, **params)

    def _summarise(self) -> None:
        for code, n in self._counts.items():
            if n > MAX_FINDINGS_PER_CODE:
                sev = max(f.severity for f in self.findings if f.code == code)
                self.sink.add(
                    code, sev, None, key="finding.more", count=n - MAX_FINDINGS_PER_CODE, of=code
                )
