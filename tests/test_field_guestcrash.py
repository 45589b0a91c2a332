"""What the host records when a guest fails under it: the posts of
``tests/fixtures/field_guestcrash`` through ``hvrescue triage``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_guestcrash"

CASES = [
    ("fatal-error-en", "guest.bugcheck", "!analyze -v", "en"),
    ("fatal-error-evtx-list-en", "guest.bugcheck", "!analyze -v", "ja"),
    ("triple-fault-en", "vm.guest-triple-fault", "EventID=18560", "en"),
    ("component-not-running-en", "vm.start-failed.component-not-running", "vmcompute", "en"),
]


@pytest.mark.parametrize(("case", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_incident_diagnosis(case: str, expected: str, command: str, lang: str, tmp_path: Path):
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    if expected == "guest.bugcheck":
        # The guest's own stop code, as the host recorded it.
        assert "0x0000007e" in data["diagnoses"][0]["title"]
