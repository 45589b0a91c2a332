"""Paths in the commands a report prints: one word for cmd, PowerShell and POSIX shells alike."""

from __future__ import annotations

import re

_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./\\-]+")


def shell_quote(text: str) -> str:
    """Double quotes when ``text`` holds spaces or other specials (every shell keeps the
    backslashes of a Windows path inside them); single quotes only where double quotes would
    not protect it (``"``, ``$``, backquote, ``!``)."""
    if _SHELL_SAFE.fullmatch(text):
        return text
    if not any(ch in text for ch in '"$`!'):
        return f'"{text}"'
    return "'" + text.replace("'", "'\"'\"'") + "'"
