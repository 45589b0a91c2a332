"""PowerShell error records as the console prints them, English and Japanese, wrapped at any
width, reposted or cut:

    Remove-VMSnapshot : 'web01' failed to remove checkpoint.
    ... (the message, wrapped over as many lines as the console was narrow)
    At line:1 char:1                      (発生場所 行:1 文字:1; or "At C:\\x.ps1:25 char:29")
    + Remove-VMSnapshot -VMName web01 ...
    + ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        + CategoryInfo          : NotSpecified: (:) [Remove-VMSnapshot], VirtualizationException
        + FullyQualifiedErrorId : OperationFailed,Microsoft.HyperV.PowerShell.Commands.Remove...

PowerShell 7's concise view ("Remove-VMSnapshot: message") is read too. A record whose first
line was not copied gives its message from the lines above the trailer and the command from
``CategoryInfo``'s activity. The field names (CategoryInfo, FullyQualifiedErrorId) are English
in every language.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

CONFIDENCE = 0.9
VERBS = (
    "Add|Checkpoint|Clear|Compare|Complete|Connect|Convert|ConvertTo|Copy|Debug|Disable|"
    "Dismount|Enable|Enter|Export|Get|Grant|Import|Initialize|Install|Invoke|Measure|Merge|"
    "Mount|Move|New|Optimize|Remove|Rename|Repair|Reset|Resize|Restart|Restore|Resume|Revoke|"
    "Save|Set|Start|Stop|Suspend|Test|Uninstall|Update|Wait|Write"
)
HEAD = re.compile(rf"^(?P<cmd>(?:{VERBS})-[A-Za-z0-9]+)(?: :|:) (?P<msg>\S.*)$")
# PowerShell 7's concise view has no trailer: only cmdlets of the nouns this tool reads count,
# so that a sentence such as "Get-Help: see below" is not an error record.
CONCISE = re.compile(
    rf"^(?P<cmd>(?:{VERBS})-(?:VM|VHD|Volume|Disk|Partition|WinEvent|Service|HotFix|"
    r"ComputerInfo|WB|StoragePool|VirtualDisk|PhysicalDisk|ClusterSharedVolume)[A-Za-z0-9]*)"
    r": (?P<msg>\S.*)$"
)
SCRIPT_HEAD = re.compile(r"^(?P<cmd>[A-Za-z]:\\[^:]+?\.ps1|[\w.-]+\.ps1) : (?P<msg>\S.*)$")
AT = re.compile(
    r"^(?:At (?:line:\d+ char:\d+|.+:\d+ char:\d+)"
    r"|発生場所 (?:行:\d+ 文字:\d+|.+:\d+ 文字:\d+))\s*$"
)
PLUS = re.compile(r"^\s*\+ ")
FIELD = re.compile(r"^\s*\+ (?P<key>CategoryInfo|FullyQualifiedErrorId)\s*:\s*(?P<value>.*?)\s*$")
CATEGORY = re.compile(
    r"^(?P<cat>\w+):\s*\((?P<target>.*)\)\s*(?:\[(?P<activity>[^\]]*)\])?\s*,?\s*(?P<reason>.*)$"
)
CODE = re.compile(r"(?<![0-9A-Za-z])0[xX](?P<hex>[0-9A-Fa-f]{8})(?![0-9A-Fa-f])")
# How far a record's message reaches above its trailer when its first line was not copied.
MAX_MESSAGE_LINES = 60


def codes_in(text: str) -> list[str]:
    """The HRESULT/NTSTATUS codes written in ``text``, normalised, first seen first."""
    out: list[str] = []
    for m in CODE.finditer(text):
        code = "0x" + m.group("hex").lower()
        if code not in out:
            out.append(code)
    return out


# A line that ends inside a quoted Windows path (its opening quote and root, no closing quote
# yet): the console cut the path, and the next line goes on with it, without a space. A bare
# path is left alone: where it ends cannot be told from where the console cut it.
_OPEN_PATH = re.compile(r"""(?:^|\s)['"](?:[A-Za-z]:\\|\\\\)[^'"\s]*$""")


def join_lines(parts: list[str]) -> str:
    """Wrapped console lines joined: a line that ends inside a word or a path continues it."""
    text = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        wide = bool(text) and (ord(text[-1]) >= 0x3000 or ord(part[0]) >= 0x3000)
        in_path = bool(text) and _OPEN_PATH.search(text) is not None
        if text and (
            wide or in_path or text[-1] in "\\(" or (text[-1].isalnum() and part[0] in ".,)")
        ):
            text += part
        else:
            text = f"{text} {part}" if text else part
    return text


def _widest(lines: list[str], start: int, end: int) -> int:
    return max((len(lines[k]) for k in range(start, end)), default=0)


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    facts: list[Fact] = []
    used_until = -1
    i = 0
    while i < len(lines):
        line = lines[i]
        if i > used_until and (FIELD.match(line) or AT.match(line.strip())):
            # The trailer starts at its position line and the echoed command, when copied.
            start = i
            while start - 1 > used_until and (
                PLUS.match(lines[start - 1]) or AT.match(lines[start - 1].strip())
            ):
                start -= 1
            head = _head_above(lines, start, used_until)
            fact, end = _record(text, lines, head, start)
            if fact is not None:
                facts.append(fact)
                used_until = end
                i = end + 1
                continue
        concise = CONCISE.match(line) if i > used_until else None
        if concise and (i == 0 or not lines[i - 1].strip() or text.is_prompt(i - 1)):
            fact, end = _concise(text, lines, i, concise)
            facts.append(fact)
            used_until = end
            i = end + 1
            continue
        i += 1
    return facts


def _concise(text: Text, lines: list[str], i: int, m: re.Match[str]) -> tuple[Fact, int]:
    """PowerShell 7's concise view: ``Get-VMCheckpoint: message`` and nothing else; the
    message goes on until a blank line or a prompt."""
    body = [m.group("msg")]
    j = i + 1
    while j < len(lines) and lines[j].strip() and not text.is_prompt(j) and j - i < 40:
        if FIELD.match(lines[j]) or AT.match(lines[j].strip()):
            break
        body.append(lines[j])
        j += 1
    message = join_lines(body)
    attrs: dict[str, Any] = {
        "command": m.group("cmd"),
        "message": message,
        "codes": codes_in(message),
        "category": None,
        "error_id": None,
        "target": None,
        "confidence": CONFIDENCE,
    }
    return Fact("ps_error", attrs, Provenance(text.path, text.locator(i))), j - 1


def _head_above(lines: list[str], trailer: int, floor: int) -> int:
    """The first line of the record whose trailer starts at ``trailer``: its head line when it
    is within reach, else the first line after a blank above."""
    j = trailer - 1
    while j > floor and trailer - j <= MAX_MESSAGE_LINES:
        stripped = lines[j].strip()
        if not stripped:
            return j + 1
        if HEAD.match(stripped) or SCRIPT_HEAD.match(stripped):
            return j
        j -= 1
    return j + 1


def _record(text: Text, lines: list[str], head: int, trailer: int) -> tuple[Fact | None, int]:
    fields: dict[str, str] = {}
    i = trailer
    last: str | None = None
    while i < len(lines):
        stripped = lines[i].strip()
        f = FIELD.match(lines[i])
        if f:
            last = f.group("key")
            fields[last] = f.group("value")
        elif AT.match(stripped) or (PLUS.match(lines[i]) and last is None):
            pass  # the position and the echoed command line with its ~~~ marker
        elif (
            stripped and last is not None and lines[i].startswith(" ") and not PLUS.match(lines[i])
        ):
            # The console cuts these values at its width, inside a word: joined as they are.
            fields[last] = fields[last] + stripped
        else:
            break
        i += 1
    if not fields and not any(AT.match(lines[k].strip()) for k in range(trailer, i)):
        return None, trailer
    first = lines[head].strip() if head < trailer else ""
    m = HEAD.match(first) or SCRIPT_HEAD.match(first)
    body = [lines[k] for k in range(head + 1 if m else head, trailer)]
    command = m.group("cmd") if m else None
    message = join_lines([m.group("msg"), *body] if m else body) or None
    if m is None and FIELD.match(lines[trailer]):
        message = None  # what is above a bare field may be the rest of a field cut off
    cat = CATEGORY.match(fields.get("CategoryInfo", ""))
    if command is None and cat and cat.group("activity"):
        command = cat.group("activity").strip() or None
    if m is None and not fields:
        return None, trailer  # a bare "At line:" with nothing to say what failed
    target = None
    if cat:
        raw = cat.group("target")
        target = raw.rsplit(":", 1)[0].strip() if ":" in raw else raw.strip()
    cut: list[str] = []
    if i == len(lines) and last is not None and len(lines[i - 1]) >= _widest(lines, head, i):
        # The copy ends on a field as wide as the console: it may go on in lines not copied.
        cut = ["category" if last == "CategoryInfo" else "error_id"]
    attrs: dict[str, Any] = {
        "command": command,
        "message": message,
        "codes": codes_in(" ".join(filter(None, [message, fields.get("CategoryInfo")]))),
        "category": cat.group("cat") if cat else None,
        "error_id": fields.get("FullyQualifiedErrorId") or None,
        "target": target or None,
        "confidence": CONFIDENCE,
    }
    if cut:
        attrs.update({"truncated": True, "truncated_fields": cut})
    return Fact("ps_error", attrs, Provenance(text.path, text.locator(head))), i - 1
