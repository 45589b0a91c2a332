"""Facts the rules need that no single source states: the crashes and unexpected restarts told
by Kernel-Power 41, EventLog 6008, BugCheck 1001, the host's Hyper-V-Worker 18590 (a guest's
stop code as the guest reported it), Windows Error Reporting's BlueScreen reports
and kernel dump headers, each turned into one shape with the stop code explained.

A derived fact keeps the provenance of the record it comes from, so a diagnosis built on it
cites the event or the dump itself.

``restart``: ``source``, ``time``, ``time_local``, ``computer``, ``bugcheck_code`` (Kernel-Power
41's, 0 when none was recorded), ``previous_shutdown`` (6008's wording).

``bugcheck``: ``source``, ``stop_code`` (int), ``stop_code_hex`` (``0x0000007e``), ``stop_name``
(``SYSTEM_THREAD_EXCEPTION_NOT_HANDLED``, or None when unknown), ``meaning`` (``{"en", "ja"}``),
``known`` (whether hvrescue's table knows the code), ``parameters``, ``dump_path``,
``report_id``, ``time``, ``time_local``, ``computer``, and where a crash analysis (WinDbg
``!analyze -v``, BlueScreenView, WhoCrashed) names it: ``module`` (``storvsc``), ``image``
(``storvsc.sys``), ``symbol``, ``failure_bucket`` (None from the other sources).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hvrescue.diagnose.codes import stop_code
from hvrescue.diagnose.quote import shell_quote
from hvrescue.facts.model import Fact

_CODE_AND_PARAMS = re.compile(r"\b0x([0-9a-fA-F]{1,8})\s*\(([^()]*)\)")
_DUMP = re.compile(r"([A-Za-z]:\\[^\r\n\"<>|?*]*?\.dmp)\b", re.IGNORECASE)
_REPORT_ID = re.compile(r"(?:Report Id|レポート ID|レポート Id)\s*[:：]\s*([0-9A-Za-z{}-]+)")
_WER_P1 = re.compile(r"\bP1\s*[:：]\s*([0-9a-fA-Fx]+)\s*$", re.MULTILINE)
_WER_BUCKET = re.compile(r"(?:^|\s)0x([0-9a-fA-F]{1,8})_")
# WinDbg's one-line verdict, often pasted under the BugCheck 1001 text.
_CAUSED_BY = re.compile(r"Probably caused by\s*:\s*(([\w-]+)\.(?:sys|exe|dll))", re.IGNORECASE)
_MINIDUMPS = r"robocopy %SystemRoot%\Minidump <other storage>\Minidump"
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")
# Which source tells most about a crash: the report of the crash first, the power event last.
_SOURCE_ORDER = {
    "WinDbg analysis": 0,
    "BlueScreenView": 0,
    "WhoCrashed": 0,
    "BugCheck 1001": 0,
    "kernel dump header": 1,
    "Hyper-V Worker 18590": 2,
    "WER BlueScreen": 2,
    "WER report": 3,
    "Kernel-Power 41": 4,
}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            return None
    return None


def _strings(value: Any) -> list[str]:
    """Every string inside an event's data (dicts of named values, lists, nested)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


_GUEST_FILE = re.compile(r"^(?P<disk>.+)!p(?P<part>\d+):(?P<path>/.*)$")


def _dump_copy_command(dump_path: str | None, where: str) -> str:
    """How to get the dump to safety: from a guest's disk with `hvrescue extract`, from a
    running Windows with copy."""
    guest = _GUEST_FILE.match(where)
    if guest is not None:
        return (
            f"hvrescue extract {shell_quote(guest.group('disk'))} "
            f"{guest.group('part')}:{guest.group('path')} --to <other storage>"
        )
    if dump_path and _DUMP.fullmatch(dump_path):
        return f"copy {shell_quote(dump_path)} <other storage> && " + _MINIDUMPS
    return r"copy %SystemRoot%\MEMORY.DMP <other storage> && " + _MINIDUMPS


def _bugcheck(
    source: str,
    code: int,
    parameters: list[str],
    fact: Fact,
    dump_path: str | None = None,
    report_id: str | None = None,
    time: Any = None,
    culprit: dict[str, Any] | None = None,
) -> Fact:
    stop = stop_code(code)
    a = fact.attributes
    culprit = culprit or {}
    return Fact(
        "bugcheck",
        {
            "source": source,
            "stop_code": stop["code"],
            "stop_code_hex": stop["hex"],
            "stop_name": stop["name"],
            "known": stop["known"],
            "meaning": {"en": stop["en"], "ja": stop["ja"]},
            "parameters": parameters,
            "dump_path": dump_path,
            "dump_copy_command": _dump_copy_command(dump_path, fact.provenance.path),
            "report_id": report_id,
            "time": time if time is not None else a.get("time"),
            "time_local": a.get("time_local"),
            "computer": a.get("computer"),
            "module": culprit.get("module"),
            "image": culprit.get("image"),
            "symbol": culprit.get("symbol"),
            "failure_bucket": culprit.get("failure_bucket"),
        },
        fact.provenance,
    )


def _restart(source: str, fact: Fact, **extra: Any) -> Fact:
    a = fact.attributes
    return Fact(
        "restart",
        {
            "source": source,
            "time": a.get("time"),
            "time_local": a.get("time_local"),
            "computer": a.get("computer"),
            **extra,
        },
        fact.provenance,
    )


def _kernel_power_41(fact: Fact) -> list[Fact]:
    data = fact.attributes.get("data")
    data = data if isinstance(data, dict) else {}
    code = _int(data.get("BugcheckCode"))
    out = [_restart("Kernel-Power 41", fact, bugcheck_code=code)]
    if code:
        params = [
            str(data[f"BugcheckParameter{i}"])
            for i in range(1, 5)
            if data.get(f"BugcheckParameter{i}") not in (None, "")
        ]
        out.append(_bugcheck("Kernel-Power 41", code, params, fact))
    return out


def _eventlog_6008(fact: Fact) -> list[Fact]:
    a = fact.attributes
    data = a.get("data")
    when = None
    if isinstance(data, list) and len(data) >= 2:
        when = f"{data[1]} {data[0]}".translate(_DIRECTION_MARKS).strip() or None
    message = str(a.get("message") or "").translate(_DIRECTION_MARKS).strip()
    return [_restart("EventLog 6008", fact, previous_shutdown=when or message[:200] or None)]


def _bugcheck_1001(fact: Fact) -> list[Fact]:
    """System log, source BugCheck: ``0x0000007e (p1, p2, p3, p4)``, the dump, the report id,
    as named data (param1..param3) or as the rendered message of an export."""
    a = fact.attributes
    texts = [*_strings(a.get("data")), str(a.get("message") or "")]
    joined = "\n".join(texts)
    match = _CODE_AND_PARAMS.search(joined)
    if match is None:
        return []
    params = [p.strip() for p in match.group(2).split(",") if p.strip()]
    dump = _DUMP.search(joined)
    report = _REPORT_ID.search(joined)
    data = a.get("data")
    if report is None and isinstance(data, dict) and isinstance(data.get("param3"), str):
        report_id: str | None = data["param3"].strip() or None
    else:
        report_id = report.group(1) if report else None
    caused = _CAUSED_BY.search(joined)
    culprit = {"image": caused.group(1), "module": caused.group(2).lower()} if caused else None
    return [
        _bugcheck(
            "BugCheck 1001",
            int(match.group(1), 16),
            params,
            fact,
            dump.group(1) if dump else None,
            report_id,
            culprit=culprit,
        )
    ]


def _wer_1001(fact: Fact) -> list[Fact]:
    """Application log, Windows Error Reporting 1001 with the event name BlueScreen: the bucket
    or P1 holds the stop code (Windows 8 and later), the attached files name the dump."""
    a = fact.attributes
    data = a.get("data")
    values = data.get("Data") if isinstance(data, dict) and "Data" in data else data
    message = str(a.get("message") or "")
    code: int | None = None
    if isinstance(values, list) and len(values) > 5:
        # Bucket, BucketType, EventName, Response, CabId, P1..P10, AttachedFiles, ...
        if str(values[2]).strip().lower() != "bluescreen":
            return []
        bucket_text, p1_text = " " + str(values[0]), str(values[5]).strip()
    elif re.search(r"\bBlueScreen\b", message):
        p1 = _WER_P1.search(message)
        bucket_text, p1_text = message, p1.group(1) if p1 else ""
    else:
        return []
    bucket = _WER_BUCKET.search(bucket_text)
    if bucket:
        code = int(bucket.group(1), 16)
    elif re.fullmatch(r"(0x)?[0-9a-fA-F]{1,8}", p1_text):
        code = int(p1_text, 16)
    joined = "\n".join([*_strings(values), message])
    dump = _DUMP.search(joined)
    if not code:
        # A BlueScreen report that does not give the code still tells of a crash.
        return [_restart("WER BlueScreen", fact, dump_path=dump.group(1) if dump else None)]
    return [_bugcheck("WER BlueScreen", code, [], fact, dump.group(1) if dump else None)]


_GUEST_CODES = re.compile(r"ErrorCode(\d)\s*[:=]\s*(0x[0-9A-Fa-f]{1,16})")


def _worker_18590(fact: Fact) -> list[Fact]:
    """The host's record of a guest crash (Hyper-V-Worker 18590: "'VM' has encountered a fatal
    error. The guest operating system reported that it failed with the following error codes:
    ErrorCode0: 0x7E, ErrorCode1: ..."): the guest's stop code and its four parameters, as
    named data or in the message."""
    a = fact.attributes
    raw = a.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    codes = {f"ErrorCode{i}": data.get(f"ErrorCode{i}") for i in range(5)}
    for m in _GUEST_CODES.finditer(str(a.get("message") or "")):
        codes[f"ErrorCode{m.group(1)}"] = codes.get(f"ErrorCode{m.group(1)}") or m.group(2)
    code = _int(codes["ErrorCode0"])
    if not code or not 0 < code <= 0xFFFFFFFF:
        return []
    params = [str(codes[f"ErrorCode{i}"]) for i in range(1, 5) if codes[f"ErrorCode{i}"]]
    return [_bugcheck("Hyper-V Worker 18590", code, params, fact)]


def _from_event(fact: Fact) -> list[Fact]:
    a = fact.attributes
    ident = _int(a.get("event_id"))
    if ident == 18590 and "hyper-v-worker" in str(a.get("provider") or "").lower():
        return _worker_18590(fact)
    if ident not in (41, 6008, 1001):
        return []
    provider = str(a.get("provider") or "")
    source = str(a.get("source_name") or "")
    names = f"{provider} {source}".lower()
    if ident == 41 and "kernel-power" in names:
        return _kernel_power_41(fact)
    if ident == 6008 and ("eventlog" in names.split() or provider.lower() == "eventlog"):
        return _eventlog_6008(fact)
    if ident == 1001 and ("bugcheck" in names or "wer-systemerrorreporting" in names):
        return _bugcheck_1001(fact)
    if ident == 1001 and "windows error reporting" in names:
        return _wer_1001(fact)
    return []


def _from_dump(fact: Fact) -> list[Fact]:
    a = fact.attributes
    code = _int(a.get("bugcheck_code"))
    if code is None:
        return []
    params = [str(p) for p in a.get("parameters") or []]
    return [
        _bugcheck(
            "kernel dump header",
            code,
            params,
            fact,
            dump_path=a.get("file") or fact.provenance.path,
            time=a.get("system_time"),
        )
    ]


def _from_wer_report(fact: Fact) -> list[Fact]:
    a = fact.attributes
    if str(a.get("event_type") or "").lower() != "bluescreen":
        return []
    raw = a.get("signature")
    sig: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code = _int("0x" + str(sig.get("BCCode", "")).strip()) if sig.get("BCCode") else None
    if code is None:
        return [_restart("WER report", fact)]
    params = [str(sig[f"BCP{i}"]) for i in range(1, 5) if sig.get(f"BCP{i}")]
    return [_bugcheck("WER report", code, params, fact, time=a.get("event_time"))]


_ANALYSIS_SOURCES = {
    "windbg": "WinDbg analysis",
    "bluescreenview": "BlueScreenView",
    "whocrashed": "WhoCrashed",
}


def _from_analysis(fact: Fact) -> list[Fact]:
    """A crash analysis pasted as text (hvrescue.logs.commands.windbg): the stop code and the
    module the tool blames. An analysis cut before its stop code tells of no bugcheck."""
    a = fact.attributes
    code = _int(a.get("bugcheck_code"))
    if code is None or not 0 < code <= 0xFFFFFFFF:
        return []
    culprit = {k: a.get(k) for k in ("module", "image", "symbol", "failure_bucket")}
    dump = a.get("dump_file")
    return [
        _bugcheck(
            _ANALYSIS_SOURCES.get(str(a.get("tool")), "WinDbg analysis"),
            code,
            [str(p) for p in a.get("parameters") or []],
            fact,
            dump_path=dump if isinstance(dump, str) else None,
            culprit=culprit,
        )
    ]


def _lend_culprit(facts: list[Fact], bugchecks: list[Fact]) -> None:
    """A crash analysis cut before its stop code ("Probably caused by : vid.sys" pasted under a
    BugCheck 1001) still names the module: a bugcheck of the same file that names none gets it."""
    for fact in facts:
        a = fact.attributes
        if fact.kind != "crash_analysis" or _int(a.get("bugcheck_code")) or not a.get("module"):
            continue
        for bugcheck in bugchecks:
            b = bugcheck.attributes
            same_file = bugcheck.provenance.path == fact.provenance.path
            if bugcheck.kind == "bugcheck" and not b.get("module") and same_file:
                b["module"], b["image"] = a.get("module"), a.get("image")


def derived_facts(facts: Iterable[Fact]) -> list[Fact]:
    """``restart`` and ``bugcheck`` facts, the most telling bugcheck source first."""
    out: list[Fact] = []
    facts_list = list(facts)
    for fact in facts_list:
        if fact.kind == "event":
            out += _from_event(fact)
        elif fact.kind == "crash_dump":
            out += _from_dump(fact)
        elif fact.kind == "wer_report":
            out += _from_wer_report(fact)
        elif fact.kind == "crash_analysis":
            out += _from_analysis(fact)
    _lend_culprit(facts_list, out)
    out.sort(
        key=lambda f: (
            _SOURCE_ORDER.get(str(f.attributes["source"]), 9) if f.kind == "bugcheck" else 0
        )
    )
    return out
