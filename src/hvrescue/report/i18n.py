"""Message catalogues: every text a user reads comes from ``messages/<lang>.toml`` and the
per-area files ``messages/<lang>/*.toml`` (one per package, so areas are edited apart).

Every command starts by reading its language's catalogue, so the reading is part of the start-up
time: the files hold only ``"key" = "text"`` lines, which :func:`parse_catalogue` reads with one
regular expression (a tenth of ``tomllib``'s time). Anything else in a file (tables, other
string forms, a duplicate key, a character TOML forbids) sends the whole file to ``tomllib``, so
the result, and every error, is always what ``tomllib`` gives.
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

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


def _messages_root() -> Any:
    """The catalogues' folder: a plain path beside this module (importlib.resources only for a
    package that is not in folders, a zip say)."""
    here = Path(__file__).resolve().parent / "messages"
    if here.is_dir():
        return here
    from importlib import resources

    return resources.files("hvrescue.report").joinpath("messages")


def catalogue_files(lang: str) -> list[Any]:
    """The catalogue files of one language: the main file first, then each area's file."""
    root = _messages_root()
    files = [root.joinpath(f"{lang}.toml")]
    area = root.joinpath(lang)
    if area.is_dir():
        files += sorted(
            (f for f in area.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name
        )
    return files


# One `"key" = "basic string"` line (a bare key without dots also), an optional comment after.
# No control character but tab inside (TOML forbids them; tomllib then says where).
_LINE = re.compile(
    r'[ \t]*(?:"([^"\\\x00-\x1f\x7f]*)"|([A-Za-z0-9_-]+))[ \t]*=[ \t]*'
    r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]+|\\(?:[btnfr"\\]|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))*)"'
    r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?"
)
_SKIP = re.compile(r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _NotSimple(Exception):
    """The text is not of the simple form: tomllib reads it."""


def _unescape(match: re.Match[str]) -> str:
    simple = match.group(3)
    if simple is not None:
        return _SIMPLE_ESCAPES[simple]
    code = int(match.group(1) or match.group(2), 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        raise _NotSimple  # not a Unicode scalar value: tomllib's error
    return chr(code)


def _parse_simple(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if line.endswith("\r") and number < len(lines):  # CR LF; a lone CR is tomllib's error
            line = line[:-1]
        found = _LINE.fullmatch(line)
        if found is None:
            if _SKIP.fullmatch(line) is None:
                raise _NotSimple
            continue
        key = found.group(1)
        if key is None:
            key = found.group(2)
        value = found.group(3)
        if "\\" in value:
            value = _ESCAPE.sub(_unescape, value)
        if key in out:
            raise _NotSimple  # a key defined twice: tomllib's error
        out[key] = value
    return out


def parse_catalogue(text: str) -> dict[str, Any]:
    """A catalogue file's content, exactly as ``tomllib.loads`` reads it (see the module
    docstring); raises ``tomllib.TOMLDecodeError`` as it does."""
    try:
        return _parse_simple(text)
    except _NotSimple:
        pass
    import tomllib

    return tomllib.loads(text)


@cache
def catalogue(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for file in catalogue_files(lang):
        data = parse_catalogue(file.read_text(encoding="utf-8"))
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
        # Asked only when needed: a call into kernel32. The platform package (ctypes: 5 ms of a
        # small command's start) is imported for it on Windows only; where it is imported
        # already, it decides (its on_windows() is sys.platform's answer unless a test stands
        # in for Windows).
        platform = sys.modules.get("hvrescue.platform")
        if platform is None and sys.platform == "win32":
            import hvrescue.platform as platform
        if platform is not None:
            candidates.append(platform.ui_language())
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
    import string

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
