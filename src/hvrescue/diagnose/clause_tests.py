"""An event rule clause compiled for deciding relevance (``relevance.py``): each condition a test
on an event's attributes, with a per-fact cache of the JSON text and folded text of the fields
that regular expressions search; what is left of a clause once the fields known for an event are
tested (``CompiledClause.settle``); and, when every clause left needs one of a few literals in one
field, the gate that settles most events with one look at that field."""

from __future__ import annotations

import re
import weakref
from typing import Any

import msgspec

from hvrescue.diagnose.literals import fold, inside_a_token, literals, quick_fold
from hvrescue.diagnose.match import compile_condition, field_getter
from hvrescue.diagnose.rules import Clause, Condition
from hvrescue.diagnose.unwrap import as_text as _text
from hvrescue.diagnose.unwrap import unwrapped

_Test = Any  # Callable[[dict[str, Any], dict[str, Any]], bool]
# A field a test read that the event does not have (in the per-fact cache of texts).
_MISSING = ("", "")


def _regex_only(cond: Condition) -> bool:
    unset = msgspec.UNSET
    fields = msgspec.structs.asdict(cond)
    used = {k for k, v in fields.items() if v is not unset}
    return bool(used) and used <= {"regex", "not_regex"}


def _lazy_search(pattern: str) -> Any:
    """``re.compile(pattern, re.IGNORECASE).search``, compiled when first called (the rules
    were validated when loaded: a pattern that does not compile was refused there)."""
    found: list[Any] = []

    def search(text: str) -> Any:
        if not found:
            found.append(re.compile(pattern, re.IGNORECASE).search)
        return found[0](text)

    return search


def condition(path: str, cond: Condition) -> _Test:
    """``condition_holds(get_field(attributes, path), cond)``; a regular expression on a value
    that is no string searches its JSON text, made once per fact (``texts``) however many
    clauses search it, and only when the text holds one of the literals it needs."""
    get = field_getter(path)
    if not _regex_only(cond):
        holds = compile_condition(cond)
        return lambda attributes, texts: holds(get(attributes))
    regex, not_regex = cond.regex, cond.not_regex
    # compiled on first use: the literals settle most events without them
    search = _lazy_search(regex) if isinstance(regex, str) else None
    avoid = _lazy_search(not_regex) if isinstance(not_regex, str) else None
    needs = literals(regex) if isinstance(regex, str) else None
    avoid_needs = literals(not_regex) if isinstance(not_regex, str) else None

    # A value that is no string is searched in its JSON text (json.dumps). When every literal
    # the pattern needs lies inside one JSON token (literals.inside_a_token), msgspec's text
    # of the same value, five times faster to make, holds it as well: none there, no match.
    quick = needs is not None and avoid is None and all(map(inside_a_token, needs))
    quick_key = "\1" + path

    def test(attributes: dict[str, Any], texts: dict[str, Any]) -> bool:
        entry = texts.get(path)
        if entry is None:
            value = get(attributes)
            if value is None:
                entry = texts[path] = _MISSING
            else:
                if type(value) is not str and quick and needs is not None:
                    folded = texts.get(quick_key)
                    if folded is None:
                        folded = texts[quick_key] = quick_fold(value)
                    if folded is not None:
                        for literal in needs:
                            if literal in folded:
                                break
                        else:
                            return False
                text = unwrapped(value if type(value) is str else _text(value))
                entry = texts[path] = (text, fold(text))
        if entry is _MISSING:
            return search is None  # a missing value fails a positive test, passes a negative
        text, folded = entry
        if search is not None:
            if needs is not None:
                for literal in needs:
                    if literal in folded:
                        break
                else:
                    return False
            if search(text) is None:
                return False
        if avoid is None:
            return True
        if avoid_needs is not None:
            for literal in avoid_needs:
                if literal in folded:
                    break
            else:
                return True
        return avoid(text) is None

    if quick and search is not None and needs is not None:
        _QUICK[test] = (path, needs)
    return test


# The tests that need one of some literals in one field (its JSON text when no string), found
# by msgspec's text as well: field path and literals, by test.
_QUICK: weakref.WeakKeyDictionary[Any, tuple[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()
# What every clause still open for an event needs: one of these literals in this field.
Gate = tuple[str, Any, tuple[str, ...]]


def gate(open_: tuple[Residual, ...]) -> Gate | None:
    """The field and the literals one of which each open clause needs to hold, when all need
    them in one field; None when some clause could hold without."""
    path: str | None = None
    union: set[str] = set()
    for where, alternatives in open_:
        tests = [where[0]] if where else [alt[0] for alt in alternatives or () if alt]
        if not tests or (alternatives is not None and not where and len(tests) < len(alternatives)):
            return None
        for test in tests:
            quick = _QUICK.get(test)
            if quick is None or (path is not None and quick[0] != path):
                return None
            path = quick[0]
            union.update(quick[1])
    if path is None:
        return None
    return path, field_getter(path), tuple(sorted(union))


def text_gate(open_: tuple[Residual, ...], fields: frozenset[str]) -> tuple[str, ...] | None:
    """The literals one of which any text must hold for some clause in ``open_`` to hold, when
    each needs one of its literals in one of ``fields`` (by the first part of the path); None
    when some clause could hold otherwise. A text in which the values of ``fields`` appear as
    they are (JSON, say) and that holds none of them settles every clause as failing."""
    union: set[str] = set()
    for where, alternatives in open_:
        found = _quick_in(where, fields)
        if found is None:
            if alternatives is None or not alternatives:
                return None
            for tests in alternatives:
                one = _quick_in(tests, fields)
                if one is None:
                    return None
                union.update(one)
        else:
            union.update(found)
    return tuple(sorted(union))


def _quick_in(tests: tuple[_Test, ...], fields: frozenset[str]) -> tuple[str, ...] | None:
    """The literals of the first test in ``tests`` that needs one of them in a field of
    ``fields``."""
    for test in tests:
        quick = _QUICK.get(test)
        if quick is not None and all(a.split(".")[0] in fields for a in quick[0].split("|")):
            return quick[1]
    return None


# What is left of a clause once the fields known for an event have been tested: the tests of
# ``where`` still to pass, and the ``any_of`` alternatives still open (None: no any_of left).
Residual = tuple[tuple[_Test, ...], tuple[tuple[_Test, ...], ...] | None]


class CompiledClause:
    """One event clause: its ``where`` tests and its ``any_of`` sets of tests, each test with
    the field it reads."""

    def __init__(self, clause: Clause) -> None:
        self.where = [(k, condition(k, c)) for k, c in clause.where.items()]
        self.any_of = [[(k, condition(k, c)) for k, c in s.items()] for s in clause.any_of]

    def fields(self) -> set[str]:
        return {k for k, _t in self.where} | {k for s in self.any_of for k, _t in s}

    def settle(self, attributes: dict[str, Any], known: frozenset[str]) -> bool | Residual:
        """From the fields in ``known`` alone: True, it holds; False, it cannot; else what is
        left to test on the other fields."""
        texts: dict[str, Any] = {}
        where: list[_Test] = []
        for k, test in self.where:
            if k not in known:
                where.append(test)
            elif not test(attributes, texts):
                return False
        alternatives: list[tuple[_Test, ...]] | None = None
        if self.any_of:
            alternatives = []
            for tests in self.any_of:
                left: list[_Test] = []
                for k, test in tests:
                    if k not in known:
                        left.append(test)
                    elif not test(attributes, texts):
                        break
                else:
                    if not left:  # this alternative holds: the any_of is met
                        alternatives = None
                        break
                    alternatives.append(tuple(left))
            if alternatives is not None and not alternatives:
                return False
        if not where and alternatives is None:
            return True
        return tuple(where), (None if alternatives is None else tuple(alternatives))


def residual_holds(residual: Residual, attributes: dict[str, Any], texts: dict[str, Any]) -> bool:
    where, alternatives = residual
    for test in where:
        if not test(attributes, texts):
            return False
    if alternatives is None:
        return True
    for tests in alternatives:
        for test in tests:
            if not test(attributes, texts):
                break
        else:
            return True
    return False


# The clauses compiled once per process: a worker is handed the relevance again with each batch
# of logs, and compiling ~60 clauses (their regular expressions, their literals) each time
# would cost more than a small batch.
_COMPILED: dict[bytes, list[CompiledClause]] = {}


def compiled(clauses: list[Clause]) -> list[CompiledClause]:
    key = msgspec.json.encode(clauses)
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) >= 4:
            _COMPILED.clear()
        found = _COMPILED[key] = [CompiledClause(c) for c in clauses]
    return found
