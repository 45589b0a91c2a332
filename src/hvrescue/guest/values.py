"""Small conversions of values read from the guest (registry values, report fields): numbers that
may come as text, binary data that regipy may give as hex text, FILETIMEs, and any value made
JSON-safe."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

FILETIME_EPOCH = dt.datetime(1601, 1, 1)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def to_binary(value: Any) -> bytes | None:
    """Bytes, or hex text (what regipy gives for REG_BINARY when it trims values)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and _HEX.fullmatch(value):
        return bytes.fromhex(value)
    return None


def from_filetime(ticks: int) -> str | None:
    """A FILETIME (100 ns since 1601) as ISO 8601 text, None when zero or out of range."""
    if ticks <= 0:
        return None
    try:
        return (FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)).isoformat()
    except OverflowError:
        return None


def filetime(high: Any, low: Any) -> str | None:
    """A FILETIME stored as two 32-bit halves (CBS InstallTimeHigh/InstallTimeLow)."""
    h, lo = to_int(high), to_int(low)
    if h is None or lo is None:
        return None
    return from_filetime((h << 32) | (lo & 0xFFFFFFFF))


def filetime_text(text: str | None) -> str | None:
    """A FILETIME written as a decimal number (WER's EventTime)."""
    ticks = to_int(text) if text else None
    if not ticks:
        return None
    return filetime(ticks >> 32, ticks & 0xFFFFFFFF)


MAX_DEPTH = 32  # nesting of lists/dicts in an attribute; deeper is cut (hive values are flat)


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON types only: bytes become lowercase hex, dates ISO 8601 text, anything
    else unknown its ``str``. Values read from a damaged hive can be any of these."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)
