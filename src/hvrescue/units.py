"""Sizes for people: binary units, as Windows Explorer counts them (JSON keeps raw integers)."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_size(n: int) -> str:
    """A byte count in binary units: ``64.0 GiB``; under 1 KiB, ``512 B``."""
    if n < 0:
        return "-" + human_size(-n)
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
