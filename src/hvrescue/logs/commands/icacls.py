"""`icacls PATH` (also `/T`, several paths), English and Japanese: one `acl` fact per path.

icacls prints the path, one space, its first ACE; each further ACE on its own line indented to
the column after the path; a blank line between paths; and the summary ("Successfully processed
1 files; Failed processing 0 files" / "1 個のファイルが正常に処理されました。..."). A path it
cannot read is one line "PATH: Access is denied." / "PATH: アクセスが拒否されました。".

An ACE is "principal:(flags)(rights)": the inheritance flags (OI) (CI) (IO) (NP), (I) for an
inherited entry, (DENY), and the rights ("F", "RX", or a list "R,W"). Principals are printed by
their account names, the same in every language; a VM's is ``NT VIRTUAL MACHINE\\<VM id>`` (or
its SID S-1-5-83-1-... where the name cannot be resolved): those ids are listed in ``vm_ids``
(lowercase, as Get-VM prints them), for the check that a disk grants its own VM.
"""

from __future__ import annotations

import re
import struct
import uuid
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

ACE = re.compile(r"^(?P<principal>[^\s:()][^:()]*?):(?P<perms>(?:\([^()]*\))+)$")
ACE_END = re.compile(r"[^\s:()]:(?:\([^()]*\))+$")
FLAGS = ("OI", "CI", "IO", "NP")
SUMMARY = re.compile(
    r"^\s*(?:Successfully processed \d+ files?; Failed processing \d+ files?"
    r"|\d+\s*個のファイルが正常に処理されました)",
    re.I,
)
ERRORS = {
    "Access is denied.": "access-denied",
    "アクセスが拒否されました。": "access-denied",
    "The system cannot find the file specified.": "not-found",
    "The system cannot find the path specified.": "not-found",
    "指定されたファイルが見つかりません。": "not-found",
    "指定されたパスが見つかりません。": "not-found",
}
ERROR_LINE = re.compile(
    r"^(?P<path>(?:[A-Za-z]:|\\\\)\S.*?|%\w+%.*?)\s*[:：]\s*(?P<msg>"
    + "|".join(re.escape(m) for m in ERRORS)
    + r")\s*$"
)
# A path as icacls prints it: a drive or UNC path, or "." and relative names.
PATH_START = re.compile(r"^(?:[A-Za-z]:|\\\\|\.|%\w+%)")
KNOWN_PRINCIPALS = re.compile(
    r"(?:NT AUTHORITY|BUILTIN|NT VIRTUAL MACHINE|NT SERVICE|APPLICATION PACKAGE AUTHORITY"
    r"|CREATOR OWNER|CREATOR GROUP|Everyone|S-1-\d)",
    re.I,
)
VM_PRINCIPAL = re.compile(
    r"^NT VIRTUAL MACHINE\\(?P<id>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{12})$",
    re.I,
)
VM_SID = re.compile(r"^\*?S-1-5-83-1-(\d{1,10})-(\d{1,10})-(\d{1,10})-(\d{1,10})$")
MAX_ENTRIES = 4096
WRAP_CONFIDENCE = 0.8


def _perms(perms: str) -> dict[str, Any]:
    groups = re.findall(r"\(([^()]*)\)", perms)
    flags = [g for g in groups if g in FLAGS]
    rights: list[str] = []
    for g in groups:
        if g not in FLAGS and g not in ("I", "DENY"):
            rights.extend(r.strip() for r in g.split(",") if r.strip())
    return {"rights": rights, "inherited": "I" in groups, "flags": flags, "deny": "DENY" in groups}


def _entry(ace: str) -> dict[str, Any] | None:
    m = ACE.match(ace.strip())
    if not m:
        return None
    return {"principal": m.group("principal").strip(), **_perms(m.group("perms"))}


def vm_id_of(principal: str) -> str | None:
    """The VM id of a principal that is a VM's own account, lowercase; else None."""
    return _vm_id(principal)


def _vm_id(principal: str) -> str | None:
    m = VM_PRINCIPAL.match(principal)
    if m:
        return m.group("id").lower()
    s = VM_SID.match(principal)
    if s:
        # A virtual machine SID holds the VM id's 16 bytes as four sub-authorities.
        parts = [int(x) for x in s.groups()]
        if all(p < 1 << 32 for p in parts):
            return str(uuid.UUID(bytes_le=struct.pack("<4I", *parts)))
    return None


def _split_first(line: str, indent: int | None) -> tuple[str, str] | None:
    """The path and the first ACE of a path's first line."""
    if indent is not None and 0 < indent < len(line) and line[indent - 1] == " ":
        path, ace = line[: indent - 1].rstrip(), line[indent:]
        if path and ACE.match(ace.strip()):
            return path, ace
    spaces = [m.start() for m in re.finditer(" ", line)]
    candidates = [k for k in spaces if ACE.match(line[k + 1 :]) and line[:k].strip()]
    if not candidates:
        return None
    for k in candidates:  # the principal is one icacls names the same way everywhere
        if KNOWN_PRINCIPALS.match(line[k + 1 :]):
            return line[:k].rstrip(), line[k + 1 :]
    # Otherwise the principal is DOMAIN\name or a name without spaces: the last split.
    k = candidates[-1]
    return line[:k].rstrip(), line[k + 1 :]


def _unwrapped(text: Text, lines: list[str]) -> list[tuple[int, str, bool]]:
    """(line index, text, joined): a line the console wrapped (no ACE at its end, the next
    line carrying on) joined to its remainder."""
    raw = text.lines
    out: list[tuple[int, str, bool]] = []
    i = 0
    while i < len(lines):
        line, start, joined = lines[i], i, False
        while (
            line.strip()
            and not text.is_prompt(start)
            and not text.is_prompt(i + 1)
            and not ACE_END.search(line)
            and not SUMMARY.match(line)
            and not ERROR_LINE.match(line)
            and i + 1 < len(lines)
            and lines[i + 1].strip()
            and not SUMMARY.match(lines[i + 1])
            and PATH_START.match(lines[start].lstrip())
            and len(line) < 4096
        ):
            nxt = lines[i + 1]
            space = raw[i].endswith(" ") or KNOWN_PRINCIPALS.match(nxt.lstrip())
            line = line + (" " if space else "") + nxt.lstrip()
            joined = True
            i += 1
        out.append((start, line, joined))
        i += 1
    return out


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    facts: list[Fact] = []
    loose = any(a != b for a, b in zip(lines, text.lines, strict=True))
    rows = _unwrapped(text, lines)
    n = 0
    while n < len(rows):
        index, line, joined = rows[n]
        err = ERROR_LINE.match(line.strip())
        if err:
            attrs = _acl(err.group("path").strip(), [], ERRORS[err.group("msg")])
            facts.append(Fact("acl", attrs, Provenance(text.path, text.locator(index))))
            n += 1
            continue
        if (
            not line.strip()
            or line[:1].isspace()
            or not PATH_START.match(line)
            or text.is_prompt(index)
        ):
            n += 1
            continue
        nxt = rows[n + 1][1] if n + 1 < len(rows) else ""
        indent = len(nxt) - len(nxt.lstrip()) if nxt.strip() and nxt[:1] == " " else None
        split = _split_first(line, indent)
        if split is None:
            n += 1
            continue
        path, first = split
        entries = [e for e in [_entry(first)] if e]
        wrapped = joined
        n += 1
        while n < len(rows) and len(entries) < MAX_ENTRIES:
            _, more, more_joined = rows[n]
            if not more.strip() or not more[:1].isspace():
                break
            entry = _entry(more)
            if entry is None:
                break
            entries.append(entry)
            wrapped = wrapped or more_joined
            n += 1
        attrs = _acl(path, entries, None)
        if wrapped or loose:
            attrs["confidence"] = WRAP_CONFIDENCE if wrapped else 0.9
        facts.append(Fact("acl", attrs, Provenance(text.path, text.locator(index))))
    return facts


def _acl(path: str, entries: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    vm_ids: list[str] = []
    for e in entries:
        vm = _vm_id(e["principal"])
        if vm and vm not in vm_ids:
            vm_ids.append(vm)
    return {"path": path, "entries": entries, "vm_ids": vm_ids, "error": error}
