"""Domain exceptions. Each carries a message key and parameters for a person to read."""

from __future__ import annotations

from typing import Any


class HvrescueError(Exception):
    """Base of every error the CLI turns into a message and an exit code."""

    key = "error.generic"

    def __init__(self, key: str | None = None, **params: Any) -> None:
        self.key = key or self.key
        self.params = params
        super().__init__(f"{self.key} {params}")


class InputError(HvrescueError):
    """The input cannot be used at all (missing path, not a file, permission denied)."""

    key = "error.input"


class NotADiskError(HvrescueError):
    """The file is not a virtual disk this engine understands, or is damaged beyond use."""

    key = "error.not-a-disk"


class UnreadableRangeError(HvrescueError):
    """A range could not be read after the bounded retries."""

    key = "error.read"

    def __init__(self, path: str, offset: int, length: int, errno_: int | None) -> None:
        super().__init__(path=path, offset=offset, length=length, errno=errno_)
        self.offset = offset
        self.length = length


class ChainError(HvrescueError):
    """The chain cannot be read as a whole (a parent is missing or does not match)."""

    key = "error.chain"


class OutputError(HvrescueError):
    """One of our own outputs could not be written (folder missing, read-only location, disk
    full, quota, permission denied). Nothing is left under the output's final name."""

    key = "error.output.write"


class UndefinedContentError(HvrescueError):
    """The source has ranges whose content is undefined (damage, truncation, read errors, a
    missing parent) and the command would present them as content: refused."""

    key = "error.undefined-content"

    def __init__(self, key: str | None = None, gaps: list[Any] | None = None, **params: Any):
        self.gaps = list(gaps or [])
        params.setdefault("count", len(self.gaps))
        params.setdefault("bytes", sum(g.length for g in self.gaps))
        if self.gaps:
            first = self.gaps[0]
            params.setdefault("first", f"{first.offset:#x}+{first.length:#x} ({first.cause})")
        super().__init__(key, **params)
        self.params["undefined"] = [g.as_dict() for g in self.gaps[:1000]]
