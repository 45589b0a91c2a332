"""Live migrations that fail for a reason the message names: the posts of
``tests/fixtures/field_migration`` through ``hvrescue triage`` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_migration"

CASES = [
    (
        "auth-credssp-en",
        "vm.migration-failed.authentication",
        "VirtualMachineMigrationAuthenticationType",
        "en",
    ),
    ("auth-spn-ps-en", "vm.migration-failed.authentication", "setspn", "ja"),
    (
        "cpu-en",
        "vm.migration-failed.processor-compatibility",
        "CompatibilityForMigrationEnabled",
        "en",
    ),
    ("cpu-cluster-ja", "vm.migration-failed.processor-compatibility", "Get-VMProcessor", "ja"),
]


@pytest.mark.parametrize(("case", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_incident_diagnosis(
    case: str, expected: str, command: str, lang: str, tmp_path: Path
) -> None:
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    top = data["diagnoses"][0]
    # The reason, not only "a migration failed", leads; the evidence is the line that names it.
    assert top["confidence"] > max((d["confidence"] for d in data["diagnoses"][1:]), default=0.0)


def test_a_migration_that_worked_raises_nothing(tmp_path: Path) -> None:
    triage_incident(FIXTURES / "migration-ok-en", tmp_path, None, None, "en")
