"""What every disk format provides to the chain and read layers.

A layer maps a virtual range to runs: bytes that live in this file (DATA), bytes that are zero
(ZERO), bytes that this file does not hold and the parent must supply (PARENT), or bytes whose
content nobody can know (UNDEFINED, with its cause): a block past the end of the file, an
invalid BAT state, a lost or contradicting sector bitmap, an unreadable BAT, a block whose file
space overlaps another block or a structure. Undefined bytes read as zeros, and every reader is
told where they are: they are never content.

Overlaps (see :func:`find_overlaps`): when two BAT entries give the same file bytes to two
blocks, or give a block the bytes of a header, region table, log, metadata or the BAT itself,
which of them the bytes really belong to cannot be known, so *every* block involved is undefined
(cause ``overlap``); the structures keep their bytes (they are validated on their own). Reading
an overlapping block's bytes for each entry would also let a small file pass for a large disk
(a 2 MB file whose 4,096 entries all point at one block "holds" 8 GiB): undefined blocks are
never read, so every physical block is read at most once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from hvrescue.findings import Finding


class RunKind(Enum):
    DATA = "data"
    ZERO = "zero"
    PARENT = "parent"
    UNDEFINED = "undefined"


# Why a range is undefined (the ``cause`` of an UNDEFINED run and of a Gap).
READ_ERROR = "read-error"  # the file's bytes could not be read
BEYOND_EOF = "beyond-eof"  # the BAT points at a block that starts past the end of the file
TRUNCATED = "truncated"  # the block starts inside the file but the file ends within it
INVALID_STATE = "invalid-state"  # a BAT state the format does not define (for this disk)
BITMAP_LOST = "bitmap-lost"  # a sector bitmap that is absent, past the end or unreadable
BITMAP_CONTRADICTS = "bitmap-contradicts-data"  # sectors marked unwritten hold data
METADATA_UNREADABLE = "metadata-unreadable"  # the BAT entries themselves could not be read
PARENT_MISSING = "parent-missing"  # left to a parent that is missing or unreadable
OVERLAP = "overlap"  # the block's file space is also another block's or a structure's
BEYOND_PARENT = "beyond-parent"  # left to a parent whose virtual size ends before it
CAUSES = (
    READ_ERROR,
    BEYOND_EOF,
    TRUNCATED,
    INVALID_STATE,
    BITMAP_LOST,
    BITMAP_CONTRADICTS,
    METADATA_UNREADABLE,
    PARENT_MISSING,
    OVERLAP,
    BEYOND_PARENT,
)


@dataclass(frozen=True, slots=True)
class Run:
    offset: int
    length: int
    kind: RunKind
    file_offset: int = -1
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Gap:
    """A virtual range whose content is undefined, why, and which file is responsible."""

    offset: int
    length: int
    cause: str
    path: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "length": self.length,
            "cause": self.cause,
            "path": self.path,
        }


def clip_to_file(
    run_offset: int, length: int, file_offset: int, file_end: int, block_file: int
) -> Iterator[Run]:
    """A DATA run, with whatever lies past the end of the file as UNDEFINED (``block_file``:
    where the run's block starts in the file, to tell a cut block from one wholly past EOF)."""
    have = max(0, min(length, file_end - file_offset))
    if have:
        yield Run(run_offset, have, RunKind.DATA, file_offset)
    if have < length:
        cause = TRUNCATED if block_file < file_end else BEYOND_EOF
        yield Run(run_offset + have, length - have, RunKind.UNDEFINED, cause=cause)


@dataclass(frozen=True)
class ParentRef:
    """How a differencing disk names its parent: identity plus where it was last seen."""

    # Identity the parent must carry: VHDX DataWriteGuid / VHD unique id (canonical string).
    linkage: str | None
    linkage_alternate: str | None = None
    # VHD parent time stamp (seconds since 2000-01-01), checked against the parent's footer.
    timestamp: int | None = None
    # Where to look, in the order the format says to try them: (kind, path text).
    paths: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Layer(Protocol):
    path: str
    format: str
    size: int
    logical_sector_size: int
    physical_sector_size: int
    findings: list[Finding]

    @property
    def is_differencing(self) -> bool: ...

    @property
    def parent_ref(self) -> ParentRef | None: ...

    @property
    def identity(self) -> str | None:
        """The identity a child's linkage must match (VHDX DataWriteGuid, VHD unique id)."""
        ...

    @property
    def timestamp(self) -> int | None: ...

    def map(self, offset: int, length: int) -> Iterator[Run]: ...

    def read_file(self, file_offset: int, length: int) -> bytes: ...

    def allocated(self) -> Iterator[tuple[int, int]]:
        """Virtual ranges this file holds data for (DATA runs), ascending, maybe adjacent."""
        ...

    def suspect(self) -> Iterator[tuple[int, int]]:
        """Virtual ranges that may map to UNDEFINED runs, ascending (a superset: ``map`` says
        exactly); found from the metadata alone, without reading data."""
        ...

    def read_file_checked(
        self, file_offset: int, length: int
    ) -> tuple[bytes, list[tuple[int, int]]]:
        """File bytes (zeros where unreadable) and the file ranges that could not be read."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# At most this many overlapping pairs are kept per file for messages (all are counted).
MAX_OVERLAP_RECORDS = 20


def find_overlaps(
    items: list[tuple[int, int, int | str]],
) -> tuple[set[int], list[tuple[int, int | str, int | str]], int]:
    """Which of the file extents ``(start, end, who)`` overlap, where ``who`` is a block (an
    int: a BAT index or block number) or a structure (a str). Returns every block involved in
    an overlap with a block or a structure (structures among themselves are not this check's
    business), up to :data:`MAX_OVERLAP_RECORDS` pairs ``(file offset, who, other)`` to name
    in findings, and the number of pairs found. One sweep over the sorted extents: O(n log n)
    for n entries, whatever the extents' sizes."""
    marked: set[int] = set()
    pairs: list[tuple[int, int | str, int | str]] = []
    count = 0
    reach_end, reach_who = -1, None
    for start, end, who in sorted(items, key=lambda t: (t[0], t[1])):
        if end <= start:
            continue
        involves_block = isinstance(who, int) or isinstance(reach_who, int)
        if start < reach_end and reach_who is not None and involves_block:
            count += 1
            for x in (who, reach_who):
                if isinstance(x, int):
                    marked.add(x)
            if len(pairs) < MAX_OVERLAP_RECORDS:
                first, other = (who, reach_who) if isinstance(who, int) else (reach_who, who)
                pairs.append((start, first, other))
        if end > reach_end:
            reach_end, reach_who = end, who
    return marked, pairs, count


def bitmap_runs(
    bitmap: bytes, first_bit: int, nbits: int, lsb_first: bool
) -> Iterator[tuple[int, int, bool]]:
    """Yield (start_bit, count, is_set) runs for ``nbits`` bits starting at ``first_bit``.

    VHDX sector bitmaps are LSB-first within a byte; VHD block bitmaps are MSB-first.
    """
    if nbits <= 0:
        return
    # Only the bytes that hold the bits asked for are converted (not a whole block's bitmap).
    lo = first_bit >> 3
    part = bitmap[lo : (first_bit + nbits + 7) >> 3]
    value = int.from_bytes(part, "little") if lsb_first else _msb_to_int(part)
    value >>= first_bit - (lo << 3)
    value &= (1 << nbits) - 1
    pos = 0
    while pos < nbits:
        bit = (value >> pos) & 1
        rest = value >> pos
        # Length of the run of equal bits starting at pos.
        if bit:
            inv = ~rest
            run = (inv & -inv).bit_length() - 1
        else:
            run = (rest & -rest).bit_length() - 1 if rest else nbits - pos
        run = min(run, nbits - pos)
        yield pos, run, bool(bit)
        pos += run


def _msb_to_int(bitmap: bytes) -> int:
    # Reverse the bit order of every byte so that bit i of the result is sector i.
    return int.from_bytes(bitmap.translate(_REVERSE), "little")


_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
