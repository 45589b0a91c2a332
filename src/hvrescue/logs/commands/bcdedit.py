"""`bcdedit /enum` (any section set): each entry with its elements, `hypervisorlaunchtype` first
among them. Section titles are localised (Windows ブート ローダー); element names are not."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

DASHES = re.compile(r"^-{5,}\s*$")
# bcdedit pads names to 24 columns: a name of 23 letters (allowedinmemorysettings) or more is
# followed by a single space.
ELEMENT = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9]*)(?:\s{2,}|(?<=\w{23}) )(?P<value>\S.*?)\s*$")
CONT = re.compile(r"^\s{10,}(?P<value>\S.*?)\s*$")


def parse(text: Text) -> list[Fact]:
    # Reposted: quote markers gone; an indented block (Markdown's four spaces, a tab) is read
    # from the column its section title starts at.
    lines = cleaned(text)
    facts: list[Fact] = []
    i = 0
    while i + 1 < len(lines):
        title = lines[i].strip()
        indent = len(lines[i]) - len(lines[i].lstrip())
        first = ELEMENT.match(_dedent(lines[i + 2], indent)) if i + 2 < len(lines) else None
        # A section: a title, a rule of dashes, then the identifier element.
        if not (
            title
            and DASHES.match(lines[i + 1].strip())
            and first
            and first.group("key") == "identifier"
        ):
            i += 1
            continue
        start = i
        elements: dict[str, Any] = {}
        last: str | None = None
        i += 2
        while i < len(lines) and lines[i].strip():
            line = _dedent(lines[i], indent)
            m = ELEMENT.match(line)
            c = CONT.match(line)
            if m:
                last = m.group("key").lower()
                elements[last] = m.group("value")
            elif c and last is not None:
                prev = elements[last]
                elements[last] = (prev if isinstance(prev, list) else [prev]) + [c.group("value")]
            else:
                break
            i += 1
        attrs: dict[str, Any] = {
            "section": title,
            "identifier": _one(elements.get("identifier")),
            "description": _one(elements.get("description")),
            "hypervisorlaunchtype": _one(elements.get("hypervisorlaunchtype")),
            "elements": elements,
        }
        facts.append(Fact("bcd_entry", attrs, Provenance(text.path, text.locator(start))))
    return facts


def _dedent(line: str, indent: int) -> str:
    """``line`` from column ``indent``, where the block's indentation is only spaces."""
    return line[indent:] if indent and not line[:indent].strip() else line


def _one(value: Any) -> Any:
    """An element that holds one value (a list only where a paste put a stray line under it)."""
    return value[0] if isinstance(value, list) else value
