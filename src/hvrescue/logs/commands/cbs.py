"""Windows servicing logs: ``C:\\Windows\\Logs\\CBS\\CBS.log`` (and ``CbsPersist_*.log``) and
``C:\\Windows\\Logs\\DISM\\dism.log``, whole or as lines pasted in a post.

Both write one record per line, ``<yyyy-mm-dd hh:mm:ss>, <Level> <Component> <message>``, the
level padded to 22 columns and the component to 6 (``2024-05-14 10:21:03, Error
CBS    Failed to ... [HRESULT = 0x800f081f - CBS_E_SOURCE_MISSING]``); CSI records carry a hex
sequence number (``CSI    00000c61``), sfc's records an ``[SR]`` tag, DISM's a provider with
its process (``DISM   DISM Package Manager: PID=6968 TID=1888 Failed ... (hr:0x80070002)``).
Posts drop the date (Microsoft's own articles do), squeeze the padding to one space, and wrap
long records, sometimes inside a word (``[HRES`` / ``ULT = 0x...``).

A CBS.log holds millions of lines, nearly all of them progress. Only what tells a failure or an
outcome becomes a ``servicing_log`` fact: errors and warnings, records with a failing HRESULT,
the lines that name a corrupt or unrepairable file or package, the summary of a store scan and
sfc's verdict. Repeats of one record (same level, component, code and wording but for numbers)
are kept :data:`PER_TEMPLATE` times and at most :data:`MAX_KEPT` facts per text; what is left
out is counted in one last fact (``omitted``). A failure logged while (or after) an advanced
installer failed carries that installer's name (``installer``: "Task Scheduler").
"""

from __future__ import annotations

import ntpath
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

KIND = "servicing_log"
MAX_KEPT = 400
PER_TEMPLATE = 3
# Lines a record may continue over (CSI's indented blocks, a post's wrapping).
MAX_CONTINUATION = 12

_TIME = r"(?P<time>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})"
_LEVEL = r"(?P<level>Info|Warning|Error|Perf|Trace|Debug)"
# A component is one word of capitals (CBS, CSI, DISM, DPX, DEPLOY, SXS, TI ...).
RECORD = re.compile(
    rf"^\s*{_TIME},?\s+{_LEVEL},?\s+(?P<component>[A-Z][A-Za-z0-9]{{1,11}})(?:\s+(?P<msg>.*))?$"
)
# Without the date, as articles quote them ("Error    CSI    00000c63 (F) ..."): only the
# components of these two logs, in their padded columns, so that a sentence starting "Error CBS"
# is not one.
UNDATED = re.compile(
    r"^\s*(?P<level>Info|Warning|Error),?(?:\s{2,}|\t)(?P<component>CBS|CSI|DISM|DPX|DEPLOY|SXS)"
    r"(?:\s{2,}|\t)"
    r"(?P<msg>\S.*)$"
)
CSI_SEQ = re.compile(r"^(?P<seq>[0-9a-f]{8})(?:@\S+)?\s+", re.IGNORECASE)
SR_TAG = re.compile(r"^\[SR\]\s*")
DISM_PROVIDER = re.compile(
    r"^(?P<provider>[A-Za-z][\w .]*?):\s*PID=(?P<pid>\d+)\s+TID=(?P<tid>\d+)\s*(?P<rest>.*)$"
)

# On the message with its spaces squeezed out (so that a wrap inside a word does not matter).
HRESULT_SQUEEZED = (
    re.compile(r"HRESULT=(0x[0-9a-f]{1,8})(?:-(?-i:([A-Z][A-Z0-9_]+))\])?", re.IGNORECASE),
    re.compile(r"\bhr[:=](0x[0-9a-f]{1,8})(?![0-9a-z])", re.IGNORECASE),
    re.compile(r"Operationresult:(0x[0-9a-f]{1,8})(?![0-9a-z])", re.IGNORECASE),
    re.compile(r"(?:error|status|failedwith|errorcode)[:=]?(0x[0-9a-f]{8})", re.IGNORECASE),
)
ANY_CODE = re.compile(r"(?<![0-9A-Za-z])(0x[89a-fA-F][0-9a-fA-F]{7})(?![0-9A-Za-z])")
CODE_NAME = re.compile(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b")

# What an Info record says that makes it worth keeping.
NOTABLE = re.compile(
    r"\[SR\] (?:Cannot repair|Could not reproject|Verify complete|Repairing corrupted file"
    r"|Repair complete)"
    r"|Corrupt file:|Failed repairing file|Store corruption|manifest missing"
    r"|Mark store corruption|Failed to pin deployment|Checking System Update Readiness"
    r"|Operation result:|Total (?:Detected|Repaired) Corruption|Repair failed"
    r"|CSI (?:Payload|Manifest|Metadata) (?:Corrupt|Missing)\b"
    r"|CBS (?:MUM|Manifest) (?:Corrupt|Missing)\b"
    r"|Pending transaction content must be resolved|No component store corruption"
    r"|component store is repairable|cannot be repaired",
    re.IGNORECASE,
)
# Words one of NOTABLE's phrases holds (in either case where it matters): a plain substring test
# on each line before the regular expression, which most lines of a CBS.log never need.
NOTABLE_WORDS = (
    "[SR]",
    "orrupt",
    "ORRUPT",
    "epair",
    "anifest missing",
    "to pin deployment",
    "Update Readiness",
    "result:",
    "ending transaction",
    "omponent store",
)
# The outcome of a whole operation rather than a step inside it.
OUTCOME = re.compile(
    r"Exec: Processing complete|Operation result:|Session: \S+ finalized"
    r"|\[SR\] Verify complete|Failed to perform|ProcessCmdLine|ExecuteCmdLine|Internal_Finalize"
    r"|Failed (?:processing|finalizing|installing|uninstalling|to (?:install|add|restore|repair))"
    r"|Failed to execute execution chain",
    re.IGNORECASE,
)
# CSI's block before an advanced installer runs ("Begin executing advanced installer phase 38
# ...", then indented lines, "Installer name: 'Task Scheduler'"); "End executing advanced
# installer" closes it. The name is given to the failures logged while it runs and after.
INSTALLER_BEGIN = "Begin executing advanced installer"
INSTALLER_END = "End executing advanced installer"
INSTALLER_NAME = re.compile(r"Installer name:\s*'([^'\r\n]{1,120})'")
PACKAGE = re.compile(
    r"(?<![\w.-])((?:Package_\w+|[A-Za-z][\w.-]*)~31bf3856ad364e35~[\w]*~[\w-]*~[\d.]+)", re.I
)
KB = re.compile(r"(?<![A-Za-z0-9])KB(\d{6,8})(?!\d)", re.IGNORECASE)
# sfc: [SR] Cannot repair member file [l:22]"storvsp.sys" of <identity> ...
SR_FILE = re.compile(r'\[(?:l|ml):[^\]"]{0,40}\]"(?P<name>[^"]+)"')
CORRUPT_FILE = re.compile(
    r"Corrupt file:\s*(?P<name>\S.*)$|Failed repairing file:\s*(?P<n2>[^:]{1,260}?\.\w+)"
)
# A store scan's list: (p)  CSI Payload Corrupt  (n)  amd64_..._none_...\file.dll
SCAN_FILE = re.compile(
    r"^\(\w\)\s+(?P<what>[A-Za-z][\w ]*?(?:Corrupt|Missing))\s+(?:\(\w\)\s+)?(?P<name>\S.*)?$"
)
COUNT = re.compile(r"Total (?P<what>Detected|Repaired) Corruption:\s*(?P<n>\d+)", re.IGNORECASE)
# The summary of a store scan and sfc's verdict: few, and the latest ones matter most, so they
# are kept apart from the template count (the last :data:`MAX_SUMMARY` of them).
SUMMARY = re.compile(
    r"Checking System Update Readiness|Operation result:|Total (?:Detected|Repaired) Corruption"
    r"|\[SR\] Verify complete",
    re.IGNORECASE,
)
MAX_SUMMARY = 60
_TEMPLATE = re.compile(r"0x[0-9a-f]+|\d+|[0-9a-f]{8,}", re.IGNORECASE)


def parse(text: Text) -> list[Fact]:
    """A ``servicing_log`` fact per record that tells a failure or an outcome."""
    if not _may_hold_records(text.lines):
        return []
    default_format = _format_of(text.path)
    kept: list[Fact] = []
    summary: deque[Fact] = deque(maxlen=MAX_SUMMARY)
    detected: int | None = None
    seen: dict[tuple[Any, ...], int] = {}
    omitted = {"lines": 0, "errors": 0, "warnings": 0}
    records = 0
    installer: list[str | None] = [None, None]  # the one running; the last one that failed
    lines = text.lines
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        m = _record(line)
        if m is None:
            i += 1
            continue
        records += 1
        message, nxt = _continued(lines, i, m.group("msg") or "")
        i_record, i = i, nxt

        def admit(level: str, component: str, hresult: str | None, message: str) -> bool:
            """Whether a record worth keeping is kept: the first PER_TEMPLATE of its
            template, MAX_KEPT in all; the summary lines apart. Decided before the costly
            attributes, since a damaged store can log one failure a million times."""
            if SUMMARY.search(message):
                return True
            key = (level, component, hresult, _TEMPLATE.sub("#", message)[:160])
            count = seen.get(key, 0)
            seen[key] = count + 1
            if count < PER_TEMPLATE and len(kept) < MAX_KEPT:
                return True
            omitted["lines"] += 1
            omitted["errors"] += level == "Error"
            omitted["warnings"] += level == "Warning"
            return False

        if INSTALLER_BEGIN in message or INSTALLER_END in message:
            named = INSTALLER_NAME.search(message)
            installer[0] = named.group(1) if named and INSTALLER_BEGIN in message else None
        fields = _fields(m, message, default_format, admit)
        if fields is None:
            continue
        if fields["failed"] and (installer[0] or installer[1]):
            installer[1] = installer[0] or installer[1]
            fields["installer"] = installer[1]
        where = Provenance(text.path, text.locator(i_record))
        if SUMMARY.search(fields["message"]):
            if fields.get("counts") == "detected":
                detected = fields["count"]
            elif fields.get("counts") == "repaired" and detected is not None:
                fields["unrepaired"] = max(0, detected - fields["count"])
            if len(summary) == summary.maxlen:
                omitted["lines"] += 1
            summary.append(Fact(KIND, fields, where))
            continue
        kept.append(Fact(KIND, fields, where))
    if summary:
        kept = sorted([*kept, *summary], key=lambda f: _line(f.provenance.locator))
    if omitted["lines"] and kept:
        last = kept[-1].attributes
        attrs: dict[str, Any] = {
            "time": None,
            "level": None,
            "component": None,
            "message": None,
            "hresult": None,
            "omitted": omitted["lines"],
            "omitted_errors": omitted["errors"],
            "omitted_warnings": omitted["warnings"],
            "records": records,
            "format": last["format"],
        }
        kept.append(Fact(KIND, attrs, kept[-1].provenance))
    return kept


def _line(locator: str | None) -> int:
    return int(locator[5:]) if locator and locator.startswith("line:") else 0


def _may_hold_records(lines: list[str]) -> bool:
    # A cheap look before the per-line work: a record has ", Info" / ", Error" ... or a bare
    # level before a component; a text with neither is skipped at once.
    for line in lines:
        if ("Info" in line or "Error" in line or "Warning" in line) and (
            RECORD.match(line) or UNDATED.match(line)
        ):
            return True
    return False


def _record(line: str) -> re.Match[str] | None:
    if len(line) < 8:
        return None
    c = line.lstrip()[:1]
    if c.isdigit():
        return RECORD.match(line)
    if c in "IWE":
        return UNDATED.match(line)
    return None


def _continued(lines: list[str], i: int, message: str) -> tuple[str, int]:
    """The record's message with the lines that continue it; the index after them."""
    j = i + 1
    while j < len(lines) and j - i <= MAX_CONTINUATION:
        line = lines[j]
        if not line.strip():
            break
        open_bracket = message.count("[") > message.count("]") or message.count(
            "("
        ) > message.count(")")
        native = line[:1] in " \t"  # CSI's own indented lines (Old component: ...)
        tail = ("HRESULT" in line or "hr:0x" in line.replace(" ", "")) or (
            line.rstrip().endswith(("]", ")")) and "[" not in line and "(" not in line
        )
        # A mail client's wrap inside a word: "... must be re" / "solved, cannot ...".
        in_word = message[-1:].isalnum() and line[:1].isascii() and line[:1].islower()
        if not (open_bracket or native or tail or in_word) or _record(line) is not None:
            break
        if native and not open_bracket:
            message = f"{message}\n{line.strip()}"
        elif (open_bracket or in_word) and message[-1:].isalnum() and line[:1].isalnum():
            message = message + line.strip()  # wrapped inside a word: "[HRES" "ULT = ..."
        else:
            message = f"{message} {line.strip()}"
        j += 1
    return message, j


def _fields(
    m: re.Match[str],
    message: str,
    default_format: str | None,
    admit: Callable[[str, str, str | None, str], bool],
) -> dict[str, Any] | None:
    level = m.group("level")
    component = m.group("component")
    message = message.strip()
    if (
        level not in ("Error", "Warning")
        and "0x" not in message
        and "0X" not in message
        and not any(word in message for word in NOTABLE_WORDS)
    ):
        return None  # progress: most of a CBS.log, dropped before any other work
    body = message
    attrs: dict[str, Any] = {}
    seq = CSI_SEQ.match(body) if component == "CSI" else None
    if seq:  # CSI's sequence number is kept apart: the message reads as the words it logged
        attrs["sequence"] = seq.group("seq").lower()
        message = body = body[seq.end() :]
    if SR_TAG.match(body):
        attrs["logged_by"] = component
        component = "SR"
    if component == "DISM":
        d = DISM_PROVIDER.match(body)
        if d:
            attrs.update(provider=d.group("provider").strip(), pid=int(d.group("pid")))
            attrs["tid"] = int(d.group("tid"))
    hresult, code_name = _hresult(message, level) if "0x" in message.lower() else (None, None)
    failing = hresult is not None and int(hresult, 16) & 0x80000000 != 0
    notable = any(word in message for word in NOTABLE_WORDS) and NOTABLE.search(message) is not None
    if level not in ("Error", "Warning") and not failing and not notable:
        return None
    if not admit(level, component, hresult, message):
        return None
    fmt = default_format or ("dism-log" if component == "DISM" else "cbs-log")
    fields: dict[str, Any] = {
        "time": m.groupdict().get("time"),
        "level": level,
        "component": component,
        "message": message,
        "hresult": hresult,
        "code_name": code_name,
        "failed": level == "Error" or failing,
        "outcome": OUTCOME.search(message) is not None,
        "format": fmt,
    }
    package = PACKAGE.search(message)
    fields["package"] = package.group(1).rstrip(".") if package else None
    kb = KB.search(message)
    fields["kb"] = f"KB{kb.group(1)}" if kb else None
    fields["file"] = _file(body)
    counted = COUNT.search(message)
    if counted:
        fields["count"] = int(counted.group("n"))
        fields["counts"] = counted.group("what").lower()  # detected / repaired
    fields.update(attrs)
    return fields


def _hresult(message: str, level: str) -> tuple[str | None, str | None]:
    squeezed = "".join(message.split())
    for pattern in HRESULT_SQUEEZED:
        found = pattern.search(squeezed)
        if found:
            name = found.group(2) if found.lastindex and found.lastindex >= 2 else None
            code = f"0x{int(found.group(1), 16):08x}"
            return code, name or _name_after(message, found.group(1))
    if level in ("Error", "Warning"):
        loose = ANY_CODE.search(message)
        if loose:
            return loose.group(1).lower(), _name_after(message, loose.group(1))
    return None, None


def _name_after(message: str, code: str) -> str | None:
    at = message.lower().find(code.lower())
    if at < 0:
        return None
    name = CODE_NAME.search(message, at + len(code), at + len(code) + 60)
    return name.group(1) if name else None


def _file(body: str) -> str | None:
    if "[SR]" in body or "Repair" in body:
        # "[SR] Cannot repair member file [l:22]"x.sys" of ...", "[SR] Could not reproject
        # corrupted file [ml:520{260},l:46{23}]"\??\C:\Windows\System32"\[l:10{5}]"x.dll"
        names: list[str] = SR_FILE.findall(body)
        if names:
            if len(names) > 1 and "\\" in names[0] and "\\" not in names[1]:
                return names[0].replace("\\??\\", "").rstrip("\\") + "\\" + names[1]
            return names[0]
    corrupt = CORRUPT_FILE.search(body)
    if corrupt:
        return (corrupt.group("name") or corrupt.group("n2") or "").strip() or None
    scan = SCAN_FILE.match(body)
    if scan and scan.group("name"):
        return scan.group("name").strip()
    return None


def _format_of(path: str) -> str | None:
    name = ntpath.basename(path.replace("/", "\\")).lower()
    if "dism" in name:
        return "dism-log"
    if name.startswith(("cbs", "cbspersist", "checksur")):
        return "cbs-log"
    return None
