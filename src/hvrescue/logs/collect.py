"""Facts from the items of the evidence walker: event logs (EVTX, XML and CSV exports, pasted
events) and command outputs, in files, folders and zip bundles, with provenance.

The walk (``hvrescue.evidence``) lists folders, opens zips and classifies each item once; here
each item goes to its reader by what its bytes are. Text is decoded and parsed as a stream: a
text that fits in one piece of the budget is parsed whole, a larger one in line-aligned pieces
(XML and CSV exports as one stream of events or rows), so a large log costs bounded memory.
An item that fails (damage, a limit, the system refusing) fails alone: what it gave is dropped
and it is listed as skipped (and, under the names they always had, as unrecognised or a
problem); the rest of the evidence is read on.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator

from hvrescue.evidence import (
    Budget,
    Folder,
    Item,
    ItemError,
    LimitExceeded,
    Skipped,
    Walk,
    items_from_bytes,
)
from hvrescue.evidence import budget as limits
from hvrescue.evidence import classify as cls
from hvrescue.evidence import text as txt
from hvrescue.facts.model import Fact, FactSet, Problem, Provenance, Unrecognised
from hvrescue.logs import (
    csv_events,
    dialog,
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
    dism,
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
)
from hvrescue.logs.events import EventFilter, thin
from hvrescue.logs.inputs import Collected, label_services
from hvrescue.logs.textutil import PROMPT, Text

# The limits as they were named here before the walker had its budget.
MAX_TEXT_BYTES = limits.MAX_TEXT_BYTES
MAX_MEMBER_BYTES = limits.MAX_MEMBER_BYTES
MAX_ZIP_DEPTH = limits.MAX_ZIP_DEPTH
MAX_FILES = limits.MAX_FILES
EVTX_MAGIC, ZIP_MAGIC, DISK_SIGNATURES = cls.EVTX_MAGIC, cls.ZIP_MAGIC, cls.DISK_SIGNATURES
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
    hotfix.parse,
    systeminfo.parse,
    bcdedit.parse,
    powershell.parse,
    pserror.parse,
    msinfo.parse,
    backup_logs.parse,
    backup_jobs.parse,
    manage_bde.parse,
    icacls.parse,
    listing.parse,
    fltmc.parse,
    sectorinfo.parse,
    text_events.parse,
    viewer_friendly.parse,
    viewer_rows.parse,
)
# Facts that say what a whole list holds (and so what is missing from it).
WHOLE_LISTS = frozenset({"vss_writer_list", "vss_provider_list"})
# The start of a text that says whether it is an XML or CSV export (a whole line of headers).
FORMAT_CHARS = 64 * 1024
# Skipped reasons and the "unrecognised" reason they had before there was a skipped list.
_LEGACY = {r: r for r in ("unreadable", "damaged-zip", "zip-too-deep", "too-large")} | {
    r: "too-large" for r in ("zip-ratio", "zip-total", "memory-budget")
}


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


def _line(locator: str | None) -> int:
    if locator and locator.startswith("line:"):
        return int(locator[5:])
    return 0


# ---------------------------------------------------------------- the walk
def collect(paths: list[str], budget: Budget | None = None, jobs: int | None = None) -> Collected:
    """The facts of everything under ``paths``, what was not recognised, what could not be
    read (``problems``, ``skipped``). EVTX files are read in ``jobs`` processes (None: one
    per core, 1: here); the result is the same whatever ``jobs`` is."""
    from hvrescue.logs.parallel import read_entries

    budget = budget or Budget()
    out = Collected()
    for entry, found in read_entries(Walk(list(paths), budget), budget, facts_from_item, jobs):
        add_entry(out, entry, budget, found)
    out.facts = label_services(out.facts)
    return out


def add_entry(
    out: FactSet, entry: Item | Folder | Skipped, budget: Budget, found: FactSet | None = None
) -> None:
    """One entry of a walk into ``out`` (``found``: an item's facts, already read)."""
    if isinstance(entry, Skipped):
        add_skipped(out, entry)
    elif isinstance(entry, Item):
        if isinstance(out, Collected) and entry.kind not in (cls.ARCHIVE, cls.BUNDLE):
            out.items.append((entry.path, entry.content))
        out.extend(found if found is not None else facts_from_item(entry, budget))


def facts_from_file(path: str, budget: Budget | None = None) -> FactSet:
    return collect([path], budget)


def facts_from_bytes(
    data: bytes, path: str, depth: int = 0, budget: Budget | None = None
) -> FactSet:
    """The facts of bytes already in memory (a file read out of a guest, a test's data)."""
    budget = budget or Budget()
    out = FactSet()
    for entry in items_from_bytes(data, path, budget, depth):
        add_entry(out, entry, budget)
    return out


def add_skipped(out: FactSet, skipped: Skipped) -> None:
    """A skipped entry, and what it was called before (unrecognised, a problem)."""
    out.skipped.append(skipped)
    path, reason, detail = skipped.path, skipped.reason, skipped.detail
    if reason == "zip-member-unreadable":
        out.problems.append(Problem(path, "zip.member-unreadable", None, {"reason": detail}))
        out.unrecognised.append(Unrecognised(path, "unreadable"))
    elif reason == "too-many-files":
        limit = int(detail) if detail and detail.isdigit() else detail
        out.problems.append(Problem(path, "walk.too-many-files", None, {"limit": limit}))
    elif reason in _LEGACY:
        keep = reason in ("unreadable", "damaged-zip")
        out.unrecognised.append(Unrecognised(path, _LEGACY[reason], detail if keep else None))


def facts_from_item(item: Item, budget: Budget, keep: EventFilter | None = None) -> FactSet:
    """The facts of one item (``keep``: events kept in full, the others counted, see
    ``logs.events.thin``); an item that fails gives only its skipped entry."""
    out = FactSet()
    reader = READERS.get(item.content)
    if reader is None or item.kind in (cls.ARCHIVE, cls.BUNDLE):
        return out  # an archive's members come as items of their own
    route = item.route
    if route is not None and not route.evidence:
        # A collector's own record (a command's stderr, its listing of disk files): not what
        # the host printed, so a refusal's words are never read as the host's state.
        out.unrecognised.append(Unrecognised(item.path, "collector-record"))
        return out
    try:
        reader(item, budget, out, keep)
    except (ItemError, LimitExceeded) as exc:
        out = FactSet()
        add_skipped(out, Skipped(item.path, exc.reason, exc.detail))
    if route is not None and not route.complete:
        # The output of a command that did not end well (refused, cut at its cap, timed out):
        # its records stand, but a list in it is not the whole list.
        out.facts = [f for f in out.facts if f.kind not in WHOLE_LISTS]
    return out


# ---------------------------------------------------------------- readers
def _disk(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    # Virtual disks are the disk engine's (hvrescue check/info), not text.
    out.unrecognised.append(Unrecognised(item.path, "disk-image"))


def _binary(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    cap = budget.max_member_bytes if item.member else budget.max_text_bytes
    out.unrecognised.append(Unrecognised(item.path, "too-large" if item.size > cap else "binary"))


def _empty(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    out.unrecognised.append(Unrecognised(item.path, "no-known-content"))


def _evtx(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    from hvrescue.logs.evtx_reader import read_evtx

    if item.member:
        # A member is read whole: the parser seeks, and a zip stream seeks by decompressing
        # again from the start.
        data = item.read_all(budget, "EVTX log")
        with budget.hold(len(data), "EVTX log"):
            facts, problems = read_evtx(io.BytesIO(data), item.path, keep)
    else:
        with item.open() as fh:
            facts, problems = read_evtx(fh, item.path, keep)  # type: ignore[arg-type]
    out.facts.extend(facts)
    out.problems.extend(problems)


def _text(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
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


READERS: dict[str, Callable[[Item, Budget, FactSet, EventFilter | None], None]] = {
    cls.C_DISK: _disk,
    cls.C_EVTX: _evtx,
    cls.C_BINARY: _binary,
    cls.C_EMPTY: _empty,
    cls.C_TEXT: _text,
}


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
