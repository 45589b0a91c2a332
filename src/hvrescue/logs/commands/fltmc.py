"""`fltmc filters`: the file-system minifilters loaded on a host, one ``minifilter`` fact each.

The table has four columns (name, instances, altitude, frame) under a row of dashes. Its header
is localised, so the table is found by its shape: a dashes row of four groups followed by rows
whose last three columns are numbers. A paste that lost the header still has the dashes; a
fragment without them is not read (a list of words and numbers could be anything).
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

DASHES = re.compile(r"^\s*-{3,}\s+-{3,}\s+-{3,}\s+-{3,}\s*$")
ROW = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s+(?P<instances>\d+)\s+"
    r"(?P<altitude>\d+(?:\.\d+)?)\s+(?P<frame>\d+)\s*$"
)
# The header above the dashes, where the paste kept it: "Filter Name  Num Instances ...",
# "フィルター名 ...", "Nom du filtre ...", "Filtername ...".
HEADER = re.compile(r"filter|フィルター|filtre", re.IGNORECASE)
MAX_ROWS = 4096


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        if "---" not in lines[i] or not DASHES.match(lines[i]) or not _header_ok(lines, i):
            i += 1
            continue
        i += 1
        rows = 0
        while i < len(lines) and rows < MAX_ROWS:
            m = ROW.match(lines[i])
            if m is None:
                break
            facts.append(
                Fact(
                    "minifilter",
                    {
                        "name": m.group("name"),
                        "altitude": m.group("altitude"),
                        "instance_count": int(m.group("instances")),
                        "frame": int(m.group("frame")),
                        "image_path": None,
                        "source": "fltmc",
                    },
                    Provenance(text.path, text.locator(i)),
                )
            )
            rows += 1
            i += 1
    return facts


def _header_ok(lines: list[str], dashes: int) -> bool:
    """The line above the dashes names filters, or is gone (a paste that began at the dashes)."""
    if dashes == 0 or not lines[dashes - 1].strip():
        return True
    return HEADER.search(lines[dashes - 1]) is not None
