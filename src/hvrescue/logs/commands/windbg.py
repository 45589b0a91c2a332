"""Crash analyses as admins paste them: WinDbg / kd ``!analyze -v`` (old and new layouts, the kd
summary ``BugCheck 7E, {...}`` and ``Probably caused by :``), and the text reports of NirSoft's
BlueScreenView and Resplendence's WhoCrashed. One ``crash_analysis`` fact per crash.

Attributes: ``tool`` (``windbg``, ``bluescreenview``, ``whocrashed``), ``bugcheck_code`` (int,
as written: BlueScreenView's ``0x1000007e`` keeps its flag), ``bugcheck_hex`` (``0x0000007e``),
``stop_name``, ``parameters`` (``0x...`` strings), ``module`` (lower case, no extension),
``image`` (``storvsc.sys``), ``symbol``, ``failure_bucket``, ``process``, ``os_version``,
``dump_file``; None where the paste does not say. The locator is the line of the stop code (or
of the first line that identified the analysis).

An analysis is recognised by what only these tools print: the "Bugcheck Analysis" banner, a stop
line followed by its Arguments, ``BUGCHECK_CODE:``, the kd summary, ``Probably caused by :``,
BlueScreenView's ``Bug Check Code :`` with its neighbours, WhoCrashed's ``Bugcheck code: 0x..
(`` and ``crash dump file:``. A sentence that only names ``!analyze -v`` or a stop name is not an
analysis. Windows' own "The computer has rebooted from a bugcheck" line is read as an event by
hvrescue.logs.signatures, not here. The banner and the summary that WinDbg prints before
``!analyze -v`` and the verbose analysis after it are the same crash: consecutive parts that agree
on the code and parameters are merged.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands import crash_reports as reports
from hvrescue.logs.commands.crash_reports import HEX as _HEX
from hvrescue.logs.commands.crash_reports import IMAGE, anchor, code_of, hex_value, param, params_of
from hvrescue.logs.textutil import Text

MAX_ANALYSES = 256  # per text: a forum thread pastes a handful
# Lines read before and after a line that marks an analysis: the debugger's header and the
# dump's name come before the banner, the verbose fields up to a long stack after the last
# BUGCHECK_ line.
BEFORE = 40
AFTER = 300

# ---------------------------------------------------------------- WinDbg / kd
BANNER = re.compile(r"^\s*\*?\s*Bugcheck Analysis\s*\*?\s*$", re.IGNORECASE)
# A user-mode analysis (an application's crash, not the system's): its fields are not read.
USER_BANNER = re.compile(r"^\s*\*?\s*Exception Analysis\s*\*?\s*$", re.IGNORECASE)
# "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e)", "Unknown bugcheck code (19c)"; a forum's leftover
# BBCode around it ("[h31]DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)[/h31]").
STOP_LINE = re.compile(
    r"^\s*(?:\[\w+\])?(?P<name>[A-Z][A-Z0-9_]{3,}|Unknown bugcheck code)\s+"
    r"\((?P<code>[0-9a-fA-F]{1,8})\)(?:\[/\w+\])?\s*$"
)
ARG = re.compile(r"^\s*Arg(?P<n>[1-4]):\s*(?P<value>" + _HEX + r")\b")
ARGUMENTS = re.compile(r"^\s*(?:Arguments:|Arg1:)")
# "BugCheck 7E, {ffffffffc0000005, fffff806..., ...}" (possibly wrapped before the "}").
SUMMARY = re.compile(r"^\s*BugCheck\s+(?P<code>[0-9a-fA-F]{1,8}),\s*\{(?P<params>[^}]*)\}?")
# `.bugcheck`: "Bugcheck code 0000007E" then "Arguments ffffffff`c0000005 ..."
DOT_BUGCHECK = re.compile(r"^\s*Bugcheck code\s+(?P<code>[0-9a-fA-F]{8})\s*$", re.IGNORECASE)
DOT_ARGS = re.compile(r"^\s*Arguments\s+(?P<params>(?:" + _HEX + r"\s*){1,4})$")
# kd on a live target: "*** Fatal System Error: 0x0000007e"
FATAL = re.compile(r"^\s*\*\*\* Fatal System Error:\s*0x(?P<code>[0-9a-fA-F]{1,8})")
FATAL_ARGS = re.compile(r"^\s*\((?P<params>0x[0-9a-fA-F`]+(?:\s*,\s*0x[0-9a-fA-F`]+){0,3})\)")
# "Probably caused by : storvsc.sys ( storvsc!StorVscProcessCompletion+2f )"
CAUSED = re.compile(
    r"^\s*Probably caused by\s*:\s*(?P<image>[^\s(]+)\s*(?:\(\s*(?P<symbol>[^\s)]*)\s*\)?)?"
)
# "KEY:  value" lines of the verbose analysis (old and new layouts).
FIELD = re.compile(r"^\s*(?P<key>[A-Z][A-Z0-9_]{2,}):\s+(?P<value>\S.*?)\s*$")
FIELDS = {
    "BUGCHECK_CODE",
    "BUGCHECK_STR",
    "PROCESS_NAME",
    "SYMBOL_NAME",
    "MODULE_NAME",
    "IMAGE_NAME",
    "FAILURE_BUCKET_ID",
    "BUCKET_ID",
    "DEFAULT_BUCKET_ID",
    "OS_VERSION",
}
CODE_FIELDS = ("BUGCHECK_CODE", "BUGCHECK_STR")
BUGCHECK_P = re.compile(r"^\s*BUGCHECK_P(?P<n>[1-4]):\s*(?P<value>" + _HEX + r")\s*$")
DUMP_FILE = re.compile(r"^\s*Loading Dump File \[(?P<path>[^\]]+)\]", re.IGNORECASE)
DEBUGGER = re.compile(r"^\s*Microsoft \(R\) Windows Debugger Version", re.IGNORECASE)


# A reader's note typed after a line of the analysis, as Japanese posts mark what matters
# ("DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)   ★「stop コード」です。", "IMAGE_NAME:  netvsc.sys ←").
NOTE = re.compile(r"\s*[★☆←⇐◀].*$")


def parse(text: Text) -> list[Fact]:
    spans = _spans(text.lines)
    if not spans:
        return []  # the fast way out for the many texts that are no crash analysis
    lines = list(text.lines)
    for lo, hi in spans:  # only the lines that are read
        lines[lo:hi] = [NOTE.sub("", line) for line in lines[lo:hi]]
    facts: list[Fact] = []
    for record in _merged(_parts(lines, spans))[:MAX_ANALYSES]:
        if record.get("code") is None and not record.get("image"):
            continue  # nothing said of a crash: a header or a banner alone
        facts.append(_fact(record, text))
    return facts


def _spans(lines: list[str]) -> list[tuple[int, int]]:
    """The stretches of ``lines`` around the lines only a crash analysis has: a large log that
    mentions a bugcheck once is read there, not line by line with every pattern."""
    spans: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        if _maybe(line):
            lo, hi = max(0, i - BEFORE), min(len(lines), i + AFTER)
            if spans and lo <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
            else:
                spans.append((lo, hi))
    return spans


def _maybe(line: str) -> bool:
    return (
        "ugcheck" in line
        or "ugCheck" in line
        or "BUGCHECK" in line
        or "Arg1:" in line
        or "Fatal System Error" in line
        or "ug Check" in line
        or "robably caused by" in line
        or "crash dump file" in line
        or ".dmp" in line  # BlueScreenView's report with translated labels starts with one
    )


# ---------------------------------------------------------------- reading the parts
def _parts(lines: list[str], spans: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The text cut where a new analysis may begin, each part read into a record."""
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for lo, hi in spans:
        if current:  # lines between two spans were not read: what follows is another part
            parts.append(current)
            current = {}
        i = lo
        while i < hi:
            if _starts_part(lines[i]) and current:
                parts.append(current)
                current = {}
            i = _read_line(lines, i, current)
    if current:
        parts.append(current)
    return parts


def _starts_part(line: str) -> bool:
    return bool(
        BANNER.match(line)
        or USER_BANNER.match(line)
        or DUMP_FILE.match(line)
        or DEBUGGER.match(line)
        or reports.starts_report(line)
    )


def _read_line(lines: list[str], i: int, rec: dict[str, Any]) -> int:
    """Reads line ``i`` into ``rec``; the index of the next line to read."""
    line = lines[i]
    if USER_BANNER.match(line):
        rec["user_mode"] = True
        return i + 1
    if rec.get("user_mode"):
        return i + 1
    if BANNER.match(line):
        rec["anchor"] = rec.get("anchor", i)
        rec.setdefault("tool", "windbg")
        return i + 1
    m = DUMP_FILE.match(line)
    if m:
        rec["dump_file"] = m.group("path").strip()
        return i + 1
    m = STOP_LINE.match(line)
    if m and _followed_by_args(lines, i):
        name = m.group("name")
        code_of(rec, int(m.group("code"), 16), i, "windbg")
        if not name.startswith("Unknown"):
            rec.setdefault("stop_name", name)
        return i + 1
    m = ARG.match(line)
    if m and "code" in rec:
        param(rec, int(m.group("n")), m.group("value"))
        return i + 1
    m = SUMMARY.match(line)
    if m:
        params = m.group("params")
        j = i
        while "}" not in lines[j] and j + 1 < len(lines) and j - i < 3:
            j += 1  # the summary wrapped: its parameters go on to the "}"
            params += "," + lines[j].split("}")[0]
        code_of(rec, int(m.group("code"), 16), i, "windbg")
        params_of(rec, re.split(r"[,\s]+", params))
        return j + 1
    m = DOT_BUGCHECK.match(line)
    if m:
        code_of(rec, int(m.group("code"), 16), i, "windbg")
        args = DOT_ARGS.match(lines[i + 1]) if i + 1 < len(lines) else None
        if args:
            params_of(rec, args.group("params").split())
            return i + 2
        return i + 1
    m = FATAL.match(line)
    if m:
        code_of(rec, int(m.group("code"), 16), i, "windbg")
        args = FATAL_ARGS.match(lines[i + 1]) if i + 1 < len(lines) else None
        if args:
            params_of(rec, args.group("params").split(","))
            return i + 2
        return i + 1
    m = CAUSED.match(line)
    if m and IMAGE.fullmatch(m.group("image")):
        symbol = m.group("symbol")
        if m.group(0).rstrip().endswith("(") and i + 1 < len(lines):
            symbol = lines[i + 1].strip().rstrip(")").strip() or None  # wrapped after the "("
        anchor(rec, i, "windbg")
        rec.setdefault("image", m.group("image"))
        if symbol:
            rec.setdefault("symbol", symbol)
        return i + 1
    m = BUGCHECK_P.match(line)
    if m:
        param(rec, int(m.group("n")), m.group("value"))
        return i + 1
    m = FIELD.match(line)
    # The fields of !analyze -v once a banner, a stop code or a culprit said it is one (an
    # application's analysis has PROCESS_NAME and IMAGE_NAME too), or the code itself.
    if m and m.group("key") in FIELDS and ("anchor" in rec or m.group("key") in CODE_FIELDS):
        _field(rec, m.group("key"), m.group("value"), i)
        return i + 1
    if reports.read_line(line, i, rec):
        return i + 1
    return i + 1


def _followed_by_args(lines: list[str], i: int) -> bool:
    """A stop line is WinDbg's when its Arguments follow (after its description lines)."""
    return any(ARGUMENTS.match(line) for line in lines[i + 1 : i + 20])


def _field(rec: dict[str, Any], key: str, value: str, i: int) -> None:
    if key == "BUGCHECK_CODE":
        code = hex_value(value)
        if code is not None:
            code_of(rec, int(code, 16), i, "windbg")
    elif key == "BUGCHECK_STR":
        m = re.match(r"(?:0x)?([0-9a-fA-F]{1,8})(?:_|$)", value)
        if m and value.lower().startswith("0x"):
            code_of(rec, int(m.group(1), 16), i, "windbg")
    elif key == "PROCESS_NAME":
        rec.setdefault("process", value)
    elif key == "SYMBOL_NAME":
        rec.setdefault("symbol", value)
    elif key == "MODULE_NAME":
        rec.setdefault("module", value)
    elif key == "IMAGE_NAME":
        rec["image"] = value  # the verbose section says it more exactly than the summary
    elif key == "FAILURE_BUCKET_ID":
        rec["failure_bucket"] = value
    elif key in ("BUCKET_ID", "DEFAULT_BUCKET_ID"):
        rec.setdefault("bucket", value)
    elif key == "OS_VERSION":
        rec.setdefault("os_version", value)
    rec.setdefault("anchor", i)
    rec.setdefault("tool", "windbg")


# ---------------------------------------------------------------- one record per crash
def _merged(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    acc: dict[str, Any] | None = None
    for part in parts:
        if acc is None:
            acc = part
        elif _same(acc, part):
            acc = _merge(acc, part)
        else:
            out.append(acc)
            acc = part
    if acc is not None:
        out.append(acc)
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether part ``b`` goes on with the crash of ``a``."""
    if a.get("code") is None and not a.get("image"):
        return True  # a header (dump file, debugger version) before its analysis
    if b.get("tool") not in (None, a.get("tool")):
        return False
    if b.get("code") is None:
        return not b.get("dump_file") and not b.get("image")  # not the header of another dump
    if a.get("code") not in (None, b["code"]):
        return False
    if b.get("dump_file") and a.get("dump_file") not in (None, b["dump_file"]):
        return False
    pa = [p for p in a.get("params") or [] if p]
    pb = [p for p in b.get("params") or [] if p]
    return not pa or not pb or pa == pb


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key in ("image", "failure_bucket") and value:
            out[key] = value  # the verbose analysis (later) says it more exactly
        elif key == "params":
            if not [p for p in out.get("params") or [] if p]:
                out[key] = value
        elif out.get(key) is None:
            out[key] = value
    return out


def _fact(rec: dict[str, Any], text: Text) -> Fact:
    code = rec.get("code")
    image = _clean_name(rec.get("image"))
    module = _clean_name(rec.get("module"))
    if module is None and image:
        module = image.rsplit(".", 1)[0] if "." in image else image
    symbol = rec.get("symbol")
    if module is None and symbol and "!" in symbol:
        module = symbol.split("!", 1)[0]
    line = rec.get("code_line", rec.get("anchor", 0))
    return Fact(
        "crash_analysis",
        {
            "tool": rec.get("tool", "windbg"),
            "bugcheck_code": code,
            "bugcheck_hex": None if code is None else f"0x{code:08x}",
            "stop_name": rec.get("stop_name"),
            "parameters": [p for p in rec.get("params") or [] if p],
            "module": module.lower() if module else None,
            "image": image,
            "symbol": symbol,
            "failure_bucket": rec.get("failure_bucket") or rec.get("bucket"),
            "process": rec.get("process"),
            "os_version": rec.get("os_version"),
            "dump_file": rec.get("dump_file"),
        },
        Provenance(text.path, text.locator(line)),
    )


def _clean_name(value: Any) -> str | None:
    """A module or image as written; None for WinDbg's words for "none found"."""
    if not isinstance(value, str):
        return None
    value = value.strip().strip("()").strip()
    if value.lower() in ("unknown_module", "unknown_image"):
        return None
    if "\\" in value:
        value = value.rsplit("\\", 1)[-1]
    return value or None
