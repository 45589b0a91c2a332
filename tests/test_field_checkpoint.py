"""Checkpoints Hyper-V refuses, worker processes without their logon right, a hypervisor that is
not running, a VM without memory to start: the posts of ``tests/fixtures/field_checkpoint``
through ``hvrescue triage`` end to end, and the signature phrases they rest on."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvrescue.logs import signatures
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_checkpoint"

CASES = [
    ("production-dialog-en", "vm.checkpoint-failed.production", "vssadmin list writers", "en"),
    ("production-ps-ja", "vm.checkpoint-failed.production", "Get-VMIntegrationService", "ja"),
    ("autorecovery-en", "vm.checkpoint-failed.autorecovery-leftover", "AutoRecovery.avhdx", "en"),
    ("element-not-found-en", "vm.checkpoint-failed", "Hyper-V-VMMS-Admin", "en"),
    ("logon-right-en", "vm.start-failed.logon-right", "SeServiceLogonRight", "en"),
    ("logon-right-ja", "vm.start-failed.logon-right", "SeServiceLogonRight", "ja"),
    ("hypervisor-bare-en", "host.hypervisor-not-running", "bcdedit /enum", "en"),
    ("hypervisor-bare-ja", "host.hypervisor-not-running", "bcdedit /enum", "ja"),
    ("hypervisor-bcd-off-en", "host.hypervisor-not-running.launch-disabled", "bcdedit", "en"),
    ("oom-bare-en", "vm.start-failed.out-of-memory", "Available MBytes", "en"),
]


@pytest.mark.parametrize(("case", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_incident_diagnosis(
    case: str, expected: str, command: str, lang: str, tmp_path: Path
) -> None:
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    ids = [d["id"] for d in data["diagnoses"]]
    if expected.startswith("host.hypervisor-not-running."):
        # The cause is in the evidence: the rule that does not know it stays silent.
        assert "host.hypervisor-not-running" not in ids, ids
    if expected.startswith("vm.checkpoint-failed."):
        assert "vm.checkpoint-failed" not in ids, ids


def test_a_checkpoint_that_worked_is_no_failure(tmp_path: Path) -> None:
    triage_incident(FIXTURES / "checkpoint-ok-en", tmp_path, None, None, "en", healthy=True)


def _signature_ids(*lines: str) -> list[str]:
    text = Text(path="post.txt", lines=list(lines))
    return [f.attributes["signature"] for f in signatures.match(text)]


@pytest.mark.parametrize(
    "line",
    [
        "The virtual machine could not be started because the hypervisor is not running.",
        "Virtual machine could not be started because the hypervisor is not running.",
        "virtual machine could not be started because the hypervisor is not running",
        "> THE VIRTUAL MACHINE COULD NOT BE STARTED BECAUSE THE HYPERVISOR IS NOT RUNNING.",
    ],
)
def test_a_leading_article_is_not_required(line: str) -> None:
    assert _signature_ids(line) == ["hypervisor-not-running"]


def test_the_article_is_not_dropped_from_the_middle() -> None:
    # Only a leading "The" is optional: the words inside the phrase are still all required.
    assert (
        _signature_ids("Virtual machine could not be started because hypervisor is not running")
        == []
    )


def test_the_logon_right_sentence_carries_its_code() -> None:
    text = Text(
        path="post.txt",
        lines=[
            "'DC02' failed to start worker process: Logon Failure: The user has not been granted",
            "the requested logon type at this computer. (0x80070569).",
        ],
    )
    facts = [
        f for f in signatures.match(text) if f.attributes["signature"] == "worker-logon-type-denied"
    ]
    assert len(facts) == 1
    assert "0x80070569" in facts[0].attributes["codes"]
    assert facts[0].provenance.locator == "line:1"


def test_a_pasted_hyperv_failure_no_rule_names_is_never_healthy(tmp_path: Path) -> None:
    # Worker 12010 "Failed to Power on with Error ..." has a signature with its event id but
    # no rule of its own: the post is still about a failure, so the generic rule stands for it.
    data = triage_incident(
        FIXTURES / "power-on-failed-en", tmp_path, "generic.unexplained-error", "hvrescue", "en"
    )
    assert data["verdict"]["state"] == "problems"


def test_a_japanese_post_that_only_talks_about_errors_raises_nothing(tmp_path: Path) -> None:
    # "...のようなエラーが有名ですが、今回の環境では一度も出ていません": quoted, not shown.
    talk = Path(__file__).parent / "fixtures" / "field_ja" / "near-miss-talk-ja"
    triage_incident(talk, tmp_path, None, None, "ja")


def test_a_signature_message_stops_at_the_japanese_position_line() -> None:
    text = Text(
        path="post.txt",
        lines=[
            "Checkpoint-VM : チェックポイント操作に失敗しました。",
            "運用チェックポイントを作成できません。",
            "発生場所 行:1 文字:1",
            "+ Checkpoint-VM -Name APP-SV01",
        ],
    )
    facts = [
        f
        for f in signatures.match(text)
        if f.attributes["signature"] == "checkpoint-operation-failed"
    ]
    assert len(facts) == 1
    assert "発生場所" not in facts[0].attributes["message"]
    assert "運用チェックポイントを作成できません" in facts[0].attributes["message"]
