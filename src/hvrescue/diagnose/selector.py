"""One log's events as they are read (``EventRelevance.selector``): the ones the rules need, and
the timeline windows the report may show, the rest counted (see ``relevance.py``'s notes)."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from hvrescue.diagnose.literals import fold
from hvrescue.diagnose.relevance import SERIOUS_LEVELS, EventRelevance, event_time, time_of
from hvrescue.facts.model import Fact

if TYPE_CHECKING:
    from hvrescue.logs.events import RecordHead


class Selector:
    """One log's events as they are read: the needed ones, and the last ``window`` of level
    warning or worse and of any level by (time, order); :meth:`kept` gives them in order."""

    def __init__(self, relevance: EventRelevance) -> None:
        self.relevance = relevance
        self.window = relevance.window
        self.kept_facts: list[tuple[int, Fact]] = []
        self.serious: list[tuple[Any, int, Any]] = []  # Fact or _Record
        self.latest: list[tuple[Any, int, Any]] = []
        self.count = 0

    def add(self, fact: Fact) -> bool:
        """Offer a fact; False when it is counted only (so far: it may leave a window later)."""
        n = self.count
        self.count += 1
        relevance = self.relevance
        needed = relevance.needed(fact)
        if needed:
            self.kept_facts.append((n, fact))
            if relevance.serious_seen or fact.kind != "event":
                return True
        a = fact.attributes
        serious = str(a.get("level_name") or "") in SERIOUS_LEVELS
        if not self.window or (relevance.serious_seen and not serious):
            return needed  # no window, or the window of any level is never shown
        when = event_time(a)
        if when is None:
            return needed
        if serious:
            # The report's window holds events of warning or worse, as there are some: the
            # window of any level is never shown (in this process, from now on).
            relevance.met_serious()
            self.latest = []
        if needed:
            return True
        entry = (when, n, fact)
        if serious:
            self._push(self.serious, entry)
        elif not relevance.serious_seen:
            self._push(self.latest, entry)
        return True

    def take(self, key: Any, when: Any, record: Any, head: RecordHead, path: str) -> bool:
        """Take an event by the head of its record (``key``, and ``when``: its ``time_local or
        time``) when that settles that no rule can use it (:meth:`EventRelevance.head_plan`):
        counted, or, where a timeline window may still show it, held as the record until
        :meth:`kept` (only the few a window keeps are ever built, by ``head.fact``). What
        :meth:`add` does with the whole event, at a fraction of the cost; False: offer it
        whole."""
        relevance = self.relevance
        serious, verdict = relevance.head_plan(key, head)
        if verdict is False:
            return False
        if verdict is not True:
            folded = fold(head.text(record))
            for literal in verdict:
                if literal in folded:
                    return False
        n = self.count
        self.count += 1
        if not self.window or (relevance.serious_seen and not serious):
            return True
        at = time_of(when)
        if at is None:
            return True
        entry = (at, n, _Record(record, head, path))
        if serious:
            relevance.met_serious()
            self.latest = []
            self._push(self.serious, entry)
        elif not relevance.serious_seen:
            self._push(self.latest, entry)
        return True

    def _push(self, heap: list[tuple[Any, int, Any]], entry: tuple[Any, int, Any]) -> None:
        if len(heap) < self.window:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    def kept(self) -> list[Fact]:
        """What is kept, in the order offered."""
        chosen = {n: f for n, f in self.kept_facts}
        latest = [] if self.relevance.serious_seen else self.latest
        for _when, n, fact in [*self.serious, *latest]:
            chosen[n] = fact.fact() if type(fact) is _Record else fact
        return [chosen[n] for n in sorted(chosen)]


class _Record:
    """An event a window holds as its record, built only if it stays there. The reader's
    ``head`` read it, so building it cannot fail (tests/test_evtx_head.py)."""

    __slots__ = ("head", "path", "record")

    def __init__(self, record: Any, head: RecordHead, path: str) -> None:
        self.record = record
        self.head = head
        self.path = path

    def fact(self) -> Fact:
        return self.head.fact(self.record, self.path)
