"""The words around a decoded status value (`hvrescue explain 0x8007000E`): what the tables
said of it, or that only its structure is known, and one line of what its bits say."""

from __future__ import annotations

from typing import Any

from hvrescue.report.i18n import Messages

_STRUCTURE_KEYS = {
    "hresult": "explain.structure.hresult",
    "ntstatus": "explain.structure.ntstatus",
    "hresult-from-nt": "explain.structure.from-nt",
}


def worded(found: dict[str, Any], lang: str) -> dict[str, Any]:
    """``found`` (an answer of :func:`hvrescue.diagnose.codes.lookup`) with its ``meaning`` and
    ``detail`` in ``lang`` when it is a status value the structure explains."""
    decoded = found.get("decoded")
    if not isinstance(decoded, dict):
        return found
    msg = Messages(lang)
    out = {**found, "detail": structure_text(decoded, msg)}
    win32 = decoded.get("win32")
    if found.get("meaning") is None:
        key = "explain.customer-value" if decoded["customer"] else "explain.not-in-table"
        out["meaning"] = msg(key, code=decoded["code"], hex=f"0x{decoded['code']:04X}")
    elif win32 is not None and found["kind"] != "status":
        out["meaning"] = msg(
            "explain.win32", text=found["meaning"], code=win32["value"], name=win32["name"]
        )
    return out


def structure_text(d: dict[str, Any], msg: Messages) -> str:
    """One line of what the bits say: kind, severity, customer or facility, code."""
    if d["kind"] == "win32":
        return msg("explain.structure.win32", code=d["code"], hex=f"0x{d['code']:X}")
    if d["customer"]:
        facility = msg("explain.customer")
    else:
        fac = d["facility"] or {}
        facility = msg(
            "explain.facility" if fac.get("name") else "explain.facility.unnamed",
            name=fac.get("name") or "",
            value=fac.get("value"),
            hex=f"0x{fac.get('value', 0):X}",
            meaning=fac.get(msg.lang) or msg("explain.facility.unknown"),
        )
    return msg(
        _STRUCTURE_KEYS[d["kind"]],
        severity=msg(f"explain.severity.{d['severity']}"),
        facility=facility,
        code=d["code"],
        hex=f"0x{d['code']:04X}",
        ntstatus=d["ntstatus"] or "",
    )
