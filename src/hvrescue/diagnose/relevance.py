"""Which events `triage` needs in full, decided as each log is read, so that a host's logs (hundreds
of files, millions of records) cost the events that matter and a count for the rest.

An event is *needed* when it could take part in a diagnosis: some event clause of some rule
(``require``, ``require_one_of``, the groups, ``support`` and ``forbid`` alike) holds for it on
its own (its ``where`` and ``any_of`` conditions; ``near`` only narrows, so it is left out), or
``derive`` makes a restart or a bugcheck of it (event ids 41, 6008, 1001). Besides those, the
report shows a timeline: the last ``TIMELINE_WINDOW`` events of level warning or worse by time
(of all events when there are none). Each log keeps the last ``TIMELINE_WINDOW`` of both kinds
(``diagnose/selector.py``; the window of any level no longer once an event of warning or worse
with a time was met), which holds the report's window whatever the other logs hold; once every
log is read, :meth:`EventRelevance.trim` keeps the report's window exactly and no more.

The clauses come from the rules given, so a new rule is covered as it is written; a new kind of
fact derived from events (``derive.py``) must name its event ids in ``DERIVED_IDS``.

Most events are settled before they are built: a log reader that can read the head of a record
(``logs.evtx_records.head_read``: provider, event id, level and time, for EVTX) offers it first
(``Selector.take``). :meth:`EventRelevance.head_plan` works out once per distinct head
whether any clause or derivation could use such an event whatever its other fields hold (a
clause that fails on the fields known fails whatever the others hold), or which literals its
data must hold for one to; when none could and no window can still show it, the record is
counted without being built. tests/test_evtx_head.py holds this to the whole reading.

Every other event is counted, not kept: the reader leaves one shared stand-in per dropped event
(:func:`hvrescue.logs.events.counted`: kind ``event``, its ``format``, ``counted: true``, no
time), so the per-input list, the facts summary and the verdict count what each file held.
Stand-ins are no evidence: the engine never sees them (:func:`evidence_facts`).
tests/test_event_relevance.py holds the diagnoses and the report equal with and without this.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from hvrescue.diagnose.clause_tests import (
    CompiledClause,
    Gate,
    Residual,
    compiled,
    gate,
    residual_holds,
    text_gate,
)
from hvrescue.diagnose.literals import fold, quick_fold
from hvrescue.diagnose.match import field_getter, parse_time
from hvrescue.diagnose.rules import Clause, Rule
from hvrescue.facts.model import Fact
from hvrescue.logs.events import is_evtx_time

if TYPE_CHECKING:
    from hvrescue.diagnose.selector import Selector
    from hvrescue.logs.events import RecordHead

# report.render.MAX_TIMELINE (tests hold the two together; diagnose never imports report).
TIMELINE_WINDOW = 60
SERIOUS_LEVELS = frozenset({"critical", "error", "warning"})
# Event ids derive.py turns into restarts and bugchecks (its _from_event).
DERIVED_IDS = frozenset({41, 6008, 1001})
# Fields a rule names that an event holds as a short string or a number: the conditions on
# them are answered once per distinct combination of their values.
CHEAP_FIELDS = ("provider", "event_id", "level", "format", "channel", "source_name", "level_name")
# The fields of an event that differ between the events of one provider: a head's clauses are
# first narrowed by the others alone (its provider, and the fields such events lack).
PER_EVENT_FIELDS = frozenset({"event_id", "level", "level_name"})
MAX_MEMO = 65_536


def event_time(attributes: dict[str, Any]) -> dt.datetime | None:
    """``parse_time(time_local or time)``, as the report orders its timeline; EVTX's own form
    (``2019-03-19T23:34:25.1234567Z``) read directly (the same value, a fifth of the time)."""
    return time_of(attributes.get("time_local") or attributes.get("time"))


def time_of(text: Any) -> dt.datetime | None:
    """:func:`event_time` of an event whose ``time_local or time`` is ``text``."""
    # parse_time drops the seventh fractional digit and the zone: the first 26 characters
    if is_evtx_time(text):
        try:
            return dt.datetime.fromisoformat(text[:26])
        except ValueError:
            pass
    return parse_time(text)


def _derived_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            return False
    return isinstance(value, int) and value in DERIVED_IDS


def event_clauses(rules: Iterable[Rule]) -> list[Clause]:
    """Every clause on events, each distinct one once."""
    seen: set[bytes] = set()
    out: list[Clause] = []
    for rule in rules:
        groups = [c for group in rule.require_groups for c in group]
        for clause in [*rule.require, *rule.require_one_of, *groups, *rule.support, *rule.forbid]:
            if clause.kind != "event":
                continue
            key = msgspec.json.encode((clause.where, clause.any_of))
            if key not in seen:
                seen.add(key)
                out.append(clause)
    return out


def is_counted(fact: Fact) -> bool:
    """A stand-in for an event that was counted, not kept."""
    return fact.kind == "event" and fact.attributes.get("counted") is True


def evidence_facts(facts: Iterable[Fact]) -> list[Fact]:
    """``facts`` without the stand-ins of counted events (what the engine is given)."""
    return [f for f in facts if not is_counted(f)]


# The memos of each set of compiled clauses, for the life of the process: the compiled clauses
# (kept here as well, so that their id stays theirs), the plans by cheap fields, by head, the
# fields known by head shape, and the clauses a provider leaves open, by head shape and provider.
# ``clause_tests.compiled`` keeps at most a few sets alive.
_Memos = tuple[list[CompiledClause], dict[Any, Any], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
_MEMOS: dict[int, _Memos] = {}


# The runs in which this process met an event of warning or worse with a time (a worker reads
# batch after batch of one run, each with a relevance of its own).
_SERIOUS_RUNS: set[str] = set()


class EventRelevance:
    """The events ``rules`` and the report need (see the module's notes). Picklable: it goes to
    the processes that read logs, where its tests are compiled again on first use."""

    def __init__(self, rules: Iterable[Rule], window: int = TIMELINE_WINDOW) -> None:
        self.clauses = event_clauses(rules)
        self.window = window
        self._compiled: list[CompiledClause] | None = None
        self._others: tuple[tuple[str, Any], ...] = ()
        # An event of warning or worse with a time was met: the timeline shows those only.
        self.serious_seen = False
        # This run, as the processes reading its logs know it (``_SERIOUS_RUNS``).
        self.run = os.urandom(8).hex()
        self._memo: dict[tuple[Any, ...], tuple[bool, tuple[Residual, ...], Gate | None]] = {}
        self._head_memo: dict[frozenset[str], dict[Any, tuple[bool, bool | tuple[str, ...]]]] = {}
        self._known: dict[frozenset[str], tuple[frozenset[str], frozenset[str], Any]] = {}
        self._open_by_provider: dict[Any, list[CompiledClause]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "clauses": self.clauses,
            "window": self.window,
            "run": self.run,
            "serious_seen": self.serious_seen,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.clauses = state["clauses"]
        self.window = state["window"]
        self.run = state["run"]
        self._compiled = None
        self._others = ()
        # what this process met in an earlier batch of the same run holds for the run
        self.serious_seen = state["serious_seen"] or self.run in _SERIOUS_RUNS
        self._memo = {}
        self._head_memo = {}
        self._known = {}
        self._open_by_provider = {}

    def met_serious(self) -> None:
        """An event of warning or worse with a time was met: the report's timeline holds those
        only, in this run whatever the other logs hold."""
        self.serious_seen = True
        if self.run not in _SERIOUS_RUNS:
            if len(_SERIOUS_RUNS) >= 64:
                _SERIOUS_RUNS.clear()
            _SERIOUS_RUNS.add(self.run)

    def _clauses(self) -> list[CompiledClause]:
        if self._compiled is None:
            self._compiled = compiled(self.clauses)
            # what was settled before for the same clauses in this process (a worker reads
            # batch after batch, each with a relevance of its own)
            if id(self._compiled) not in _MEMOS and len(_MEMOS) >= 4:
                _MEMOS.clear()
            memos = _MEMOS.setdefault(id(self._compiled), (self._compiled, {}, {}, {}, {}))
            _compiled, self._memo, self._head_memo, self._known, self._open_by_provider = memos
            named = set().union(*(c.fields() for c in self._compiled))
            # The other fields the rules read, known when they are missing (most events lack
            # a message, a signature, codes: the conditions on them are settled then).
            self._others = tuple(
                (k, field_getter(k)) for k in sorted(named) if k not in CHEAP_FIELDS
            )
        return self._compiled

    def _plan(self, attributes: dict[str, Any]) -> tuple[bool, tuple[Residual, ...], Gate | None]:
        """(whether the known fields settle it as needed, what is left of the clauses still
        open). Known: the cheap fields, and the other fields when they are missing."""
        clauses = self._clauses()
        missing = tuple([get(attributes) is None for _k, get in self._others])
        key = (*map(attributes.get, CHEAP_FIELDS), *missing)
        try:
            found = self._memo.get(key)
        except TypeError:  # a value that is no string or number: decided for this fact alone
            key, found = (), None
        if found is not None:
            return found
        needed = _derived_id(attributes.get("event_id"))
        open_: list[Residual] = []
        if not needed:
            gone = [k for (k, _get), absent in zip(self._others, missing, strict=True) if absent]
            known = frozenset((*CHEAP_FIELDS, *gone))
            for clause in clauses:
                verdict = clause.settle(attributes, known)
                if verdict is True:
                    needed = True
                    break
                if verdict is not False:
                    open_.append(verdict)
        residuals = () if needed else tuple(open_)
        found = (needed, residuals, gate(residuals) if residuals else None)
        if key and len(self._memo) < MAX_MEMO:
            self._memo[key] = found
        return found

    def head_plan(self, key: Any, head: RecordHead) -> tuple[bool, bool | tuple[str, ...]]:
        """For the events whose record head is ``key``: whether they are of warning or worse,
        and True when no clause and no derivation can use them whatever their fields in
        ``head.unknown`` hold (every other field is as ``head.fields`` gives it, or absent:
        then :meth:`needed` is False for the whole event, as a clause that fails on some
        fields fails whatever the others hold), False when one may, or the literals one of
        which ``head.text`` of the record must hold for one to (every clause still open needs
        one in the fields of ``head.verbatim``). A key that is no string or number is left to
        the whole event."""
        if self._compiled is None:
            self._clauses()
        memo = self._head_memo.get(head.unknown)
        if memo is None:
            memo = self._head_memo[head.unknown] = {}
        try:
            found = memo.get(key)
        except TypeError:  # a value that is no string or number: decided for this event alone
            return True, False
        if found is None:
            fields = head.fields(key)
            serious = str(fields.get("level_name") or "") in SERIOUS_LEVELS
            found = serious, self._settle_head(fields, head.unknown, head.verbatim)
            if len(memo) < MAX_MEMO:
                memo[key] = found
        return found

    def _settle_head(
        self, fields: dict[str, Any], unknown: frozenset[str], verbatim: frozenset[str]
    ) -> bool | tuple[str, ...]:
        if _derived_id(fields.get("event_id")):
            return False
        clauses = self._clauses()
        found = self._known.get(unknown)
        if found is None:
            named = set().union(*(c.fields() for c in clauses))
            known = frozenset(
                f for f in named if all(a.split(".")[0] not in unknown for a in f.split("|"))
            )
            narrow = frozenset(
                f
                for f in known
                if all(a.split(".")[0] not in PER_EVENT_FIELDS for a in f.split("|"))
            )
            names = tuple(sorted({a.split(".")[0] for f in narrow for a in f.split("|")}))
            found = self._known[unknown] = known, narrow, names
        known, narrow, names = found
        # The clauses left open by the fields but those of PER_EVENT_FIELDS, once per distinct
        # value of them (mostly: once per provider): a clause that fails on some known fields
        # fails whatever the others hold.
        by = (unknown, *map(fields.get, names))
        try:
            candidates = self._open_by_provider.get(by)
        except TypeError:  # a value that is no string or number: every clause
            candidates = clauses
        if candidates is None:
            candidates = [c for c in clauses if c.settle(fields, narrow) is not False]
            if len(self._open_by_provider) < MAX_MEMO:
                self._open_by_provider[by] = candidates
        open_: list[Residual] = []
        for clause in candidates:
            verdict = clause.settle(fields, known)
            if verdict is True:
                return False
            if verdict is not False:
                open_.append(verdict)
        if not open_:
            return True
        literals = text_gate(tuple(open_), verbatim & unknown)
        return False if literals is None else literals

    def needed(self, fact: Fact) -> bool:
        """Whether some rule clause or ``derive`` could use this event (any other fact: yes)."""
        if fact.kind != "event":
            return True
        attributes = fact.attributes
        if attributes.get("counted") is True:
            return False
        settled, open_, gate = self._plan(attributes)
        if settled:
            return True
        if not open_:
            return False
        if gate is not None:
            # every open clause needs one of a few literals in one field: most events hold
            # none, and are settled by one look at that field's text
            value = gate[1](attributes)
            if value is None:
                return False
            folded = fold(value) if type(value) is str else quick_fold(value)
            if folded is not None and not any(n in folded for n in gate[2]):
                return False
        texts: dict[str, Any] = {}
        return any(residual_holds(residual, attributes, texts) for residual in open_)

    def selector(self) -> Selector:
        from hvrescue.diagnose.selector import Selector

        return Selector(self)

    def trim(self, facts: list[Fact]) -> list[Fact]:
        """All logs read: the events no rule needs and outside the report's timeline become
        counted stand-ins, in place (the order and the counts per file stay)."""
        from hvrescue.logs.events import counted

        timed: list[tuple[Any, int, bool]] = []
        for i, fact in enumerate(facts):
            if fact.kind == "event" and not is_counted(fact):
                when = event_time(fact.attributes)
                if when is not None:
                    serious = str(fact.attributes.get("level_name") or "") in SERIOUS_LEVELS
                    timed.append((when, i, serious))
        timed.sort(key=lambda t: t[0])  # stable: as the report sorts them
        important = [t for t in timed if t[2]] or timed
        window = {i for _w, i, _s in important[-self.window :]} if self.window else set()
        out = []
        for i, fact in enumerate(facts):
            dropped = fact.kind == "event" and i not in window and not self.needed(fact)
            if dropped and not is_counted(fact):
                fact = counted(fact.provenance.path, fact.attributes.get("format"))
            out.append(fact)
        return out
