"""Bytes of a text file to str: BOMs, UTF-16 without BOM, UTF-8, Shift_JIS/CP932; LF endings.

``decode_text`` decodes bytes already in memory. ``TextStream`` decodes a stream the same way in
bounded chunks (the concatenation of its chunks is exactly what ``decode_text`` gives for the
whole), so that a multi-GB log costs the memory of one chunk; ``pieces`` cuts such a stream into
line-aligned pieces for parsers that want lines.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# Encodings tried in turn for text without BOM or UTF-16 pattern, the last one never fails.
GUESSES = ("utf-8", "cp932")
FALLBACK = "cp1252"
CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 4096


def sniff_utf16(data: bytes) -> str | None:
    """UTF-16 text without BOM (wmic, PowerShell 5 redirection) has NULs in every other byte."""
    sample = data[:SNIFF_BYTES]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.3 and even < half * 0.05:
        return "utf-16-le"
    if even > half * 0.3 and odd < half * 0.05:
        return "utf-16-be"
    return None


def _newlines(text: str) -> str:
    # wmic piped or redirected ends its lines with CR CR LF: one line end, not two.
    return text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")


def decode_text(data: bytes) -> tuple[str, str]:
    """(text with LF line ends, encoding used)."""
    encoding = None
    for bom, name in BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
            encoding = name
            break
    if encoding is None:
        encoding = sniff_utf16(data)
    if encoding is not None:
        text = data.decode(encoding, errors="replace")
    else:
        for candidate in GUESSES:
            try:
                text = data.decode(candidate)
                encoding = candidate
                break
            except UnicodeDecodeError:
                continue
        else:
            encoding = FALLBACK
            text = data.decode(FALLBACK, errors="replace")
    return _newlines(text), encoding


def looks_binary(data: bytes) -> bool:
    """True for data that is not text in any encoding we read (NULs without a UTF-16 pattern)."""
    sample = data[:SNIFF_BYTES]
    if not sample:
        return False
    if any(sample.startswith(b) for b, _ in BOMS) or sniff_utf16(sample):
        return False
    return b"\0" in sample


class Decoding(NamedTuple):
    encoding: str
    errors: str  # "strict" for a guess that may prove wrong, "replace" when it is settled
    skip: int  # bytes of BOM


def decodings(head: bytes) -> list[Decoding]:
    """The decodings to try, in order, for a file starting with ``head`` (4 KiB or more):
    one when a BOM or a UTF-16 pattern settles it, else the guesses and the fallback."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return [Decoding(name, "replace", len(bom))]
    utf16 = sniff_utf16(head)
    if utf16 is not None:
        return [Decoding(utf16, "replace", 0)]
    return [*(Decoding(g, "strict", 0) for g in GUESSES), Decoding(FALLBACK, "replace", 0)]


class WrongEncoding(Exception):
    """The text is not in the encoding being tried (a strict guess failed): try the next."""


class TextStream:
    """A binary stream decoded in chunks of about ``CHUNK_BYTES``: each chunk has LF line ends,
    and the chunks joined are what :func:`decode_text` gives for the whole stream."""

    def __init__(self, raw: Any, decoding: Decoding, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.raw = raw
        self.decoding = decoding
        self.chunk_bytes = chunk_bytes

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self.decoding.encoding)(self.decoding.errors)
        if self.decoding.skip:
            self.raw.read(self.decoding.skip)  # the BOM
        carry = ""
        while True:
            data = self.raw.read(self.chunk_bytes)
            final = not data
            try:
                text = carry + decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise WrongEncoding(self.decoding.encoding) from exc
            if final:
                if text:
                    yield _newlines(text)
                return
            # A run of CRs at the end may be half of a CR CR LF: keep it for the next chunk.
            cut = len(text.rstrip("\r"))
            carry = text[cut:]
            if cut:
                yield _newlines(text[:cut])


class Piece(NamedTuple):
    text: str  # without the line end that closed it
    first_line: int  # index of its first line in the whole text (0-based)
    ends_line: bool = False  # a line end closed it (else a line too long was cut, or the end)


def pieces(
    chunks: Iterable[str], size: int, boundary: re.Pattern[str] | None = None
) -> Iterator[Piece]:
    """Line-aligned pieces of about ``size`` characters (a text that fits is one piece, the
    whole text). A piece ends, by preference, before a line ``boundary`` matches (a new command
    at a prompt, a new output), else after two blank lines, else after one, else at a line end;
    a line longer than ``size`` is cut where it must (the next piece goes on with the same line
    number)."""
    buf = ""
    line = 0
    for chunk in chunks:
        buf += chunk
        while len(buf) > size:
            cut, ends_line = _cut(buf, size, boundary)
            head = buf[: cut - 1] if ends_line else buf[:cut]
            yield Piece(head, line, ends_line)
            line += head.count("\n") + (1 if ends_line else 0)
            buf = buf[cut:]
    yield Piece(buf, line)


def _cut(buf: str, size: int, boundary: re.Pattern[str] | None) -> tuple[int, bool]:
    """Where to end the next piece: (index just past it, whether it ends at a line end)."""
    low = size // 2
    if boundary is not None:
        last = None
        for m in boundary.finditer(buf, low, size):
            last = m
        if last is not None and last.start() > low and buf[last.start() - 1] == "\n":
            return last.start(), True
    for blank in ("\n\n\n", "\n\n"):
        at = buf.rfind(blank, low, size)
        if at >= 0:
            return at + len(blank), True
    end = buf.rfind("\n", 0, size)
    if end >= 0:
        return end + 1, True
    return size, False


def lines(chunks: Iterable[str], longest: int) -> Iterator[str]:
    """The lines of a chunked text with their line ends; a line longer than ``longest`` comes
    in parts (each a "line" to the reader: a bounded cost for a file without line ends)."""
    rest = ""
    for chunk in chunks:
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        for part in parts:
            yield from _bounded(part + "\n", longest)
        while len(rest) > longest:
            yield rest[:longest]
            rest = rest[longest:]
    if rest:
        yield rest


def _bounded(line: str, longest: int) -> Iterator[str]:
    for start in range(0, len(line), longest):
        yield line[start : start + longest]
