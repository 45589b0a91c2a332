"""A content digest whose cost follows the data: SHA-256 over every 1 MiB unit that is not all
zeros, each prefixed by its offset. Two disks of the same size have the same digest exactly when
their content is the same, however each stores it (allocated zeros, unallocated blocks, holes),
so a 64 TiB disk holding 1 GiB is compared in the time of 1 GiB. ``hvrescue hash`` gives the
plain SHA-256 of the whole content when that is wanted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

UNIT = 1024 * 1024
_ZERO = bytes(UNIT)
KIND = "sha256-of-nonzero-1MiB-units"


class ContentDigest:
    def __init__(self, size: int) -> None:
        self._h = hashlib.sha256(size.to_bytes(8, "little"))
        self._last = -1

    def add(self, offset: int, data: bytes | memoryview, nonzero: list[bool] | None = None) -> None:
        """``data`` at ``offset`` (UNIT-aligned); calls must come in increasing offset order.
        ``nonzero`` (from :func:`nonzero_units`) saves scanning the data a second time."""
        if offset % UNIT:
            raise ValueError("unaligned")
        view = memoryview(data)
        flags = nonzero if nonzero is not None else nonzero_units(bytes(view), len(view))
        for i, pos in enumerate(range(0, len(view), UNIT)):
            if not flags[i]:
                continue
            at = offset + pos
            if at <= self._last:
                raise ValueError("out of order")
            self._last = at
            self._h.update(at.to_bytes(8, "little"))
            self._h.update(view[pos : pos + UNIT])

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def nonzero_units(data: bytes | bytearray, length: int | None = None) -> list[bool]:
    """For each UNIT of the first ``length`` bytes of ``data``: does it hold a non-zero byte?
    (startswith compares in place, without copying the unit.)"""
    end = len(data) if length is None else length
    flags = []
    for pos in range(0, end, UNIT):
        n = min(UNIT, end - pos)
        zero = _ZERO if n == UNIT else bytes(n)
        flags.append(not data.startswith(zero, pos))
    return flags


def unit_ranges(extents: Iterable[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Extents widened to whole units, merged, clipped to ``size``."""
    out: list[tuple[int, int]] = []
    for lo, n in extents:
        a = lo - lo % UNIT
        b = min(size, -(-(lo + n) // UNIT) * UNIT)
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out
