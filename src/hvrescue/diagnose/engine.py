"""Match rules against facts and turn each match into a diagnosis with evidence and steps."""

from __future__ import annotations

import ntpath
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.diagnose import derive_acl
from hvrescue.diagnose.derive import derived_facts
from hvrescue.diagnose.match import FactIndex, get_field
from hvrescue.diagnose.quote import shell_quote
from hvrescue.diagnose.rules import Rule, Step
from hvrescue.diagnose.unwrap import as_text as _text
from hvrescue.facts.model import Fact

SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2, "critical": 3}
MAX_EVIDENCE_PER_BINDING = 20
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\.([a-zA-Z0-9_.|]+)((?::[a-z]+)*)(?:=([^{}]*))?\}")


@dataclass
class Diagnosis:
    rule: Rule
    confidence: float
    bindings: dict[str, list[Fact]] = field(default_factory=dict)
    # A generic rule's diagnosis takes the worst severity among the findings it cites.
    severity_override: str | None = None

    @property
    def severity(self) -> str:
        return self.severity_override or self.rule.severity

    def render_steps(self, lang: str, msg: Any) -> list[dict[str, Any]]:
        return [s for step in self.rule.steps for s in _render_step(step, self.bindings, lang, msg)]

    def as_dict(self, lang: str, msg: Any) -> dict[str, Any]:
        rule = self.rule
        firsts = {name: facts[0] for name, facts in self.bindings.items() if facts}
        return {
            "id": rule.id,
            "title": _fill(getattr(rule.title, lang), firsts),
            "summary": _fill(getattr(rule.summary, lang), firsts),
            "confidence": round(self.confidence, 3),
            "severity": self.severity,
            "layer": rule.layer,
            "evidence": self.evidence(lang, msg),
            "steps": self.render_steps(lang, msg),
            "avoid": [getattr(a, lang) for a in rule.avoid],
            "references": list(rule.references),
        }

    def evidence(self, lang: str = "en", msg: Any = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, facts in self.bindings.items():
            for fact in facts[:MAX_EVIDENCE_PER_BINDING]:
                attrs = {k: v for k, v in fact.attributes.items() if k not in ("binary",)}
                out.append(
                    {
                        "binding": name,
                        "kind": fact.kind,
                        "path": fact.provenance.path,
                        "locator": fact.provenance.locator,
                        "excerpt": explained_excerpt(fact, lang, msg),
                        "attributes": attrs,
                    }
                )
            if len(facts) > MAX_EVIDENCE_PER_BINDING and msg is not None:
                out.append(
                    {
                        "binding": name,
                        "kind": "more",
                        "path": "",
                        "locator": None,
                        "excerpt": msg(
                            "ui.triage.evidence-more", count=len(facts) - MAX_EVIDENCE_PER_BINDING
                        ),
                        "attributes": {"count": len(facts) - MAX_EVIDENCE_PER_BINDING},
                    }
                )
        return out


def finding_params(attributes: dict[str, Any]) -> dict[str, Any]:
    """A finding fact's parameters (stored flat as ``param_<name>``), and its offset."""
    params = {k[6:]: v for k, v in attributes.items() if k.startswith("param_")}
    if attributes.get("offset") is not None:
        params.setdefault("offset", attributes["offset"])
    return params


def explained_excerpt(fact: Fact, lang: str = "en", msg: Any = None) -> str:
    """The excerpt a person reads: a finding or a problem with what its code means (from the
    message catalogue, parameters filled in), a bugcheck with its stop code explained."""
    a = fact.attributes
    code = a.get("code")
    if msg is not None and isinstance(code, str) and fact.kind in ("finding", "evidence_problem"):
        key = str(a.get("message_key") or code)
        if msg.has(key):
            text = msg(key, **finding_params(a))
            error_key = a.get("error_key")  # the engine's own words for why it could not read
            if isinstance(error_key, str) and msg.has(error_key):
                text += ": " + msg(error_key, **finding_params(a))
            return f"[{msg('ui.severity.' + str(a.get('severity')))}] {code}: {text}"
    if fact.kind == "bugcheck":
        name = a.get("stop_name")
        raw = a.get("meaning")
        meaning: dict[str, Any] = raw if isinstance(raw, dict) else {}
        head = f"{a.get('source')}: {a.get('stop_code_hex')}" + (f" {name}" if name else "")
        if a.get("parameters"):
            head += " (" + ", ".join(map(str, a["parameters"])) + ")"
        tail = f" · {a['dump_path']}" if a.get("dump_path") else ""
        return f"{head} — {meaning.get(lang) or meaning.get('en') or ''}{tail}"
    if fact.kind == "restart":
        parts = [str(a.get("source")), str(a.get("time_local") or a.get("time") or "")]
        if a.get("bugcheck_code") is not None:
            parts.append(f"BugcheckCode {a['bugcheck_code']}")
        if a.get("previous_shutdown"):
            parts.append(str(a["previous_shutdown"]))
        return " · ".join(p for p in parts if p)
    return excerpt(fact)


def excerpt(fact: Fact) -> str:
    a = fact.attributes
    if fact.kind == "event":
        head = f"{a.get('provider')} {a.get('event_id')}"
        when = a.get("time_local") or a.get("time") or ""
        message = str(a.get("message") or "").replace("\r", " ").replace("\n", " ")
        return f"{when} {head}: {message[:200]}".strip()
    if fact.kind in ("servicing_log", "linux_log_event"):
        # a log line as the log wrote it: time, level and source, then the message
        when = str(a.get("time") or a.get("time_text") or "")
        head = " ".join(str(a[k]) for k in ("level", "component") if a.get(k))
        message = " ".join(str(a.get("message") or "").split())[:200]
        return " ".join(p for p in (when, f"{head}:" if head else "", message) if p)
    parts = []
    for key, value in a.items():
        if value in (None, "", [], {}) or key in ("properties", "elements", "data", "dacl"):
            continue
        parts.append(f"{key}={_text(value)[:80]}")
        if len(parts) >= 5:
            break
    return " ".join(parts)


def _format(text: str, modifiers: str) -> str:
    for modifier in modifiers.split(":")[1:]:
        if modifier == "digits":
            text = "".join(ch for ch in text if ch.isdigit())
        elif modifier == "upper":
            text = text.upper()
        elif modifier == "lower":
            text = text.lower()
        elif modifier == "name":
            text = ntpath.basename(text.rstrip("/\\")) or text
        elif modifier == "stem":
            text = ntpath.splitext(ntpath.basename(text.rstrip("/\\")))[0] or text
        elif modifier == "dir":
            text = ntpath.dirname(text.rstrip("/\\")) or text
        elif modifier == "quoted":
            text = shell_quote(text)
    return text


def _fill(template: str, facts: dict[str, Fact]) -> str:
    def sub(m: re.Match[str]) -> str:
        fact = facts.get(m.group(1))
        value = None if fact is None else get_field(fact.attributes, m.group(2))
        if value is None or value == [] or value == {}:
            if m.group(4) is not None:  # {binding.field=default}
                return m.group(4)
            # Not in the evidence: say what to fill in, as the documentation would.
            return "<" + m.group(2).split("|", 1)[0] + ">"
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return _format(text, m.group(3) or "")

    return _PLACEHOLDER.sub(sub, template)


def fill_unbound(template: str) -> str:
    """A rule's text out of context (`explain`): each placeholder as the label of what it
    stands for (``<vm_name>``) or its default."""
    return _fill(template, {})


def _render_step(
    step: Step, bindings: dict[str, list[Fact]], lang: str, msg: Any
) -> list[dict[str, Any]]:
    firsts = {name: facts[0] for name, facts in bindings.items() if facts}
    variants: list[dict[str, Fact]] = [firsts]
    if step.foreach:
        seen: set[str] = set()
        variants = []
        for fact in bindings.get(step.foreach, []):
            key = str(
                get_field(fact.attributes, step.foreach_field) if step.foreach_field else id(fact)
            )
            if key in seen:
                continue
            seen.add(key)
            variants.append({**firsts, step.foreach: fact})
    out = []
    for facts in variants:
        out.append(
            {
                "text": _fill(getattr(step.text, lang), facts),
                "command": msg.placeholders(_fill(step.command, facts)),  # <other storage>
                "precondition": step.precondition,
                "precondition_text": msg(f"precondition.{step.precondition}"),
            }
        )
    return out


def _match(rule: Rule, index: FactIndex) -> Diagnosis | None:
    bindings: dict[str, list[Fact]] = {}
    for i, clause in enumerate(rule.require):
        matched = index.matching(clause, bindings)
        if not matched:
            return None
        bindings[clause.bind or f"require{i}"] = matched
    groups = [rule.require_one_of] if rule.require_one_of else []
    groups += rule.require_groups
    for g, group in enumerate(groups):
        any_matched = False
        for i, clause in enumerate(group):
            matched = index.matching(clause, bindings)
            if matched:
                any_matched = True
                name = clause.bind or f"group{g}_{i}"
                bindings[name] = bindings.get(name, []) + matched
        if not any_matched:
            return None
    confidence = rule.confidence
    for i, clause in enumerate(rule.support):
        matched = index.matching(clause, bindings)
        if matched:
            bindings[clause.bind or f"support{i}"] = matched
            confidence += clause.weight
    if any(index.matching(clause, bindings) for clause in rule.forbid):
        return None
    return Diagnosis(rule, min(1.0, confidence), bindings)


def _worst(rule: Rule, facts: list[Fact]) -> str | None:
    levels = [
        str(f.attributes.get("severity"))
        for f in facts
        if f.attributes.get("severity") in SEVERITY_ORDER
    ]
    worst = max(levels, key=SEVERITY_ORDER.__getitem__, default=rule.severity)
    return worst if SEVERITY_ORDER[worst] > SEVERITY_ORDER[rule.severity] else None


def _still_holds(rule: Rule, bindings: dict[str, list[Fact]]) -> bool:
    """Whether what is left of a generic rule's bindings still meets its requirements."""
    if any((c.bind or f"require{i}") not in bindings for i, c in enumerate(rule.require)):
        return False
    groups = [rule.require_one_of] if rule.require_one_of else []
    groups += rule.require_groups
    return all(
        any((c.bind or f"group{g}_{i}") in bindings for i, c in enumerate(group))
        for g, group in enumerate(groups)
    )


def _split(diagnosis: Diagnosis, cited: set[int]) -> list[Diagnosis]:
    """A generic rule keeps only the facts no specific diagnosis cites; ``per`` makes one
    diagnosis for each distinct value (one per damaged file, say)."""
    rule = diagnosis.rule
    bindings = diagnosis.bindings
    if rule.generic:
        kept = {n: [f for f in fs if id(f) not in cited] for n, fs in bindings.items()}
        bindings = {n: fs for n, fs in kept.items() if fs}
        if not _still_holds(rule, bindings):
            return []
    if not rule.per:
        worst = _worst(rule, [f for fs in bindings.values() for f in fs]) if rule.generic else None
        return [Diagnosis(rule, diagnosis.confidence, bindings, worst)]
    name, _, key = rule.per.partition(".")
    groups: dict[str, list[Fact]] = {}
    for fact in bindings.get(name, []):
        groups.setdefault(str(get_field(fact.attributes, key)), []).append(fact)
    out = []
    for group in groups.values():
        worst = _worst(rule, group) if rule.generic else None
        out.append(Diagnosis(rule, diagnosis.confidence, {**bindings, name: group}, worst))
    return out


def evaluate(rules: Iterable[Rule], facts: Iterable[Fact]) -> list[Diagnosis]:
    """Every rule that holds, highest confidence first. Generic rules run last and speak only
    of what no specific diagnosis explains."""
    all_facts = list(facts)
    all_facts += derived_facts(all_facts) + derive_acl.derived_facts(all_facts)
    by_kind: dict[str, list[Fact]] = defaultdict(list)
    for fact in all_facts:
        by_kind[fact.kind].append(fact)
    specific: list[Diagnosis] = []
    generic: list[Diagnosis] = []
    index = FactIndex(by_kind)
    for rule in rules:
        diagnosis = _match(rule, index)
        if diagnosis is not None:
            (generic if rule.generic else specific).append(diagnosis)
    cited = {id(f) for d in specific for fs in d.bindings.values() for f in fs}
    found = [s for d in specific + generic for s in _split(d, cited)]
    if any(not d.rule.fallback and SEVERITY_ORDER[d.severity] >= 1 for d in found):
        found = [d for d in found if not d.rule.fallback]
    found.sort(key=lambda d: (-d.confidence, -SEVERITY_ORDER[d.severity], d.rule.id))
    return found
