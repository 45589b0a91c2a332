"""Facts from the items of the evidence walker: event logs (EVTX, XML and CSV exports, pasted
events) and command outputs, in files, folders and zip bundles, with provenance.

The walk (``hvrescue.evidence``) lists folders, opens zips and classifies each item once; here
each item goes to its reader by what its bytes are. Text is decoded and parsed as a stream: a
text that fits in one piece of the budget is parsed whole, a larger one in line-aligned pieces
(XML and CSV exports as one stream of events or rows), so a large log costs bounded memory.
An item that fails (damage, a limit, the system refusing) fails alone: what it gave is dropped
and it is listed as skipped (and, under the names they always had, as unrecognised or a
problem); the rest of the evidence is read on. The text readers live in
``hvrescue.logs.collect_text``, imported only when an item holds text.
"""

from __future__ import annotations

import io
from collections.abc import Callable

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
from hvrescue.facts.model import Fact, FactSet, Problem, Unrecognised
from hvrescue.logs.events import EventFilter
from hvrescue.logs.inputs import Collected, label_services

# The limits as they were named here before the walker had its budget.
MAX_TEXT_BYTES = limits.MAX_TEXT_BYTES
MAX_MEMBER_BYTES = limits.MAX_MEMBER_BYTES
MAX_ZIP_DEPTH = limits.MAX_ZIP_DEPTH
MAX_FILES = limits.MAX_FILES
EVTX_MAGIC, ZIP_MAGIC, DISK_SIGNATURES = cls.EVTX_MAGIC, cls.ZIP_MAGIC, cls.DISK_SIGNATURES
# Facts that say what a whole list holds (and so what is missing from it).
WHOLE_LISTS = frozenset({"vss_writer_list", "vss_provider_list"})
# Skipped reasons and the "unrecognised" reason they had before there was a skipped list.
_LEGACY = {r: r for r in ("unreadable", "damaged-zip", "zip-too-deep", "too-large")} | {
    r: "too-large" for r in ("zip-ratio", "zip-total", "memory-budget")
}


def facts_from_text(text: str, path: str) -> list[Fact]:
    """Every command output and pasted event found anywhere in ``text`` (a transcript of
    several commands yields the facts of each)."""
    from hvrescue.logs.collect_text import facts_from_text as from_text

    return from_text(text, path)


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


def _journal(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    from hvrescue.logs.journal import journal_facts

    data = item.read_all(budget, "systemd journal")  # bounded by the budget, held while read
    with budget.hold(len(data), "systemd journal"):
        facts, problems = journal_facts(data, item.path)
    out.facts.extend(facts)
    out.problems.extend(problems)


def _text(item: Item, budget: Budget, out: FactSet, keep: EventFilter | None = None) -> None:
    from hvrescue.logs.collect_text import read_text  # the text parsers, only for text

    read_text(item, budget, out, keep)


READERS: dict[str, Callable[[Item, Budget, FactSet, EventFilter | None], None]] = {
    cls.C_DISK: _disk,
    cls.C_EVTX: _evtx,
    cls.C_JOURNAL: _journal,
    cls.C_BINARY: _binary,
    cls.C_EMPTY: _empty,
    cls.C_TEXT: _text,
}
