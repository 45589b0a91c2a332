"""`manage-bde -status` (English and Japanese): one `bitlocker_volume` fact per volume.

The layout: a banner, then per volume a header ("Volume D: [VMS]", "ボリューム D: [VMS]"), its
role ("[Data Volume]", "[データ ボリューム]"), and indented "Label: value" lines; the key
protectors follow their label on lines indented deeper ("Key Protectors:" then "Numerical
Password", "TPM" ...), or stand on its line ("None Found", "見つかりません"). Values are kept as
printed (they are localised); the percentage becomes a number and "locked" / "protection_on"
are read from the English and Japanese words. A pasted fragment without its "Volume" header
still gives a fact (volume unknown) with a confidence below 1.0.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.pscmdlets import size_bytes
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text, norm_key

BANNER = re.compile(r"^\s*BitLocker (?:Drive Encryption|ドライブ暗号化)\s*[:：]", re.I)
# "Volume C: [OSDisk]", "Volume \\?\Volume{...}\ [Label]", "ボリューム D: [VMS]" (no colon
# after the word: "ボリューム: (D:)..." is vssadmin's).
HEADER = re.compile(
    r"^\s*(?:Volume|ボリューム)\s+(?P<volume>[A-Za-z]:|\\\\\?\\Volume\{[0-9A-Fa-f-]{36}\}\\?)"
    r"\s*(?:\[(?P<label>[^\]]*)\])?\s*$"
)
ROLE = re.compile(r"^\s*\[(?P<role>[^\]]+)\]\s*$")
FIELD = re.compile(r"^\s*(?P<key>[^:：]{2,40}?)\s*[:：]\s*(?P<value>.*?)\s*$")
KEYS = {
    "size": "size",
    "サイズ": "size",
    "bitlocker version": "version",
    "bitlocker のバージョン": "version",
    "conversion status": "conversion_status",
    "変換状態": "conversion_status",
    "変換の状態": "conversion_status",
    "percentage encrypted": "percentage_encrypted",
    "暗号化された割合": "percentage_encrypted",
    "encryption method": "encryption_method",
    "暗号化の方法": "encryption_method",
    "暗号化方法": "encryption_method",
    "protection status": "protection_status",
    "保護状態": "protection_status",
    "保護の状態": "protection_status",
    "lock status": "lock_status",
    "ロック状態": "lock_status",
    "ロックの状態": "lock_status",
    "identification field": "identification_field",
    "識別子フィールド": "identification_field",
    "識別フィールド": "identification_field",
    "key protectors": "key_protectors",
    "キーの保護機能": "key_protectors",
    "キー保護機能": "key_protectors",
    "キープロテクター": "key_protectors",
    "automatic unlock": "auto_unlock",
    "自動ロック解除": "auto_unlock",
}
NO_PROTECTORS = {"none found", "見つかりません", "なし"}
LOCKED = {"locked": True, "unlocked": False, "ロック": True, "ロック解除": False}
PROTECTION = {
    "protection on": True,
    "protection off": False,
    "保護はオンです": True,
    "保護はオフです": False,
}
PERCENT = re.compile(r"^(?P<n>\d{1,3}(?:[.,]\d+)?)\s*%$")
# A record read without its "Volume" header (a fragment) is less certain.
FRAGMENT_CONFIDENCE = 0.7
REPOSTED_CONFIDENCE = 0.9
# Fields a fragment must show before it is taken for manage-bde output.
MIN_FRAGMENT_FIELDS = 2
MAX_PROTECTORS = 64


def _key(line: str) -> tuple[str, str] | None:
    m = FIELD.match(line)
    if not m:
        return None
    name = KEYS.get(norm_key(m.group("key")))
    return (name, m.group("value")) if name else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _percent(value: str) -> float | None:
    m = PERCENT.match(value.strip())
    return float(m.group("n").replace(",", ".")) if m else None


def _record(lines: list[str], i: int, text: Text) -> tuple[dict[str, Any], int]:
    """The fields from line ``i`` to the next header, prompt or the end of the fields."""
    fields: dict[str, Any] = {}
    while i < len(lines):
        line = lines[i]
        if HEADER.match(line) or BANNER.match(line) or text.is_prompt(i):
            break
        kv = _key(line)
        if kv is None:
            if fields:
                break  # the fields are over (manage-bde puts no blank line among them)
            if line.strip():
                break  # words that are not manage-bde's
            i += 1
            continue
        name, value = kv
        if name in fields:
            break  # a second volume's fields without its header (a fragment)
        i += 1
        if name == "key_protectors":
            protectors: list[str] = []
            if value and norm_key(value) not in NO_PROTECTORS:
                protectors.append(value)
            base = _indent(line)
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > base:
                if _key(lines[i]) or len(protectors) >= MAX_PROTECTORS:
                    break
                protectors.append(lines[i].strip())
                i += 1
            fields[name] = protectors
        else:
            fields[name] = value
    return fields, i


def _fact(
    fields: dict[str, Any], header: dict[str, Any] | None, at: int, text: Text, loose: bool
) -> Fact:
    lock = str(fields.get("lock_status") or "")
    protection = str(fields.get("protection_status") or "")
    attrs: dict[str, Any] = {
        "volume": header["volume"] if header else None,
        "label": header["label"] if header else None,
        "role": header["role"] if header else None,
        "size": fields.get("size") or None,
        "size_bytes": size_bytes(fields.get("size")),
        "version": fields.get("version") or None,
        "conversion_status": fields.get("conversion_status") or None,
        "percentage_encrypted": _percent(str(fields.get("percentage_encrypted") or "")),
        "encryption_method": fields.get("encryption_method") or None,
        "protection_status": protection or None,
        "protection_on": PROTECTION.get(norm_key(protection)),
        "lock_status": lock or None,
        "locked": LOCKED.get(norm_key(lock)),
        "identification_field": fields.get("identification_field") or None,
        "key_protectors": fields.get("key_protectors", []),
        "auto_unlock": fields.get("auto_unlock") or None,
    }
    if header is None:
        attrs["confidence"] = FRAGMENT_CONFIDENCE
    elif loose:
        attrs["confidence"] = REPOSTED_CONFIDENCE
    return Fact("bitlocker_volume", attrs, Provenance(text.path, text.locator(at)))


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    loose = any(a != b for a, b in zip(lines, text.lines, strict=True))
    facts: list[Fact] = []
    i = 0
    while i < len(lines):
        m = HEADER.match(lines[i])
        if m:
            start = i
            header: dict[str, Any] = {
                "volume": m.group("volume"),
                "label": (m.group("label") or "").strip() or None,
                "role": None,
            }
            i += 1
            if i < len(lines) and ROLE.match(lines[i]):
                header["role"] = ROLE.match(lines[i]).group("role").strip()  # type: ignore[union-attr]
                i += 1
            fields, i = _record(lines, i, text)
            if fields:
                facts.append(_fact(fields, header, start, text, loose))
            continue
        if _key(lines[i]) and not text.is_prompt(i):
            fields, nxt = _record(lines, i, text)
            if len(fields) >= MIN_FRAGMENT_FIELDS and _looks_bitlocker(fields):
                facts.append(_fact(fields, None, i, text, loose))
                i = max(nxt, i + 1)
                continue
        i += 1
    return facts


def _looks_bitlocker(fields: dict[str, Any]) -> bool:
    """A fragment is manage-bde's only when a field no other output has is among them ("Size"
    and "Version"-like labels alone are everywhere)."""
    return bool(
        set(fields)
        & {"conversion_status", "percentage_encrypted", "protection_status", "lock_status"}
    )
