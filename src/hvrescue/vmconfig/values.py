"""Values of a configuration tree as JSON-safe Python values: the leaves of a `.vmcx` (through
dissect.hypervisor) and of an XML configuration (typed strings) read alike; anything else is
None, never a guess."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str | None:
    """A string without surrounding spaces or trailing NULs; None when empty or not a string."""
    if isinstance(value, str):
        value = value.strip().rstrip("\0")
        return value or None
    return None


def integer(value: Any) -> int | None:
    """An int, or a string holding one (decimal, 0x...); never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            return None
    return None


def boolean(value: Any) -> bool | None:
    """A bool, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
