"""diskpart on virtual disks, as people paste it: ``DISKPART> select vdisk file=...``, ``attach
vdisk [readonly]``, ``detach vdisk``, ``detail vdisk``, ``compact vdisk``, ``expand vdisk``,
``merge vdisk depth=1``, ``create vdisk``, English and Japanese.

- ``diskpart_result``: one per vdisk command (or per error found without its prompt): ``command``
  as typed (None when the prompt was not pasted), ``vdisk_file`` (the file selected, when the
  transcript shows it), ``ok`` (True on diskpart's success line or a ``detail vdisk`` listing,
  False on an error, None when the output says neither), ``error`` (the message as written,
  wrapped lines joined), ``error_code`` (only when one is printed), ``reason`` (``corrupted``,
  ``in_use``, ``not_found``, ``chain_broken``, ``must_detach``, ``already_attached``,
  ``access_denied``, ``no_vdisk_selected``, ``other``), ``missing`` (``parent`` when a file that
  was selected cannot be attached or merged because a file is not found, ``file`` when the
  selection itself failed so), ``lang`` (``en``, ``ja``).
- ``vdisk_detail``: the fields of ``detail vdisk``: ``device_type``, ``vendor``, ``state`` (VDS
  state, lower case with underscores where known; ``state_text`` as printed), ``virtual_size``
  and ``physical_size`` (bytes; None without a unit), ``file``, ``is_child``, ``parent_file``,
  ``disk_number``, ``lang``.

diskpart prints a VDS error as two lines: ``Virtual Disk Service error:`` then the message
(``仮想ディスク サービス エラー:`` on a Japanese system), and its own failures on one line
(``DiskPart has encountered an error: <message>``) followed by ``See the System Event Log for
more information.``.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.pserror import codes_in, join_lines
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import PROMPT, Text, norm_key, split_kv, strip_quotes

DISKPART_PROMPT = re.compile(r"^\s*DISKPART\s*>\s*(?P<cmd>\S.*?)?\s*$", re.I)
VDISK_COMMAND = re.compile(r"^\s*(?:\w+\s+)?vdisk\b", re.I)
SELECT = re.compile(r"^\s*sel(?:ect)?\s+vdisk\b", re.I)
FILE_ARG = re.compile(r"\bfile\s*=\s*(?:\"(?P<q>[^\"]+)\"?|(?P<bare>\S+))", re.I)
VDS_ERROR = re.compile(
    r"^\s*(?:Virtual Disk Service error|仮想ディスク サービス エラー)\s*[:：]\s*(?P<rest>.*)$", re.I
)
DP_ERROR = re.compile(
    r"^\s*(?:DiskPart has encountered an error|DiskPart\s*(?:は|で)エラーを検出しました"
    r"|DiskPart\s*でエラーが発生しました)\s*[:：]\s*(?P<rest>.*)$",
    re.I,
)
SEE_LOG = re.compile(
    r"^\s*(?:See the System Event Log for more information"
    r"|詳細については、?\s*システム イベント ログ|システム イベント ログを参照)",
    re.I,
)
NO_SELECTION = re.compile(
    r"^\s*(?P<msg>There is no virtual disk selected\.?|仮想ディスクが選択されていません。?)\s*$",
    re.I,
)
SUCCESS = re.compile(
    r"^\s*(?:DiskPart successfully \w+ the virtual disk\b.*"
    r"|DiskPart により、仮想ディスク(?: ファイル)?が.*(?:されました|しました)。?)\s*$",
    re.I,
)
PROGRESS = re.compile(r"^\s*\d{1,3}\s*(?:percent completed|% 完了しました|%\s*完了)", re.I)
DETAIL_KEYS = {
    "device type id": "device_type",
    "vendor id": "vendor",
    "state": "state",
    "virtual size": "virtual_size",
    "physical size": "physical_size",
    "filename": "file",
    "is child": "is_child",
    "parent filename": "parent_file",
    "associated disk#": "disk_number",
    "デバイスの種類 id": "device_type",
    "デバイス タイプ id": "device_type",
    "ベンダー id": "vendor",
    "状態": "state",
    "仮想サイズ": "virtual_size",
    "物理サイズ": "physical_size",
    "ファイル名": "file",
    "子": "is_child",
    "子ディスク": "is_child",
    "親ファイル名": "parent_file",
    "関連付けられたディスク番号": "disk_number",
    "関連付けられているディスク番号": "disk_number",
}
STATES = {
    "added": "added",
    "open": "open",
    "attached": "attached",
    "attached not open": "attached_not_open",
    "attach pending": "attach_pending",
    "detach pending": "detach_pending",
    "compacting": "compacting",
    "merging": "merging",
    "expanding": "expanding",
    "inactive": "inactive",
    "deleted": "deleted",
    "unknown": "unknown",
    "追加済み": "added",
    "アタッチ済み": "attached",
    "接続済み": "attached",
    # "Attached not open" on a Japanese system (wording not confirmed from a posted sample)
    "アタッチ済み (開いていません)": "attached_not_open",
    "アタッチ済み (開いていない)": "attached_not_open",
}
YES = {"yes", "はい"}
NO = {"no", "いいえ"}
UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
SIZE = re.compile(r"^\s*(?P<n>\d{1,15}(?:[.,]\d{1,6})?)\s*(?P<unit>[KMGTP]?B|バイト)\s*$", re.I)
# What an error's words say, in either language (the codes are those of the Win32 errors).
REASONS = (
    (
        "corrupted",
        re.compile(
            r"corrupted and unreadable|壊れているため、?読み取ることができません|0x80070570", re.I
        ),
    ),
    ("in_use", re.compile(r"being used by another process|別のプロセスが使用中|0x80070020", re.I)),
    (
        "chain_broken",
        re.compile(r"chain of virtual hard disks is|仮想ハード ディスクのチェーン|0xc03a00", re.I),
    ),
    (
        "not_found",
        re.compile(
            r"cannot find the (?:file|path) specified|ファイルが見つかりません|パスが見つかりません"
            r"|0x80070002|0x80070003",
            re.I,
        ),
    ),
    ("must_detach", re.compile(r"be detached|must be detached|デタッチされている必要", re.I)),
    ("already_attached", re.compile(r"already attached|既にアタッチ|既に接続", re.I)),
    ("access_denied", re.compile(r"Access is denied|アクセスが拒否されました|0x80070005", re.I)),
    (
        "no_vdisk_selected",
        re.compile(r"no virtual disk selected|仮想ディスクが選択されていません", re.I),
    ),
)
# What any diskpart output on a virtual disk holds at least one of (a quick test first).
MARKERS = re.compile(
    r"diskpart|vdisk|Virtual Disk Service|Device type ID"
    r"|仮想ディスク サービス|仮想ディスク ファイル",
    re.I,
)
MAX_MESSAGE = 6  # lines a wrapped error message spans, at most
MAX_FIELD = 1024  # characters of a value kept


def _lang(line: str) -> str:
    return "en" if line.isascii() else "ja"


def _reason(message: str) -> str:
    for name, pattern in REASONS:
        if pattern.search(message):
            return name
    return "other"


def _message(
    lines: list[str], start: int, first: str, stop: re.Pattern[str] | None
) -> tuple[str, int]:
    """The error message from ``first`` (the rest of the label's line) and the lines after it,
    up to a blank line (after some text), a prompt, ``stop``, or MAX_MESSAGE lines."""
    parts = [first] if first.strip() else []
    j = start + 1
    while j < len(lines) and j - start <= MAX_MESSAGE:
        line = lines[j]
        if DISKPART_PROMPT.match(line) or PROMPT.match(line) or (stop and stop.match(line)):
            break
        if not line.strip():
            if parts:
                break
            j += 1
            continue
        if VDS_ERROR.match(line) or DP_ERROR.match(line) or SUCCESS.match(line):
            break
        parts.append(line.strip())
        j += 1
    return join_lines(parts)[:MAX_FIELD], j


def _size(value: str) -> int | None:
    m = SIZE.match(value)
    if not m:
        return None
    unit = m.group("unit").lower()
    factor = 1 if unit == "バイト" else UNITS.get(unit)
    if factor is None:
        return None
    number = float(m.group("n").replace(",", "."))
    return int(number * factor)


def _bool(value: str) -> bool | None:
    v = value.strip().lower().rstrip("。.")
    return True if v in YES else False if v in NO else None


def _detail(fields: dict[str, str], lang: str) -> dict[str, Any]:
    state_text = fields.get("state", "").strip().rstrip("。.")
    parent = strip_quotes(fields.get("parent_file", "")).strip()
    disk = fields.get("disk_number", "").strip()
    number = re.match(r"^\d{1,4}$", disk)
    return {
        "device_type": fields.get("device_type") or None,
        "vendor": fields.get("vendor") or None,
        "state": STATES.get(norm_key(state_text), state_text.lower().replace(" ", "_") or None),
        "state_text": state_text or None,
        "virtual_size": _size(fields.get("virtual_size", "")),
        "physical_size": _size(fields.get("physical_size", "")),
        "file": strip_quotes(fields.get("file", "")).strip() or None,
        "is_child": _bool(fields.get("is_child", "")),
        "parent_file": parent or None,
        "disk_number": int(disk) if number else None,
        "lang": lang,
    }


def _detail_block(lines: list[str], i: int) -> tuple[dict[str, str], int]:
    """The ``detail vdisk`` key/value lines from ``i`` (a blank line may sit between them)."""
    fields: dict[str, str] = {}
    j = i
    while j < len(lines):
        kv = split_kv(lines[j])
        name = DETAIL_KEYS.get(norm_key(kv[0])) if kv else None
        if name is None:
            if not lines[j].strip() and j + 1 < len(lines) and fields:
                nxt = split_kv(lines[j + 1])
                if nxt and DETAIL_KEYS.get(norm_key(nxt[0])):
                    j += 1
                    continue
            break
        if name in fields:
            break  # a second listing starts
        fields[name] = kv[1][:MAX_FIELD] if kv else ""
        j += 1
    return fields, j


def _file_of(command: str | None) -> str | None:
    if not command or not SELECT.match(command):
        return None
    m = FILE_ARG.search(command)
    if not m:
        return None
    return (m.group("q") or m.group("bare") or "").strip()[:MAX_FIELD] or None


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    if not any(MARKERS.search(line) for line in lines if line):
        return []  # cheap exit: most texts hold no diskpart output
    facts: list[Fact] = []
    selected: str | None = None  # the file of the last select vdisk
    selected_ok = False
    command: str | None = None
    block: dict[str, Any] | None = None  # the result of the current command
    block_at = 0

    def flush() -> None:
        nonlocal block
        if block is not None and (block["ok"] is not None or block["command"]):
            facts.append(
                Fact("diskpart_result", block, Provenance(text.path, text.locator(block_at)))
            )
        block = None

    def open_block(at: int, cmd: str | None) -> dict[str, Any]:
        nonlocal block, block_at
        block = {
            "command": cmd,
            "vdisk_file": selected,
            "ok": None,
            "error": None,
            "error_code": None,
            "reason": None,
            "missing": None,
            "lang": "en",
        }
        block_at = at
        return block

    i = 0
    while i < len(lines):
        line = lines[i]
        p = DISKPART_PROMPT.match(line)
        if p:
            flush()
            command = (p.group("cmd") or "").strip()[:MAX_FIELD] or None
            if command and VDISK_COMMAND.match(command):
                if SELECT.match(command):
                    selected, selected_ok = _file_of(command), False
                open_block(i, command)
            i += 1
            continue
        if PROMPT.match(line):  # back at the shell: the diskpart session is over
            flush()
            command = None
        e = VDS_ERROR.match(line) or DP_ERROR.match(line)
        n = NO_SELECTION.match(line)
        if e or n:
            cur = block if block is not None and block["ok"] is None else open_block(i, None)
            if e:
                stop = SEE_LOG if DP_ERROR.match(line) else None
                message, nxt = _message(lines, i, e.group("rest"), stop)
            else:
                message, nxt = n.group("msg") if n else "", i + 1
            cur["ok"] = False
            cur["error"] = message or None
            codes = codes_in(message)
            cur["error_code"] = codes[0] if codes else None
            cur["reason"] = _reason(message) if message else "other"
            cur["lang"] = _lang(line)  # the label's language (a path may be in any)
            if cur["reason"] == "not_found":
                typed = cur["command"] or ""
                if SELECT.match(typed):
                    cur["missing"] = "file"
                elif selected_ok and re.search(r"\b(attach|merge|expand|compact)\b", typed, re.I):
                    cur["missing"] = "parent"  # the file itself opened: what it names did not
            i = max(nxt, i + 1)
            flush()
            continue
        if SUCCESS.match(line):
            cur = block if block is not None else open_block(i, command)
            cur["ok"] = True
            cur["lang"] = _lang(line)
            if SELECT.match(cur["command"] or ""):
                selected_ok = True
            i += 1
            continue
        kv = split_kv(line)
        if kv and DETAIL_KEYS.get(norm_key(kv[0])) in ("device_type", "vendor", "virtual_size"):
            fields, nxt = _detail_block(lines, i)
            if len(fields) >= 3:
                lang = _lang(kv[0])  # the labels' language, not the file names'
                detail = _detail(fields, lang)
                facts.append(Fact("vdisk_detail", detail, Provenance(text.path, text.locator(i))))
                cur = block if block is not None else open_block(i, command)
                cur["ok"] = True
                cur["lang"] = lang
                if cur["vdisk_file"] is None:
                    cur["vdisk_file"] = detail["file"]
                i = nxt
                continue
        if PROGRESS.match(line) and block is not None and not line.isascii():
            block["lang"] = "ja"
        i += 1
    flush()
    return facts
