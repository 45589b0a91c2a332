"""One memory budget for walking evidence: archives, members held in memory, text, counts.

Evidence comes from hosts in trouble and from hostile ones: a 1 MB zip can expand to gigabytes, a
central directory can list millions of members, a text log can be larger than the memory of the
machine reading it. Every limit the walker and the text reader apply lives here, so that one
option (``--max-memory``) sets them and every skipped item can name the limit it met.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_MAX_MEMORY = 512 * MiB
MIN_MAX_MEMORY = 16 * MiB
# A file or member read as text: larger ones cost minutes of parsing for no likely gain.
MAX_TEXT_BYTES = 256 * MiB
# A member held in memory whole (an EVTX log, a nested zip) is never larger than this, nor than
# what is left of the memory budget.
MAX_MEMBER_BYTES = 1 * GiB
# What one archive on disk may expand to in all, its nested archives included.
MAX_ARCHIVE_BYTES = 4 * GiB
# A zip on disk is depth 1, a zip inside it depth 2; deeper ones are not opened.
MAX_ZIP_DEPTH = 2
MAX_MEMBERS = 100_000
# Expanded / compressed beyond this is a bomb, not a log (deflate peaks near 1032:1 on zeros);
# small members are exempt: what they cost is bounded by their size anyway.
MAX_RATIO = 200
RATIO_FLOOR = 1 * MiB
MAX_FILES = 100_000
# A zipfile.ZipInfo costs a few hundred bytes per central-directory entry of about 50 bytes.
ZIPINFO_COST = 16
# What one fact costs in memory, roughly (an event fact with its attributes is about 2 KiB).
FACT_COST = 2 * KiB

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}


def parse_size(text: str) -> int:
    """``256M``, ``1G``, ``512MiB``, ``1.5g``, ``1048576`` -> bytes (binary units).

    Raises ``ValueError`` for anything else."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(text)
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1 or value > 2**62:
        raise ValueError(text)
    return int(value)


class LimitExceeded(Exception):
    """An item met a limit of the budget; ``reason`` is the skipped reason, ``detail`` says
    which limit and what was found."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Budget:
    """The limits of one walk. ``held`` counts the bytes held in memory right now (members read
    whole, nested archives); everything else is bounded by its own limit."""

    max_memory: int = DEFAULT_MAX_MEMORY
    max_text_bytes: int = MAX_TEXT_BYTES
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_archive_bytes: int = MAX_ARCHIVE_BYTES
    max_zip_depth: int = MAX_ZIP_DEPTH
    max_members: int = MAX_MEMBERS
    max_ratio: int = MAX_RATIO
    max_files: int = MAX_FILES
    held: int = 0

    @classmethod
    def of(cls, max_memory: int | None = None, **limits: int) -> Budget:
        budget = cls(**limits)
        if max_memory is not None:
            budget.max_memory = max(MIN_MAX_MEMORY, max_memory)
        return budget

    @classmethod
    def from_option(cls, text: str | None) -> Budget:
        """The budget of a ``--max-memory`` value (None: the default); ``InputError`` for a
        value that is not a size."""
        if text is None:
            return cls()
        try:
            return cls.of(parse_size(text))
        except ValueError:
            from hvrescue.errors import InputError

            raise InputError("error.input.max-memory", value=text) from None

    def available(self) -> int:
        return max(0, self.max_memory - self.held)

    def member_limit(self) -> int:
        """The most a member read whole into memory may expand to now."""
        return min(self.max_member_bytes, self.available())

    @contextmanager
    def hold(self, size: int, what: str) -> Iterator[None]:
        """Count ``size`` bytes as held while the block runs; refuse what does not fit."""
        if size > self.available():
            raise LimitExceeded(
                "memory-budget",
                f"{what}: {size} bytes, {self.available()} left of {self.max_memory}",
            )
        self.held += size
        try:
            yield
        finally:
            self.held -= size

    def piece_chars(self) -> int:
        """Characters of text parsed at once: parsing costs several times the text's size."""
        return min(8 * MiB, max(64 * KiB, self.max_memory // 64))

    def max_facts(self) -> int:
        """Facts one text file may give before the rest of it is left unread."""
        return max(10_000, self.max_memory // 2 // FACT_COST)

    def directory_fits(self, directory_bytes: int) -> bool:
        """Whether a central directory of this size may be loaded (zipfile keeps every entry)."""
        return directory_bytes * ZIPINFO_COST <= self.available()
