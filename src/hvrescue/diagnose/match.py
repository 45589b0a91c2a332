"""Matching a rule's conditions against facts: field lookup by dotted path, the comparison
operators, times, clauses with their bindings. The engine (``engine.py``) decides what a match
means; this module only says whether one holds."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import msgspec

from hvrescue.diagnose.rules import Clause, Condition
from hvrescue.facts.model import Fact


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
