"""Whatever the text, the parsers give facts or nothing: no exception, no hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.logs.collect import facts_from_bytes

FIX = Path(__file__).parent / "fixtures" / "commands"
TEXTS = sorted(p for p in FIX.iterdir() if p.suffix in (".txt", ".csv", ".xml", ".json"))


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from([p.name for p in TEXTS]),
    edits=st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.integers(0, 40),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mangled_fixtures_never_crash(name: str, edits: list[tuple[int, int, str]]):
    text = (FIX / name).read_text(encoding="utf-8")
    for pos, cut, insert in edits:
        pos %= max(1, len(text))
        text = text[:pos] + insert + text[pos + cut :]
    for data in (text.encode("utf-8"), text.encode("utf-16")):
        result = facts_from_bytes(data, name)
        for fact in result.facts:
            assert isinstance(fact.attributes, dict)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000))
def test_random_bytes_never_crash(data: bytes):
    facts_from_bytes(data, "random.bin")
    facts_from_bytes(b"PK\x03\x04" + data, "random.zip")
    facts_from_bytes(b"ElfFile\x00" + data, "random.evtx")


@pytest.mark.slow  # large texts read twice
def test_large_text_without_prompts_is_read_in_linear_time(tmp_path):
    # 300,000 lines of an unrelated log (CBS.log-like): every parser must pass over it once,
    # not once per line (the test would time out if one did).
    line = "2024-02-14 03:04:05, Info  CBS    Exec: Processing package Package_for_KB5034768\n"
    data = (line * 300_000).encode()
    result = facts_from_bytes(data, "CBS.log")
    assert result.facts == [] and result.unrecognised[0].reason == "no-known-content"
