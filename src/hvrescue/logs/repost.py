"""Reposted text made readable again, line for line.

Evidence rarely arrives as the command printed it: it is quoted in an email or a forum post
("> ", "| "), pasted in a Markdown code fence, listed with bullets, or carried through a web page
or a Japanese input method that left non-breaking spaces, zero-width characters and full-width
letters, digits and colons behind. :func:`clean` undoes what is safe to undo before any parser
reads the text. It never joins or splits lines, so a line number found in the cleaned text is
the line number in the original file (every locator stays true).
"""

from __future__ import annotations

import re

# Full-width forms (U+FF01..U+FF5E) of the characters parsers read: letters, digits and the
# punctuation of labels, paths, numbers and codes. Brackets, quotes and the ideographic full
# stop and comma stay as they are: they belong to Japanese prose, not to machine output.
_FULL_WIDTH_SAFE = "０１２３４５６７８９：；／＼－．，＿＃＠％＋＝"
_TABLE: dict[int, int | None] = {ord(c): ord(c) - 0xFEE0 for c in _FULL_WIDTH_SAFE}
_TABLE.update({cp: cp - 0xFEE0 for cp in range(0xFF21, 0xFF3B)})  # Ａ..Ｚ
_TABLE.update({cp: cp - 0xFEE0 for cp in range(0xFF41, 0xFF5B)})  # ａ..ｚ
_TABLE[ord("￥")] = ord("\\")  # the yen sign a Japanese font shows for a backslash
# Spaces a web page or an editor put in: as wide as a space, read as one.
for _space in "\u00a0\u2007\u202f\u3000":
    _TABLE[ord(_space)] = ord(" ")
# Invisible characters: dropped (zero width, so no column moves).
for _invisible in "\u200b\u200c\u200d\u2060\ufeff":
    _TABLE[ord(_invisible)] = None
_TRANSLATE = re.compile("[" + "".join(chr(c) for c in _TABLE) + "]")

# A quote marker ("> ", ">> ", "| ") at the start of a line, with the indentation before it.
_QUOTE = re.compile(r"^[ \t]*(?:[>|](?:[ \t]|(?=\S)|$))+", re.MULTILINE)
# A Markdown code fence line ("```", "```text", "~~~").
_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[\w+.-]*[ \t]*(?=\r?$)", re.MULTILINE)
# A bullet before a line's content: replaced by spaces so that columns stay where they were.
_BULLET = re.compile(r"^([ \t]*)([-*•・◦‣▪])([ \t]+)(?=\S)", re.MULTILINE)
# What a web page's source leaves: &nbsp; and a line break tag at the end of a line.
_HTML = re.compile(r"&nbsp;|<br\s*/?>(?=[ \t]*\r?$)", re.IGNORECASE | re.MULTILINE)
# Fast test: does a line start with a character any of the above looks for?
_LEAD = re.compile(r"\n[ \t]*[>|`~\-*•・◦‣▪]")


def clean(text: str) -> str:
    """``text`` with quote markers, code fences, bullets, web spaces, invisible characters and
    full-width ASCII undone; the same number of lines, in the same order."""
    if _TRANSLATE.search(text):
        text = text.translate(_TABLE)
    html = "&nbsp;" in text or "<br" in text or "<BR" in text
    lead = text[:1] in (">", "|", "`", "~", "-", "*", " ", "\t", "•", "・", "◦", "‣", "▪")
    if not (html or lead or _LEAD.search(text)):
        return text
    text = _QUOTE.sub("", text)
    text = _FENCE.sub("", text)
    text = _BULLET.sub(_bullet_to_spaces, text)
    if html:
        text = _HTML.sub(_html, text)
    return text


def _bullet_to_spaces(m: re.Match[str]) -> str:
    return m.group(1) + " " * (len(m.group(2)) + len(m.group(3)))


def _html(m: re.Match[str]) -> str:
    return " " if m.group(0).lower() == "&nbsp;" else ""
