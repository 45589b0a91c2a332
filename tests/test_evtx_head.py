"""Events settled by the head of their record: triage counts most EVTX records without building
them, from a decoding of a few System fields (``evtx_records.head``) and a look for the rules'
literals in the record's data (``data_text``). The oracle is the whole reading of the same
record (``from_json``) and the relevance of the event it makes (``EventRelevance.needed``)."""

from __future__ import annotations

import json
from typing import Any

import evtx
import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.relevance import EventRelevance
from hvrescue.diagnose.rules import load_rules
from hvrescue.logs.evtx_records import (
    EVTX_HEAD,
    HEAD_UNKNOWN,
    HEAD_VERBATIM,
    data_text,
    from_json,
    head_fields,
    head_read,
)
from tests.helpers import CORPUS

RULES = load_rules()


def _records(step: int = 1) -> list[dict[str, Any]]:
    files = (
        sorted((CORPUS / "evtx").rglob("*.evtx"))
        + sorted((CORPUS / "evtx-real").rglob("*.evtx"))[::step]
    )
    out: list[dict[str, Any]] = []
    for f in files:
        try:
            out += [dict(r, path=str(f)) for r in evtx.PyEvtxParser(str(f)).records_json()]
        except (OSError, RuntimeError, ValueError):
            continue
    if len(out) < 5000:
        pytest.skip("../shared/corpus/public is not present")
    return out


def head(record: dict[str, Any]) -> dict[str, Any] | None:
    found = head_read(record)
    return None if found is None else head_fields(found[0])


def _agrees(record: dict[str, Any]) -> None:
    """head() gives None, or exactly what from_json gives for its fields, and from_json gives
    nothing beyond them but HEAD_UNKNOWN."""
    found = head(record)
    if found is None:
        return
    fact = from_json(record, "x")  # raises where the record is damaged: head must say None
    assert {k: fact.attributes.get(k) for k in found} == found
    assert set(fact.attributes) <= set(found) | HEAD_UNKNOWN
    read = head_read(record)
    assert read is not None
    assert read[1] == (fact.attributes["time_local"] or fact.attributes["time"])


def test_head_is_what_the_whole_reading_gives() -> None:
    records = _records(2)
    for record in records:
        _agrees(record)
    assert sum(head(r) is not None for r in records) > 0.9 * len(records)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)
_NODE = (
    _JSON
    | st.fixed_dictionaries({"#attributes": _JSON})
    | st.fixed_dictionaries(
        {
            "#attributes": st.dictionaries(
                st.sampled_from(["Name", "SystemTime", "Qualifiers"]), _JSON
            )
        }
    )
)


@settings(max_examples=400, deadline=None)
@given(
    provider=_NODE,
    event_id=_JSON | st.fixed_dictionaries({"#attributes": _JSON, "#text": _JSON}),
    level=_JSON,
    created=_NODE,
    execution=_NODE,
    security=_NODE,
)
@example(  # the two shapes the whole reading reports damaged after decoding them
    provider=None,
    event_id={"#attributes": "a", "#text": 5},
    level=None,
    created=None,
    execution=None,
    security=None,
)
@example(
    provider=None,
    event_id=5,
    level=None,
    created={"#attributes": {"SystemTime": [1]}},
    execution=None,
    security=None,
)
def test_head_declines_what_only_the_whole_reading_can_say(
    provider: Any, event_id: Any, level: Any, created: Any, execution: Any, security: Any
) -> None:
    """Odd shapes of every System node head() reads or checks: it never accepts a record the
    whole reading reports damaged, and never differs from it."""
    system = {
        "Provider": provider,
        "EventID": event_id,
        "Level": level,
        "TimeCreated": created,
        "Execution": execution,
        "Security": security,
    }
    data = json.dumps({"Event": {"System": system, "EventData": {"A": "b"}}})
    _agrees({"data": data, "event_record_id": 1, "timestamp": "2020-01-01 00:00:00 UTC"})


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)] + list(value)
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def test_data_text_holds_every_data_value() -> None:
    """Every run of plain characters (what a literal can be) of every value and name in the
    event's data and binary is in data_text: no literal in them is missed."""
    checked = 0
    for record in _records(3):
        attributes = from_json(record, "x").attributes
        text = data_text(record)
        for field in HEAD_VERBATIM:
            for leaf in _leaves(attributes[field]):
                if isinstance(leaf, bool) or leaf is None:
                    continue
                if isinstance(leaf, int):
                    assert str(leaf) in text
                    continue
                for run in "".join(
                    c if c.isprintable() and c not in '"\\' else "\0" for c in str(leaf)
                ).split("\0"):
                    assert run in text
                    checked += 1
    assert checked > 10_000


def _relevance() -> EventRelevance:
    relevance = EventRelevance(RULES)
    relevance.serious_seen = True  # only the window of warnings and worse is kept
    return relevance


def _skipped(relevance: EventRelevance, record: dict[str, Any]) -> bool:
    found = head_read(record)
    return found is not None and relevance.selector().take(
        found[0], found[1], record, EVTX_HEAD, "x"
    )


@pytest.mark.parametrize("window", [60, 3, 0])
def test_a_log_read_by_heads_keeps_what_it_keeps_read_whole(window: int) -> None:
    """Each log of the corpora offered record by record, by heads first (what the reader
    does) and whole: the same events kept, in the same order, the same count, and as few
    built as the rules and the windows need."""
    files = (
        sorted((CORPUS / "evtx").rglob("*.evtx"))
        + sorted((CORPUS / "evtx-real").rglob("*.evtx"))[::5]
    )
    by_heads, whole = EventRelevance(RULES, window), EventRelevance(RULES, window)
    settled = 0
    for f in files:
        try:
            records = list(evtx.PyEvtxParser(str(f)).records_json())
        except (OSError, RuntimeError, ValueError):
            continue
        one, other = by_heads.selector(), whole.selector()
        for record in records:
            other.add(from_json(record, str(f)))
            found = head_read(record)
            if found is not None and one.take(found[0], found[1], record, EVTX_HEAD, str(f)):
                settled += 1
            else:
                one.add(from_json(record, str(f)))
        assert one.kept() == other.kept(), f
        assert one.count == other.count
    assert settled > 5000


def test_no_event_a_rule_can_use_is_skipped_on_real_logs() -> None:
    relevance = _relevance()
    skipped = 0
    for record in _records():
        if _skipped(relevance, record):
            skipped += 1
            assert not relevance.needed(from_json(record, record["path"]))
    assert skipped > 10_000  # and most are settled this way


def _with_data(value: str, provider: str = "Microsoft-Windows-Security-Auditing") -> dict[str, Any]:
    data = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": provider}},
                "EventID": 4624,
                "Level": 0,
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-20T01:02:03.123456Z"}},
            },
            "EventData": {"TargetUserName": "admin", "Note": value},
        }
    }
    return {"data": msgspec.json.encode(data).decode(), "event_record_id": 1}


@pytest.mark.parametrize(
    "value",
    [
        "Bugcheck STATUS_SYSTEM_PROCESS_TERMINATED (0xC000021A)",
        "The procedure entry point X could not be located in the DLL",
        "error 0xc03a001d from the virtual disk",
        "AddLegacyDriverFiles: Unable to back up image",
    ],
)
def test_a_rule_literal_in_the_data_keeps_the_event(value: str) -> None:
    """An event of a provider no rule names, with a text in its data that a rule's data clause
    looks for, is offered whole, and is needed."""
    relevance = _relevance()
    record = _with_data(value)
    assert relevance.needed(from_json(record, "x"))
    assert not _skipped(relevance, record)
    # the same event without that text is settled by its head
    assert _skipped(relevance, _with_data("nothing of note"))


def _take(relevance: EventRelevance, record: dict[str, Any]) -> tuple[bool, list[Any]]:
    selector = relevance.selector()
    found = head_read(record)
    assert found is not None
    return selector.take(found[0], found[1], record, EVTX_HEAD, "x"), selector.kept()


def test_events_a_window_shows_are_held_and_built_and_derived_ids_offered_whole() -> None:
    record = _with_data("nothing of note")
    warning = json.loads(record["data"])
    warning["Event"]["System"]["Level"] = 3
    warning_record = {"data": json.dumps(warning), "event_record_id": 1}
    taken, kept = _take(_relevance(), warning_record)
    assert taken and kept == [from_json(warning_record, "x")]  # the window of warnings
    taken, kept = _take(_relevance(), record)
    assert taken and kept == []  # information, once warnings are met: only counted
    # before an event of warning or worse was met, the window of any level holds it
    taken, kept = _take(EventRelevance(RULES), record)
    assert taken and kept == [from_json(record, "x")]
    restart = json.loads(record["data"])
    restart["Event"]["System"]["EventID"] = 6008
    assert not _skipped(_relevance(), {"data": json.dumps(restart), "event_record_id": 1})


def _rule_values(name: str) -> set[Any]:
    """The values the rules' event clauses compare the field ``name`` with."""
    from hvrescue.diagnose.relevance import event_clauses

    found: set[Any] = set()
    for clause in event_clauses(RULES):
        for conditions in [clause.where, *clause.any_of]:
            cond = conditions.get(name)
            if cond is None:
                continue
            for key in ("eq", "in_"):
                value = getattr(cond, key, msgspec.UNSET)
                if value is msgspec.UNSET:
                    continue
                found.update(value if isinstance(value, list) else [value])
    return found


def test_heads_of_one_provider_are_settled_each_on_its_own() -> None:
    """Heads are narrowed by their provider's fields once, then settled one by one: every head
    of a grid of the rules' providers, event ids and levels, offered in a shuffled order, is
    planned exactly as without the narrowing (every clause settled for every head)."""
    import random

    import hvrescue.diagnose.relevance as relevance_module
    from hvrescue.diagnose import clause_tests

    providers = [
        "Microsoft-Windows-Hyper-V-VMMS",
        "Microsoft-Windows-Hyper-V-Hypervisor",
        "Microsoft-Windows-Hyper-V-Worker",
        "Microsoft-Windows-Hyper-V-StorageVSP",
        "Microsoft-Windows-CAPI2",
        "Microsoft-Windows-Kernel-Power",
        "Microsoft-Windows-Security-Auditing",
        "Service Control Manager",
        "VHDMP",
        "VSS",
        "volsnap",
        "Ntfs",
        "srv",
        "EventLog",
    ]
    ids = [*sorted(i for i in _rule_values("event_id") if isinstance(i, int)), 1, 7, 65000]
    assert len(ids) > 20
    heads = [
        (provider, source, event_id, level)
        for provider in providers
        for source in (provider, "Other Source")
        for event_id in ids
        for level in (1, 2, 3, 4)
    ]
    random.Random(18).shuffle(heads)

    def plans() -> list[Any]:
        relevance_module._MEMOS.clear()
        clause_tests._COMPILED.clear()
        relevance = EventRelevance(RULES)
        return [relevance.head_plan(key, EVTX_HEAD) for key in heads]

    narrowed = plans()
    saved = relevance_module.PER_EVENT_FIELDS
    try:  # every field per event: nothing narrowed, every clause settled for every head
        relevance_module.PER_EVENT_FIELDS = frozenset(head_fields(heads[0][:4]))
        whole = plans()
    finally:
        relevance_module.PER_EVENT_FIELDS = saved
        relevance_module._MEMOS.clear()
        clause_tests._COMPILED.clear()
    assert narrowed == whole
    # the grid holds heads the rules need and heads they do not, of the same providers
    assert {verdict is False for _serious, verdict in narrowed} == {True, False}
