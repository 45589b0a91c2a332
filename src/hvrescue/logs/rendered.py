"""An item's facts rendered where the item is read (a worker process, for on-disk EVTX logs):
the bytes and a count per (kind, format) travel back, not the facts (``logs/stream.py``).

Each item is read by ``read_item`` and its facts handed to ``render``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hvrescue.evidence import Budget, Item
from hvrescue.facts.model import Fact, FactSet
from hvrescue.logs.events import EventFilter
from hvrescue.logs.evtx_item import read_item
from hvrescue.logs.inputs import fact_format

# The kinds label_services learns service names from, and the kind it renames: their facts go
# back as facts (label_services waits for the whole evidence).
NAMING = ("service_config", "service_status", "process")
LABELLED = "service_security"

# Turns facts into the bytes the caller writes (a module-level function: it goes to the
# workers by name).
Render = Callable[[list[Fact]], bytes]
Counts = dict[str, dict[tuple[str, str], int]]


@dataclass
class Rendered(FactSet):
    """An item's facts as a worker rendered them (``lines``) with their count per path and
    (kind, format); ``facts`` is empty, the rest of the set as read."""

    lines: bytes = b""
    counts: Counts | None = None


def read_rendered(
    render: Render, item: Item, budget: Budget, keep: EventFilter | None = None
) -> FactSet:
    """``read_item(item, budget, keep)`` with its facts rendered (:func:`prerender`)."""
    return prerender(render, read_item(item, budget, keep))


def prerender(render: Render, found: FactSet) -> FactSet:
    """``found`` with its facts rendered, unless one of them is for ``label_services`` (which
    waits for the whole evidence: those go back as facts)."""
    if any(f.kind == LABELLED or f.kind in NAMING for f in found.facts):
        return found
    counts: Counts = {}
    count_facts(counts, found.facts)
    lines = render(found.facts) if found.facts else b""
    return Rendered([], found.unrecognised, found.problems, found.skipped, lines, counts)


def count_facts(counts: Counts, facts: list[Fact]) -> None:
    """Each fact counted per path and (kind, format), for the per-input list (inline: this
    runs once per event)."""
    last_path: str | None = None
    per_path: dict[tuple[str, str], int] = {}
    for fact in facts:
        fmt = fact.attributes.get("format")
        kind = fact.kind
        key = (
            (kind, fmt)
            if type(fmt) is str and fmt and kind != "disk_check"
            else (kind, fact_format(fact))
        )
        path = fact.provenance.path
        if path != last_path:
            last_path, per_path = path, counts.setdefault(path, {})
        per_path[key] = per_path.get(key, 0) + 1


def add_counts(counts: Counts, more: Counts) -> None:
    for path, keys in more.items():
        per_path = counts.setdefault(path, {})
        for key, n in keys.items():
            per_path[key] = per_path.get(key, 0) + n
