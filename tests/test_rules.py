"""Every rule's own fixtures: each positive one must give the rule, each near miss must not."""

from __future__ import annotations

import pytest

from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import RuleError, load_rules, parse_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.report.i18n import Messages

RULES = load_rules()


def facts_of(fixture) -> list[Fact]:
    return [
        Fact(f.kind, dict(f.attributes), Provenance(f"fixture:{fixture.name}", f"item:{i}"))
        for i, f in enumerate(fixture.facts)
    ]


def test_the_knowledge_base_has_the_rules_the_checks_use():
    ids = {r.id for r in RULES}
    assert {
        "vss.writers-missing.eventsystem-shared-host",
        "vss.system-writer-missing.file-permissions",
        "vss.system-writer-missing.service-stopped",
        "vss.system-writer-missing.service-security",
        "vss.system-writer-missing.dotnet-folders",
        "host.hypervisor-not-running.after-update",
        "host.hypervisor-not-running.virtualization-disabled",
        "host.hypervisor-not-running.launch-disabled",
        "guest.stop-0xc000021a.pending-update",
        "guest.stop-0xc000021a.security-driver",
        "vdisk.chain.parent-missing",
        "vdisk.chain.parent-mismatch",
        "vdisk.log-replay-needed",
        "vdisk.merge-interrupted",
        "storage.no-room-to-merge",
        "vm.config-disk-mismatch",
        "vdisk.chain.parent-found-elsewhere",
        "vdisk.checked-clean",
        "guest.bugcheck",
        "guest.unexpected-restart",
        "generic.disk-damage",
        "generic.inventory",
        "generic.evidence-unreadable",
    } <= ids


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_fixtures(rule):
    assert rule.fixtures is not None, f"{rule.id} ships no fixtures"
    assert rule.fixtures.positive and rule.fixtures.negative, f"{rule.id} needs both kinds"
    msg = Messages("en")
    for fixture in rule.fixtures.positive:
        found = {d.rule.id: d for d in evaluate(RULES, facts_of(fixture))}
        assert rule.id in found, f"{rule.id}: positive fixture {fixture.name!r} did not fire"
        diagnosis = found[rule.id].as_dict("en", msg)
        assert diagnosis["evidence"], "a diagnosis cites its evidence"
        for step in diagnosis["steps"]:  # every placeholder was filled from the facts
            assert "{" not in step["command"].replace("{current}", "").replace("{default}", "")
        assert "{" not in diagnosis["title"], diagnosis["title"]
        ja = found[rule.id].as_dict("ja", Messages("ja"))
        assert ja["title"] != diagnosis["title"]
    for fixture in rule.fixtures.negative:
        fired = {d.rule.id for d in evaluate(RULES, facts_of(fixture))}
        assert rule.id not in fired, f"{rule.id}: near miss {fixture.name!r} fired"


def test_steps_name_the_values_from_the_facts():
    rule = next(r for r in RULES if r.id == "host.hypervisor-not-running.after-update")
    [diagnosis] = [d for d in evaluate([rule], facts_of(rule.fixtures.positive[0]))]
    commands = [s["command"] for s in diagnosis.as_dict("en", Messages("en"))["steps"]]
    assert "wusa /uninstall /kb:5008868 /norestart" in commands
    assert "wusa /uninstall /kb:5009624 /norestart" in commands
    assert not any("4012345" in c for c in commands)  # installed months before: not a suspect


BASE = """
id: test.rule
layer: host
severity: error
confidence: 0.5
title: {en: t, ja: t}
summary: {en: s, ja: s}
require:
  - kind: event
    where: {event_id: {eq: 1}}
"""


def test_rule_schema_is_enforced():
    assert parse_rules(BASE, "ok.yaml")[0].id == "test.rule"
    with pytest.raises(RuleError):
        parse_rules(BASE + "unknown_key: 1\n", "x.yaml")
    with pytest.raises(RuleError):
        parse_rules(BASE.replace("{eq: 1}", "{equals: 1}"), "x.yaml")  # unknown operator
    with pytest.raises(RuleError):
        parse_rules(BASE.replace("{eq: 1}", "{regex: '('}"), "x.yaml")
    with pytest.raises(RuleError):
        parse_rules(BASE.replace("confidence: 0.5", "confidence: 1.5"), "x.yaml")
    with pytest.raises(RuleError):
        parse_rules(BASE.replace("layer: host", "layer: cloud"), "x.yaml")
    # Strings are data, never code: a Python expression in a condition is just text.
    rule = parse_rules(BASE.replace("{eq: 1}", "{eq: \"__import__('os').system('x')\"}"), "x")[0]
    fact = Fact("event", {"event_id": 1}, Provenance("p"))
    assert evaluate([rule], [fact]) == []


def test_placeholders_take_formats_for_paths():
    rule = parse_rules(
        BASE.replace("where: {event_id: {eq: 1}}", "bind: e\n    where: {event_id: {eq: 1}}")
        + """steps:
  - text: {en: "{e.path:name} in {e.path:dir}", ja: "{e.path:stem}"}
    command: "hvrescue check {e.path:quoted} && copy {e.path:name:quoted} {e.kb:digits}"
""",
        "x.yaml",
    )[0]
    fact = Fact(
        "event",
        {"event_id": 1, "path": "D:\\VMs\\Virtual Hard Disks\\web 01.vhdx", "kb": "KB50"},
        Provenance("p"),
    )
    [d] = evaluate([rule], [fact])
    en = d.as_dict("en", Messages("en"))["steps"][0]
    assert en["text"] == "web 01.vhdx in D:\\VMs\\Virtual Hard Disks"
    assert en["command"] == (
        'hvrescue check "D:\\VMs\\Virtual Hard Disks\\web 01.vhdx" && copy "web 01.vhdx" 50'
    )
    assert d.as_dict("ja", Messages("ja"))["steps"][0]["text"] == "web 01"
    with pytest.raises(RuleError):
        parse_rules(BASE.replace("title: {en: t", "title: {en: '{x.path:bogus}'"), "x.yaml")


GENERIC = """
id: test.generic
layer: virtual-disk
severity: warning
confidence: 0.5
generic: true
per: f.path
title: {en: "{f.path}", ja: "{f.path}"}
summary: {en: s, ja: s}
require:
  - kind: finding
    bind: f
    where: {severity: {in: [warning, error, critical]}}
"""
SPECIFIC = """
id: test.specific
layer: virtual-disk
severity: error
confidence: 0.9
title: {en: t, ja: t}
summary: {en: s, ja: s}
require:
  - kind: finding
    where: {code: {eq: known}}
"""


def test_a_generic_rule_speaks_only_of_what_no_specific_rule_explains():
    rules = parse_rules(GENERIC, "g.yaml") + parse_rules(SPECIFIC, "s.yaml")
    facts = [
        Fact("finding", {"code": "known", "severity": "critical", "path": "a"}, Provenance("a")),
        Fact("finding", {"code": "odd", "severity": "warning", "path": "a"}, Provenance("a")),
        Fact("finding", {"code": "odd", "severity": "critical", "path": "b"}, Provenance("b")),
        Fact("finding", {"code": "odd", "severity": "error", "path": "b"}, Provenance("b")),
        Fact("finding", {"code": "odd", "severity": "info", "path": "c"}, Provenance("c")),
    ]
    found = evaluate(rules, facts)
    generic = {d.as_dict("en", Messages("en"))["title"]: d for d in found if d.rule.generic}
    assert sorted(generic) == ["a", "b"]  # one per file; c has nothing of warning or worse
    assert [f.attributes["code"] for f in generic["a"].bindings["f"]] == ["odd"]
    assert generic["a"].severity == "warning" and generic["b"].severity == "critical"
    assert found[0].rule.id == "test.specific"
    # Explained entirely by the specific rule: no generic diagnosis at all.
    assert [d.rule.id for d in evaluate(rules, facts[:1])] == ["test.specific"]
