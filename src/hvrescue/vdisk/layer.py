"""What every disk format provides to the chain and read layers.

A layer maps a virtual range to runs: bytes that live in this file (DATA), bytes that are zero
(ZERO), or bytes that this file does not hold and the parent must supply (PARENT).
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


@dataclass(frozen=True, slots=True)
class Run:
    offset: int
    length: int
    kind: RunKind
    file_offset: int = -1


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

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def bitmap_runs(
    bitmap: bytes, first_bit: int, nbits: int, lsb_first: bool
) -> Iterator[tuple[int, int, bool]]:
    """Yield (start_bit, count, is_set) runs for ``nbits`` bits starting at ``first_bit``.

    VHDX sector bitmaps are LSB-first within a byte; VHD block bitmaps are MSB-first.
    """
    if nbits <= 0:
        return
    value = int.from_bytes(bitmap, "little") if lsb_first else _msb_to_int(bitmap)
    value >>= first_bit
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
