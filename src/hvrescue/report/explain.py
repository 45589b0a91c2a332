"""What a code means, whatever kind it is: what `hvrescue explain` answers.

A status value or name (NTSTATUS, HRESULT, STATUS_VHD_*), an event (``VSS/8193``), a stop code,
a rule id or a finding code; the answer says what it is, what it means and at which layer.

    >>> explain("0xC03A000D", "en")["meaning"]
"""

from __future__ import annotations

from typing import Any

from hvrescue.report.i18n import INTERFACE_PREFIXES, Messages


def finding_layer(code: str) -> str:
    """The triage layer a finding code belongs to, from its family."""
    if code.startswith(("vm.", "inventory.", "vmgs.", "vhds.", "hyperv.", "audit.")):
        return "vm-configuration"
    if code.startswith(("io.", "evidence.", "evtx.", "xml.", "csv.", "zip.", "walk.")):
        return "storage"
    if code.startswith("guest."):
        return "guest-os"
    return "virtual-disk"


def explain(code: str, lang: str) -> dict[str, Any] | None:
    """``{"code", "kind", "layer", "layer_text", "meaning", ["name", "detail"]}``, or None
    when the code is not known."""
    from hvrescue.diagnose.codes import lookup
    from hvrescue.report.status_text import worded

    msg = Messages(lang)
    found = lookup(code, lang)
    found = None if found is None else worded(found, lang)
    text = code.strip()
    if found is None:
        # a rule id: the rules and the engine's wording only now
        from hvrescue.diagnose.engine import fill_unbound
        from hvrescue.diagnose.rules import load_rules

        for rule in load_rules():
            if rule.id == text:
                found = {
                    "code": rule.id,
                    "kind": "rule",
                    "layer": rule.layer,
                    "meaning": fill_unbound(getattr(rule.title, lang)),
                    "detail": fill_unbound(getattr(rule.summary, lang)),
                }
                break
    if found is None and msg.has(text) and "." in text and not text.startswith(INTERFACE_PREFIXES):
        # A finding's message names its particulars ({count}, {offset}); out of context they
        # are unknown, and shown as labels (<offset>) rather than as template syntax.
        found = {
            "code": text,
            "kind": "finding",
            "layer": finding_layer(text),
            "meaning": msg.template(text),
        }
    if found is None:
        return None
    return {**found, "layer_text": msg("layer." + found["layer"])}
