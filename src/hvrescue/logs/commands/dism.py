"""`DISM /Online /Get-Packages` and `DISM /Image:D:\\ /Get-Packages`, English and Japanese."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import parse_local_time
from hvrescue.logs.textutil import Text, norm_key, split_kv

KEYS = {
    "package identity": "identity",
    "state": "state",
    "release type": "release_type",
    "install time": "install_time",
    "パッケージ id": "identity",
    "状態": "state",
    "リリースの種類": "release_type",
    "インストール時刻": "install_time",
}
IMAGE_VERSION = {"image version", "イメージのバージョン"}
STATES = {
    "installed": "installed",
    "install pending": "install_pending",
    "uninstall pending": "uninstall_pending",
    "superseded": "superseded",
    "staged": "staged",
    "resolved": "resolved",
    "partially installed": "partially_installed",
    "not present": "not_present",
    "installation pending": "install_pending",
    "インストール済み": "installed",
    "インストール保留中": "install_pending",
    "アンインストール保留中": "uninstall_pending",
    "置き換え済み": "superseded",
    "ステージング済み": "staged",
    "解決済み": "resolved",
    "一部インストール済み": "partially_installed",
    "インストールの保留中": "install_pending",
    "アンインストールの保留中": "uninstall_pending",
    "置換済み": "superseded",
    "ステージ済み": "staged",
    "存在しない": "not_present",
}
KB = re.compile(r"KB(\d{6,7})", re.I)


def _image(command: str | None) -> str | None:
    if not command:
        return None
    if re.search(r"/online\b", command, re.I):
        return "online"
    m = re.search(r"/image:(\"[^\"]+\"|\S+)", command, re.I)
    return m.group(1).strip('"') if m else None


def _package(fields: dict[str, Any], text: Text, start: int, image_version: str | None) -> Fact:
    identity = fields.get("identity", "")
    state = fields.get("state", "")
    kb = KB.search(identity)
    fields.update(
        {
            "state_code": STATES.get(state.strip().lower()),
            "kb": f"KB{kb.group(1)}" if kb else None,
            "install_time_local": parse_local_time(fields.get("install_time", "")),
            "image": _image(text.command_at(start)),
            "image_version": image_version,
        }
    )
    return Fact("package", fields, Provenance(text.path, text.locator(start)))


def _table(text: Text, i: int, image_version: str | None, facts: list[Fact]) -> int:
    """`/Format:Table`: a header of column names separated by '|', a rule, then rows."""
    names = [KEYS.get(norm_key(c)) for c in text.lines[i].split("|")]
    j = i + 1
    if j < len(text.lines) and set(text.lines[j].strip()) <= {"-", "|", " "}:
        j += 1
    while j < len(text.lines) and "|" in text.lines[j]:
        cells = [c.strip() for c in text.lines[j].split("|")]
        fields = {n: c for n, c in zip(names, cells, strict=False) if n}
        if fields.get("identity"):
            facts.append(_package(fields, text, j, image_version))
        j += 1
    return j


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    image_version: str | None = None
    i = 0
    while i < len(lines):
        if "|" in lines[i] and any(
            KEYS.get(norm_key(c)) == "identity" for c in lines[i].split("|")
        ):
            i = _table(text, i, image_version, facts)
            continue
        kv = split_kv(lines[i])
        if kv and norm_key(kv[0]) in IMAGE_VERSION:
            image_version = kv[1]
        if kv and KEYS.get(norm_key(kv[0])) == "identity":
            start = i
            fields: dict[str, Any] = {}
            while i < len(lines):
                kv = split_kv(lines[i])
                name = KEYS.get(norm_key(kv[0])) if kv else None
                if name is None or (name == "identity" and fields):
                    break
                fields[name] = kv[1] if kv else ""
                i += 1
                # A value a mail client moved to the next line ("Package Identity :" /
                # "Package_for_KB..."): a line that is no field of its own.
                wrapped = kv and not kv[1] and i < len(lines) and lines[i].strip()
                if wrapped and split_kv(lines[i]) is None:
                    fields[name] = lines[i].strip()
                    i += 1
            facts.append(_package(fields, text, start, image_version))
            continue
        i += 1
    return facts
