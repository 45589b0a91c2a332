"""Logs of Windows' own backup tools, English and Japanese:

- Windows Server Backup's ``Backup_Error-<date>.log`` (under
  ``C:\\Windows\\Logs\\WindowsServerBackup``, UTF-16: the walker decodes it): one line per file or
  volume that failed, ``Error in backup of C:\\... during read: Error [0x80070005] Access is
  denied.``, and for a writer that failed, ``Error: 8078010D`` / ``Detailed Error: 80070005``
  lines with their messages;
- ``wbadmin start backup`` / ``wbadmin get versions`` console output: ``ERROR - ...`` (``エラー -
  ...``) lines, continued on the lines below, with codes in parentheses; the summary's
  ``Detailed error:`` (``詳細なエラー:``) and ``The backup of volume X: could not be completed``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.pserror import codes_in, join_lines
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

PATH = r"(?:[A-Za-z]:\\|\\\\)[^\t\n]*?"
# English: "Error in backup of <path> during <op>: Error [0x...] <message>"
WSB_EN = re.compile(
    rf"^\s*Error in backup of (?P<path>{PATH}) during (?P<op>[\w ]+?):\s*"
    r"Error \[(?P<code>0x[0-9A-Fa-f]{8})\]\s*(?P<msg>.*)$"
)
# Any language: a path, then an error code in brackets ("エラー [0x80070005] アクセスが拒否...").
WSB_ANY = re.compile(
    rf"^\s*(?:.*?\s)?(?P<path>{PATH})\s?(?:の|を|で|に)(?=[^\x00-\x7f]).*?(?:Error|エラー)\s*"
    r"\[(?P<code>0x[0-9A-Fa-f]{8})\]\s*(?P<msg>.*)$"
)
WRITER_ERROR = re.compile(
    r"^\s*(?P<key>Detailed Error|Error|詳細エラー|詳細なエラー|エラー)\s*[:：]\s*"
    r"(?:0x)?(?P<code>[0-9A-Fa-f]{8})\s*$"
)
WRITER_MESSAGE = re.compile(
    r"^\s*(?P<key>Detailed Error Message|Error Message|詳細エラー メッセージ|エラー メッセージ)"
    r"\s*[:：]\s*(?P<msg>.*?)\s*$"
)
WBADMIN_BANNER = re.compile(r"^\s*wbadmin \d+\.\d+\b", re.I)
WBADMIN_ERROR = re.compile(r"^\s*(?:ERROR|エラー)\s*[-–—]\s*(?P<msg>\S.*?)\s*$")
DETAILED = re.compile(r"^\s*(?:Detailed error|詳細なエラー)\s*[:：]\s*(?P<msg>\S.*?)\s*$", re.I)
VOLUME_FAILED = re.compile(
    r"^\s*(?:The backup of volume (?P<en>.+?) could not be completed\.?"
    r"|ボリューム (?P<ja>.+?) のバックアップを完了できませんでした。?)\s*(?P<rest>.*)$"
)
VOLUME = re.compile(r"^(?:[A-Za-z]:|\\\\\?\\Volume\{[0-9A-Fa-f-]+\}\\?)")
FILE_TIME = re.compile(r"Backup_Error-(\d{2})-(\d{2})-(\d{4})_(\d{2})-(\d{2})-(\d{2})", re.I)
# Lines a wbadmin error message continues over, at most.
MAX_CONTINUATION = 6


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    facts: list[Fact] = []
    wsb = _is_wsb_log(text)
    wbadmin = any("wbadmin" in line[:12].lower() and WBADMIN_BANNER.match(line) for line in lines)
    time = _file_time(text.path) if wsb else None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = WSB_EN.match(line) or (WSB_ANY.match(line) if wsb else None)
        if m:
            msg = m.group("msg").strip() or None
            facts.append(_fact(text, i, "wsb", m.group("path").strip(), m.group("code"), msg, time))
            i += 1
            continue
        w = WRITER_ERROR.match(line)
        if w and wsb:
            found, i = _writer_failure(text, lines, i, time)
            facts.extend(found)
            continue
        e = WBADMIN_ERROR.match(line)
        if e and (wbadmin or codes_in(line) or _is_wbadmin_command(text, i)):
            message, nxt = _continued(lines, i, e.group("msg"))
            facts.append(_fact(text, i, "wbadmin", _path_in(message), None, message, None))
            i = nxt
            continue
        d = DETAILED.match(line) if wbadmin else None
        v = VOLUME_FAILED.match(line) if wbadmin else None
        if d or v:
            volume = (v.group("en") or v.group("ja")) if v else None
            message, nxt = _sentence(lines, i, d.group("msg")) if d else (line.strip(), i + 1)
            facts.append(_fact(text, i, "wbadmin", volume, None, message, None))
            i = nxt
            continue
        i += 1
    return facts


def _is_wsb_log(text: Text) -> bool:
    name = os.path.basename(text.path.replace("\\", "/").split("!/")[-1]).lower()
    return name.startswith("backup_error") or name.startswith("backup-error")


def _is_wbadmin_command(text: Text, i: int) -> bool:
    return "wbadmin" in (text.command_at(i) or "").lower()


def _file_time(path: str) -> str | None:
    """The time in the log's name, when its day and month cannot be mixed up (the order
    follows the system's locale)."""
    m = FILE_TIME.search(path)
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    if a > 12 and 1 <= b <= 12:
        day, month = a, b
    elif b > 12 and 1 <= a <= 12:
        day, month = b, a
    elif a == b and 1 <= a <= 12:
        day = month = a
    else:
        return None
    hh, mm, ss = (int(m.group(k)) for k in (4, 5, 6))
    if hh > 23 or mm > 59 or ss > 59 or day > 31:
        return None
    return f"{m.group(3)}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}"


def _continued(lines: list[str], i: int, first: str) -> tuple[str, int]:
    parts = [first]
    j = i + 1
    while j < len(lines) and j - i <= MAX_CONTINUATION:
        line = lines[j].strip()
        if not line or WBADMIN_ERROR.match(line) or DETAILED.match(line):
            break
        parts.append(line)
        j += 1
    return join_lines(parts), j


def _sentence(lines: list[str], i: int, first: str) -> tuple[str, int]:
    """A ``Detailed error:`` sentence and the lines a narrow console wrapped it over: they go
    on while the sentence has not ended, up to a blank line or another of wbadmin's lines."""
    parts = [first]
    j = i + 1
    while j < len(lines) and j - i <= MAX_CONTINUATION:
        line = lines[j].strip()
        if parts[-1].rstrip().endswith((".", "。")) or not line:
            break
        if WBADMIN_ERROR.match(line) or DETAILED.match(line) or VOLUME_FAILED.match(line):
            break
        parts.append(line)
        j += 1
    return join_lines(parts), j


def _path_in(message: str) -> str | None:
    m = re.search(r"(?:[A-Za-z]:\\|\\\\)[^\s\"'()]+", message)
    return m.group(0).rstrip(".。,") if m else None


def _writer_failure(
    text: Text, lines: list[str], i: int, time: str | None
) -> tuple[list[Fact], int]:
    """``Error: 8078010D`` / ``Error Message: ...`` / ``Detailed Error: 80070005`` /
    ``Detailed Error Message: ...``: one fact, the detailed code first."""
    start = i
    codes: dict[str, str] = {}
    messages: dict[str, str] = {}
    while i < len(lines) and i - start < 12:
        w = WRITER_ERROR.match(lines[i])
        m = WRITER_MESSAGE.match(lines[i])
        if w:
            detailed = w.group("key") in ("Detailed Error", "詳細エラー", "詳細なエラー")
            codes["detailed" if detailed else "error"] = "0x" + w.group("code").lower()
        elif m:
            detailed = m.group("key").startswith(("Detailed", "詳細"))
            messages["detailed" if detailed else "error"] = m.group("msg")
        elif lines[i].strip():
            break
        i += 1
    code = codes.get("detailed") or codes.get("error")
    message = " / ".join(v for v in (messages.get("error"), messages.get("detailed")) if v)
    fact = _fact(text, start, "wsb", None, code, message or None, time)
    fact.attributes["codes"] = [c for c in (codes.get("error"), codes.get("detailed")) if c]
    return [fact], max(i, start + 1)


def _fact(
    text: Text,
    index: int,
    tool: str,
    path: str | None,
    code: str | None,
    message: str | None,
    time: str | None,
) -> Fact:
    codes = codes_in(message or "")
    normal = code.lower() if code else (codes[0] if codes else None)
    attrs: dict[str, Any] = {
        "tool": tool,
        "path": path or None,
        "code": normal,
        "message": message,
        "time": time,
        "codes": [normal] + [c for c in codes if c != normal] if normal else codes,
    }
    return Fact("backup_error", attrs, Provenance(text.path, text.locator(index)))
