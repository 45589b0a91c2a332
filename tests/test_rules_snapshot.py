"""The rules snapshot (``diagnose/rules.snapshot.json``) that ``load_rules`` reads instead of
parsing the YAML: fresh, equal to the YAML, and never used once the YAML has changed."""

from __future__ import annotations

from importlib import resources

import msgspec
import pytest

from hvrescue.diagnose import rules as rules_module
from hvrescue.diagnose.rules import (
    SNAPSHOT,
    Snapshot,
    load_rules,
    rule_sources,
    rules_from_yaml,
    sources_digest,
)

FIX = "run `python3 tools/rules_snapshot.py` after changing a rule file"


def _snapshot() -> Snapshot:
    raw = resources.files("hvrescue.diagnose").joinpath(SNAPSHOT).read_bytes()
    return msgspec.json.decode(raw, type=Snapshot)


def test_the_snapshot_is_of_the_rule_files_as_they_are() -> None:
    assert _snapshot().digest == sources_digest(rule_sources()), FIX


def test_the_snapshot_holds_exactly_what_the_yaml_gives() -> None:
    assert _snapshot().rules == rules_from_yaml(rule_sources()), FIX
    assert load_rules() == rules_from_yaml(rule_sources())


def test_a_changed_rule_file_is_read_from_its_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot stands only for the files it was made from: one byte changed in a rule
    file, and the rules come from the YAML (here with the change), not from the snapshot."""
    sources = rule_sources()
    name, data = sources[0]
    changed = data.replace(b"title:", b"title:", 1) + b"\n# changed\n"
    monkeypatch.setattr(rules_module, "rule_sources", lambda: [(name, changed), *sources[1:]])
    calls: list[int] = []
    real = rules_module.rules_from_yaml

    def counting(given: list[tuple[str, bytes]]) -> tuple[rules_module.Rule, ...]:
        calls.append(len(given))
        return real(given)

    monkeypatch.setattr(rules_module, "rules_from_yaml", counting)
    load_rules.cache_clear()
    try:
        assert load_rules() == real(sources)  # a comment: the same rules, read from the YAML
        assert calls == [len(sources)]
    finally:
        load_rules.cache_clear()


def test_a_damaged_snapshot_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_module, "SNAPSHOT", "no-such-snapshot.json")
    load_rules.cache_clear()
    try:
        assert load_rules() == rules_from_yaml(rule_sources())
    finally:
        load_rules.cache_clear()


def test_the_code_tables_snapshot_is_codes_yaml_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from hvrescue.diagnose import codes

    data, digest = codes.yaml_source()
    raw = resources.files("hvrescue.diagnose").joinpath(codes.SNAPSHOT).read_bytes()
    snapshot = msgspec.json.decode(raw)
    assert snapshot["digest"] == digest, FIX
    assert snapshot["tables"] == codes.tables_from_yaml(data), FIX
    # and a changed codes.yaml is read from the YAML
    changed = data + b"\n# changed\n"
    monkeypatch.setattr(codes, "yaml_source", lambda: (changed, "another digest"))
    monkeypatch.setattr(codes, "tables_from_yaml", lambda given: {"from": [{"yaml": given}]})
    codes.tables.cache_clear()
    try:
        assert codes.tables() == {"from": [{"yaml": changed}]}
    finally:
        codes.tables.cache_clear()
