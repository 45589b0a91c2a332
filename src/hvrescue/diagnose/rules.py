"""Rules are data: YAML files under ``diagnose/rules/``, decoded into the typed schema below
(unknown keys, wrong types and unknown operators are load errors), never evaluated as code.

A rule lists clauses. Each clause names a fact kind and field conditions and binds the facts it
matches to a name. ``require`` clauses must each match at least one fact; ``support`` clauses
raise the confidence when they match; ``forbid`` clauses must match nothing (the near miss that
rules the diagnosis out). A clause may also relate a fact's time to the earliest fact of an
earlier binding ("installed within N days before the first failure").

A ``generic`` rule is the fallback of its layer: it cites only the facts that no specific rule's
diagnosis cites, and fires only if some remain; its severity is the worst among them. ``per``
(``binding.field``) makes one diagnosis for each distinct value of that field (one per file).
Placeholders ``{binding.field}`` take formats after a colon, in order: ``digits``, ``upper``,
``lower``, ``name`` (the last part of a path), ``stem`` (that without its extension), ``dir``
(the folder of a path), ``quoted`` (one word for a shell): ``{finding.path:name:quoted}``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, Literal

import msgspec

Layer = Literal["storage", "virtual-disk", "vm-configuration", "guest-os", "host"]
Severity = Literal["info", "warning", "error", "critical"]
Precondition = Literal[
    "none", "on-a-copy", "after-preserve", "administrator", "winre", "safe-mode", "maintenance"
]


class Text(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    en: str
    ja: str


class Condition(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    eq: Any = msgspec.UNSET
    ne: Any = msgspec.UNSET
    in_: list[Any] | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="in")
    not_in: list[Any] | msgspec.UnsetType = msgspec.UNSET
    regex: str | msgspec.UnsetType = msgspec.UNSET
    not_regex: str | msgspec.UnsetType = msgspec.UNSET
    contains: str | msgspec.UnsetType = msgspec.UNSET  # case-insensitive, strings and lists
    not_contains: str | msgspec.UnsetType = msgspec.UNSET
    gt: float | msgspec.UnsetType = msgspec.UNSET
    ge: float | msgspec.UnsetType = msgspec.UNSET
    lt: float | msgspec.UnsetType = msgspec.UNSET
    le: float | msgspec.UnsetType = msgspec.UNSET
    exists: bool | msgspec.UnsetType = msgspec.UNSET
    len_gt: int | msgspec.UnsetType = msgspec.UNSET
    len_ge: int | msgspec.UnsetType = msgspec.UNSET


class Near(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """This fact's ``field`` (an ISO time) lies at most ``days_before`` days before (and at most
    ``days_after`` after) the earliest ``other_field`` among the facts bound to ``binding``."""

    binding: str
    field: str
    other_field: str
    days_before: float = 7.0
    days_after: float = 0.0


class Clause(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    bind: str = ""
    where: dict[str, Condition] = {}
    any_of: list[dict[str, Condition]] = []  # at least one of these condition sets
    near: Near | None = None
    weight: float = 0.0  # for support clauses


class Step(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    text: Text
    command: str = ""
    precondition: Precondition = "none"
    foreach: str = ""  # a binding: one step per distinct value of ``foreach_field``
    foreach_field: str = ""


class FixtureFact(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    attributes: dict[str, Any]


class Fixture(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    facts: list[FixtureFact]


class Fixtures(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    positive: list[Fixture]
    negative: list[Fixture]


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    title: Text
    summary: Text
    layer: Layer
    severity: Severity
    confidence: float
    require: list[Clause] = []
    require_one_of: list[Clause] = []  # at least one of these must match
    require_groups: list[list[Clause]] = []  # in each group, at least one must match
    support: list[Clause] = []
    forbid: list[Clause] = []
    steps: list[Step] = []
    avoid: list[Text] = []
    references: list[str] = []
    explain: Text | None = None
    fixtures: Fixtures | None = None
    generic: bool = False
    per: str = ""  # binding.field: one diagnosis per distinct value
    # Kept only when no other diagnosis of warning or worse holds: the last word on evidence
    # that shows a failure no rule explains (a verdict is never healthy while it stands).
    fallback: bool = False


# Formats a placeholder may name, applied in order: {finding.path:name:quoted}.
MODIFIERS = ("digits", "upper", "lower", "name", "stem", "dir", "quoted")
_ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9-]+)+$")


class RuleError(Exception):
    pass


def _validate(rule: Rule, source: str) -> None:
    if not _ID.match(rule.id):
        raise RuleError(f"{source}: bad rule id {rule.id!r}")
    if not 0 < rule.confidence <= 1:
        raise RuleError(f"{source}: confidence must be in (0, 1]")
    bindings: set[str] = set()
    if not rule.require and not rule.require_one_of and not rule.require_groups:
        raise RuleError(f"{source}: {rule.id} requires nothing")
    grouped = [c for group in rule.require_groups for c in group]
    for clause in [*rule.require, *rule.require_one_of, *grouped, *rule.support, *rule.forbid]:
        for cond_set in [clause.where, *clause.any_of]:
            for cond in cond_set.values():
                for pattern in (cond.regex, cond.not_regex):
                    if isinstance(pattern, str):
                        try:
                            re.compile(pattern)
                        except re.error as exc:
                            raise RuleError(f"{source}: bad regex {pattern!r}: {exc}") from exc
        if clause.near is not None and clause.near.binding not in bindings:
            raise RuleError(f"{source}: 'near' refers to {clause.near.binding!r} bound later")
        if clause.bind:
            bindings.add(clause.bind)
    if rule.per and rule.per.partition(".")[0] not in bindings:
        raise RuleError(f"{source}: per names an unknown binding {rule.per!r}")
    texts = [rule.title.en, rule.title.ja, rule.summary.en, rule.summary.ja]
    texts += [s.command + s.text.en + s.text.ja for s in rule.steps]
    for text in texts:
        for modifiers in re.findall(r"\{[a-z_]+\.[a-zA-Z0-9_.|]+((?::[a-z]+)*)", text):
            for modifier in modifiers.split(":")[1:]:
                if modifier not in MODIFIERS:
                    raise RuleError(f"{source}: unknown placeholder format {modifier!r}")
    for text in (rule.title.en, rule.title.ja, rule.summary.en, rule.summary.ja):
        for name in re.findall(r"\{([a-z_]+)\.", text):
            if name not in bindings:
                raise RuleError(f"{source}: title or summary uses unknown binding {name!r}")
    for step in rule.steps:
        for name in re.findall(r"\{([a-z_]+)\.", step.command + step.text.en + step.text.ja):
            if name not in bindings:
                raise RuleError(f"{source}: step uses unknown binding {name!r}")
        if step.foreach and step.foreach not in bindings:
            raise RuleError(f"{source}: foreach of unknown binding {step.foreach!r}")


def parse_rules(text: str, source: str) -> list[Rule]:
    # PyYAML only here: the rules are read from the snapshot while it is fresh (load_rules).
    import yaml

    # libyaml's safe loader where PyYAML was built with it (about 8x faster on the rule base).
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    rules: list[Rule] = []
    for item in items:
        try:
            rule = msgspec.convert(item, Rule)
        except msgspec.ValidationError as exc:
            raise RuleError(f"{source}: {exc}") from exc
        _validate(rule, source)
        rules.append(rule)
    return rules


# The rules as decoded and validated from the YAML, with the digest of the YAML they came from:
# read in a few milliseconds where parsing the YAML takes ~0.2 s. Made by
# tools/rules_snapshot.py; used only while the digest matches the files (else the YAML is read),
# and tests/test_rules_snapshot.py holds it fresh and equal to the YAML.
SNAPSHOT = "rules.snapshot.json"


class Snapshot(msgspec.Struct, forbid_unknown_fields=True):
    digest: str
    rules: tuple[Rule, ...]


def rule_sources() -> list[tuple[str, bytes]]:
    """(name, bytes) of every rule file shipped with the package, by name."""
    folder = resources.files("hvrescue.diagnose").joinpath("rules")
    return [
        (entry.name, entry.read_bytes())
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    ]


def sources_digest(sources: list[tuple[str, bytes]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, data in sources:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def rules_from_yaml(sources: list[tuple[str, bytes]]) -> tuple[Rule, ...]:
    """Every rule of ``sources``, validated; duplicate ids are an error."""
    rules: list[Rule] = []
    for name, data in sources:
        rules += parse_rules(data.decode("utf-8"), name)
    ids = [r.id for r in rules]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise RuleError(f"duplicate rule ids: {sorted(dupes)}")
    return tuple(rules)


@cache
def load_rules() -> tuple[Rule, ...]:
    """Every rule shipped with the package, validated; duplicate ids are an error."""
    sources = rule_sources()
    digest = sources_digest(sources)
    try:
        raw = resources.files("hvrescue.diagnose").joinpath(SNAPSHOT).read_bytes()
        snapshot = msgspec.json.decode(raw, type=Snapshot)
    except (OSError, msgspec.DecodeError):
        snapshot = None
    if snapshot is not None and snapshot.digest == digest:
        return snapshot.rules
    return rules_from_yaml(sources)
