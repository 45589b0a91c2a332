"""`vssadmin list writers` (also the empty list) and `vssadmin list providers`.

A banner alone says only that vssadmin ran, not which command: `list shadowstorage`, `list
shadows` and a refusal ("Error: You don't have the correct permissions ...") print the same
banner. An empty writer list is claimed only when nothing contradicts it: writer records follow,
or the command is known to be `list writers` (its prompt, or the "Waiting for responses" header)
and no error follows, or the banner stands alone with nothing after it (what `list writers`
prints when no writer answers). Anything else after a bare banner (an error, another listing)
gives no listing at all."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text, norm_key, split_kv, strip_quotes

# The banner's dash is often retyped (– —) or mangled when reposted: the version is enough.
BANNER = re.compile(r"^\s*vssadmin \d+\.\d+\b")
WRITER_KEYS = {
    "writer name": "name",
    "writer id": "writer_id",
    "writer instance id": "instance_id",
    "state": "state",
    "last error": "last_error",
    "ライター名": "name",
    "ライター id": "writer_id",
    "ライター インスタンス id": "instance_id",
    "状態": "state",
    "最後のエラー": "last_error",
}
PROVIDER_KEYS = {
    "provider name": "name",
    "provider type": "type",
    "provider id": "provider_id",
    "version": "version",
    "プロバイダー名": "name",
    "プロバイダーの種類": "type",
    "プロバイダー id": "provider_id",
    "バージョン": "version",
}
# vssadmin's own failures: "Error: ..." (refused, invalid command, VSS unexpected error).
ERROR = re.compile(r"^\s*(?:Error|エラー)\s*[:：]", re.IGNORECASE)
# What `list writers` prints before its records; nothing else prints it.
WRITERS_HEADER = re.compile(
    r"^\s*(?:Waiting for responses|These may be delayed if a shadow copy|応答を待っています"
    r"|シャドウ コピーの準備中)",
    re.IGNORECASE,
)
# Lines that say nothing about which command printed the banner's output.
NEUTRAL = re.compile(r"^\s*(?:\(C\)\s*Copyright.*|[.\-=_*~]*)\s*$", re.IGNORECASE)
# Quotes a word processor or a forum made typographic: ‘System Writer’.
CURLY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
NO_ERROR = {"no error", "エラーなし"}
# VSS_WRITER_STATE
STATES = {
    0: "unknown",
    1: "stable",
    2: "waiting_for_freeze",
    3: "waiting_for_thaw",
    4: "waiting_for_post_snapshot",
    5: "waiting_for_backup_complete",
    6: "failed_at_identify",
    7: "failed_at_prepare_backup",
    8: "failed_at_prepare_snapshot",
    9: "failed_at_freeze",
    10: "failed_at_thaw",
    11: "failed_at_post_snapshot",
    12: "failed_at_backup_complete",
    13: "failed_at_pre_restore",
    14: "failed_at_post_restore",
    15: "failed_at_backup_shutdown",
}


def _record(text: Text, start: int, keys: dict[str, str]) -> tuple[dict[str, str], int]:
    """Key/value lines of one writer or provider from ``start``; returns (fields, next index)."""
    fields: dict[str, str] = {}
    i = start
    while i < len(text.lines):
        kv = split_kv(text.lines[i])
        name = keys.get(norm_key(kv[0])) if kv else None
        if name is None or (name == "name" and fields):
            break
        fields[name] = kv[1] if kv else ""
        i += 1
    return fields, i


def _writer(fields: dict[str, str]) -> dict[str, Any]:
    state_text = fields.get("state", "")
    m = re.match(r"\[(\d+)\]\s*(.*)", state_text)
    code = int(m.group(1)) if m else None
    last = fields.get("last_error", "")
    return {
        "name": strip_quotes(fields.get("name", "").translate(CURLY)),
        "writer_id": fields.get("writer_id"),
        "instance_id": fields.get("instance_id"),
        "state_code": code,
        "state": STATES.get(code, state_text) if code is not None else state_text or None,
        "state_text": m.group(2) if m else state_text or None,
        "last_error": last or None,
        "last_error_ok": last.strip().lower() in NO_ERROR if last else None,
    }


def _banner_kind(command: str | None, block: dict[str, bool]) -> str | None:
    """The listing a banner opened, once its output is read: None when it is no listing (a
    refusal, another vssadmin command, words that are not a writer list)."""
    if block["error"]:
        return None
    typed = (command or "").lower()
    if "vssadmin" in typed:
        if "writer" in typed:
            return "vss_writer_list"
        if "provider" in typed:
            return "vss_provider_list"
        return None  # list shadows, list shadowstorage, create shadow ...
    if block["header"] or not block["other"]:
        return "vss_writer_list"
    return None


def parse(text: Text) -> list[Fact]:
    if any(a != b for a, b in zip(cleaned(text), text.lines, strict=True)):
        text = Text(cleaned(text), text.path)  # reposted: read as the console printed it
    facts: list[Fact] = []
    listing: dict[str, Any] | None = None
    listing_at = 0
    # What followed the last banner before any record: an error, the writers' header, other.
    block: dict[str, bool] | None = None

    def close() -> None:
        nonlocal listing, block
        if listing is not None:
            kind = listing.pop("_kind")
            if kind is None and block is not None:
                kind = _banner_kind(listing["command"], block)
            if kind is not None:
                facts.append(Fact(kind, listing, Provenance(text.path, text.locator(listing_at))))
        listing = None
        block = None

    def add(kind: str, item: dict[str, Any], at: int) -> None:
        """One writer or provider, counted in the listing it belongs to (opened if none is)."""
        nonlocal listing, listing_at
        facts.append(Fact(kind, item, Provenance(text.path, text.locator(at))))
        if listing is None:
            listing = {"count": 0, "names": [], "command": text.command_at(at)}
            listing_at = at
        listing["_kind"] = kind + "_list"
        listing["count"] += 1
        listing["names"].append(item["name"])

    i = 0
    lines = text.lines
    while i < len(lines):
        line = lines[i]
        banner = BANNER.match(line)
        if banner or (listing is not None and text.is_prompt(i)):
            close()
            if banner:
                listing = {"_kind": None, "count": 0, "names": [], "command": text.command_at(i)}
                listing_at = i
                block = {"error": False, "header": False, "other": False}
            i += 1
            continue
        kv = split_kv(line)
        key = norm_key(kv[0]) if kv else ""
        if WRITER_KEYS.get(key) == "name":
            fields, nxt = _record(text, i, WRITER_KEYS)
            # A VSS event's "Context: Writer Name: ..." block has no State: not vssadmin output.
            if "state" in fields:
                add("vss_writer", _writer(fields), i)
            i = nxt
            continue
        if PROVIDER_KEYS.get(key) == "name":
            fields, nxt = _record(text, i, PROVIDER_KEYS)
            fields["name"] = strip_quotes(fields.get("name", "").translate(CURLY))
            add("vss_provider", fields, i)
            i = nxt
            continue
        if block is not None and listing is not None and listing["_kind"] is None:
            if ERROR.match(line):
                block["error"] = True
            elif WRITERS_HEADER.match(line):
                block["header"] = True
            elif not NEUTRAL.match(line):
                block["other"] = True
        i += 1
    close()
    return facts
