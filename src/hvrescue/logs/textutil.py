"""Helpers shared by the command-output parsers: numbered lines, transcript prompts, key/value."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A console prompt followed by a command: "C:\Windows\system32>vssadmin list writers",
# "PS C:\> Get-VHD ...", "X:\>dism /image:D:\ /get-packages".
PROMPT = re.compile(r"^\s*(?:PS\s+)?[A-Za-z]:\\[^>\n]*>\s*(?P<cmd>\S.*)$")
DASHES = re.compile(r"^\s*-{3,}\s*$")


@dataclass(frozen=True)
class Text:
    """A decoded text file as lines (LF), with the commands typed at prompts, if any."""

    lines: list[str]
    path: str

    @classmethod
    def of(cls, text: str, path: str) -> Text:
        return cls(text.split("\n"), path)

    def locator(self, index: int) -> str:
        return f"line:{index + 1}"

    def command_at(self, index: int) -> str | None:
        """The command whose output contains line ``index`` (nearest prompt above it)."""
        for i in range(index, -1, -1):
            m = PROMPT.match(self.lines[i])
            if m:
                return m.group("cmd").strip()
        return None

    def is_prompt(self, index: int) -> bool:
        return bool(PROMPT.match(self.lines[index]))


def split_kv(line: str, sep: str = ":") -> tuple[str, str] | None:
    """'Key   : value' or 'キー: value' -> (key, value); None when the line has no separator."""
    if sep not in line:
        return None
    key, value = line.split(sep, 1)
    key = key.strip()
    if not key:
        return None
    return key, value.strip()


def norm_key(key: str) -> str:
    return re.sub(r"\s+", " ", key.strip().lower().replace("\u3000", " "))


def strip_quotes(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
