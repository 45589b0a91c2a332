"""The facts of a walk as a stream, for ``facts --format jsonl``: each entry's facts handed on as
soon as it is read, never all held, in the order :func:`collect.collect` gives them.

What the end of the run needs is kept small: the walk's problems, unrecognised and skipped
entries, and for the per-input list one shared stand-in per (file, kind, format) with a count.
Two things wait for the whole evidence, as in ``collect``: a saved ``sc sdshow`` output named
only by its file name (``label_services``) is held, with everything after it so that the order
stays, until the services the rest of the evidence names are known; event logs never are.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from hvrescue.evidence import Budget, Item, Skipped, Walk
from hvrescue.evidence import classify as cls
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.evtx_item import read_item
from hvrescue.logs.inputs import ABOUT_FILES, Collected, label_services, recognition
from hvrescue.logs.parallel import Reader, read_entries
from hvrescue.logs.rendered import (
    LABELLED,
    NAMING,
    Counts,
    Render,
    Rendered,
    add_counts,
    count_facts,
    read_rendered,
)

__all__ = ["FactStream", "Render", "Rendered"]


class FactStream:
    """``for fact in FactStream(paths)``; afterwards ``summary`` (problems, unrecognised,
    skipped, items) and :meth:`inputs` say what ``collect`` would have said.

    With ``render``, :meth:`parts` gives each item's facts, or the bytes ``render`` made of
    them where the item was read (EVTX logs read in workers: their facts never come back to
    this process), in the order of the facts."""

    def __init__(
        self,
        paths: list[str],
        budget: Budget | None = None,
        jobs: int | None = None,
        render: Render | None = None,
    ):
        self.paths = list(paths)
        self.budget = budget or Budget()
        self.jobs = jobs
        self.render = render
        self.summary = Collected()
        self._counts: Counts = {}

    def __iter__(self) -> Iterator[Fact]:
        for part in self.parts():
            assert not isinstance(part, bytes), "a rendering FactStream is read by parts()"
            yield from part

    def parts(self) -> Iterator[list[Fact] | bytes]:
        """The facts of the walk in order, item by item: a list of facts, or their bytes as
        ``render`` made them in a worker."""
        naming: list[Fact] = []  # facts label_services learns names from (few: no events)
        held: list[Fact | bytes] | None = None
        budget = self.budget
        walk = Walk(self.paths, budget)
        summary = self.summary
        # read here and in the workers alike: a rendering stream renders where it reads
        read: Reader = read_item
        if self.render is not None:
            read = functools.partial(read_rendered, self.render)
        work = None if self.render is None else read
        for entry, found in read_entries(walk, budget, read, self.jobs, work=work):
            # collect.add_entry, without importing collect for a folder of EVTX logs
            if isinstance(entry, Skipped):
                from hvrescue.logs.collect import add_skipped

                skipped = Collected()
                add_skipped(skipped, entry)
                summary.extend(skipped)
                continue
            if not isinstance(entry, Item):
                continue
            if entry.kind not in (cls.ARCHIVE, cls.BUNDLE):
                summary.items.append((entry.path, entry.content))
            if found is None:
                found = read_item(entry, budget)
            summary.unrecognised += found.unrecognised
            summary.problems += found.problems
            summary.skipped += found.skipped
            if isinstance(found, Rendered):
                add_counts(self._counts, found.counts or {})
                if held is not None:
                    held.append(found.lines)
                elif found.lines:
                    yield found.lines
                continue
            count_facts(self._counts, found.facts)
            out: list[Fact] = []
            for fact in found.facts:
                if (
                    held is None
                    and fact.kind == LABELLED
                    and fact.attributes.get("file_name_words")
                ):
                    held = []
                if held is not None:
                    held.append(fact)
                    continue
                if fact.kind in NAMING:
                    naming.append(fact)
                out.append(fact)
            if out:
                yield out
        if held:
            facts = [f for f in held if isinstance(f, Fact)]
            labelled = iter(label_services(naming + facts)[len(naming) :])
            for waited in held:
                yield waited if isinstance(waited, bytes) else [next(labelled)]

    def inputs(self) -> list[dict[str, Any]]:
        """The per-input list, as ``collect(...).inputs()`` gives it."""
        # One stand-in per (kind, format) of each path: the formats come in the order they
        # were first met, as with every fact; then each entry's count is put right.
        standins: list[Fact] = []
        for path, counts in self._counts.items():
            for kind, fmt in counts:
                # fact_format of the stand-in is ``fmt`` again (a non-empty "format")
                standins.append(Fact(kind, {"format": fmt}, Provenance(path, None)))
        entries = recognition(self.summary, self.summary.items, standins)
        for entry in entries:
            if entry["facts"]:
                counts = self._counts[entry["path"]]
                entry["facts"] = sum(n for (k, _f), n in counts.items() if k not in ABOUT_FILES)
        return entries
