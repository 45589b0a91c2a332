"""Reposted text made readable again, line for line.

Evidence rarely arrives as the command printed it: it is quoted in an email or a forum post
("> ", "| "), pasted in a Markdown code fence, listed with bullets, or carried through a web page
or a Japanese input method that left non-breaking spaces, zero-width characters and full-width
letters, digits and colons behind. :func:`clean` undoes what is safe to undo before any parser
reads the text. It never joins or splits lines, so a line number found in the cleaned text is
the line number in the original file (every locator stays true). A double-spaced text (an empty
line after every line) is the one thing that cannot be undone line for line: :func:`undouble`
gives the text as it was with the line each of its lines came from.
"""

from __future__ import annotations

import itertools
import re

# Full-width forms (U+FF01..U+FF5E) of the characters parsers read: letters, digits and the
# punctuation of labels, paths, numbers and codes. Brackets, quotes and the ideographic full
# stop and comma stay as they are: they belong to Japanese prose, not to machine output.
_FULL_WIDTH_SAFE = "０１２３４５６７８９：；／＼－．，＿＃＠％＋＝＞"  # ＞: a quote marker too
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
    """``text`` with quote markers, code fences, indented code blocks, bullets, web spaces,
    invisible characters and full-width ASCII undone; the same number of lines, in the same
    order."""
    if _TRANSLATE.search(text):
        text = text.translate(_TABLE)
    html = "&nbsp;" in text or "<br" in text or "<BR" in text
    lead = text[:1] in (">", "|", "`", "~", "-", "*", " ", "\t", "•", "・", "◦", "‣", "▪")
    if not (html or lead or _LEAD.search(text) or _CODE_START.search(text)):
        return text
    text = _QUOTE.sub("", text)
    text = _FENCE.sub("", text)
    # (after the fences: a fenced block may be indented too; not in a double-spaced text, where
    # every line follows an empty one: it is read undoubled, and cleaned then)
    if _CODE_START.search(text) and undouble(text) is None:
        for _ in range(MAX_NESTING):
            dedented = _dedent_code_blocks(text)
            if dedented == text:
                break
            text = dedented
    text = _BULLET.sub(_bullet_to_spaces, text)
    if html:
        text = _HTML.sub(_html, text)
    return text


# A line indented as a Markdown code block (four spaces or a tab) right after a blank line or
# at the start: where an indented code block may begin.
_CODE_START = re.compile(r"(?:\A|\n[ \t]*\r?\n)(?: {4}|\t)")
CODE_INDENT = 4
MAX_NESTING = 3  # code blocks inside indented posts inside indented posts


def _width(indent: str) -> int:
    return sum(CODE_INDENT if ch == "\t" else 1 for ch in indent)


def _dedent_code_blocks(text: str) -> str:
    """Markdown's indented code blocks (a post's "    " before every line of a pasted output)
    taken back to the output's own columns: a run of lines, after a blank line, each blank or
    indented by four columns or more, loses four (the block's own indentation). Columns
    inside the block stay aligned with each other; an output whose own lines share less than
    four columns of indentation is never such a block, nor are the continuation lines of a
    Format-List value after a paragraph break (eight columns or more, under a "Name :
    value" line)."""
    lines = text.split("\n")
    out = list(lines)
    i, n = 0, len(lines)
    while i < n:
        if i and lines[i - 1].strip():
            i += 1
            continue
        j = i
        while j < n and (not lines[j].strip() or _width(_lead(lines[j])) >= CODE_INDENT):
            j += 1
        body = [k for k in range(i, j) if lines[k].strip()]
        # Markdown indents a block by four columns (a tab). A run indented further right
        # after a "Name : value" line is no block but that value's next paragraph, indented
        # to its column (Get-WinEvent | Format-List); otherwise it is a block indented twice
        # (a post indented as a whole), which the next pass takes in again.
        if len(body) >= 2 and (
            min(_width(_lead(lines[k])) for k in body) < 2 * CODE_INDENT
            or not _after_property(lines, i)
        ):
            for k in body:
                out[k] = _strip_columns(lines[k], CODE_INDENT)
        i = max(j, i + 1)
    return "\n".join(out)


_PROPERTY_LINE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_()%]*\s*:(?:\s|$)")


def _after_property(lines: list[str], i: int) -> bool:
    """Whether the last line with content above ``i`` is a Format-List "Name : value"."""
    for k in range(i - 1, max(-1, i - 4), -1):
        if lines[k].strip():
            return _PROPERTY_LINE.match(lines[k]) is not None
    return False


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _strip_columns(line: str, columns: int) -> str:
    """``line`` without its first ``columns`` columns of indentation (a tab is four)."""
    at = width = 0
    while at < len(line) and width < columns:
        width += CODE_INDENT if line[at] == "\t" else 1
        at += 1
    return " " * (width - columns) + line[at:]


def undouble(text: str) -> tuple[str, list[int]] | None:
    """A double-spaced text (a copy through a web page or a remote desktop that made every line
    a paragraph: an empty line after each) as it was, with the line number in ``text`` of
    each of its lines (0-based); None when ``text`` is not double-spaced: no two lines with
    content are ever next to each other, and there are at least :data:`MIN_DOUBLED` of them."""
    lines = text.split("\n")
    full = [i for i, line in enumerate(lines) if line.strip()]
    if len(full) < MIN_DOUBLED or any(b - a == 1 for a, b in itertools.pairwise(full)):
        return None
    kept: list[int] = []
    for a, b in zip(full, [*full[1:], None], strict=True):
        kept.append(a)
        if b is None:  # the end: "x\n" became "x\n\n"
            kept.extend([a + 1] * ((len(lines) - 1 - a) // 2))
            break
        # one empty line follows each line; an empty line of the original became two more
        kept.extend([a + 1] * ((b - a - 2) // 2))
    return "\n".join(lines[i] if lines[i].strip() else "" for i in kept), kept


MIN_DOUBLED = 4


def _bullet_to_spaces(m: re.Match[str]) -> str:
    return m.group(1) + " " * (len(m.group(2)) + len(m.group(3)))


def _html(m: re.Match[str]) -> str:
    return " " if m.group(0).lower() == "&nbsp;" else ""
