"""File listings: ``dir`` / ``dir /s`` (English and Japanese) and ``Get-ChildItem`` (also with
``-Recurse`` and ``| Format-Table Mode, LastWriteTime, Length, Name``): one ``file_entry`` fact
per file, ``{path, name, directory, size, mtime}``.

``dir`` prints `` Directory of D:\\x`` (`` D:\\x のディレクトリ``) and then one line per entry,
``11/28/2026  10:02 PM    42,949,672,960 FS01.vhdx`` (``2026/11/28  22:02  ...``), folders
as ``<DIR>``, and a summary ``2 File(s) ... bytes`` (``2 個のファイル``). Get-ChildItem prints
``    Directory: D:\\x`` (``    ディレクトリ: D:\\x``), the headers ``Mode  LastWriteTime  Length
Name`` (the same in every language) and rows ``-a----  11/28/2026  10:02 PM  4194304 FS01.vhdx``.
``mtime`` is the time as printed (its order follows the host's locale, so it is not turned
into a date here); ``size`` is in bytes. Entries are counted and bounded per text.
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

MAX_ENTRIES = 100_000
DIR_HEADER = re.compile(r"^\s*(?:Directory of\s+(?P<en>\S.*?)|(?P<ja>\S.*?)\s+のディレクトリ)\s*$")
PS_HEADER = re.compile(r"^\s*(?:Directory|ディレクトリ)\s*[:：]\s*(?P<dir>\S.*?)\s*$")
PS_COLUMNS = re.compile(r"^\s*Mode\s+LastWriteTime\s+Length\s+Name\s*$")
_DATE = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?(?:\s*(?:[AaPp]\.?[Mm]\.?|午前|午後))?"
DIR_ROW = re.compile(
    rf"^(?P<when>{_DATE}\s+(?:午前|午後)?\s*{_TIME})\s+"
    r"(?P<size>\d[\d,.\u00a0 ]*?\d|\d)\s+(?P<name>\S.*?)\s*$"
)
PS_ROW = re.compile(
    rf"^\s*(?P<mode>[-dlarhs]{{5,6}})\s+(?P<when>{_DATE}\s+{_TIME})\s+(?P<size>\d+)\s+(?P<name>\S.*?)\s*$"
)
DRIVE = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    facts: list[Fact] = []
    folder: str | None = None
    style: str | None = None
    for i, line in enumerate(lines):
        if len(facts) >= MAX_ENTRIES:
            break
        d = DIR_HEADER.match(line)
        if d and DRIVE.match(d.group("en") or d.group("ja") or ""):
            folder, style = (d.group("en") or d.group("ja")).rstrip("\\"), "dir"
            continue
        p = PS_HEADER.match(line)
        if p and DRIVE.match(p.group("dir")):
            folder, style = p.group("dir").rstrip("\\"), "ps"
            continue
        if folder is None:
            continue
        row = PS_ROW.match(line) if style == "ps" else DIR_ROW.match(line)
        if row is None:
            continue
        if style == "ps" and "d" in row.group("mode")[:1]:
            continue  # a folder
        size = int(re.sub(r"[,.\u00a0 ]", "", row.group("size")))
        name = row.group("name")
        attrs = {
            "path": f"{folder}\\{name}",
            "name": name,
            "directory": folder,
            "size": size,
            "mtime": re.sub(r"\s+", " ", row.group("when")),
            "source": "get-childitem" if style == "ps" else "dir",
        }
        facts.append(Fact("file_entry", attrs, Provenance(text.path, text.locator(i))))
    return facts
