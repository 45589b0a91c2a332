"""The package's tables of codes (``codes.yaml``): NTSTATUS/HRESULT values, Win32 errors, events
and stop codes (bug checks), looked up by `hvrescue explain` and by the rules that explain a crash.

A status value that is in no table is still decoded by its structure ([MS-ERREF] 2.1 HRESULT,
2.3 NTSTATUS): severity, customer bit, facility and code, and the Win32 error inside an HRESULT
of FACILITY_WIN32 (0x8007xxxx) or an NTSTATUS of FACILITY_NTWIN32 (0xC007xxxx)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

# A stop code with this bit set (0x1000007E) is the same bug check as without it.
_BUGCHECK_FLAG = 0x10000000
_HEX = re.compile(r"^(0x[0-9a-fA-F]{1,8}|[0-9a-fA-F]{8})$")
_EVENT = re.compile(r"^(?P<provider>[^/#:]+)[/#:](?P<id>\d+)$")
_DECIMAL = re.compile(r"^-?\d{1,10}$")

# [MS-ERREF] bits. HRESULT: S R C N X, facility 11 bits; NTSTATUS: Sev(2) C N, facility 12 bits.
_SEVERITY_BIT = 0x80000000
_CUSTOMER_BIT = 0x20000000
_N_BIT = 0x10000000  # HRESULT_FROM_NT: an NTSTATUS with this bit set
_RESERVED_SUCCESS_BITS = _N_BIT | 0x08000000  # N and X, clear in a success HRESULT
_FACILITY_WIN32 = 7
# The names winerror.h gives some HRESULT_FROM_WIN32 values.
_ALIASES = {
    0x80070005: "E_ACCESSDENIED",
    0x80070006: "E_HANDLE",
    0x8007000E: "E_OUTOFMEMORY",
    0x80070057: "E_INVALIDARG",
}
# A facility's layer when nothing more precise is known.
_FACILITY_LAYER = {
    ("hresult", 58): "virtual-disk",
    ("ntstatus", 0x3A): "virtual-disk",
    ("ntstatus", 0x5C): "virtual-disk",
    ("hresult", 56): "storage",
    ("ntstatus", 0x38): "storage",
    ("ntstatus", 0x50): "storage",
    ("ntstatus", 0xE7): "storage",
    ("ntstatus", 4): "storage",
}


# codes.yaml as loaded, with the digest of the file it came from (tools/rules_snapshot.py makes
# it; used only while the digest matches, as the rules' snapshot is).
SNAPSHOT = "codes.snapshot.json"


def tables_from_yaml(data: bytes) -> dict[str, list[dict[str, Any]]]:
    import yaml

    # libyaml's safe loader where PyYAML was built with it (about 8x faster)
    loaded = yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(loaded, dict):
        return {}
    return {k: list(v) for k, v in loaded.items() if isinstance(v, list)}


def yaml_source() -> tuple[bytes, str]:
    """codes.yaml and its SHA-256."""
    import hashlib

    data = resources.files("hvrescue.diagnose").joinpath("codes.yaml").read_bytes()
    return data, hashlib.sha256(data).hexdigest()


@cache
def tables() -> dict[str, list[dict[str, Any]]]:
    # The standard json module: 50 KB read in about a millisecond, where importing msgspec
    # (and the pathlib and typing_extensions it brings) cost `explain` 25 ms of its start.
    import json

    data, digest = yaml_source()
    try:
        raw = resources.files("hvrescue.diagnose").joinpath(SNAPSHOT).read_bytes()
        snapshot = json.loads(raw)
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        snapshot = {}
    if not isinstance(snapshot, dict):
        snapshot = {}
    if snapshot.get("digest") == digest and isinstance(snapshot.get("tables"), dict):
        return dict(snapshot["tables"])
    return tables_from_yaml(data)


def _entry(table: str, value: int) -> dict[str, Any] | None:
    for entry in tables().get(table, []):
        if entry["value"] == value:
            return entry
    return None


def _status(value: int) -> dict[str, Any] | None:
    return _entry("codes", value)


def stop_code(value: int) -> dict[str, Any]:
    """What a stop code means: ``{"code", "hex", "name", "known", "en", "ja"}``.

    Unknown codes are said to be unknown, never guessed."""
    value &= 0xFFFFFFFF
    base = value & ~_BUGCHECK_FLAG if value & _BUGCHECK_FLAG and value < 0x20000000 else value
    out: dict[str, Any] = {"code": value, "hex": f"0x{value:08x}", "name": None, "known": False}
    for entry in tables().get("bugchecks", []):
        if entry["value"] == base:
            name = str(entry["name"]) + ("_M" if base != value else "")
            out.update({"name": name, "known": True, "en": entry["en"], "ja": entry["ja"]})
            return out
    status = _status(value)
    if status is not None:
        out.update(
            {"name": str(status["name"]), "known": True, "en": status["en"], "ja": status["ja"]}
        )
        return out
    note = _entry("notes", 0) or {}
    out.update({"en": note.get("en", ""), "ja": note.get("ja", "")})
    return out


def parse_number(text: str) -> int | None:
    """``0x7e``, ``0000007E`` (eight hex digits), ``126``, ``-2147024882`` (a signed HRESULT):
    a code as users and logs write it, as an unsigned 32-bit value."""
    text = text.strip()
    if _HEX.match(text):
        return int(text, 16)
    if _DECIMAL.match(text):
        value = int(text)
        if -(1 << 31) <= value < (1 << 32):
            return value & 0xFFFFFFFF
    return None


def decode(value: int) -> dict[str, Any]:
    """The structure of a 32-bit status value, whatever tables know of it.

    ``kind`` is ``hresult``, ``ntstatus``, ``hresult-from-nt`` (an NTSTATUS with the N bit) or
    ``win32`` (a value below 0x10000); ``severity`` is the value's own; ``facility`` names the
    component (None for a bare Win32 code or a customer value); ``win32`` is the Win32 error a
    FACILITY_WIN32/NTWIN32 value carries, when the table knows it."""
    value &= 0xFFFFFFFF
    out: dict[str, Any] = {
        "value": value,
        "hex": f"0x{value:08X}",
        "signed": value - (1 << 32) if value & _SEVERITY_BIT else value,
        "customer": bool(value & _CUSTOMER_BIT),
        "facility": None,
        "code": value & 0xFFFF,
        "win32": None,
        "ntstatus": None,
    }
    if value & _SEVERITY_BIT and value & _N_BIT:
        inner = value & ~_N_BIT
        out.update(kind="hresult-from-nt", ntstatus=f"0x{inner:08X}")
        out.update(_ntstatus_fields(inner))
    elif value >> 30 in (1, 3):
        out.update(kind="ntstatus", **_ntstatus_fields(value))
    elif value >= 0x10000:
        facility = (value >> 16) & 0x7FF
        out.update(kind="hresult", severity="failure" if value & _SEVERITY_BIT else "success")
        if not out["customer"]:
            out["facility"] = _facility("hresult_facilities", facility)
            if facility == _FACILITY_WIN32:
                out["win32"] = _entry("win32", value & 0xFFFF)
    else:
        out.update(kind="win32", severity="error" if value else "success", code=value)
        out["win32"] = _entry("win32", value)
    return out


def _ntstatus_fields(value: int) -> dict[str, Any]:
    severity = ("success", "informational", "warning", "error")[value >> 30]
    fields: dict[str, Any] = {"severity": severity, "facility": None, "win32": None}
    if not value & _CUSTOMER_BIT:
        facility = (value >> 16) & 0xFFF
        fields["facility"] = _facility("ntstatus_facilities", facility)
        if facility == _FACILITY_WIN32:
            fields["win32"] = _entry("win32", value & 0xFFFF)
    return fields


def _facility(table: str, value: int) -> dict[str, Any]:
    entry = _entry(table, value)
    out: dict[str, Any] = {"value": value, "name": None, "en": None, "ja": None}
    if entry is not None:
        out.update({k: entry.get(k) for k in ("name", "en", "ja")})
    return out


def lookup(code: str, lang: str) -> dict[str, Any] | None:
    """A status value or name, an event (``VSS/8193``), a stop code or a Win32 error; any other
    HRESULT or NTSTATUS decoded by facility and code; None if unknown. Rule ids and finding
    codes are the caller's (they need the rules and the catalogue)."""
    text = code.strip()
    value = parse_number(text)
    if value is not None:
        return _lookup_value(value, lang)
    for entry in tables().get("codes", []):
        if str(entry["name"]).split(" ")[0].upper() == text.upper():
            return _status_entry(entry, lang)
    for entry in tables().get("win32", []):
        if str(entry["name"]).upper() == text.upper():
            return _explained(decode(entry["value"]), lang)
    for entry in tables().get("bugchecks", []):
        if str(entry["name"]).upper() == text.upper():
            return {
                "code": f"0x{entry['value']:08x}",
                "name": entry["name"],
                "kind": "stop-code",
                "layer": "guest-os",
                "meaning": entry[lang],
            }
    match = _EVENT.match(text)
    if match:
        provider, ident = match.group("provider").strip().lower(), int(match.group("id"))
        for entry in tables().get("events", []):
            name = entry["provider"].lower()
            if entry["id"] == ident and (name == provider or name.endswith(provider)):
                return {
                    "code": f"{entry['provider']}/{ident}",
                    "kind": "event",
                    "layer": entry["layer"],
                    "meaning": entry[lang],
                }
    return None


def _lookup_value(value: int, lang: str) -> dict[str, Any] | None:
    status = _status(value)
    if status is not None:
        return _status_entry(status, lang)
    stop = stop_code(value)
    if stop["known"]:
        return {
            "code": stop["hex"],
            "name": stop["name"],
            "kind": "stop-code",
            "layer": "guest-os",
            "meaning": stop[lang],
        }
    decoded = decode(value)
    if decoded["kind"] == "win32" and decoded["win32"] is None:
        return None  # a small number no table knows: a stop code or a Win32 error, unknown
    # A success HRESULT is a status value only with a facility we know and the reserved N and
    # X bits clear; any other number below 0x80000000 is not read as one.
    known = bool((decoded["facility"] or {}).get("name"))
    success = decoded["kind"] == "hresult" and decoded["severity"] == "success"
    if success and (value & _RESERVED_SUCCESS_BITS or not known):
        return None
    return _explained(decoded, lang)


def _explained(d: dict[str, Any], lang: str) -> dict[str, Any]:
    """A decoded value as `explain` answers it: what the tables know of it (``meaning`` is the
    table's text, None when only the structure is known), and the structure itself. The
    words around it are the report's (:mod:`hvrescue.report.status_text`)."""
    win32 = d["win32"]
    inner = _status(int(d["ntstatus"], 16)) if d["ntstatus"] else None
    name: str | None = None
    meaning: str | None = None
    layer = _FACILITY_LAYER.get((_family(d), (d["facility"] or {}).get("value", -1)), "host")
    if win32 is not None:
        name = win32["name"] if d["kind"] == "win32" else f"{_wrapper(d)}({win32['name']})"
        if d["value"] in _ALIASES:
            name = f"{_ALIASES[d['value']]} = {name}"
        meaning, layer = win32[lang], win32["layer"]
    elif inner is not None:
        name = f"HRESULT_FROM_NT({inner['name']})"
        meaning, layer = inner[lang], inner["layer"]
    return {
        "code": d["hex"] if d["kind"] != "win32" else f"{d['value']} (0x{d['value']:X})",
        "name": name,
        "kind": d["kind"],
        "layer": layer,
        "meaning": meaning,
        "decoded": d,
        "exact": meaning is not None,
    }


def _family(d: dict[str, Any]) -> str:
    return "hresult" if d["kind"] == "hresult" else "ntstatus"


def _wrapper(d: dict[str, Any]) -> str:
    return "HRESULT_FROM_WIN32" if d["kind"] == "hresult" else "NTSTATUS_FROM_WIN32"


def _status_entry(entry: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        "code": f"0x{entry['value']:08X}",
        "name": entry["name"],
        "kind": "status",
        "layer": entry["layer"],
        "meaning": entry[lang],
        "decoded": decode(entry["value"]),
    }
