"""Message signatures: a failure's own words, recognised in any text, as an event-equivalent.

The catalogue (``signatures.yaml`` beside this module) is data: each signature names the event a
message belongs to (provider, id, level, where known), the codes it implies and its phrases in
each language. A phrase is matched on the text as it was pasted, whatever its wrapping, spacing,
width and case: both sides are NFKC-normalised, case-folded and stripped of every space, so a
message wrapped by the console in the middle of a word, quoted with "> ", or typed with
non-breaking spaces still matches. A match becomes an ``event`` fact with ``format``
``"signature"``, the catalogue's provider, id and level, the lines it spans as the message, the
signature's id, its codes and those printed on those lines, and a confidence below 1.0; it cites
the line where the phrase starts.

A message that only names an error (a support article's title, a link) is not the failure: a
match on lines that read like a reference (a URL, "KB1234567", "you receive ... error") is left
to the free-text signals. A parsed record of the same file that already gives the provider and
id just above the match wins: the signature adds nothing there. So does a record pasted without
its ``Source:`` line (Event Viewer's General tab copied message first: provider null) when it has
the same id, starts above the match or within its message, and its log (``channel``) names the
signature's provider or is a classic log (Application, System) that any provider writes to.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import LEVEL_WORDS, event_fact
from hvrescue.logs.textutil import Text

FORMAT = "signature"
GAP = 160  # characters a "{*}" may skip (a VM name, a path), spaces not counted
MAX_MATCHES = 200  # per signature and text: a log that repeats one failure all day
MAX_MESSAGE = 1000
MAX_LINE = 4000  # characters of a line looked at (a minified blob is not a message)
NEAR_LINES = 60  # a parsed record this far above a match is the same event
# A record without a provider may start in the message (Event Viewer's General tab: the message,
# then "Log Name:"), or this many lines past its end.
BELOW_LINES = 3
PARAGRAPH = 8  # lines a message may go on after its phrase
MEMO = 8192  # distinct lines remembered while squeezing
SECTIONS = 4  # labelled sections ("Details:") a message may go on with
_SECTION = re.compile(r"^[^\W\d][\w ]{1,30}[:：]$")
_STOP = re.compile(r"^(?:At line:\d|At .+:\d+ char:\d|発生場所 ?行|\+ |\[|[A-Za-z ]{2,30}:\s*$)")
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
_SPACE = re.compile(r"\s+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'"})
_CODE = re.compile(r"(?<![0-9A-Za-z_])0x([0-9A-Fa-f]{8})(?![0-9A-Za-z_])")
# Lines that talk about an error rather than show one (looked for in squeezed text, so that a
# wrapped title is seen whole).
_REFERENCE = re.compile(
    r"https?://|^\W*kb\d{6,7}|youmay(?:receive|get|see)|youreceive|errormessagewhen"
    r"|errorwhenyou|\|microsoft(?:learn|docs)|エラーが表示される|が発生する場合|が表示される場合"
    # Japanese posts that talk about an error: "is well known", "often seen", "has never
    # appeared", "errors such as".
    r"|が有名|よく見る|一度も(?:出て|発生して|表示されて)いません|(?:は|が)(?:出て|発生して)いません"
    r"|といったエラー|などのエラー"
)
REFERENCE_ABOVE = 3  # lines above a match that may hold the start of its sentence


@dataclass(frozen=True)
class Signature:
    id: str
    provider: str | None
    event_id: int | None
    level: int | None
    codes: tuple[str, ...]
    confidence: float
    patterns: tuple[tuple[str, re.Pattern[str], str], ...]  # (language, expression, anchor)
    unless: tuple[str, ...]
    # Fact kinds a parser gives for the same record (a writer's state in a vssadmin listing):
    # where one of them starts within NEAR_LINES above the match, the match adds nothing.
    covered_by: tuple[str, ...] = ()


def squeeze(text: str) -> str:
    """``text`` as phrases are matched: NFKC, case-folded, apostrophes unified, no spaces."""
    if text.isascii():  # most lines: the same result, several times faster
        return "".join(text.replace("`", "'").lower().split())
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    return "".join(text.split())


def _compile(phrase: str) -> tuple[re.Pattern[str], str]:
    """A phrase of the catalogue as an expression on squeezed text, and its longest literal part
    (looked up with ``in`` first: most texts hold none of the phrases)."""
    parts: list[str] = []
    literals: list[str] = []
    # A sentence quoted from its middle, or a title that drops the article ("Virtual machine
    # could not be started because..."): a leading "The" is not required.
    if phrase[:4].lower() == "the ":
        parts.append("(?:the)?")
        phrase = phrase[4:]
    for token in re.split(r"(\{[^{}]*\})", phrase):
        if not token:
            continue
        if token == "{*}":
            parts.append(f".{{0,{GAP}}}?")
        elif token.startswith("{") and token.endswith("}"):
            parts.append(
                "(?:" + "|".join(re.escape(squeeze(w)) for w in token[1:-1].split("|")) + ")"
            )
        else:
            literal = squeeze(token)
            parts.append(re.escape(literal))
            literals.append(literal)
    anchor = max(literals, key=len) if literals else ""
    return re.compile("".join(parts), re.S), anchor


def _code(value: Any) -> str:
    text = str(value).strip().lower()
    return "0x" + text[2:].rjust(8, "0") if text.startswith("0x") else text


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[Signature, ...]:
    """The signatures of ``signatures.yaml`` and ``signatures_*.yaml``, compiled once."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's where PyYAML has it
    here = resources.files("hvrescue.logs")
    # signatures.yaml, then each area's signatures_<area>.yaml in name order
    areas = sorted(
        entry.name
        for entry in here.iterdir()
        if entry.name.startswith("signatures_") and entry.name.endswith(".yaml")
    )
    names = ["signatures.yaml", *areas]
    entries: list[dict[str, Any]] = []
    for name in names:
        raw = yaml.load(here.joinpath(name).read_text("utf-8"), Loader=loader)
        entries.extend((raw or {}).get("signatures") or ())
    ids = [str(entry["id"]) for entry in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"signature ids repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
    out = []
    for entry in entries:
        patterns = tuple(
            (lang, *_compile(phrase))
            for lang, phrases in (entry.get("patterns") or {}).items()
            for phrase in phrases
        )
        level = entry.get("level")
        out.append(
            Signature(
                id=entry["id"],
                provider=entry.get("provider"),
                event_id=entry.get("event_id"),
                level=LEVEL_WORDS.get(str(level)) if level else None,
                codes=tuple(_code(c) for c in entry.get("codes") or ()),
                confidence=float(entry.get("confidence", 0.7)),
                patterns=patterns,
                unless=tuple(squeeze(u) for u in entry.get("unless") or ()),
                covered_by=tuple(str(k) for k in entry.get("covered_by") or ()),
            )
        )
    return tuple(out)


class Squeezed:
    """A text squeezed once, with where each line starts in it (to cite the line of a match)."""

    def __init__(self, lines: list[str]) -> None:
        self.starts: list[int] = []
        parts: list[str] = []
        at = 0
        done: dict[str, str] = {}  # a log repeats its lines
        for line in lines:
            self.starts.append(at)
            part = done.get(line)
            if part is None:
                part = squeeze(_QUOTE.sub("", line[:MAX_LINE], count=1))
                if len(done) < MEMO:
                    done[line] = part
            parts.append(part)
            at += len(part)
        self.text = "".join(parts)

    def line_of(self, offset: int) -> int:
        """The index of the line holding squeezed ``offset`` (the last of equal starts: a line
        that squeezed to nothing holds no offset)."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)


def match(text: Text, facts: list[Fact] | None = None) -> list[Fact]:
    """The signature events of ``text``; ``facts``: what the parsers already read from it."""
    signatures = catalogue()
    squeezed = Squeezed(text.lines)
    parsed = _parsed_events(facts or [])
    records = _record_lines(facts or [])
    found: list[Fact] = []
    for sig in signatures:
        seen: set[int] = set()
        for _lang, expression, anchor in sig.patterns:
            if anchor and anchor not in squeezed.text:
                continue
            for m in expression.finditer(squeezed.text):
                first = squeezed.line_of(m.start())
                last = squeezed.line_of(max(m.start(), m.end() - 1))
                if first in seen:
                    continue
                fact = _event(text, sig, first, last, squeezed, parsed, records)
                if fact is None:
                    continue
                seen.add(first)
                found.append(fact)
                if len(seen) >= MAX_MATCHES:
                    break
    return found


@dataclass(frozen=True)
class _Parsed:
    line: int  # 0-based first line of the record
    event_id: int | None
    names: str  # provider and source name, lower case ("" when the record names none)
    channel: str  # the log, lower case ("" when none)
    fact: Fact


def _parsed_events(facts: list[Fact]) -> list[_Parsed]:
    out = []
    for f in facts:
        if f.kind != "event" or f.attributes.get("format") == FORMAT:
            continue
        loc = f.provenance.locator or ""
        if not loc.startswith("line:") or not loc[5:].isdigit():
            continue
        a = f.attributes
        names = " ".join(str(a.get(k) or "") for k in ("provider", "source_name")).strip()
        channel = str(a.get("channel") or "").strip()
        line = int(loc[5:]) - 1
        out.append(_Parsed(line, a.get("event_id"), names.lower(), channel.lower(), f))
    out.sort(key=lambda p: p.line)
    return out


def _record_lines(facts: list[Fact]) -> dict[str, list[int]]:
    """The first lines (0-based, sorted) of the records each fact kind was read from."""
    out: dict[str, list[int]] = {}
    for f in facts:
        loc = f.provenance.locator or ""
        if loc.startswith("line:") and loc[5:].isdigit():
            out.setdefault(f.kind, []).append(int(loc[5:]) - 1)
    for lines in out.values():
        lines.sort()
    return out


def _covered(sig: Signature, line: int, records: dict[str, list[int]]) -> bool:
    for kind in sig.covered_by:
        lines = records.get(kind, [])
        i = bisect.bisect_right(lines, line)
        if i and line - lines[i - 1] <= NEAR_LINES:
            return True
    return False


def _short(provider: str) -> str:
    return provider.lower().removeprefix("microsoft-windows-")


def _already_parsed(sig: Signature, first: int, end: int, parsed: list[_Parsed]) -> _Parsed | None:
    """Whether a parsed record of the same file is the event ``sig`` matched on lines
    ``first``..``end``: the same id, at most NEAR_LINES above; and the same provider, or, for a
    record that names no provider, a log that fits it (then it may also start below ``first``,
    up to BELOW_LINES past the message)."""
    low = bisect.bisect_left(parsed, first - NEAR_LINES, key=lambda p: p.line)
    high = bisect.bisect_right(parsed, end + BELOW_LINES, key=lambda p: p.line)
    for record in parsed[low:high]:
        if sig.event_id is not None and record.event_id != sig.event_id:
            continue
        if record.names:
            if record.line <= first and (
                sig.provider is None or _short(sig.provider) in record.names
            ):
                return record
            continue
        if sig.provider is None or _log_fits(sig.provider, record.channel):
            return record
    return None


def _complete(record: Fact, sig: Signature, message: str) -> None:
    """A record pasted without its ``Source:`` line, completed with what the signature knows:
    its provider (the catalogue's), and its message when the record kept only a part of it (the
    last paragraph above ``Log Name:``). Nothing the record gives is replaced."""
    a = record.attributes
    if not str(a.get("format") or "").startswith("viewer"):
        # A table or list cut above its "ProviderName:" line: what it lacks stays unknown, and
        # its message column is the message whole (its lines hold the other columns too).
        return
    if not a.get("provider") and sig.provider:
        a["provider"] = sig.provider
        a["source_name"] = a.get("source_name") or _source_name(sig.provider)
    held = squeeze(str(a.get("message") or ""))
    if held != squeeze(message) and held in squeeze(message):
        a["message"] = message[:MAX_MESSAGE]


def _log_fits(provider: str, channel: str) -> bool:
    """A record's log may hold ``provider``'s event: none given, the provider's own log
    (Microsoft-Windows-Hyper-V-VMMS-Admin for Hyper-V-VMMS), or a classic log (Application,
    System, アプリケーション), which every provider may write to."""
    if not channel:
        return True
    if _short(provider) in channel:
        return True
    return not channel.startswith("microsoft-") and "/" not in channel


def _event(
    text: Text,
    sig: Signature,
    first: int,
    last: int,
    squeezed: Squeezed,
    parsed: list[_Parsed],
    records: dict[str, list[int]],
) -> Fact | None:
    last = _paragraph_end(text, last)
    span = squeeze(" ".join(_clean(line) for line in text.lines[first : last + 1]))
    if _REFERENCE.search(_context(text, first) + span):
        return None
    if sig.unless and any(u in span for u in sig.unless):
        return None
    end = _sections_end(text, last)
    if _covered(sig, first, records):
        return None
    message = "\n".join(c for c in (_clean(line) for line in text.lines[first : end + 1]) if c)
    same = _already_parsed(sig, first, end, parsed)
    if same is not None:
        if not same.names:
            _complete(same.fact, sig, message)
        return None
    codes = list(sig.codes)
    for m in _CODE.finditer(message):
        code = "0x" + m.group(1).lower()
        if code not in codes and code != "0x00000000":
            codes.append(code)
    fact = event_fact(
        Provenance(text.path, text.locator(first)),
        source_format=FORMAT,
        provider=sig.provider,
        source_name=_source_name(sig.provider),
        event_id=sig.event_id,
        level=sig.level,
        message=message[:MAX_MESSAGE],
    )
    attributes = dict(fact.attributes)
    attributes.update({"signature": sig.id, "codes": codes, "confidence": sig.confidence})
    return Fact("event", attributes, fact.provenance)


def _paragraph_end(text: Text, last: int) -> int:
    """The last line of the paragraph a match ends in: a message goes on after its phrase (the
    code, the VM id), to a blank line, a prompt, PowerShell's position lines or a label."""
    end = min(len(text.lines), last + 1 + PARAGRAPH)
    i = last + 1
    while i < end:
        line = _QUOTE.sub("", text.lines[i], count=1).strip()
        if not line or text.is_prompt(i) or _STOP.match(line):
            break
        i += 1
    return i - 1


def _context(text: Text, first: int) -> str:
    """The squeezed lines just above a match, within its paragraph."""
    lines: list[str] = []
    i = first - 1
    while i >= 0 and first - i <= REFERENCE_ABOVE and text.lines[i].strip():
        lines.insert(0, _clean(text.lines[i]))
        i -= 1
    return squeeze(" ".join(lines))


def _sections_end(text: Text, last: int) -> int:
    """Past the paragraph, the labelled sections an event message goes on with ("Details:",
    "System Error:", "Operation:", "詳細:"), each a label alone on its line and its lines."""
    sections = 0
    while sections < SECTIONS:
        i = last + 1
        while i < len(text.lines) and i - last <= 2 and not text.lines[i].strip():
            i += 1
        if i >= len(text.lines) or not _SECTION.match(_clean(text.lines[i])):
            return last
        last = _paragraph_end(text, i)
        sections += 1
    return last


def _clean(line: str) -> str:
    return _SPACE.sub(" ", _QUOTE.sub("", line, count=1)).strip()


def _source_name(provider: str | None) -> str | None:
    """The short name Event Viewer prints ("Hyper-V-VMMS" for Microsoft-Windows-Hyper-V-VMMS)."""
    if provider is None:
        return None
    return provider.removeprefix("Microsoft-Windows-")
