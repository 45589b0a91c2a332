"""Match rules against facts and turn each match into a diagnosis with evidence and steps."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hvrescue.diagnose.rules import Clause, Condition, Rule, Step
from hvrescue.facts.model import Fact

SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2, "critical": 3}
MAX_EVIDENCE_PER_BINDING = 20
_PLACEHOLDER = re.compile(
    r"\{([a-z_]+)\.([a-zA-Z0-9_.|]+)(?::(digits|upper|lower))?(?:=([^{}]*))?\}"
)


def get_field(attributes: dict[str, Any], path: str) -> Any:
    """``a.b.c`` inside nested dicts; ``a|b`` takes the first that has a value."""
    for alternative in path.split("|"):
        cur: Any = attributes
        for part in alternative.split("."):
            if not isinstance(cur, dict):
                cur = None
                break
            cur = cur.get(part)
        if cur not in (None, ""):
            return cur
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(int(value, 0)) if value.lower().startswith("0x") else float(value)
        except ValueError:
            return None
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    return bool(a == b)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def condition_holds(value: Any, cond: Condition) -> bool:
    unset = msgspec.UNSET
    if cond.exists is not unset and (value not in (None, "", [], {})) != cond.exists:
        return False
    if value is None:
        # A missing value fails every positive test and passes every negative one.
        positive = [
            cond.eq,
            cond.in_,
            cond.regex,
            cond.contains,
            cond.gt,
            cond.ge,
            cond.lt,
            cond.le,
            cond.len_gt,
            cond.len_ge,
        ]
        return all(p is unset for p in positive)
    if cond.eq is not unset and not _same(value, cond.eq):
        return False
    if cond.ne is not unset and _same(value, cond.ne):
        return False
    if isinstance(cond.in_, list) and not any(_same(value, c) for c in cond.in_):
        return False
    if isinstance(cond.not_in, list) and any(_same(value, c) for c in cond.not_in):
        return False
    if isinstance(cond.regex, str) and not re.search(cond.regex, _text(value), re.IGNORECASE):
        return False
    if isinstance(cond.not_regex, str) and re.search(cond.not_regex, _text(value), re.IGNORECASE):
        return False
    for needle, want in ((cond.contains, True), (cond.not_contains, False)):
        if isinstance(needle, str):
            if isinstance(value, list):
                found = any(isinstance(v, str) and v.casefold() == needle.casefold() for v in value)
            else:
                found = needle.casefold() in _text(value).casefold()
            if found != want:
                return False
    number = _number(value)
    for bound, op in ((cond.gt, ">"), (cond.ge, ">="), (cond.lt, "<"), (cond.le, "<=")):
        if isinstance(bound, (int, float)) and (number is None or not _compare(number, op, bound)):
            return False
    sized = isinstance(value, (list, str, dict))
    for lbound, op in ((cond.len_gt, ">"), (cond.len_ge, ">=")):
        if isinstance(lbound, int) and (not sized or not _compare(len(value), op, lbound)):
            return False
    return True


def _compare(a: float, op: str, b: float) -> bool:
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    return a <= b


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Windows writes 7 fractional digits
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=None)


def _conditions_hold(attributes: dict[str, Any], conds: dict[str, Condition]) -> bool:
    return all(condition_holds(get_field(attributes, k), c) for k, c in conds.items())


def clause_matches(fact: Fact, clause: Clause, bindings: dict[str, list[Fact]]) -> bool:
    attrs = fact.attributes
    if not _conditions_hold(attrs, clause.where):
        return False
    if clause.any_of and not any(_conditions_hold(attrs, c) for c in clause.any_of):
        return False
    if clause.near is not None:
        mine = parse_time(get_field(attrs, clause.near.field))
        others = [
            t
            for t in (
                parse_time(get_field(f.attributes, clause.near.other_field))
                for f in bindings.get(clause.near.binding, [])
            )
            if t is not None
        ]
        if mine is None or not others:
            return False
        first = min(others)
        lo = first - dt.timedelta(days=clause.near.days_before)
        hi = first + dt.timedelta(days=clause.near.days_after)
        if not lo <= mine <= hi:
            return False
    return True


@dataclass
class Diagnosis:
    rule: Rule
    confidence: float
    bindings: dict[str, list[Fact]] = field(default_factory=dict)

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
            "severity": rule.severity,
            "layer": rule.layer,
            "evidence": self.evidence(),
            "steps": self.render_steps(lang, msg),
            "avoid": [getattr(a, lang) for a in rule.avoid],
            "references": list(rule.references),
        }

    def evidence(self) -> list[dict[str, Any]]:
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
                        "excerpt": excerpt(fact),
                        "attributes": attrs,
                    }
                )
        return out


def excerpt(fact: Fact) -> str:
    a = fact.attributes
    if fact.kind == "event":
        head = f"{a.get('provider')} {a.get('event_id')}"
        when = a.get("time_local") or a.get("time") or ""
        message = str(a.get("message") or "").replace("\r", " ").replace("\n", " ")
        return f"{when} {head}: {message[:200]}".strip()
    parts = []
    for key, value in a.items():
        if value in (None, "", [], {}) or key in ("properties", "elements", "data", "dacl"):
            continue
        parts.append(f"{key}={_text(value)[:80]}")
        if len(parts) >= 5:
            break
    return " ".join(parts)


def _fill(template: str, facts: dict[str, Fact]) -> str:
    def sub(m: re.Match[str]) -> str:
        fact = facts.get(m.group(1))
        value = None if fact is None else get_field(fact.attributes, m.group(2))
        if value is None:
            if m.group(4) is not None:  # {binding.field=default}
                return m.group(4)
            # Not in the evidence: say what to fill in, as the documentation would.
            return "<" + m.group(2).split("|", 1)[0] + ">"
        text = str(value)
        if m.group(3) == "digits":
            text = "".join(ch for ch in text if ch.isdigit())
        elif m.group(3) == "upper":
            text = text.upper()
        elif m.group(3) == "lower":
            text = text.lower()
        return text

    return _PLACEHOLDER.sub(sub, template)


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
                "command": _fill(step.command, facts),
                "precondition": step.precondition,
                "precondition_text": msg(f"precondition.{step.precondition}"),
            }
        )
    return out


def evaluate(rules: Iterable[Rule], facts: Iterable[Fact]) -> list[Diagnosis]:
    by_kind: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_kind[fact.kind].append(fact)
    found: list[Diagnosis] = []
    for rule in rules:
        bindings: dict[str, list[Fact]] = {}
        ok = True
        for i, clause in enumerate(rule.require):
            matched = [
                f for f in by_kind.get(clause.kind, []) if clause_matches(f, clause, bindings)
            ]
            if not matched:
                ok = False
                break
            bindings[clause.bind or f"require{i}"] = matched
        if not ok:
            continue
        groups = [rule.require_one_of] if rule.require_one_of else []
        groups += rule.require_groups
        for g, group in enumerate(groups):
            any_matched = False
            for i, clause in enumerate(group):
                matched = [
                    f for f in by_kind.get(clause.kind, []) if clause_matches(f, clause, bindings)
                ]
                if matched:
                    any_matched = True
                    name = clause.bind or f"group{g}_{i}"
                    bindings[name] = bindings.get(name, []) + matched
            if not any_matched:
                ok = False
                break
        if not ok:
            continue
        confidence = rule.confidence
        for i, clause in enumerate(rule.support):
            matched = [
                f for f in by_kind.get(clause.kind, []) if clause_matches(f, clause, bindings)
            ]
            if matched:
                bindings[clause.bind or f"support{i}"] = matched
                confidence += clause.weight
        if any(
            clause_matches(f, clause, bindings)
            for clause in rule.forbid
            for f in by_kind.get(clause.kind, [])
        ):
            continue
        found.append(Diagnosis(rule, min(1.0, confidence), bindings))
    found.sort(key=lambda d: (-d.confidence, -SEVERITY_ORDER[d.rule.severity], d.rule.id))
    return found
