"""Helpers shared by the command-output parsers: numbered lines, transcript prompts, key/value."""

from __future__ import annotations

import bisect
import functools
import re

# A console prompt followed by a command: "C:\Windows\system32>vssadmin list writers",
# "PS C:\> Get-VHD ...", "X:\>dism /image:D:\ /get-packages".
PROMPT = re.compile(r"^\s*(?:PS\s+)?[A-Za-z]:\\[^>\n]*>\s*(?P<cmd>\S.*)$")
DASHES = re.compile(r"^\s*-{3,}\s*$")


class Text:
    """A decoded text file as lines (LF), with the commands typed at prompts, if any."""

    def __init__(self, lines: list[str], path: str) -> None:
        self.lines = lines
        self.path = path
        # Prompt lines, found once: parsers ask "which command printed this line?" for many
        # lines, and a backwards scan per question would be quadratic on large logs.
        self._prompts = [i for i, line in enumerate(lines) if ">" in line and PROMPT.match(line)]
        self._prompt_set = set(self._prompts)

    @classmethod
    def of(cls, text: str, path: str) -> Text:
        return cls(text.split("\n"), path)

    def locator(self, index: int) -> str:
        return f"line:{index + 1}"

    def command_at(self, index: int) -> str | None:
        """The command whose output contains line ``index`` (nearest prompt above it)."""
        n = bisect.bisect_right(self._prompts, index)
        if n == 0:
            return None
        m = PROMPT.match(self.lines[self._prompts[n - 1]])
        return m.group("cmd").strip() if m else None

    def is_prompt(self, index: int) -> bool:
        return index in self._prompt_set


def split_kv(line: str, sep: str = ":") -> tuple[str, str] | None:
    """'Key   : value' or 'キー: value' -> (key, value); None when the line has no separator."""
    if sep not in line:
        return None
    key, value = line.split(sep, 1)
    key = key.strip()
    if not key:
        return None
    return key, value.strip()


_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def norm_key(key: str) -> str:
    # Cached: every parser asks for the keys of every line, and logs repeat their keys.
    return _SPACES.sub(" ", key.strip().lower().replace("\u3000", " "))


def strip_quotes(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
