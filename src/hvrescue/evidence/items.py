"""An item of evidence as the walker hands it on: what it is, and a bounded way to read it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hvrescue.evidence.budget import Budget, LimitExceeded

CHUNK = 1024 * 1024


class ItemError(Exception):
    """Reading one item failed (damage, a limit met, the system refused): the item fails alone,
    reported as skipped with ``reason`` (a stable code) and ``detail``."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Stream(Protocol):
    """What an item's ``open`` gives: bytes from the start, read errors as ItemError."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Stream: ...

    def __exit__(self, *exc: object) -> None: ...


# Opens the item from its start; ``limit`` bounds the bytes it will give (None: the item's own
# limit, the text cap for a zip member).
Opener = Callable[[int | None], Stream]


@dataclass
class Item:
    path: str  # as shown: a file's path, or "outer.zip!/member"
    kind: str
    format: str | None
    content: str
    size: int  # on disk: from stat; a member: its header's claim (counted again while read)
    opener: Opener
    root: str  # the path given that led here
    member: bool = False
    depth: int = 0  # 0 on disk, 1 in a zip on disk, 2 in a zip in a zip...
    stat: os.stat_result | None = None
    # In a collector's bundle: what its manifest says the item is (hvrescue.evidence.bundle:
    # a command's output or its stderr, an export, a copied file, a listing), else None.
    route: Any = None

    def open(self, limit: int | None = None) -> Stream:
        return self.opener(limit)

    def read_all(self, budget: Budget, what: str) -> bytes:
        """The whole item in memory, bounded by the budget (held by the caller while used)."""
        limit = budget.member_limit()
        if self.size > limit:
            raise ItemError(
                "memory-budget" if self.size <= budget.max_member_bytes else "too-large",
                f"{what}: {self.size} bytes, limit {limit}",
            )
        parts: list[bytes] = []
        count = 0
        with self.open(limit) as fh:
            while count <= limit:
                part = fh.read(min(CHUNK, limit + 1 - count))
                if not part:
                    break
                parts.append(part)
                count += len(part)
        if count > limit:
            raise ItemError("too-large", f"{what}: more than {limit} bytes")
        return b"".join(parts)


class GuardedFile:
    """A read-only file of evidence whose read errors become :class:`ItemError` (the item fails
    alone), and whose size is capped at ``limit`` bytes when one is given."""

    def __init__(self, raw: Any, path: str, limit: int | None = None) -> None:
        self.raw = raw
        self.path = path
        self.limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self.raw.read(n)
        except OSError as exc:
            raise ItemError("unreadable", exc.strerror or str(exc)) from exc
        self.count += len(data)
        if self.limit is not None and self.count > self.limit:
            raise ItemError("too-large", f"more than {self.limit} bytes")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # A seek fails for a position the data gave (a damaged archive's offsets), not for
        # the storage: left to the reader, which reports its file damaged.
        return int(self.raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self.raw.tell())

    def seekable(self) -> bool:
        return bool(self.raw.seekable())

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> GuardedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def limit_error(exc: LimitExceeded) -> ItemError:
    return ItemError(exc.reason, exc.detail)
