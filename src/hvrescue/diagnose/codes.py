"""The package's tables of codes (``codes.yaml``): NTSTATUS/HRESULT values, events and stop codes
(bug checks), looked up by `hvrescue explain` and by the rules that explain a crash."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

# A stop code with this bit set (0x1000007E) is the same bug check as without it.
_BUGCHECK_FLAG = 0x10000000
_HEX = re.compile(r"^(0x[0-9a-fA-F]{1,8}|[0-9a-fA-F]{8})$")
_EVENT = re.compile(r"^(?P<provider>[^/#:]+)[/#:](?P<id>\d+)$")


@cache
def tables() -> dict[str, list[dict[str, Any]]]:
    text = resources.files("hvrescue.diagnose").joinpath("codes.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        return {}
    return {k: list(v) for k, v in data.items() if isinstance(v, list)}


def _status(value: int) -> dict[str, Any] | None:
    for entry in tables().get("codes", []):
        if entry["value"] == value:
            return entry
    return None


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
    out["en"] = (
        "hvrescue's table does not know this stop code: look it up in Microsoft's Bug Check Code "
        "Reference, and open the dump in WinDbg (!analyze -v) to see the module at fault"
    )
    out["ja"] = (
        "hvrescue の表にない停止コードです。Microsoft のバグ チェック コード リファレンスで調べ、"
        "WinDbg でダンプを開いて (!analyze -v) 原因のモジュールを確認してください"
    )
    return out


def parse_number(text: str) -> int | None:
    """``0x7e``, ``0000007E`` (eight hex digits), ``126``: a code as users and logs write it."""
    text = text.strip()
    if _HEX.match(text):
        return int(text, 16)
    if text.isdigit():
        return int(text)
    return None


def lookup(code: str, lang: str) -> dict[str, Any] | None:
    """A status value or name, an event (``VSS/8193``) or a stop code; None if unknown.
    Rule ids and finding codes are the caller's (they need the rules and the catalogue)."""
    text = code.strip()
    value = parse_number(text)
    if value is not None:
        value &= 0xFFFFFFFF
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
    for entry in tables().get("codes", []):
        if str(entry["name"]).split(" ")[0].upper() == text.upper():
            return _status_entry(entry, lang)
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


def _status_entry(entry: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        "code": f"0x{entry['value']:08X}",
        "name": entry["name"],
        "kind": "status",
        "layer": entry["layer"],
        "meaning": entry[lang],
    }
