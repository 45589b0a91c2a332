"""msinfo32's System Summary as text (File > Export, UTF-16; or rows copied with Ctrl+C),
English and Japanese: ``Item<TAB>Value`` rows; the Hyper-V rows say whether virtualization is
enabled in the firmware. A paste may have lost the tabs to runs of spaces.

    [System Summary]                               [システムの要約]
    Item	Value                                     項目	値
    OS Name	Microsoft Windows Server 2019 Standard    OS 名	Microsoft Windows Server ...
    Hyper-V - Virtualization Enabled in Firmware	No
    Hyper-V - ファームウェアで仮想化が有効	いいえ
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import clean_keep_tabs
from hvrescue.logs.textutil import Text

HYPERV = {
    "vm_monitor_mode_extensions": r"VM Monitor Mode Extensions|VM モニター モード拡張機能",
    "slat": r"Second Level Address Translation(?: Extensions)?"
    r"|第\s?2\s?レベル(?:の)?\s?アドレス変換(?:拡張機能)?",
    "virtualization_firmware_enabled": r"Virtualization Enabled in Firmware"
    r"|ファームウェアで仮想化が有効",
    "dep_available": r"Data Execution Prot(?:ection|ection Available)|データ実行(?:保護|防止)",
}
ROW = {
    key: re.compile(
        rf"^\s*Hyper-V\s*-\s*(?:{label})(?:\t+|\s{{2,}})(?P<answer>Yes|No|はい|いいえ)\s*$", re.I
    )
    for key, label in HYPERV.items()
}
DETECTED = re.compile(
    r"^\s*(?:A hypervisor has been detected\.|ハイパーバイザーが検出されました。)", re.I
)
HEADER = re.compile(r"^\s*(?:\[System Summary\]|\[システムの要約\]|Item\tValue|項目\t値)\s*$")
KEYS = {
    "os name": "os_name",
    "os 名": "os_name",
    "version": "os_version",
    "バージョン": "os_version",
    "system name": "host_name",
    "システム名": "host_name",
    "system model": "system_model",
    "システム モデル": "system_model",
    "system type": "system_type",
    "システムの種類": "system_type",
    "bios version/date": "bios_version",
    "bios バージョン/日付": "bios_version",
}
KEY_ROW = re.compile(r"^\s*(?P<key>[^\t]+?)\t+(?P<value>[^\t]*?)\t*\s*$")
YES = {"yes", "はい"}
# A paste of rows, not the whole export: what it shows is right, the rest unknown.
PASTE_CONFIDENCE = 0.8
# Rows between the first Hyper-V row and the last that still belong to one summary.
MAX_GAP = 80


# Words one of the lines this reader looks for has: other lines are not looked at twice.
HINTS = ("Hyper-V", "ypervisor", "ハイパーバイザー", "Summary", "システムの要約", "Item", "項目")


def parse(text: Text) -> list[Fact]:
    raw = text.lines
    if not any(hint in line for line in raw for hint in HINTS[:3]):
        return []
    lines = [clean_keep_tabs(line) for line in raw]
    facts: list[Fact] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not any(hint in line for hint in HINTS) or not (_hyperv_row(line) or HEADER.match(line)):
            i += 1
            continue
        start, end, header = _extent(lines, i)
        fact = _summary(text, lines, start, end, header)
        if fact is not None:
            facts.append(fact)
        i = end
    return facts


def _hyperv_row(line: str) -> bool:
    return bool(DETECTED.match(line)) or any(p.match(line) for p in ROW.values())


def _extent(lines: list[str], i: int) -> tuple[int, int, bool]:
    """The summary around line ``i``: from its header (if within reach above) to the last
    Hyper-V row within reach below."""
    header = bool(HEADER.match(lines[i]))
    start = i
    for j in range(i - 1, max(-1, i - MAX_GAP), -1):
        if HEADER.match(lines[j]):
            start, header = j, True
    end = i + 1
    for j in range(i + 1, min(len(lines), i + MAX_GAP)):
        if _hyperv_row(lines[j]):
            end = j + 1
        elif lines[j].lstrip().startswith("[") and not HEADER.match(lines[j]):
            break  # the next section ([Hardware Resources], [ハードウェア リソース])
    return start, end, header


def _summary(text: Text, lines: list[str], start: int, end: int, header: bool) -> Fact | None:
    info: dict[str, Any] = {key: None for key in HYPERV}
    detected = False
    first_row: int | None = None
    for k in range(start, end):
        line = lines[k]
        if DETECTED.match(line):
            detected = True
            first_row = k if first_row is None else first_row
            continue
        for key, pattern in ROW.items():
            m = pattern.match(line)
            if m:
                info[key] = m.group("answer").lower() in YES
                first_row = k if first_row is None else first_row
                break
        else:
            row = KEY_ROW.match(line)
            name = KEYS.get(" ".join(row.group("key").lower().split())) if row else None
            if row and name and name not in info:
                info[name] = row.group("value").strip() or None
    if first_row is None:
        return None
    shown = any(info[key] is not None for key in HYPERV)
    info["hypervisor_detected"] = True if detected else (False if shown else None)
    build = re.search(r"(?:Build|ビルド)\s*(\d+)", info.get("os_version") or "")
    info["os_build"] = int(build.group(1)) if build else None
    info["source"] = "msinfo32"
    if not header:
        info["confidence"] = PASTE_CONFIDENCE
    return Fact("system_info", info, Provenance(text.path, text.locator(start)))
