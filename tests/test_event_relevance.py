"""Events at host scale: triage keeps in full only the events a rule or the report could use and
counts the rest, and that changes nothing a user sees.

The oracle is triage with every event kept (``run_triage(..., all_events=True)``, the path as it
was): on the public EVTX corpora, serially and in worker processes, the diagnoses (ids, severity,
confidence, every piece of evidence cited), the verdict, the facts summary, the per-input list and
the report's timeline are the same. On the rules' own fixtures, with no timeline window at all,
every diagnosis still holds: no event a clause can match is ever dropped. The literal shortcut
in front of the regular expressions is held against ``re`` itself on adversarial text."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.literals import fold, literals
from hvrescue.diagnose.match import parse_time
from hvrescue.diagnose.relevance import (
    TIMELINE_WINDOW,
    EventRelevance,
    event_time,
    evidence_facts,
    is_counted,
)
from hvrescue.diagnose.rules import load_rules
from hvrescue.diagnose.triage import Triage, run_triage
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import thin
from hvrescue.logs.evtx_reader import read_evtx
from hvrescue.report.i18n import Messages
from hvrescue.report.render import MAX_TIMELINE, build
from tests.helpers import CORPUS

RULES = load_rules()
SMALL = CORPUS / "evtx"
REAL = CORPUS / "evtx-real"


def _diagnoses(triage: Triage) -> list[dict[str, Any]]:
    msg = Messages("en")
    out = []
    for d in triage.diagnoses:
        data = d.as_dict("en", msg)
        out.append(
            {
                "id": data["id"],
                "severity": data["severity"],
                "confidence": data["confidence"],
                "title": data["title"],
                "steps": data["steps"],
                "evidence": data["evidence"],
            }
        )
    return out


def _seen(triage: Triage) -> dict[str, Any]:
    """What a user sees of a triage: the diagnoses with their evidence, the verdict, the counts,
    the per-input list and the report (timeline included), less the time it was made."""
    report = build(triage, "en", [])
    report.pop("created", None)
    return {
        "diagnoses": _diagnoses(triage),
        "verdict": triage.verdict_state(),
        "basis": triage.basis(),
        "summary": triage.facts_summary(),
        "recognition": triage.recognition,
        "report": report,
    }


def _both_ways(paths: list[str], jobs: int) -> tuple[dict[str, Any], dict[str, Any], Triage]:
    everything = run_triage(paths, jobs=jobs, all_events=True)
    relevant = run_triage(paths, jobs=jobs)
    return _seen(everything), _seen(relevant), relevant


def _sample(tmp_path: Path, every: int) -> Path:
    """Every ``every``-th log of the real-world set (by name), copied as one folder."""
    files = sorted(REAL.rglob("*.evtx"))[::every]
    out = tmp_path / "sample"
    out.mkdir()
    for i, f in enumerate(files):
        shutil.copyfile(f, out / f"{i:03d}-{f.name}")
    return out


def test_the_window_is_the_reports() -> None:
    assert TIMELINE_WINDOW == MAX_TIMELINE


@pytest.mark.parametrize("jobs", [1, 2])
def test_triage_sees_the_same_on_the_small_corpus(jobs: int) -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    everything, relevant, triage = _both_ways([str(SMALL)], jobs)
    assert everything["diagnoses"], "the corpus gives diagnoses to compare"
    assert relevant == everything
    # and something was in fact left out: counted stand-ins, no event data held for them
    assert any(is_counted(f) for f in triage.facts)


def test_triage_sees_the_same_on_a_sample_of_real_logs(tmp_path: Path) -> None:
    if not REAL.is_dir():
        pytest.skip("../shared/corpus/public/evtx-real is not present")
    sample = _sample(tmp_path, 12)
    everything, relevant, triage = _both_ways([str(sample)], 1)
    assert everything["summary"].get("event", 0) > 1000
    assert relevant == everything
    kept = sum(1 for f in triage.facts if f.kind == "event" and not is_counted(f))
    assert kept < everything["summary"]["event"] / 2


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("folder", ["pasted_events", "restarts", "signatures", "incidents"])
def test_triage_sees_the_same_on_text_evidence(folder: str) -> None:
    """Exports and pasted events as people post them (XML, CSV, Event Viewer text, reposts):
    their events are kept or counted by the same rules."""
    everything, relevant, _triage = _both_ways([str(FIXTURES / folder)], 1)
    assert everything["summary"].get("event", 0) > 0
    assert relevant == everything


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_triage_sees_the_same_on_the_whole_corpora(jobs: int) -> None:
    if not REAL.is_dir() or not SMALL.is_dir():
        pytest.skip("../shared/corpus/public is not present")
    everything, relevant, _triage = _both_ways([str(SMALL), str(REAL)], jobs)
    assert everything["summary"]["event"] > 20_000
    assert relevant == everything


def _fixture_facts(fixture: Any) -> list[Fact]:
    return [
        Fact(f.kind, dict(f.attributes), Provenance(f"fixture:{fixture.name}", f"item:{i}"))
        for i, f in enumerate(fixture.facts)
    ]


NOISE = [
    Fact(
        "event",
        {
            "provider": "Microsoft-Windows-Security-Auditing",
            "event_id": 4624,
            "level": 0,
            "level_name": "information",
            "format": "evtx",
            "time": "2026-11-20T01:02:03.1234567Z",
            "data": {"TargetUserName": "admin", "LogonType": "3"},
            "message": None,
        },
        Provenance("fixture:noise", "record:1"),
    ),
    Fact(
        "event",
        {"provider": "Service Control Manager", "event_id": 7036, "level": 4, "format": "evtx"},
        Provenance("fixture:noise", "record:2"),
    ),
]


def _ids(diagnoses: list[Any]) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    return [
        (
            d.rule.id,
            d.severity,
            [(n, f.provenance.locator) for n, fs in d.bindings.items() for f in fs],
        )
        for d in diagnoses
    ]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_no_event_a_rule_can_use_is_dropped(rule: Any) -> None:
    """Each fixture of each rule, with two events no rule names, read with no timeline window:
    only what the clauses and derive need stays, and every diagnosis is as with all facts."""
    relevance = EventRelevance(RULES, window=0)
    assert rule.fixtures is not None
    for fixture in [*rule.fixtures.positive, *rule.fixtures.negative]:
        facts = _fixture_facts(fixture) + NOISE
        kept = relevance.trim(thin(facts, relevance))
        assert len(kept) == len(facts)  # each fact kept or counted
        assert sum(map(is_counted, kept)) >= len(NOISE)
        assert _ids(evaluate(RULES, evidence_facts(kept))) == _ids(evaluate(RULES, facts))


def test_relevance_goes_to_worker_processes_whole() -> None:
    relevance = EventRelevance(RULES)
    again = pickle.loads(pickle.dumps(relevance))
    event = NOISE[0]
    assert again.needed(event) is relevance.needed(event) is False
    assert again.clauses == relevance.clauses


def test_a_worker_remembers_the_runs_serious_events_and_only_that_run() -> None:
    """An event of warning or worse met in one batch holds for the next batch of the same run
    read in the same process (the timeline of any level is no longer kept there), never for
    another run."""
    relevance = EventRelevance(RULES)
    batch = pickle.loads(pickle.dumps(relevance))
    assert not batch.serious_seen
    selector = batch.selector()
    selector.add(
        Fact(
            "event",
            {**NOISE[0].attributes, "level": 3, "level_name": "warning"},
            Provenance("x", "record:1"),
        )
    )
    assert batch.serious_seen
    assert pickle.loads(pickle.dumps(relevance)).serious_seen  # the next batch of the run
    assert not pickle.loads(pickle.dumps(EventRelevance(RULES))).serious_seen  # another run


def test_counted_events_keep_their_file_and_format() -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    path = str(sorted(SMALL.rglob("*.evtx"))[0])
    everything, _ = read_evtx(path, path)
    kept, _ = read_evtx(path, path, EventRelevance(RULES, window=0))
    assert len(kept) == len(everything)
    for fact in kept:
        assert fact.provenance.path == path and fact.attributes["format"] == "evtx"
    real = [f for f in kept if not is_counted(f)]
    assert all(f in everything for f in real)  # the kept events are the records, unchanged


TIMES = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "7Z"),
    st.text(alphabet="0123456789-T:.Z +", max_size=30),
)


@given(TIMES)
def test_event_time_reads_as_the_report_does(text: str) -> None:
    assert event_time({"time": text}) == parse_time(text)


RULE_PATTERNS = sorted(
    {
        pattern
        for rule in RULES
        for clause in [
            *rule.require,
            *rule.require_one_of,
            *(c for g in rule.require_groups for c in g),
            *rule.support,
            *rule.forbid,
        ]
        for conds in [clause.where, *clause.any_of]
        for cond in conds.values()
        for pattern in (cond.regex, cond.not_regex)
        if isinstance(pattern, str)
    }
)
# Letters re matches to others under IGNORECASE beyond plain lower case (dotless i, long s,
# Kelvin sign, the Greek sigmas, dotted capital I), and what the patterns are made of.
TRICKY = "iIıİsSſkKKσςΣµμ0123456789xXcCaAeEfFnNoOtTpPrRdD _-.()\\\"'アクセスエラー"


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(RULE_PATTERNS),
    text=st.text(alphabet=TRICKY, max_size=60),
    data=st.data(),
)
def test_the_literal_shortcut_never_hides_a_match(pattern: str, text: str, data: Any) -> None:
    needs = literals(pattern)
    if needs is None:
        return
    # text around a literal the pattern needs, in any case, so that matches do happen
    literal = data.draw(st.sampled_from(needs))
    mixed = "".join(data.draw(st.sampled_from([c, c.upper()])) for c in literal)
    text = text + mixed + text[::-1]
    if re.search(pattern, text, re.IGNORECASE):
        assert any(n in fold(text) for n in needs), (pattern, text)


@given(st.text(alphabet=TRICKY, min_size=1, max_size=8), st.text(alphabet=TRICKY, max_size=40))
def test_fold_is_a_necessary_condition_for_ignorecase(needle: str, text: str) -> None:
    if re.search(re.escape(needle), text, re.IGNORECASE):
        assert fold(needle) in fold(text)


def test_rule_patterns_have_literals_where_they_should() -> None:
    assert literals(r"0x0*c000021a|\bc000021a\b|STATUS_SYSTEM_PROCESS_TERMINATED") == (
        "c000021a",
        "status_system_process_terminated",
    )
    assert literals("a|bc") is None  # too short to be worth a look
    assert literals("(?i)AddLegacyDriverFiles") == ("addlegacydriverfiles",)
    assert sum(literals(p) is not None for p in RULE_PATTERNS) > len(RULE_PATTERNS) / 2


def test_records_decoded_into_structs_are_the_plain_reading() -> None:
    """The typed decoding of a record (evtx_records.from_json) gives exactly what the plain
    dicts give (_from_dicts), on every record of the public corpora and on odd shapes."""
    import evtx

    from hvrescue.logs.evtx_records import _from_dicts, from_json

    files = sorted(SMALL.rglob("*.evtx")) + sorted(REAL.rglob("*.evtx"))[::3]
    if not files:
        pytest.skip("../shared/corpus/public is not present")
    count = 0
    for f in files:
        try:
            records = list(evtx.PyEvtxParser(str(f)).records_json())
        except (OSError, RuntimeError, ValueError):
            continue
        for record in records:
            assert from_json(record, str(f)) == _from_dicts(record, str(f))
            count += 1
    assert count > 5000
    odd = [
        '{"Event": {"System": {"Provider": "x", "EventID": "7"}}}',
        '{"Event": {"System": {"Provider": {"#attributes": {}}, "Level": "2"}}}',
        '{"Event": {"System": {"TimeCreated": {"#attributes": null}}, "EventData": null}}',
        '{"Event": null}',
        '{"Event": {"System": {}, "UserData": {"X": {"#attributes": {}, "A": 1}}}}',
        '{"Event": {"System": {"Security": {"#attributes": {"UserID": "S-1-5-18"}}}}}',
    ]
    for data in odd:
        record = {"data": data, "event_record_id": 1, "timestamp": "2020-01-01 00:00:00 UTC"}
        assert from_json(record, "x") == _from_dicts(record, "x")
    for data in ['{"Event": {"System": {"Provider": {"#attributes": "x"}}}}', "[1]", "{"]:
        record = {"data": data, "event_record_id": 1}
        with pytest.raises((ValueError, AttributeError)):
            _from_dicts(record, "x")
        with pytest.raises((ValueError, AttributeError)):
            from_json(record, "x")
