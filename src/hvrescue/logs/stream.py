"""The facts of a walk as a stream, for ``facts --format jsonl``: each entry's facts handed on as
soon as it is read, never all held, in the order :func:`collect.collect` gives them.

What the end of the run needs is kept small: the walk's problems, unrecognised and skipped
entries, and for the per-input list one shared stand-in per (file, kind, format) with a count.
Two things wait for the whole evidence, as in ``collect``: a saved ``sc sdshow`` output named
only by its file name (``label_services``) is held, with everything after it so that the order
stays, until the services the rest of the evidence names are known; event logs never are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hvrescue.evidence import Budget, Walk
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.collect import add_entry, facts_from_item
from hvrescue.logs.inputs import Collected, fact_format, label_services, recognition
from hvrescue.logs.parallel import read_entries

# The kinds label_services learns service names from, and the kind it renames.
_NAMING = ("service_config", "service_status", "process")
_LABELLED = "service_security"


class FactStream:
    """``for fact in FactStream(paths)``; afterwards ``summary`` (problems, unrecognised,
    skipped, items) and :meth:`inputs` say what ``collect`` would have said."""

    def __init__(self, paths: list[str], budget: Budget | None = None, jobs: int | None = None):
        self.paths = list(paths)
        self.budget = budget or Budget()
        self.jobs = jobs
        self.summary = Collected()
        self._counts: dict[str, dict[tuple[str, str], int]] = {}

    def __iter__(self) -> Iterator[Fact]:
        naming: list[Fact] = []  # facts label_services learns names from (few: no events)
        held: list[Fact] | None = None
        budget = self.budget
        walk = Walk(self.paths, budget)
        for entry, found in read_entries(walk, budget, facts_from_item, self.jobs):
            part = Collected()
            add_entry(part, entry, budget, found)
            self.summary.items += part.items
            self.summary.unrecognised += part.unrecognised
            self.summary.problems += part.problems
            self.summary.skipped += part.skipped
            for fact in part.facts:
                self._count(fact)
                if (
                    held is None
                    and fact.kind == _LABELLED
                    and fact.attributes.get("file_name_words")
                ):
                    held = []
                if held is not None:
                    held.append(fact)
                    continue
                if fact.kind in _NAMING:
                    naming.append(fact)
                yield fact
        if held:
            yield from label_services(naming + held)[len(naming) :]

    def _count(self, fact: Fact) -> None:
        path = fact.provenance.path
        key = (fact.kind, fact_format(fact))
        counts = self._counts.setdefault(path, {})
        counts[key] = counts.get(key, 0) + 1

    def inputs(self) -> list[dict[str, Any]]:
        """The per-input list, as ``collect(...).inputs()`` gives it."""
        standins: list[Fact] = []
        for path, counts in self._counts.items():
            for key, n in counts.items():
                kind, fmt = key
                # fact_format of the stand-in is ``fmt`` again (a non-empty "format")
                stub = Fact(kind, {"format": fmt}, Provenance(path, None))
                standins += [stub] * n
        return recognition(self.summary, self.summary.items, standins)
