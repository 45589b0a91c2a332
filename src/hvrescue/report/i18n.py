"""Message catalogues: every text a user reads comes from ``messages/<lang>.toml`` and the
per-area files ``messages/<lang>/*.toml`` (one per package, so areas are edited apart)."""

from __future__ import annotations

import os
import re
import string
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from hvrescue.platform import ui_language

LANGUAGES = ("en", "ja")
# Catalogue keys that are interface words, not codes a user can ask `explain` about.
INTERFACE_PREFIXES = (
    "ui.",
    "error.",
    "help.",
    "click.",
    "explain.",
    "param.",
    "placeholder.",
    "layer.",
    "precondition.",
    "gap.cause.",
    "facts.reason.",
)
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:![rsa])?(?::[^{}]*)?\}")
_PLACEHOLDER = re.compile(r"<([^<>\n]{1,80})>")


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
    """--lang, then HVRESCUE_LANG, then the Windows user interface language, then the POSIX
    locale variables; English by default."""
    candidates = [explicit, os.environ.get("HVRESCUE_LANG")]
    if not any(candidates):
        candidates.append(ui_language())  # asked only when needed: a call into kernel32
    candidates += [os.environ.get(v) for v in ("LC_ALL", "LC_MESSAGES", "LANG")]
    for value in candidates:
        if value:
            code = value.lower()[:2]
            if code in LANGUAGES:
                return code
            if explicit is not None and value == explicit:
                continue
    return "en"


def template_fields(template: str) -> set[str]:
    """The parameter names a template takes (``{offset}``, ``{name!r}`` -> offset, name)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return set(_FIELD.findall(template))
    return {re.split(r"[.\[]", f)[0] for _, f, _, _ in parsed if f}


class Messages:
    def __init__(self, lang: str = "en") -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self._cat = catalogue(self.lang)
        self._fallback = catalogue("en")

    def __call__(self, key: str, **params: Any) -> str:
        template = self._cat.get(key) or self._fallback.get(key)
        if template is None:
            return key + (" " + repr(params) if params else "")
        try:
            return template.format_map(_Keep(params))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            # A format spec that does not fit the value given: the value as text, never a crash.
            return _FIELD.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)

    def has(self, key: str) -> bool:
        return key in self._cat

    def label(self, name: str) -> str:
        """A parameter's name as a reader sees it: ``param.<name>`` or the name in words."""
        return self._cat.get(f"param.{name}") or name.replace("_", " ")

    def template(self, key: str) -> str:
        """A message with its parameters shown as readable labels (``<offset>``), for a person
        asking what a code means rather than reading one occurrence of it."""
        template = self._cat.get(key) or self._fallback.get(key) or key
        return _FIELD.sub(lambda m: f"<{self.label(m.group(1))}>", template)

    def placeholders(self, text: str) -> str:
        """The ``<...>`` a command asks the reader to fill in (``<other storage>``), in this
        language: each ``placeholder.*`` key gives the English text and its translation;
        ``{value}`` in it stands for any text (``<copy of {value}>``)."""
        if self.lang == "en" or "<" not in text:
            return text
        table = _placeholder_table(self.lang)

        def sub(match: re.Match[str]) -> str:
            inner = match.group(1)
            for pattern, translated in table:
                found = pattern.fullmatch(inner)
                if found:
                    return "<" + translated.replace("{value}", found.groupdict().get("v", "")) + ">"
            return match.group(0)

        return _PLACEHOLDER.sub(sub, text)


@cache
def _placeholder_table(lang: str) -> list[tuple[re.Pattern[str], str]]:
    english, local = catalogue("en"), catalogue(lang)
    table = []
    for key, text in english.items():
        if key.startswith("placeholder.") and key in local:
            pattern = re.escape(text).replace(re.escape("{value}"), "(?P<v>.+)", 1)
            table.append((re.compile(pattern, re.IGNORECASE), local[key]))
    # Exact texts before patterns: <copy of the dump> before <copy of {value}>.
    return sorted(table, key=lambda entry: "(?P<v>" in entry[0].pattern)
