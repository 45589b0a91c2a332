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

    def add(self, offset: int, data: bytes | memoryview) -> None:
        """``data`` at ``offset`` (UNIT-aligned); calls must come in increasing offset order."""
        if offset % UNIT:
            raise ValueError("unaligned")
        view = memoryview(data)
        for pos in range(0, len(view), UNIT):
            unit = view[pos : pos + UNIT]
            # bytes == bytes is a memcmp; memoryview == bytes compares item by item (40x slower).
            if bytes(unit) == (_ZERO if len(unit) == UNIT else bytes(len(unit))):
                continue
            at = offset + pos
            if at <= self._last:
                raise ValueError("out of order")
            self._last = at
            self._h.update(at.to_bytes(8, "little"))
            self._h.update(unit)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


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
