"""Events at host scale: EVTX files read in worker processes give exactly the serial result,
and the rule engine's compiled conditions and fact index answer as the plain matcher does.

The oracles are the serial reader (``jobs=1``, the path every other test exercises) and the
plain ``get_field`` / ``condition_holds`` functions, which stay as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose import match
from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import Clause, Condition, load_rules
from hvrescue.evidence import Budget, Walk
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs import parallel
from hvrescue.logs.collect import collect, facts_from_item
from tests.helpers import CORPUS

REAL = CORPUS / "evtx-real"
SMALL = CORPUS / "evtx"


def _state(found: Any) -> tuple[Any, ...]:
    return (
        [f.as_dict() for f in found.facts],
        [p.as_dict() for p in found.problems],
        [u.as_dict() for u in found.unrecognised],
        [s.as_dict() for s in found.skipped],
        found.items,
        found.inputs(),
    )


@pytest.fixture(scope="module")
def real_serial() -> Any:
    if not REAL.is_dir():
        pytest.skip("../shared/corpus/public/evtx-real is not present")
    return collect([str(REAL)], jobs=1)


def test_parallel_equals_serial_on_the_public_corpus(real_serial: Any) -> None:
    parallel_found = collect([str(REAL)], jobs=2)
    assert len(real_serial.facts) > 20_000  # the corpus was read, not an empty folder
    assert _state(parallel_found) == _state(real_serial)


def test_workers_from_the_first_file_and_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started at once, batches of a few files, a window of one: the order of the
    walk is kept whatever finishes first (text files between the logs stay in place)."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(parallel, "BATCH_FILES", 3)
    monkeypatch.setattr(parallel, "WINDOW_PER_JOB", 1)
    paths = [str(SMALL), str(CORPUS / "evtx" / "PROVENANCE.md")]
    serial = collect(paths, jobs=1)
    assert _state(collect(paths, jobs=3)) == _state(serial)
    assert any(f.attributes.get("format") == "evtx" for f in serial.facts)


def test_entries_come_back_in_walk_order(monkeypatch: pytest.MonkeyPatch) -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    monkeypatch.setattr(parallel, "BATCH_FILES", 2)
    budget = Budget()
    walked = [getattr(e, "path", None) for e in Walk([str(SMALL)], budget)]
    got = parallel.read_entries(Walk([str(SMALL)], budget), budget, facts_from_item, 2, 0)
    assert [getattr(e, "path", None) for e, _found in got] == walked


def test_a_dead_worker_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed under its batch: the batch is read here instead, nothing lost."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    monkeypatch.setattr(parallel, "_worker_read", _die)
    serial = collect([str(SMALL)], jobs=1)
    budget = Budget()
    got = list(parallel.read_entries(Walk([str(SMALL)], budget), budget, facts_from_item, 2, 0))
    facts = [f for _e, found in got if found is not None for f in found.facts]
    assert [f.as_dict() for f in facts] == [f.as_dict() for f in serial.facts]


def _die(files: Any, budget: Any) -> Any:
    import os

    os._exit(9)


# ---------------------------------------------------------------- the engine's matcher
@pytest.mark.slow  # the whole public corpus twice
def test_index_matches_as_the_plain_matcher(real_serial: Any) -> None:
    """Every clause of every loaded rule, on the corpus's events: the fact index and the
    compiled conditions pick exactly the facts the plain functions pick, in order."""
    facts = _with_fixtures(real_serial.facts)
    by_kind: dict[str, list[Fact]] = {}
    for f in facts:
        by_kind.setdefault(f.kind, []).append(f)
    index = match.FactIndex(by_kind)
    clauses = [
        c
        for rule in load_rules()
        for c in (
            *rule.require,
            *rule.support,
            *rule.forbid,
            *rule.require_one_of,
            *(c for group in rule.require_groups for c in group),
        )
        if c.near is None
    ]
    assert len(clauses) > 50
    picked_total = 0
    for clause in clauses:
        want = [f for f in by_kind.get(clause.kind, []) if _plain(f, clause)]
        got = index.matching(clause, {})
        assert [id(f) for f in got] == [id(f) for f in want], clause
        picked_total += len(got)
    assert picked_total > 0  # some clause matched something: the comparison is not vacuous


def _plain(fact: Fact, clause: Any) -> bool:
    attrs = fact.attributes
    if not all(
        match.condition_holds(match.get_field(attrs, k), c) for k, c in clause.where.items()
    ):
        return False
    return not clause.any_of or any(
        all(match.condition_holds(match.get_field(attrs, k), c) for k, c in group.items())
        for group in clause.any_of
    )


@pytest.mark.slow  # the whole public corpus twice
def test_evaluate_as_with_the_plain_matcher(
    real_serial: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole engine on the corpus's events and the fixtures' facts (which do trip rules):
    the same diagnoses, confidences and bound facts as with the plain matcher in its place."""
    facts = _with_fixtures(real_serial.facts)
    fast = _diagnoses(evaluate(load_rules(), facts))
    monkeypatch.setattr(match.FactIndex, "matching", _plain_matching)
    plain = _diagnoses(evaluate(load_rules(), facts))
    assert len(plain) >= 3  # rules did fire: the comparison says something
    assert fast == plain


def _with_fixtures(facts: list[Fact]) -> list[Fact]:
    """The corpus's events (which trip few rules) and the facts of the test fixtures' outputs
    and events (which trip many)."""
    fixtures = Path(__file__).parent / "fixtures"
    out = list(facts)
    for folder in ("incidents", "commands", "pasted_events", "field_commands"):
        if (fixtures / folder).is_dir():
            out += collect([str(fixtures / folder)], jobs=1).facts
    return out


def _plain_matching(self: Any, clause: Any, bindings: dict[str, list[Fact]]) -> list[Fact]:
    return [
        f
        for f in self.by_kind.get(clause.kind, [])
        if _plain(f, clause)
        and (clause.near is None or match._near_holds(f.attributes, clause, bindings))
    ]


def _diagnoses(found: list[Any]) -> list[Any]:
    return [
        (
            d.rule.id,
            d.confidence,
            d.severity,
            {name: [f.as_dict() for f in fs] for name, fs in d.bindings.items()},
        )
        for d in found
    ]


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70_000),
    st.floats(allow_nan=True, allow_infinity=False),
    st.sampled_from(["", " 7 ", "0x10", "7", "Disk", "disk", "VMMS", "ja 日本", "1e3", "nan"]),
    st.text(max_size=8),
    st.lists(st.sampled_from(["a", "Disk", "x", 7]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["Disk", 1]), max_size=2),
)
CONSTANTS = st.one_of(
    st.integers(-5, 70_000),
    st.sampled_from(["7", "disk", " VMMS", "0x10", "", "日本", "1e3", 16, 7.0, True, None]),
)


@st.composite
def conditions(draw: Any) -> Condition:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["eq"] = draw(CONSTANTS)
    if draw(st.booleans()):
        fields["ne"] = draw(CONSTANTS)
    if draw(st.booleans()):
        fields["in_"] = draw(st.lists(CONSTANTS, max_size=4))
    if draw(st.booleans()):
        fields["not_in"] = draw(st.lists(CONSTANTS, max_size=3))
    if draw(st.booleans()):
        fields["regex"] = draw(st.sampled_from(["^disk", "7", "日本", r"\d+"]))
    if draw(st.booleans()):
        fields["contains"] = draw(st.sampled_from(["disk", "a", "7"]))
    for bound in ("gt", "ge", "lt", "le"):
        if draw(st.integers(0, 3)) == 0:
            fields[bound] = draw(st.floats(-10, 100, allow_nan=False))
    if draw(st.integers(0, 3)) == 0:
        fields["exists"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        fields["len_ge"] = draw(st.integers(0, 3))
    return Condition(**fields)


@settings(max_examples=400, deadline=None)
@given(conditions(), st.lists(VALUES, min_size=1, max_size=6))
def test_compiled_condition_agrees(cond: Condition, values: list[Any]) -> None:
    compiled = match.compile_condition(cond)
    for value in values * 2:  # twice: the second answer may come from the memo
        assert compiled(value) == match.condition_holds(value, cond), (cond, value)


@given(
    st.sampled_from(["provider", "data.Name", "data.Name|provider", "a.b.c|event_id"]),
    st.dictionaries(
        st.sampled_from(["provider", "data", "event_id", "a"]),
        st.one_of(
            st.none(),
            st.just(""),
            st.integers(),
            st.dictionaries(
                st.sampled_from(["Name", "b"]), st.one_of(st.just(""), st.text(max_size=3))
            ),
        ),
    ),
)
def test_field_getter_agrees(path: str, attributes: dict[str, Any]) -> None:
    assert match.field_getter(path)(attributes) == match.get_field(attributes, path)


def test_memo_keeps_ints_and_strings_apart() -> None:
    cond = msgspec.convert({"eq": 7}, Condition)
    compiled = match.compile_condition(cond)
    assert compiled(7) and compiled("7") and compiled(7.0)
    assert not compiled("07 ") or match.condition_holds("07 ", cond)
    assert compiled(True) == match.condition_holds(True, cond)


def test_index_keeps_fact_order_across_groups() -> None:
    facts = [
        Fact("event", {"provider": p, "event_id": i}, Provenance("x.evtx", f"record:{i}"))
        for i, p in enumerate(["B", "a", "A", None, "b", "a ", ["odd"], "A"])
    ]
    cond = msgspec.convert({"in": ["a", "b"]}, Condition)
    clause = msgspec.convert({"kind": "event", "where": {"provider": {"in": ["a", "b"]}}}, Clause)
    index = match.FactIndex({"event": facts})
    got = index.matching(clause, {})
    want = [
        f for f in facts if match.condition_holds(match.get_field(f.attributes, "provider"), cond)
    ]
    assert [f.attributes["event_id"] for f in got] == [f.attributes["event_id"] for f in want]
    assert [f.attributes["event_id"] for f in got] == [0, 1, 2, 4, 5, 7]
