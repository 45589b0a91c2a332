"""Bytes of a text file to str: BOMs, UTF-16 without BOM, UTF-8, Shift_JIS/CP932; LF endings."""

from __future__ import annotations

BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def sniff_utf16(data: bytes) -> str | None:
    """UTF-16 text without BOM (wmic, PowerShell 5 redirection) has NULs in every other byte."""
    sample = data[:4096]
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
        for candidate in ("utf-8", "cp932"):
            try:
                text = data.decode(candidate)
                encoding = candidate
                break
            except UnicodeDecodeError:
                continue
        else:
            encoding = "cp1252"
            text = data.decode("cp1252", errors="replace")
    # wmic piped or redirected ends its lines with CR CR LF: one line end, not two.
    text = text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")
    return text, encoding


def looks_binary(data: bytes) -> bool:
    """True for data that is not text in any encoding we read (NULs without a UTF-16 pattern)."""
    sample = data[:4096]
    if not sample:
        return False
    if any(sample.startswith(b) for b, _ in BOMS) or sniff_utf16(sample):
        return False
    return b"\0" in sample
