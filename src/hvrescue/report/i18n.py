"""Message catalogues: every text a user reads comes from ``messages/<lang>.toml`` and the
per-area files ``messages/<lang>/*.toml`` (one per package, so areas are edited apart)."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("en", "ja")


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def catalogue_files(lang: str) -> list[Any]:
    """The catalogue files of one language: the main file first, then each area's file."""
    root = resources.files("hvrescue.report").joinpath("messages")
    files = [root.joinpath(f"{lang}.toml")]
    area = root.joinpath(lang)
    if area.is_dir():
        files += sorted(
            (f for f in area.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name
        )
    return files


@cache
def catalogue(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for file in catalogue_files(lang):
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        for key, value in data.items():
            if key in merged:
                raise ValueError(f"catalogue key {key!r} defined twice ({file.name})")
            merged[str(key)] = str(value)
    return merged


def detect_language(explicit: str | None = None) -> str:
    """--lang, then HVRESCUE_LANG, then the POSIX locale variables; English by default."""
    candidates = [explicit, os.environ.get("HVRESCUE_LANG")]
    candidates += [os.environ.get(v) for v in ("LC_ALL", "LC_MESSAGES", "LANG")]
    for value in candidates:
        if value:
            code = value.lower()[:2]
            if code in LANGUAGES:
                return code
            if explicit is not None and value == explicit:
                continue
    return "en"


class Messages:
    def __init__(self, lang: str = "en") -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self._cat = catalogue(self.lang)
        self._fallback = catalogue("en")

    def __call__(self, key: str, **params: Any) -> str:
        template = self._cat.get(key) or self._fallback.get(key)
        if template is None:
            return key + (" " + repr(params) if params else "")
        return template.format_map(_Keep(params))

    def has(self, key: str) -> bool:
        return key in self._cat
