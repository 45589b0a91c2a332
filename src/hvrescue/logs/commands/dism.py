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


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    image_version: str | None = None
    i = 0
    while i < len(lines):
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
            facts.append(Fact("package", fields, Provenance(text.path, text.locator(start))))
            continue
        i += 1
    return facts
