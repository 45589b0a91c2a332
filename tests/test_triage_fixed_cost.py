"""Triage's fixed cost (issue 18): what a triage loads and works out follows what the evidence
holds. A folder of EVTX logs never loads the text parsers, one EVTX file never the disk engine,
``--json`` never rich; the engine works out a rule's conditions only for facts of their kind;
and a rule with a bad pattern is still refused when the rules are read, as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvrescue.diagnose import match
from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import Clause, Rule, RuleError, load_rules, parse_rules
from hvrescue.facts.model import Fact, Provenance
from tests.helpers import CORPUS
from tests.test_rules import BASE

EVTX = CORPUS / "evtx" / "DeepBlueCLI" / "disablestop-eventlog.evtx"
VSSADMIN = Path(__file__).parent / "fixtures" / "commands" / "vssadmin_writers_empty_en.txt"
# The modules of the text readers: every command-output parser, pasted events, signals.
TEXT_READERS = (
    "hvrescue.logs.collect_text",
    "hvrescue.logs.commands.vssadmin",
    "hvrescue.logs.commands.systeminfo",
    "hvrescue.logs.signals",
    "hvrescue.logs.signatures",
    "hvrescue.logs.text_events",
    "hvrescue.logs.repost",
    "hvrescue.logs.dialog",
)
RUN_LISTING_MODULES = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules))))\n"
    "sys.argv = ['hvrescue', *sys.argv[1:]]\n"
    "from hvrescue.cli.main import main\n"
    "main()\n"
)


def triage_json(evidence: Path, out: Path) -> tuple[dict, set[str]]:
    """``hvrescue triage --json --jobs 1 EVIDENCE --out OUT`` in a child: its report and the
    modules it had loaded when it exited."""
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="")
    env.pop("HVRESCUE_LANG", None)
    args = ["triage", "--json", "--jobs", "1", str(evidence), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_LISTING_MODULES, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    loaded = set(proc.stderr.rsplit("MODULES ", 1)[-1].split())
    return json.loads(proc.stdout), loaded


@pytest.fixture
def evtx_file() -> Path:
    if not EVTX.is_file():
        pytest.skip("../shared/corpus is not present")
    return EVTX


def test_triage_of_an_evtx_folder_loads_no_text_reader(tmp_path, evtx_file):
    folder = tmp_path / "winevt"
    folder.mkdir()
    shutil.copy(evtx_file, folder / "System.evtx")
    report, loaded = triage_json(folder, tmp_path / "report")
    assert report["facts_summary"].get("event", 0) > 0  # the log was read
    assert not loaded & set(TEXT_READERS), sorted(loaded & set(TEXT_READERS))
    assert not {m for m in loaded if m == "rich" or m.startswith("rich.")}  # --json: no console
    assert "yaml" not in loaded  # the rules came from their snapshot


def test_triage_of_a_text_output_loads_the_text_readers_and_reads_it(tmp_path, evtx_file):
    """The same command given a command output beside the log: the readers load and read it
    (what the test above finds missing is missing because it was not needed)."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copy(evtx_file, folder / "System.evtx")
    shutil.copy(VSSADMIN, folder / "vssadmin.txt")
    report, loaded = triage_json(folder, tmp_path / "report")
    assert {"hvrescue.logs.collect_text", "hvrescue.logs.commands.vssadmin"} <= loaded
    assert report["facts_summary"].get("vss_writer_list") == 1
    assert report["facts_summary"].get("event", 0) > 0


def test_triage_of_one_evtx_file_loads_no_disk_engine(tmp_path, evtx_file):
    report, loaded = triage_json(evtx_file, tmp_path / "report")
    assert report["facts_summary"].get("event", 0) > 0
    assert not {m for m in loaded if m.startswith("hvrescue.vdisk")}


def test_triage_of_a_disk_still_checks_it(tmp_path):
    """The disk engine is loaded where a disk is given (a disk named like one, holding none)."""
    folder = tmp_path / "vm"
    folder.mkdir()
    (folder / "disk.vhdx").write_bytes(b"not a disk" * 100)
    report, loaded = triage_json(folder, tmp_path / "report")
    assert "hvrescue.vdisk.detect" in loaded
    assert report["facts_summary"].get("disk_check") == 1


# ---------------------------------------------------------------- the engine, lazily
def _counting_tests(monkeypatch) -> list[object]:
    """Each condition whose tests the engine works out, in order."""
    seen: list[object] = []
    real = match._tests

    def counting(cond):
        seen.append(cond)
        return real(cond)

    monkeypatch.setattr(match, "_tests", counting)
    # the conditions worked out before (the rules are loaded once per process): none
    monkeypatch.setattr(match, "_COMPILED", {})
    return seen


def _clauses(rule: Rule) -> list[Clause]:
    grouped = [c for group in rule.require_groups for c in group]
    return [*rule.require, *rule.require_one_of, *grouped, *rule.support, *rule.forbid]


def test_engine_works_out_no_condition_without_facts(monkeypatch):
    seen = _counting_tests(monkeypatch)
    assert evaluate(load_rules(), []) == []
    assert seen == []


def test_engine_works_out_only_conditions_of_the_kinds_present(monkeypatch):
    rules = load_rules()
    clauses = [c for r in rules for c in _clauses(r)]
    of_kind: dict[str, set[int]] = {}
    for c in clauses:
        for conds in [c.where, *c.any_of]:
            of_kind.setdefault(c.kind, set()).update(id(v) for v in conds.values())
    seen = _counting_tests(monkeypatch)
    facts = [
        Fact("symptom", {"name": "backup-fails"}, Provenance("command line", "--symptom")),
        Fact("symptom", {"name": "merge-stuck"}, Provenance("command line", "--symptom")),
    ]
    found = evaluate(rules, facts)
    assert seen, "the symptom rules' conditions were worked out"
    assert {id(c) for c in seen} <= of_kind["symptom"]
    assert [d.rule.id for d in found] == ["symptom.backup-fails", "symptom.merge-stuck"]


def test_a_regex_condition_worked_out_on_first_use_agrees_with_the_plain_test():
    cond = parse_rules(BASE.replace("{eq: 1}", "{regex: '^vss.*writer$'}"), "x.yaml")[0]
    holds = match.compile_condition(cond.require[0].where["event_id"])
    plain = cond.require[0].where["event_id"]
    for value in ["VSS System Writer", "vss writer", "writer", "", 7, None, ["vss writer"]]:
        assert holds(value) == match.condition_holds(value, plain), value


# ---------------------------------------------------------------- bad patterns, refused
# BASE: one valid rule (tests/test_rules.py's), changed per case


@pytest.mark.parametrize(
    "where",
    [
        "{event_id: {regex: '('}}",
        "{event_id: {not_regex: '[a-'}}",
        "{event_id: {eq: 1}}\n    any_of: [{provider: {regex: '*x'}}]",
    ],
)
def test_a_rule_with_a_bad_pattern_is_refused_when_read(where):
    text = BASE.replace("{event_id: {eq: 1}}", where)
    with pytest.raises(RuleError, match="bad regex"):
        parse_rules(text, "bad.yaml")
    # the same rule with a good pattern is read
    good = text.replace("'('", "'x'").replace("'[a-'", "'[a-z]'").replace("'*x'", "'x*'")
    assert parse_rules(good, "good.yaml")[0].id == "test.rule"


def test_the_shipped_rules_hold_no_bad_pattern():
    """What the engine now compiles only on first use was compiled when the rules were made:
    every pattern of the rule base (snapshot or YAML) compiles."""
    import re

    patterns = [
        p
        for r in load_rules()
        for c in _clauses(r)
        for conds in [c.where, *c.any_of]
        for cond in conds.values()
        for p in (cond.regex, cond.not_regex)
        if isinstance(p, str)
    ]
    assert len(patterns) > 50
    for p in patterns:
        re.compile(p, re.IGNORECASE)
