"""The message signatures come from ``signatures.yaml`` and each area's ``signatures_*.yaml``:
every file is read, no id is given twice, and each entry has what the matcher needs."""

from __future__ import annotations

from importlib import resources

import yaml

from hvrescue.logs.signatures import catalogue

HERE = resources.files("hvrescue.logs")
FILES = sorted(
    entry.name
    for entry in HERE.iterdir()
    if entry.name == "signatures.yaml"
    or (entry.name.startswith("signatures_") and entry.name.endswith(".yaml"))
)
LEVELS = {"critical", "error", "warning", "information"}


def _entries(name: str) -> list[dict]:
    raw = yaml.safe_load(HERE.joinpath(name).read_text("utf-8")) or {}
    return list(raw.get("signatures") or ())


def test_every_signature_file_is_in_the_catalogue_once():
    read = [s.id for s in catalogue()]
    assert len(read) == len(set(read))
    written = [str(e["id"]) for name in FILES for e in _entries(name)]
    assert sorted(written) == sorted(read)


def test_each_entry_is_complete():
    for name in FILES:
        for entry in _entries(name):
            assert entry.get("patterns"), (name, entry["id"])
            assert set(entry["patterns"]) <= {"en", "ja", "de", "fr"}, (name, entry["id"])
            assert entry.get("level") in LEVELS, (name, entry["id"])
            assert "provider" in entry and "event_id" in entry, (name, entry["id"])
            assert 0.5 <= float(entry.get("confidence", 0.7)) <= 0.9, (name, entry["id"])
