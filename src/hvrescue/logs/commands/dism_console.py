"""What DISM and sfc print on the console, English and Japanese, as people paste it: DISM's
"Error: 0x800f081f" (or a decimal Win32 code, "Error: 87") with the sentence under it, its
verdicts of /ScanHealth, /CheckHealth and /RestoreHealth, and sfc's one-paragraph verdict.

Each result is a ``servicing_log`` fact as the log readers give them (:mod:`.cbs`), with
``format`` ``dism-console`` or ``sfc-console``, ``outcome`` true (the line is the result of a
whole operation) and ``failed`` saying whether it failed, so the servicing rules read a pasted
console the same way as the logs behind it. A success is a fact too: the input is recognised,
and nothing fires."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

# "Error: 0x800f081f", "Error: 87", "エラー: 0x800f081f" (DISM's line of its own)
DISM_ERROR = re.compile(r"^\s*(?:Error|エラー)\s*[:：]\s*(?P<code>0x[0-9A-Fa-f]{1,8}|\d{1,10})\s*$")
DISM_HEAD = re.compile(
    r"Deployment Image Servicing and Management tool|展開イメージのサービスと管理ツール|"
    r"^\s*(?:PS [^>]*>|[A-Za-z]:\\[^>]*>)?\s*dism(?:\.exe)?\s+/",
    re.I | re.M,
)
# DISM's verdicts, and what each says: (pattern, failed, unrepaired corruption)
DISM_VERDICTS: tuple[tuple[re.Pattern[str], bool, int | None], ...] = (
    (
        re.compile(r"The component store is repairable|コンポーネント ?ストアは修復可能です"),
        True,
        1,
    ),
    (
        re.compile(
            r"The component store cannot be repaired|コンポーネント ?ストアは修復できません"
        ),
        True,
        1,
    ),
    (
        re.compile(
            r"No component store corruption detected|"
            r"コンポーネント ?ストアの破損は検出されませんでした"
        ),
        False,
        0,
    ),
    (
        re.compile(r"The restore operation completed successfully|復元操作は正常に完了しました"),
        False,
        0,
    ),
)
SFC_VERDICTS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (
        re.compile(
            r"found corrupt files but was unable to fix some of them|"
            r"破損したファイルが見つかりましたが、?それらの一部は(?:修復|修正)できませんでした"
        ),
        True,
    ),
    (
        re.compile(
            r"could not perform the requested operation|要求された操作を実行できませんでした"
        ),
        True,
    ),
    (
        re.compile(
            r"found corrupt files and successfully repaired them|"
            r"破損したファイルが見つかり、?それらは正常に修復されました"
        ),
        False,
    ),
    (
        re.compile(r"did not find any integrity violations|整合性違反を検出しませんでした"),
        False,
    ),
)
SFC_HEAD = re.compile(r"Windows Resource Protection|Windows リソース保護", re.I)
MESSAGE_LINES = 4  # lines of DISM's sentence under its error line


def parse(text: Text) -> list[Fact]:
    """A ``servicing_log`` fact per DISM error or verdict and per sfc verdict."""
    whole = "\n".join(text.lines)
    dism = DISM_HEAD.search(whole) is not None
    sfc = SFC_HEAD.search(whole) is not None
    if not (dism or sfc):
        return []
    facts: list[Fact] = []
    lines = text.lines
    for i, line in enumerate(lines):
        if dism:
            m = DISM_ERROR.match(line)
            if m:
                facts.append(_dism_error(text, i, m.group("code")))
                continue
            # A verdict a narrow console or a mail client wrapped after the progress bar
            # ("[====100.0%====] The" / "component store is repairable.") is read on the two
            # lines, once: where it starts.
            after = lines[i + 1].strip() if i + 1 < len(lines) else ""
            pair = f"{line.rstrip()} {after}"
            for pattern, failed, unrepaired in DISM_VERDICTS:
                if pattern.search(line) or (
                    after and pattern.search(pair) and not pattern.search(after)
                ):
                    said = line if pattern.search(line) else pair
                    facts.append(_fact(text, i, "DISM", said, failed, "dism-console", unrepaired))
                    break
        if sfc:
            joined = " ".join(x.strip() for x in lines[i : i + 3])  # sfc wraps its paragraph
            for pattern, failed in SFC_VERDICTS:
                if pattern.search(line) or (pattern.search(joined) and SFC_HEAD.search(line)):
                    facts.append(_fact(text, i, "SR", joined, failed, "sfc-console"))
                    break
    return facts


def _dism_error(text: Text, i: int, code: str) -> Fact:
    words: list[str] = []
    for line in text.lines[i + 1 : i + 1 + MESSAGE_LINES]:
        if words and not line.strip():
            break
        if line.strip():
            words.append(line.strip())
    hresult = _hresult(code)
    message = " ".join([f"Error: {code}", *words])
    return _fact(text, i, "DISM", message, True, "dism-console", None, hresult)


def _hresult(code: str) -> str:
    """An HRESULT in lower-case hex: DISM prints Win32 codes in decimal (87 is 0x80070057)."""
    value = int(code, 16) if code.lower().startswith("0x") else int(code)
    if value < 0x10000:
        value |= 0x80070000
    return f"0x{value & 0xFFFFFFFF:08x}"


def _fact(
    text: Text,
    i: int,
    component: str,
    message: str,
    failed: bool,
    fmt: str,
    unrepaired: int | None = None,
    hresult: str | None = None,
) -> Fact:
    attrs: dict[str, Any] = {
        "time": None,
        "level": "Error" if failed else "Info",
        "component": component,
        "message": " ".join(message.split())[:500],
        "hresult": hresult,
        "failed": failed,
        "outcome": True,
        "format": fmt,
    }
    if unrepaired is not None:
        attrs["unrepaired"] = unrepaired
    return Fact("servicing_log", attrs, Provenance(text.path, text.locator(i)))
