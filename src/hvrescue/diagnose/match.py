"""Matching a rule's conditions against facts: field lookup by dotted path, the comparison
operators, times, clauses with their bindings. The engine (``engine.py``) decides what a match
means; this module only says whether one holds."""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from typing import Any

import msgspec

from hvrescue.diagnose.rules import Clause, Condition
from hvrescue.diagnose.unwrap import as_text as _text
from hvrescue.diagnose.unwrap import unwrapped
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
    if isinstance(cond.regex, str) and not re.search(
        cond.regex, unwrapped(_text(value)), re.IGNORECASE
    ):
        return False
    if isinstance(cond.not_regex, str) and re.search(
        cond.not_regex, unwrapped(_text(value)), re.IGNORECASE
    ):
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
    return _OPS[op](a, b)


_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge}
_OPS.update({"<": operator.lt, "<=": operator.le})


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


# ---------------------------------------------------------------- compiled conditions
# The engine tests every clause against every fact of its kind (a host's logs: tens of
# thousands of events times a hundred clauses), so each condition set is turned once into
# (field getter, test) pairs with the same results as get_field and condition_holds: the
# paths split, the regular expressions compiled, the constants case-folded ahead.
_Test = Callable[[Any], bool]
_Getter = Callable[[dict[str, Any]], Any]
_COMPILED: dict[int, tuple[dict[str, Condition], tuple[tuple[_Getter, _Test], ...]]] = {}
_MAX_COMPILED = 4096
_MAX_MEMO = 4096


def _compiled(conds: dict[str, Condition]) -> tuple[tuple[_Getter, _Test], ...]:
    entry = _COMPILED.get(id(conds))
    if entry is not None and entry[0] is conds:  # the dict is held here, so its id is its own
        return entry[1]
    if len(_COMPILED) >= _MAX_COMPILED:
        _COMPILED.clear()
    pairs = tuple((field_getter(k), compile_condition(c)) for k, c in conds.items())
    _COMPILED[id(conds)] = (conds, pairs)
    return pairs


def field_getter(path: str) -> _Getter:
    """``get_field(attributes, path)`` as a function of the attributes alone."""
    alternatives = tuple(tuple(a.split(".")) for a in path.split("|"))
    if len(alternatives) == 1 and len(alternatives[0]) == 1:
        key = alternatives[0][0]

        def one(attributes: dict[str, Any]) -> Any:
            if not isinstance(attributes, dict):
                return None
            value = attributes.get(key)
            return None if value is None or value == "" else value

        return one

    def nested(attributes: dict[str, Any]) -> Any:
        for parts in alternatives:
            cur: Any = attributes
            for part in parts:
                if not isinstance(cur, dict):
                    cur = None
                    break
                cur = cur.get(part)
            if cur not in (None, ""):
                return cur
        return None

    return nested


def _same_as(b: Any) -> _Test:
    """``lambda a: _same(a, b)`` with ``b``'s side worked out once."""
    nb = _number(b)
    if isinstance(b, str):
        key = b.strip().casefold()

        def same_text(a: Any) -> bool:
            if isinstance(a, str):
                return a.strip().casefold() == key
            if nb is not None:
                na = _number(a)
                if na is not None:
                    return na == nb
            return bool(a == b)

        return same_text

    def same_other(a: Any) -> bool:
        if nb is not None:
            na = _number(a)
            if na is not None:
                return na == nb
        return bool(a == b)

    return same_other


def _member_of(values: list[Any]) -> _Test:
    """``lambda a: any(_same(a, c) for c in values)``, by set lookup where it is the same."""
    tests = [_same_as(c) for c in values]

    def slow(a: Any) -> bool:
        return any(t(a) for t in tests)

    if all(isinstance(c, str) for c in values):
        keys = {c.strip().casefold() for c in values}

        def texts(a: Any) -> bool:
            return a.strip().casefold() in keys if isinstance(a, str) else slow(a)

        return texts
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in values):
        numbers = {float(c) for c in values}

        def numeric(a: Any) -> bool:
            na = _number(a)
            return na in numbers if na is not None else slow(a)

        return numeric
    return slow


def compile_condition(cond: Condition) -> _Test:
    """``lambda value: condition_holds(value, cond)``, worked out once: the tests (patterns
    compiled, constants case-folded) on the first value that reaches them, as most conditions
    never see one. A bad pattern is refused when the rules are loaded (``rules._validate``)."""
    unset = msgspec.UNSET
    exists = cond.exists
    positive = (cond.eq, cond.in_, cond.regex, cond.contains, cond.gt, cond.ge, cond.lt, cond.le)
    if_missing = all(p is unset for p in (*positive, cond.len_gt, cond.len_ge))
    check_exists = exists is not unset
    made: list[tuple[_Test, ...]] = []
    # The values a rule looks at repeat (providers, event ids, channels): a string's or an
    # int's answer is kept (the tests are pure), up to a bound.
    memo: dict[Any, bool] = {}

    def work(value: Any) -> bool:
        if check_exists and (value not in (None, "", [], {})) != exists:
            return False
        if value is None:
            return if_missing
        if not made:
            made.append(_tests(cond))
        return all(test(value) for test in made[0])

    def holds(value: Any) -> bool:
        kind = type(value)
        if kind is not str and kind is not int:
            return work(value)
        known = memo.get(value)
        if known is None:
            known = work(value)
            if len(memo) < _MAX_MEMO:
                memo[value] = known
        return known

    return holds


def _tests(cond: Condition) -> tuple[_Test, ...]:
    """The tests of ``cond`` on a value that is not None, all of which must hold."""
    unset = msgspec.UNSET
    tests: list[_Test] = []
    if cond.eq is not unset:
        tests.append(_same_as(cond.eq))
    if cond.ne is not unset:
        ne = _same_as(cond.ne)
        tests.append(lambda v: not ne(v))
    if isinstance(cond.in_, list):
        tests.append(_member_of(cond.in_))
    if isinstance(cond.not_in, list):
        not_in = _member_of(cond.not_in)
        tests.append(lambda v: not not_in(v))
    if isinstance(cond.regex, str):
        search = re.compile(cond.regex, re.IGNORECASE).search
        tests.append(lambda v: search(unwrapped(_text(v))) is not None)
    if isinstance(cond.not_regex, str):
        avoid = re.compile(cond.not_regex, re.IGNORECASE).search
        tests.append(lambda v: avoid(unwrapped(_text(v))) is None)
    for needle, want in ((cond.contains, True), (cond.not_contains, False)):
        if isinstance(needle, str):
            tests.append(_contains(needle.casefold(), want))
    for bound, op in ((cond.gt, ">"), (cond.ge, ">="), (cond.lt, "<"), (cond.le, "<=")):
        if isinstance(bound, (int, float)):
            tests.append(_bounded(op, bound))
    for lbound, op in ((cond.len_gt, ">"), (cond.len_ge, ">=")):
        if isinstance(lbound, int):
            tests.append(_sized(op, lbound))
    return tuple(tests)


def _contains(needle: str, want: bool) -> _Test:
    def test(value: Any) -> bool:
        if isinstance(value, list):
            found = any(isinstance(v, str) and v.casefold() == needle for v in value)
        else:
            found = needle in _text(value).casefold()
        return found == want

    return test


def _bounded(op: str, bound: float) -> _Test:
    def test(value: Any) -> bool:
        number = _number(value)
        return number is not None and _compare(number, op, bound)

    return test


def _sized(op: str, bound: int) -> _Test:
    def test(value: Any) -> bool:
        return isinstance(value, (list, str, dict)) and _compare(len(value), op, bound)

    return test


def clause_matches(fact: Fact, clause: Clause, bindings: dict[str, list[Fact]]) -> bool:
    return clause_matcher(clause)(fact, bindings)


_Matcher = Callable[[Fact, dict[str, list[Fact]]], bool]


def clause_matcher(clause: Clause) -> _Matcher:
    """``lambda fact, bindings: clause_matches(fact, clause, bindings)``, the conditions
    compiled once (the engine asks this once per clause, then once per fact)."""
    where = _compiled(clause.where)
    any_of = tuple(_compiled(c) for c in clause.any_of)
    near = clause.near is not None

    def matches(fact: Fact, bindings: dict[str, list[Fact]]) -> bool:
        attrs = fact.attributes
        for get, holds in where:
            if not holds(get(attrs)):
                return False
        if any_of and not any(all(h(g(attrs)) for g, h in pairs) for pairs in any_of):
            return False
        return not near or _near_holds(attrs, clause, bindings)

    return matches


def _near_holds(attrs: dict[str, Any], clause: Clause, bindings: dict[str, list[Fact]]) -> bool:
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


class FactIndex:
    """The facts by kind, and for a clause the facts it matches, in their order. The first
    condition of a clause on a plain field is answered once per distinct value of that field
    (the facts grouped by it on first use) instead of once per fact; the other conditions are
    then tested on the facts that pass it."""

    def __init__(self, by_kind: dict[str, list[Fact]]) -> None:
        self.by_kind = by_kind
        self._groups: dict[tuple[str, str], tuple[dict[Any, list[int]], list[int]]] = {}

    def _grouped(self, kind: str, key: str) -> tuple[dict[Any, list[int]], list[int]]:
        found = self._groups.get((kind, key))
        if found is None:
            get = field_getter(key)
            groups: dict[Any, list[int]] = {}
            odd: list[int] = []  # values that are no string, int or None: tested one by one
            for i, fact in enumerate(self.by_kind.get(kind, [])):
                value = get(fact.attributes)
                kind_of = type(value)
                if value is None or kind_of is str or kind_of is int:
                    groups.setdefault(value, []).append(i)
                else:
                    odd.append(i)
            found = self._groups[(kind, key)] = (groups, odd)
        return found

    def matching(self, clause: Clause, bindings: dict[str, list[Fact]]) -> list[Fact]:
        facts = self.by_kind.get(clause.kind)
        if not facts:  # nothing of its kind: no condition to work out
            return []
        match = clause_matcher(clause)
        first = next(iter(clause.where), None)
        if first is None or "|" in first or "." in first:
            return [f for f in facts if match(f, bindings)]
        get, holds = _compiled(clause.where)[0]
        groups, odd = self._grouped(clause.kind, first)
        chosen: list[int] = []
        for value, members in groups.items():
            if holds(value):
                chosen += members
        chosen += [i for i in odd if holds(get(facts[i].attributes))]
        chosen.sort()
        return [facts[i] for i in chosen if match(facts[i], bindings)]
