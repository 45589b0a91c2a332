"""Names from a guest filesystem, made safe for the host that receives them.

A name read from an image may hold anything its filesystem's structures can: separators (``/``,
``\\``), NUL and control characters, characters Windows forbids (``<>:"|?*``), ``.`` and ``..``,
trailing dots and spaces, reserved device names (``CON``, ``NUL``, ``COM1``...), UTF-16 that does
not decode, and more UTF-8 bytes than a host name may have (NTFS allows 255 UTF-16 units; a CJK
name of 255 characters is 765 bytes of UTF-8). :func:`safe_name` maps every name to one the
host accepts; :class:`NameTable` gives the names of one folder distinct output names, also where
the destination ignores case or Unicode normalisation (Windows, macOS); :func:`display_name`
writes a name as printable text that still says exactly what it was.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

RESERVED = (
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
    | {f"{p}{c}" for p in ("COM", "LPT") for c in "¹²³"}
)
_BAD = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*\ud800-\udfff]')
# A host name has at most 255 bytes. What we add after an output name (``.incomplete-NN`` for a
# file with undefined data; the temporary name is shortened by io.atomic itself) must fit too.
HOST_NAME_MAX = 255
MAX_NAME_BYTES = 240
_DIGEST = 12
_MAX_EXT = 16


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


def fit(name: str, limit: int = MAX_NAME_BYTES, *, whole: str | None = None) -> str:
    """``name`` unchanged when its UTF-8 has at most ``limit`` bytes; else its beginning, ``~``
    and a short hash of ``whole`` (default: the name itself), keeping a short extension, cut
    on a character boundary. Different names give different results (up to the hash)."""
    raw = _utf8(name)
    if len(raw) <= limit:
        return name
    digest = hashlib.sha256(_utf8(whole if whole is not None else name)).hexdigest()[:_DIGEST]
    stem, ext = _split_ext(name)
    if len(_utf8(ext)) > _MAX_EXT:
        stem, ext = name, ""
    keep = limit - len(_utf8(ext)) - _DIGEST - 1
    short = _utf8(stem)[: max(keep, 0)].decode("utf-8", errors="ignore")
    return f"{short}~{digest}{ext}"


def _split_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def safe_name(name: str) -> str:
    """A host-safe file name for ``name`` (unchanged when it already is one)."""
    out = _BAD.sub("_", name)
    if out in ("", ".", ".."):
        out = "_" + out
    stripped = out.rstrip(". ")
    if stripped != out:
        out = stripped + "_" * (len(out) - len(stripped))
    stem = out.split(".", 1)[0].upper().rstrip(" ")
    if stem in RESERVED:
        out = "_" + out
    return fit(out, whole=name)


def numbered(name: str, n: int) -> str:
    """The ``n``-th alternative of the safe name ``name``: ``stem~n.ext``, within the limit."""
    stem, ext = _split_ext(name)
    if len(_utf8(ext)) > _MAX_EXT:
        stem, ext = name, ""
    tail = f"~{n}{ext}"
    keep = MAX_NAME_BYTES - len(_utf8(tail))
    short = _utf8(stem)[:keep].decode("utf-8", errors="ignore")
    return short + tail


def collision_key(name: str) -> str:
    """Two names with the same key are one name on a case-insensitive, normalising host."""
    return unicodedata.normalize("NFC", name).casefold()


class NameTable:
    """The output names of one folder: each source name gets a distinct safe name. Names that
    are already safe keep them first; a name made safe, or one that differs from an earlier
    one only in case, gets ``~2``, ``~3``... when its safe name is taken."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, name: str) -> bool:
        key = collision_key(name)
        if key in self._used:
            return False
        self._used.add(key)
        return True

    def assign(self, names: Iterable[str]) -> list[str]:
        """Output names for ``names`` (one folder's entries), in the same order."""
        names = list(names)
        out: list[str | None] = [None] * len(names)
        for i, name in enumerate(names):
            if safe_name(name) == name and self.claim(name):
                out[i] = name
        for i, name in enumerate(names):
            if out[i] is not None:
                continue
            safe = safe_name(name)
            candidate, n = safe, 1
            while not self.claim(candidate):
                n += 1
                candidate = numbered(safe, n)
            out[i] = candidate
        return [o if o is not None else "" for o in out]


def display_name(name: str) -> str:
    """``name`` as printable text from which the exact name can be read back: control
    characters and ``/`` as ``\\xNN``, UTF-16 that does not decode (lone surrogates) as
    ``\\uDXXX``, and a backslash doubled only where it would otherwise start such an escape.
    Ordinary names, backslashes in them included, are unchanged."""
    if not _NEEDS.search(name) and "\\" not in name:
        return name
    pieces: list[tuple[str, bool]] = []  # (text, is_escape)
    for ch in name:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F or ch == "/":
            pieces.append((f"\\x{code:02x}", True))
        elif 0xD800 <= code <= 0xDFFF:
            pieces.append((f"\\u{code:04x}", True))
        else:
            pieces.append((ch, False))
    out: list[str] = []
    for i, (text, escape) in enumerate(pieces):
        if text == "\\" and not escape:
            after = pieces[i + 1][0][:1] if i + 1 < len(pieces) else ""
            out.append("\\\\" if after in ("\\", "x", "u") else "\\")
        else:
            out.append(text)
    return "".join(out)


_NEEDS = re.compile(r"[\x00-\x1f\x7f-\x9f/\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def undisplay(text: str) -> str:
    """The exact name that :func:`display_name` wrote as ``text``."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        return "\\" if body == "\\" else chr(int(body[1:], 16))

    return _ESCAPE.sub(one, text)
