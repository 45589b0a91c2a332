"""The text reports of NirSoft's BlueScreenView ("save selected items": ``Dump File :``,
``Bug Check Code :``, ``Caused By Driver :``... between ``=====`` lines) and of Resplendence's
WhoCrashed ("On ... your computer crashed", ``crash dump file:``, "This was probably caused by the
following module:", ``Bugcheck code: 0x.. (...)``), and the record helpers the WinDbg reader
(hvrescue.logs.commands.windbg) shares with them: a record is the dict of one crash as read.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PARAMS = 4
HEX = r"[0-9a-fA-F`]{1,19}"
# What WinDbg and WhoCrashed blame: a file, or one of WinDbg's words for "no module".
IMAGE = re.compile(
    r"[\w.~$-]+\.(?:sys|exe|dll|efi)|memory_corruption|hardware\w*|Unknown_Image"
    r"|ANALYSIS_INCONCLUSIVE|pool_corruption|ntkrnl\w*",
    re.IGNORECASE,
)
# ---------------------------------------------------------------- BlueScreenView
BSV = re.compile(r"^\s*(?P<key>[A-Z][A-Za-z0-9 ]*?)\s*:\s*(?P<value>.*?)\s*$")
BSV_KEYS = {
    "dump file",
    "crash time",
    "bug check string",
    "bug check code",
    "parameter 1",
    "parameter 2",
    "parameter 3",
    "parameter 4",
    "caused by driver",
    "caused by address",
    "crash address",
    "full path",
    "major version",
    "minor version",
    "processor",
}
BSV_SEPARATOR = re.compile(r"^\s*={10,}\s*$")
# BlueScreenView in another language (a Japanese UI): its language file translates the labels,
# not the layout. In the default column order a report's values are the dump file, the crash
# time, the bug check string, the bug check code, parameters 1 to 4, the driver and the address
# it is blamed for, ... and, 21st, the full path: read by position when their shapes say so.
BSV_ROW = re.compile(r"^\s*(?P<key>[^\s:：=*>][^:：]{0,40}?)\s*[:：](?:[ \t]+(?P<value>.*?))?\s*$")
BSV_DUMP = re.compile(r"^[\w.-]+\.dmp$", re.IGNORECASE)
BSV_STOP = re.compile(r"^[A-Z][A-Z0-9_]{3,}$")
BSV_CODE = re.compile(r"^0x[0-9a-fA-F]{8}$")
BSV_COLUMNS = 26
BSV_FULL_PATH = 20

# ---------------------------------------------------------------- WhoCrashed
WC_CRASHED = re.compile(r"your computer crashed|a problem was reported", re.IGNORECASE)
WC_DUMP = re.compile(r"^\s*crash dump file:\s*(?P<path>\S.*?)\s*$", re.IGNORECASE)
WC_MODULE = re.compile(
    r"probably caused by the following module:\s*(?P<image>[^\s(]+)\s*(?:\((?P<symbol>[^)]*)\))?",
    re.IGNORECASE,
)
WC_CODE = re.compile(
    r"^\s*Bugcheck code:\s*0x(?P<code>[0-9a-fA-F]{1,8})\s*(?:\((?P<params>[^)]*)\)?)?",
    re.IGNORECASE,
)
WC_ERROR = re.compile(r"^\s*Error:\s*(?P<name>[A-Z][A-Z0-9_]{3,})\s*$")


def starts_report(line: str) -> bool:
    """Whether ``line`` begins a report of another crash."""
    return bool(
        BSV_SEPARATOR.match(line)
        or WC_DUMP.match(line)
        or (WC_CRASHED.search(line) and line.lstrip().startswith("On "))
    )


def read_line(line: str, i: int, rec: dict[str, Any]) -> bool:
    """Reads a line of WhoCrashed or BlueScreenView into ``rec``; whether it was one."""
    m = WC_DUMP.match(line)
    if m:
        rec["dump_file"] = m.group("path")
        anchor(rec, i, "whocrashed")
        return True
    m = WC_MODULE.search(line)
    if m and IMAGE.fullmatch(m.group("image")):
        anchor(rec, i, "whocrashed")
        rec.setdefault("image", m.group("image"))
        if m.group("symbol"):
            rec.setdefault("symbol", m.group("symbol").strip())
        return True
    m = WC_CODE.match(line)
    if m:
        code_of(rec, int(m.group("code"), 16), i, "whocrashed")
        if m.group("params"):
            params_of(rec, m.group("params").split(","))
        return True
    m = WC_ERROR.match(line)
    if m and rec.get("tool") == "whocrashed":
        rec.setdefault("stop_name", m.group("name"))
        return True
    if ":" in line and not line.lstrip().startswith("*"):
        return _bluescreenview(line, i, rec)
    return False


def _bluescreenview(line: str, i: int, rec: dict[str, Any]) -> bool:
    m = BSV.match(line)
    if m is None or m.group("key").strip().lower() not in BSV_KEYS:
        return _translated(line, i, rec)
    key, value = m.group("key").strip().lower(), m.group("value")
    seen = rec.setdefault("bsv", {})
    seen[key] = value
    if key == "bug check code" and re.fullmatch(r"0x[0-9a-fA-F]{1,8}", value):
        seen["code_line"] = i
    # BlueScreenView's report only once the code and one of its own labels are there.
    if "code_line" in seen and ({"bug check string", "caused by driver", "dump file"} & set(seen)):
        code_of(rec, int(seen["bug check code"], 16), seen["code_line"], "bluescreenview")
        if seen.get("bug check string"):
            rec["stop_name"] = seen["bug check string"]
        if seen.get("caused by driver"):
            rec["image"] = seen["caused by driver"]
        if seen.get("caused by address"):
            rec["symbol"] = seen["caused by address"]
        path = seen.get("full path") or seen.get("dump file")
        if path:
            rec["dump_file"] = path
        params = [seen.get(f"parameter {n}") for n in range(1, 5)]
        rec["params"] = [p for p in (hex_value(v) for v in params if v) if p]
    return True


def _translated(line: str, i: int, rec: dict[str, Any]) -> bool:
    """A line of BlueScreenView's report with translated labels, read by its position."""
    m = BSV_ROW.match(line)
    if m is None:
        return False
    value = (m.group("value") or "").strip()
    rows: list[tuple[str, int]] | None = rec.get("bsv_rows")
    if rows is None:
        # A report starts with its dump file, right after its separator.
        if rec or not BSV_DUMP.match(value):
            return False
        rows = rec["bsv_rows"] = []
    if len(rows) >= BSV_COLUMNS:
        return False
    rows.append((value, i))
    if len(rows) == 10 and BSV_STOP.match(rows[2][0]) and BSV_CODE.match(rows[3][0]):
        code_of(rec, int(rows[3][0], 16), rows[3][1], "bluescreenview")
        rec["stop_name"] = rows[2][0]
        rec["image"] = rows[8][0] or None
        rec["symbol"] = rows[9][0] or None
        rec["dump_file"] = rows[0][0]
        rec["params"] = [p for p in (hex_value(v) for v, _ in rows[4:8] if v) if p]
    elif len(rows) == BSV_FULL_PATH + 1 and "code" in rec and value.lower().endswith(".dmp"):
        rec["dump_file"] = value
    return True


def anchor(rec: dict[str, Any], i: int, tool: str) -> None:
    rec.setdefault("anchor", i)
    rec.setdefault("tool", tool)


def code_of(rec: dict[str, Any], code: int, i: int, tool: str) -> None:
    if code > 0xFFFFFFFF:
        return
    rec.setdefault("code", code)
    rec.setdefault("code_line", i)
    rec.setdefault("tool", tool)
    rec.setdefault("anchor", i)


def hex_value(value: str) -> str | None:
    value = value.strip().replace("`", "")
    value = value[2:] if value.lower().startswith("0x") else value
    if not re.fullmatch(r"[0-9a-fA-F]{1,16}", value):
        return None
    return f"0x{int(value, 16):x}"


def param(rec: dict[str, Any], n: int, value: str) -> None:
    params: list[str | None] = rec.setdefault("params", [])
    found = hex_value(value)
    if found is None or len(params) >= n:
        return
    params.extend([None] * (n - 1 - len(params)))
    params.append(found)


def params_of(rec: dict[str, Any], values: list[str]) -> None:
    if rec.get("params"):
        return
    rec["params"] = [p for p in (hex_value(v) for v in values if v.strip()) if p][:MAX_PARAMS]
