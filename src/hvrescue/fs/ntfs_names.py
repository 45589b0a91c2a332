"""Exact NTFS names from a file's own $FILE_NAME attributes.

The Sleuth Kit hands names over as C strings converted from UTF-16: a name holding NUL ends
there (``n<NUL>x`` becomes ``n``), UTF-16 it cannot convert (a lone surrogate) becomes ``^``
with what follows lost, and a long name may be cut. A file's $FILE_NAME attribute (NTFS
documentation: parent reference at 0, name length in UTF-16 units at 0x40, namespace at 0x41,
name at 0x42) keeps the name as written; it is resident and small, so reading it costs no more
disk access than the file record The Sleuth Kit has already read.
"""

from __future__ import annotations

import struct
from typing import Any

_NAME_AT = 0x42
_MAX_FNAME = _NAME_AT + 2 * 255  # the name length is one byte
_DOS = 2  # the 8.3 namespace: a second, short name of a file that has a long one
_CUT = "".join(chr(c) for c in range(0xDC80, 0xDD00))  # undecodable bytes, surrogateescape


def _records(f: Any, fname_type: int, attrs: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """(parent address, namespace, name) of each $FILE_NAME attribute that reads whole."""
    out: list[tuple[int, int, str]] = []
    for attr_id, size in attrs:
        if not _NAME_AT <= size <= _MAX_FNAME:
            continue
        try:
            data = f.read_random(0, size, fname_type, attr_id)
        except OSError:
            continue
        if len(data) < _NAME_AT:
            continue
        parent = struct.unpack_from("<Q", data, 0)[0] & 0xFFFF_FFFF_FFFF
        length, space = data[0x40], data[0x41]
        raw = data[_NAME_AT : _NAME_AT + 2 * length]
        if len(raw) != 2 * length:
            continue
        out.append((parent, space, raw.decode("utf-16-le", errors="surrogatepass")))
    return out


def _tsk_form(name: str) -> str:
    """What The Sleuth Kit makes of ``name``: cut at NUL, cut after the first UTF-16 unit it
    cannot convert (which it writes as ``^``)."""
    name = name.split("\0", 1)[0]
    for i, ch in enumerate(name):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return name[:i] + "^"
    return name


def faithful_name(
    f: Any, fname_type: int, attrs: list[tuple[int, int]], folder: int, tsk_name: str
) -> str:
    """The exact name under which ``folder`` lists the file ``f`` (whose $FILE_NAME attributes
    are ``attrs``: (id, size)); ``tsk_name`` when no $FILE_NAME agrees with it. The Sleuth Kit
    also cuts long names (a 255-character CJK name is 765 bytes of UTF-8): a $FILE_NAME that
    begins with what it gave is the name."""
    candidates = [
        name
        for parent, space, name in _records(f, fname_type, attrs)
        if parent == folder and space != _DOS
    ]
    if tsk_name in candidates:
        return tsk_name
    for name in candidates:
        if _tsk_form(name) == tsk_name:
            return name
    # Cut inside a character, the last bytes did not decode (surrogateescape): drop them.
    stem = tsk_name.rstrip(_CUT)
    stem = stem[:-1] if stem.endswith("^") else stem
    if stem:
        for name in candidates:
            if name.startswith(stem):
                return name
    return tsk_name


def parents(f: Any, fname_type: int) -> set[int]:
    """The addresses of the folders that the file's $FILE_NAME attributes name."""
    attrs: list[tuple[int, int]] = []
    try:
        for attr in f:
            if int(attr.info.type) == fname_type:
                attrs.append((int(attr.info.id), int(attr.info.size)))
    except OSError:
        return set()
    return {parent for parent, _space, _name in _records(f, fname_type, attrs)}
