"""Dialogs copied as text: what Hyper-V Manager and Windows show when an operation fails.

Two layouts. A task dialog copied with Ctrl+C gives labelled sections::

    [Window Title]
    Hyper-V Manager

    [Main Instruction]
    An error occurred while attempting to start the selected virtual machine(s).

    [Content]
    'web01' failed to start. ...

    [Expanded Information]
    ...

    [Close]

(section labels in the language of Windows; a line in brackets that is no label is a button
and ends the dialog). Hyper-V Manager's own error dialog has no labels: its text, copied or
typed after "See details", starts with the instruction ("An error occurred while attempting to
...") under an optional title line. Either becomes a ``dialog`` fact (title, instruction,
content with the expanded text, the codes printed in it, confidence 0.8) citing its first line;
the message signatures read the same lines, so the failure the dialog shows also counts as the
event it stands for.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

CONFIDENCE = 0.8
MAX_LINES = 80  # of one dialog: a dialog is short; a text that goes on is no longer one
MAX_TEXT = 4000

SECTIONS = {
    "window title": "title",
    "main instruction": "instruction",
    "content": "content",
    "expanded information": "expanded",
    "footer": "footer",
    "verification": "footer",
    "ウィンドウ タイトル": "title",
    "ウィンドウタイトル": "title",
    "メイン命令": "instruction",
    "メイン インストラクション": "instruction",
    "主な指示": "instruction",
    "コンテンツ": "content",
    "内容": "content",
    "展開された情報": "expanded",
    "詳細情報": "expanded",
    "拡張情報": "expanded",
    "フッター": "footer",
    "fenstertitel": "title",
    "hauptanweisung": "instruction",
    "inhalt": "content",
    "erweiterte informationen": "expanded",
    "titre de la fenêtre": "title",
    "instruction principale": "instruction",
    "contenu": "content",
    "informations développées": "expanded",
}
_LABEL = re.compile(r"^\s*(?:>\s*)*\[(?P<label>[^\[\]]{1,40})\]\s*$")
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
# The first line of Hyper-V Manager's unlabelled error dialog.
_INSTRUCTION = re.compile(
    r"^(?:An error occurred while attempting to .{3,200}"
    r"|The application encountered an error while attempting to change the state of .{1,200}"
    r"|.{0,200}(?:仮想マシン|チェックポイント|スナップショット).{0,80}(?:中に|しようとして)"
    r"エラーが発生しました。?"
    r"|.{1,200}の状態を変更しようとして、?アプリケーションでエラーが発生しました。?"
    r"|Beim Versuch, .{3,200} ist ein Fehler aufgetreten\.?"
    r"|Une erreur s'est produite lors de la tentative .{3,200})$",
    re.I,
)
_TITLES = re.compile(
    r"^(?:Hyper-V Manager|Hyper-V マネージャー|Hyper-V-Manager|Gestionnaire Hyper-V"
    r"|Virtual Machine Connection|仮想マシン接続|Failover Cluster Manager"
    r"|フェールオーバー クラスター マネージャー)$",
    re.I,
)
# A word every instruction above holds (a cheap test before the expression).
_HINT = re.compile(r"rror|エラー|Fehler|erreur", re.I)
# Lines of the dialog's chrome, not of its text.
_CHROME = re.compile(
    r"^(?:see details|hide details|details|ok|close|詳細の表示|詳細を表示|詳細を非表示"
    r"|詳細の非表示|閉じる)$",
    re.I,
)
_CODE = re.compile(r"(?<![0-9A-Za-z_])0x([0-9A-Fa-f]{8})(?![0-9A-Za-z_])")


def _clean(line: str) -> str:
    return unicodedata.normalize("NFKC", _QUOTE.sub("", line, count=1)).strip()


def _label(line: str) -> str | None:
    """The section a ``[Label]`` line opens, "" for a button, None for other lines."""
    if "[" not in line and "［" not in line:  # a forum or an IME may widen the brackets
        return None
    m = _LABEL.match(unicodedata.normalize("NFKC", line))
    if not m:
        return None
    return SECTIONS.get(" ".join(m.group("label").lower().split()), "")


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        label = _label(lines[i])
        if label:
            fact, i = _labelled(text, i)
            facts.append(fact)
            continue
        line = lines[i]
        hinted = _HINT.search(line) is not None
        cleaned = _clean(line) if hinted else ""
        if cleaned and _INSTRUCTION.match(cleaned):
            fact, i = _unlabelled(text, i)
            facts.append(fact)
            continue
        i += 1
    return facts


def _labelled(text: Text, start: int) -> tuple[Fact, int]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    i = start
    end = min(len(text.lines), start + MAX_LINES)
    while i < end:
        line = text.lines[i]
        label = _label(line)
        if label == "":
            i += 1  # a button: the dialog ends here
            break
        if label is not None:
            if label in sections and label != "footer":
                break  # the next dialog
            current = label
            sections.setdefault(label, [])
        elif current is not None and not text.is_prompt(i):
            sections[current].append(_clean(line))
        elif text.is_prompt(i):
            break
        i += 1
    return _fact(text, start, sections), max(i, start + 1)


def _unlabelled(text: Text, start: int) -> tuple[Fact, int]:
    title = None
    j = start - 1
    while j >= 0 and not text.lines[j].strip():
        j -= 1
    if j >= 0 and start - j <= 2 and _TITLES.match(_clean(text.lines[j])):
        title = _clean(text.lines[j])
    content: list[str] = []
    i = start + 1
    blank = 0
    end = min(len(text.lines), start + MAX_LINES)
    while i < end:
        line = _clean(text.lines[i])
        if text.is_prompt(i) or _label(text.lines[i]) is not None:
            break
        if not line:
            blank += 1
            if blank >= 2:
                break
        else:
            blank = 0
            if _INSTRUCTION.match(line):
                break  # the next dialog
            if not _CHROME.match(line):
                content.append(line)
        i += 1
    sections = {"instruction": [_clean(text.lines[start])], "content": content}
    if title:
        sections["title"] = [title]
    first = j if title else start
    return _fact(text, first, sections), max(i, start + 1)


def _joined(lines: list[str] | None) -> str | None:
    if not lines:
        return None
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n".join(paragraphs)[:MAX_TEXT] or None


def _fact(text: Text, start: int, sections: dict[str, list[str]]) -> Fact:
    content = _joined(sections.get("content"))
    expanded = _joined(sections.get("expanded"))
    body = "\n".join(p for p in (content, expanded) if p)
    attrs: dict[str, Any] = {
        "title": _joined(sections.get("title")),
        "instruction": _joined(sections.get("instruction")),
        "content": body or None,
        "expanded": expanded,
    }
    codes: list[str] = []
    for part in (attrs["instruction"], body):
        for m in _CODE.finditer(part or ""):
            code = "0x" + m.group(1).lower()
            if code not in codes and code != "0x00000000":
                codes.append(code)
    attrs["codes"] = codes
    attrs["confidence"] = CONFIDENCE
    return Fact("dialog", attrs, Provenance(text.path, text.locator(start)))
