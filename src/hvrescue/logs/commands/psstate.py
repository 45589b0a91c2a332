"""What a Hyper-V transcript says by its shape rather than by a table the generic reader takes:

- a cmdlet that ran and printed no row (``PS C:\\> Get-VMSnapshot -VMName X`` followed by the
  next prompt): one ``ps_no_output`` fact, ``{cmdlet, command, vm_name, filtered}``; only for
  cmdlets whose empty output means "none" (no checkpoint, no replication, no disk drive);
- ``... | Measure-Object -Property Length -Sum`` over a file listing (``Count`` / ``Sum`` /
  ``Property``): one ``file_summary`` fact, ``{command, path, pattern, extension, count,
  total_bytes}``;
- ``Measure-VMReplication`` / ``Get-VMReplication`` rows whose state is wider than its column
  (``ResynchronizationRequired``), which no column layout fits: one ``vm_replication`` fact per
  row, read by the order of the values (name, state, health, the rest);
- the replication health lines of Hyper-V Manager's "View Replication Health"
  ("レプリケーションの正常性: 重大", "仮想マシン X を再同期する必要があります"): a
  ``vm_replication`` fact when no table already told the VM's state.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import PROMPT, Text

# Cmdlets whose output, when empty, says there is none of what they list.
EMPTY_MEANS_NONE = frozenset({"get-vmsnapshot", "get-vmreplication", "get-vmharddiskdrive"})
ALIASES = {"get-vmcheckpoint": "get-vmsnapshot"}
BARE_PROMPT = re.compile(r"^\s*(?:PS\s+)?[A-Za-z]:\\[^>\n]*>\s*$")
# Pipeline stages after the cmdlet that print what they get (or nothing when they get nothing).
SHOWN = re.compile(
    r"^(?:Format-(?:Table|List|Wide)|ft|fl|fw|Select-Object|select|Sort-Object|sort|Out-String"
    r"|Out-Host)\b",
    re.I,
)
FILTERS = re.compile(r"^(?:Where-Object|where|\?)(?:\s|$)", re.I)
NARROWING = re.compile(r"\s-(?:Name|SnapshotType|ParentOf|ChildOf|Id|ControllerType)\b", re.I)
VMNAME = re.compile(
    r"-VMName\s+(?:'(?P<q1>[^']+)'|\"(?P<q2>[^\"]+)\"|(?P<bare>[^\s,;|'\"]+))", re.I
)
GET_VM = re.compile(
    r"^Get-VM\s+(?:-Name\s+)?(?:'(?P<q1>[^']+)'|\"(?P<q2>[^\"]+)\"|(?P<bare>[^\s,;|'\"-][^\s,;|'\"]*))",
    re.I,
)
LISTING = re.compile(r"^(?:Get-ChildItem|gci|dir|ls)\b(?P<args>.*)$", re.I)
FILTER_ARG = re.compile(r"-(?:Filter|Include)\s+(?:'([^']+)'|\"([^\"]+)\"|(\S+))", re.I)
PATH_ARG = re.compile(
    r"(?:-(?:Path|LiteralPath)\s+)?(?:'(?P<q1>[^']+)'|\"(?P<q2>[^\"]+)\"|(?P<bare>[A-Za-z]:\\\S*|\\\\\S+))"
)
EXTENSION = re.compile(r"\*(\.[A-Za-z0-9]{1,8})$")

# Replication tables: the header, and a row read by its values' order.
REPL_HEADER = re.compile(r"^\s*VMName\s+State\s+Health\s+(?P<rest>\S.*)$")
REPL_ROW = re.compile(
    r"^\s*(?P<name>\S.*?)\s+(?P<state>[A-Z][A-Za-z]+)\s+(?P<health>Normal|Warning|Critical)"
    r"(?:\s+(?P<rest>.*?))?\s*$"
)
REPL_TIME = re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AP]M)?")
HEALTHS = frozenset({"Normal", "Warning", "Critical"})
MODES = frozenset({"Primary", "Replica", "ExtendedReplica", "TestReplica", "None"})
RELATIONSHIPS = frozenset({"Simple", "Extended"})
# Hyper-V Manager's replication health text (ja as posted; en wording unconfirmed).
HEALTH_LINE = re.compile(
    r"^\s*(?:Replication Health|レプリケーションの正常性)\s*[:：]\s*"
    r"(?P<h>Critical|Warning|Normal|重大|警告|正常)\s*$"
)
HEALTH_WORDS = {"重大": "Critical", "警告": "Warning", "正常": "Normal"}
RESYNC_LINE = re.compile(
    r"仮想マシン\s*['\"「]?(?P<ja>[^'\"」\s]+)['\"」]?\s*を再同期する必要があります"
    r"|(?i:virtual machine\s+'?(?P<en>[^'\s]+)'?\s+(?:needs|requires)\s+(?:to be\s+)?resynchroniz)"
)


def _quoted(m: re.Match[str] | None) -> str | None:
    if m is None:
        return None
    value = m.group("q1") or m.group("q2") or m.group("bare")
    return value if value and "*" not in value and "$" not in value else None


def _stages(command: str) -> list[str]:
    return [s.strip() for s in command.split("|")]


def _empty_after(text: Text, lines: list[str], i: int) -> bool:
    """Nothing but blank lines between the prompt on ``i`` and the next prompt."""
    j = i + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    return j < len(lines) and (text.is_prompt(j) or bool(BARE_PROMPT.match(lines[j])))


def no_output(text: Text, lines: list[str]) -> list[Fact]:
    from hvrescue.logs.commands.pstable import cmdlet_of

    facts: list[Fact] = []
    for i, line in enumerate(lines):
        if not text.is_prompt(i) or not _empty_after(text, lines, i):
            continue
        m = PROMPT.match(line)
        command = m.group("cmd").strip() if m else ""
        if ">" in command.replace("->", "") or command.startswith("$"):
            continue  # redirected or assigned: printing nothing is expected
        cmdlet = cmdlet_of(command)
        cmdlet = ALIASES.get(cmdlet or "", cmdlet)
        if cmdlet not in EMPTY_MEANS_NONE:
            continue
        stages = _stages(command)
        # "Get-VM X | Get-VMSnapshot": the last Get-* is the one that printed.
        at = max(n for n, s in enumerate(stages) if cmdlet_of(s) is not None)
        after = stages[at + 1 :]
        if any(not SHOWN.match(s) and not FILTERS.match(s) for s in after):
            continue  # piped into something that prints nothing of its own
        filtered = any(FILTERS.match(s) for s in after) or bool(NARROWING.search(stages[at]))
        vm_name = _quoted(VMNAME.search(command)) or _quoted(GET_VM.match(stages[0]))
        attrs = {
            "cmdlet": cmdlet,
            "command": command,
            "vm_name": vm_name,
            "filtered": filtered,
            "rows": 0,
            "format": "powershell",
        }
        facts.append(Fact("ps_no_output", attrs, Provenance(text.path, text.locator(i))))
    return facts


def measure(
    props: dict[str, str], whole: dict[str, str], where: Provenance, context: dict[str, str]
) -> Fact | None:
    """Measure-Object's list (``Count``, ``Sum``, ``Property``) over Get-ChildItem's files."""
    count = _number(whole.get("Count"))
    if count is None:
        return None
    command = context.get("_command") or ""
    path = pattern = None
    for stage in _stages(command):
        m = LISTING.match(stage)
        if m is None:
            continue
        args = m.group("args")
        f = FILTER_ARG.search(args)
        pattern = next((g for g in f.groups() if g), None) if f else None
        p = PATH_ARG.search(FILTER_ARG.sub("", args))
        path = _quoted(p) if p else None
        if p and pattern is None:
            raw = p.group("q1") or p.group("q2") or p.group("bare") or ""
            path, _, tail = raw.rpartition("\\")
            pattern = tail if "*" in tail else None
            path = path if pattern else raw
        break
    ext = EXTENSION.search(pattern or "")
    summed = (whole.get("Property") or "").lower() == "length"
    attrs: dict[str, Any] = {
        "command": command or None,
        "path": path,
        "pattern": pattern,
        "extension": ext.group(1).lower() if ext else None,
        "count": count,
        "total_bytes": _number(whole.get("Sum")) if summed else None,
        "format": "powershell",
    }
    return Fact("file_summary", attrs, where)


def _number(value: str | None) -> int | None:
    text = (value or "").replace(",", "").replace("\u00a0", "").strip()
    return int(text) if re.fullmatch(r"\d{1,18}", text) else None


def sound(facts: list[Fact]) -> list[Fact]:
    """``facts`` without the replication rows the column reader misread: a state wider than
    its column pushes the health and the rest out of place; ``replication`` reads them again."""
    return [
        f
        for f in facts
        if f.kind != "vm_replication"
        or (
            f.attributes.get("health") in HEALTHS
            and re.fullmatch(r"[A-Za-z]+", f.attributes.get("state") or "") is not None
        )
    ]


def replication(text: Text, lines: list[str], known: list[Fact]) -> list[Fact]:
    """Rows of replication tables that no fact in ``known`` was read from, then the health
    lines of Hyper-V Manager for a VM no table named."""
    taken = {f.provenance.locator for f in known if f.kind == "vm_replication"}
    facts: list[Fact] = []
    for i in range(len(lines) - 2):
        head = REPL_HEADER.match(lines[i])
        if head is None or not re.match(r"^\s*-{2,}\s", lines[i + 1]):
            continue
        measured = bool(re.search(r"LReplTime|Relationship|AvgLatency", head.group("rest")))
        j = i + 2
        while j < len(lines) and lines[j].strip() and not text.is_prompt(j):
            m = REPL_ROW.match(lines[j])
            if m and text.locator(j) not in taken:
                facts.append(_repl_fact(m, measured, Provenance(text.path, text.locator(j))))
            j += 1
    named = {f.attributes.get("name") for f in [*known, *facts] if f.kind == "vm_replication"}
    health = None
    for i, line in enumerate(lines):
        h = HEALTH_LINE.match(line)
        if h:
            health = HEALTH_WORDS.get(h.group("h"), h.group("h"))
            continue
        r = RESYNC_LINE.search(line)
        if r is None or (r.group("ja") or r.group("en")) in named:
            continue
        attrs = {
            "name": r.group("ja") or r.group("en"),
            "state": "ResynchronizationRequired",
            "health": health,
            "source": "replication-health",
            "confidence": 0.8,
        }
        facts.append(Fact("vm_replication", attrs, Provenance(text.path, text.locator(i))))
    return facts


def _repl_fact(m: re.Match[str], measured: bool, where: Provenance) -> Fact:
    rest = (m.group("rest") or "").split()
    when = REPL_TIME.search(m.group("rest") or "")
    attrs: dict[str, Any] = {
        "name": m.group("name"),
        "state": m.group("state"),
        "health": m.group("health"),
        "mode": None if measured or not rest or rest[0] not in MODES else rest[0],
        "source": "measure-vmreplication" if measured else "get-vmreplication",
        "confidence": 0.9,
    }
    if measured:
        attrs["last_replication_time"] = when.group(0) if when else None
        attrs["relationship"] = rest[-1] if rest and rest[-1] in RELATIONSHIPS else None
    return Fact("vm_replication", attrs, where)
