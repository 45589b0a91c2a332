"""Facts from text: command outputs, pasted events, XML and CSV exports, whole or in pieces.

The text half of ``hvrescue.logs.collect``, imported only when an item holds text: importing
it compiles the regular expressions of every parser (logs/commands, dialogs, viewers, signals,
signatures), which a folder of EVTX logs never needs. ``collect`` forwards to it.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator

from hvrescue.evidence import Budget, Item, Skipped
from hvrescue.evidence import classify as cls
from hvrescue.evidence import text as txt
from hvrescue.facts.model import Fact, FactSet, Problem, Provenance, Unrecognised
from hvrescue.logs import (
    csv_events,
    dialog,
    linux_lines,
    repost,
    signals,
    signatures,
    text_events,
    viewer_friendly,
    viewer_rows,
    xml_events,
)
from hvrescue.logs.commands import (
    backup_jobs,
    backup_logs,
    bcdedit,
    boot_summary,
    cbs,
    chkdsk,
    diskpart,
    dism,
    dism_console,
    fltmc,
    hotfix,
    icacls,
    listing,
    manage_bde,
    msinfo,
    powershell,
    pserror,
    sc,
    sectorinfo,
    systeminfo,
    tasklist,
    vssadmin,
    wbadmin,
    windbg,
)
from hvrescue.logs.events import EventFilter, thin
from hvrescue.logs.textutil import PROMPT, Text

# A new command at a prompt, or the first line of an output or event the parsers know: where a
# text too large for one piece is best cut (never inside a writer list, a table, an event).
PROMPT_LINE = re.compile(PROMPT.pattern, re.MULTILINE)
OUTPUT_START = re.compile(
    r"^(?:"
    + PROMPT.pattern.strip("^$")
    + r"|vssadmin \d|Deployment Image Servicing|展開イメージのサービスと管理ツール"
    r"|Windows Boot Manager|Windows ブート マネージャー|\[SC\]|SERVICE_NAME:"
    r"|Image Name\s+PID|イメージ名\s+PID|Source\s+Description\s+HotFixID|Caption\s+CSName"
    r"|Host Name:|ホスト名:|Log Name:|ログの名前:"
    r"|Protokollname:|Nom du journal\s?:|[-+]?\s*System\s*$|Level\tDate and Time|レベル\t日付と時刻"
    r"|wbadmin \d|\[System Summary\]|\[システムの要約\]|\s+ProviderName: "
    r"|BitLocker Drive Encryption: Configuration|BitLocker ドライブ暗号化: 構成)",
    re.MULTILINE,
)

TEXT_PARSERS: tuple[Callable[[Text], list[Fact]], ...] = (
    vssadmin.parse,
    tasklist.parse,
    sc.parse,
    dism.parse,
    cbs.parse,
    dism_console.parse,
    chkdsk.parse,
    hotfix.parse,
    systeminfo.parse,
    bcdedit.parse,
    powershell.parse,
    pserror.parse,
    msinfo.parse,
    backup_logs.parse,
    backup_jobs.parse,
    wbadmin.parse,
    diskpart.parse,
    manage_bde.parse,
    icacls.parse,
    listing.parse,
    fltmc.parse,
    windbg.parse,
    boot_summary.parse,
    sectorinfo.parse,
    text_events.parse,
    viewer_friendly.parse,
    viewer_rows.parse,
    linux_lines.parse,
)
# The start of a text that says whether it is an XML or CSV export (a whole line of headers).
FORMAT_CHARS = 64 * 1024


def facts_from_text(text: str, path: str) -> list[Fact]:
    """Every command output and pasted event found anywhere in ``text`` (a transcript of
    several commands yields the facts of each)."""
    text = repost.clean(text)  # quotes, fences, odd spaces undone; line numbers kept
    try:
        as_json = powershell.parse_json(text, path)
    except RecursionError:
        as_json = None  # nested deeper than any ConvertTo-Json output: not one
    if as_json is not None:
        return as_json
    doubled = repost.undouble(text)
    if doubled is not None:  # read as it was before every line got an empty one after it
        single, origin = doubled
        return [_relocated(f, origin) for f in facts_from_text(single, path)]
    doc = Text.of(text, path)
    facts: list[Fact] = []
    for parser in TEXT_PARSERS:
        facts.extend(parser(doc))
    # What no parser reads as a record: dialogs, a failure's own words, codes and names in
    # sentences (hvrescue.logs.signatures and .signals), with a confidence below 1.0.
    facts.extend(dialog.parse(doc))
    facts.extend(signatures.match(doc, facts))
    facts.extend(signals.signals(doc))
    facts.sort(key=lambda f: _line(f.provenance.locator))
    return facts


def _relocated(fact: Fact, origin: list[int]) -> Fact:
    """``fact`` found in an undoubled text, with the line it came from in the file."""
    line = _line(fact.provenance.locator)
    if not 0 < line <= len(origin):
        return fact
    return Fact(
        fact.kind, fact.attributes, Provenance(fact.provenance.path, f"line:{origin[line - 1] + 1}")
    )


def _line(locator: str | None) -> int:
    if locator and locator.startswith("line:"):
        return int(locator[5:])
    return 0


# ---------------------------------------------------------------- the reader
def read_text(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    """The facts of a text item into ``out`` (``keep``: the events kept in full)."""
    if item.size > budget.max_text_bytes:
        out.unrecognised.append(Unrecognised(item.path, "too-large"))
        out.skipped.append(
            Skipped(item.path, "too-large", f"{item.size} bytes > {budget.max_text_bytes}")
        )
        return
    with item.open(budget.max_text_bytes) as fh:
        head = fh.read(txt.SNIFF_BYTES)
    for decoding in txt.decodings(head):
        attempt = FactSet()
        try:
            with item.open(budget.max_text_bytes) as fh:
                chunk = min(txt.CHUNK_BYTES, budget.piece_chars())
                _parse_text(txt.TextStream(fh, decoding, chunk), item.path, budget, attempt)
        except txt.WrongEncoding:
            continue
        attempt.facts = signals.dedupe(attempt.facts)
        if keep is not None:  # the events not needed counted (not as read: text is small)
            attempt.facts = thin(attempt.facts, keep)
        out.extend(attempt)
        break
    if not out.facts and not out.problems:
        out.unrecognised.append(Unrecognised(item.path, "no-known-content"))


# ---------------------------------------------------------------- text, whole or in pieces
def _parse_text(chunks: Iterable[str], path: str, budget: Budget, out: FactSet) -> None:
    size = budget.piece_chars()
    stream = iter(chunks)
    peeked: list[str] = []
    total = 0
    for chunk in stream:
        peeked.append(chunk)
        total += len(chunk)
        if total > size:
            break
    else:
        _whole("".join(peeked), path, out)  # it fits: parsed as it always was
        return
    rest = itertools.chain(peeked, stream)
    fmt = cls.text_format("".join(peeked)[:FORMAT_CHARS])
    limit = budget.max_facts()
    if fmt == "xml":
        events: Iterator[Fact | Problem] = xml_events.iter_xml_stream(_xml_bytes(rest), path)
    elif fmt == "csv":
        events = csv_events.iter_csv_lines(txt.lines(rest, size), path)
    else:
        events = _pieces(rest, path, size)
    for found in events:
        (out.problems if isinstance(found, Problem) else out.facts).append(found)  # type: ignore[arg-type]
        if len(out.facts) >= limit:
            where = out.facts[-1].provenance.locator or "?"
            detail = f"{limit} facts read (to {where}); the rest of the file was not read"
            out.skipped.append(Skipped(path, "memory-budget", detail))
            return


def _whole(text: str, path: str, out: FactSet) -> None:
    fmt = cls.text_format(text)
    if fmt == "xml":
        for found in xml_events.iter_xml_events(text, path):
            (out.problems if isinstance(found, Problem) else out.facts).append(found)  # type: ignore[arg-type]
    elif fmt == "csv":
        for found in csv_events.iter_csv_events(text, path):
            (out.problems if isinstance(found, Problem) else out.facts).append(found)  # type: ignore[arg-type]
    else:
        out.facts.extend(facts_from_text(text, path))


def _pieces(chunks: Iterable[str], path: str, size: int) -> Iterator[Fact]:
    """Command outputs and pasted events of a text larger than a piece, piece by piece, with
    the lines numbered as in the whole file. A piece that does not start at a prompt is given
    the last prompt above it, so that its lines still know which command printed them."""
    prompt: str | None = None
    for piece in txt.pieces(chunks, size, OUTPUT_START):
        text, offset = piece.text, piece.first_line
        context = prompt is not None and not PROMPT_LINE.match(text)
        if context:
            text, offset = f"{prompt}\n{text}", offset - 1
        for fact in facts_from_text(text, path):
            line = _line(fact.provenance.locator)
            if context and line == 1:
                continue  # the borrowed prompt line: its facts came with the previous piece
            yield _shifted(fact, offset) if line and offset else fact
        prompt = _last_prompt(piece.text) or prompt


def _last_prompt(text: str) -> str | None:
    found = None
    for m in PROMPT_LINE.finditer(text):
        found = m.group(0)
    # The match may begin with the blank lines above the prompt (its leading \s*).
    return None if found is None else found.rsplit("\n", 1)[-1]


def _shifted(fact: Fact, offset: int) -> Fact:
    where = Provenance(fact.provenance.path, f"line:{_line(fact.provenance.locator) + offset}")
    return Fact(fact.kind, fact.attributes, where)


def _xml_bytes(chunks: Iterable[str]) -> io.BufferedReader:
    """An XML export's text as the UTF-8 stream ``iter_xml_stream`` reads: declarations
    removed, a root added when there is none (as ``iter_xml_events`` does to a whole text)."""

    def parts() -> Iterator[bytes]:
        carry = ""
        wrap: bool | None = None
        for chunk in itertools.chain(chunks, [""]):
            text = carry + chunk
            carry = ""
            start = text.rfind("<?")
            if chunk and start >= 0 and "?>" not in text[start:] and len(text) - start < 4096:
                text, carry = text[:start], text[start:]  # a declaration cut in two
            text = xml_events.DECL.sub("", text)
            if wrap is None:
                text = text.lstrip()
                if not text:
                    continue
                wrap = not xml_events.ROOT.match(text)
                if wrap:
                    yield b"<Events>"
            yield text.encode("utf-8")
        if wrap:
            yield b"</Events>"

    return io.BufferedReader(_IterStream(parts()))


class _IterStream(io.RawIOBase):
    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts = parts
        self.part = b""
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self.pos >= len(self.part):
            self.part, self.pos = next(self.parts, b""), 0
            if not self.part:
                return 0
        n = min(len(buffer), len(self.part) - self.pos)
        buffer[:n] = self.part[self.pos : self.pos + n]
        self.pos += n
        return n
