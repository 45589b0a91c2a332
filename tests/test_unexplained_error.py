"""Loose evidence of a failure that no rule explains is never "healthy", and the fallback that
says so stays silent when a specific diagnosis speaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance

FIXTURES = Path(__file__).parent / "fixtures"


def _ids(facts: list[Fact]) -> list[str]:
    return [d.rule.id for d in evaluate(load_rules(), facts)]


def _signal(value: str) -> Fact:
    attrs = {"type": "hresult", "value": value, "text": f"failed with {value}", "confidence": 0.5}
    return Fact("signal", attrs, Provenance("post.txt", "line:3"))


def _ps_error() -> Fact:
    attrs = {
        "command": "Start-VM",
        "message": "Start-VM : 'web01' failed to start. (0x80070570)",
        "codes": ["0x80070570"],
        "confidence": 0.9,
    }
    return Fact("ps_error", attrs, Provenance("post.txt", "line:3"))


def test_an_error_record_alone_is_not_healthy() -> None:
    assert "generic.unexplained-error" in _ids([_ps_error()])


def test_a_code_in_a_sentence_alone_raises_nothing() -> None:
    # A log full of codes (CBS, setupapi) is not a failure by itself; the verdict of codes
    # alone is "nothing recognised", never "healthy" (below).
    assert "generic.unexplained-error" not in _ids([_signal("0x80070570")])


def test_silent_when_a_specific_diagnosis_holds() -> None:
    writers = Fact(
        "vss_writer_list", {"count": 0, "names": [], "writers": []}, Provenance("w", None)
    )
    process = Fact(
        "process",
        {"image": "svchost.exe", "pid": 1234, "services": ["EventSystem", "Dhcp"], "shared": True},
        Provenance("t", None),
    )
    ids = _ids([writers, process, _ps_error()])
    assert "vss.writers-missing.eventsystem-shared-host" in ids
    assert "generic.unexplained-error" not in ids


def _triage(tmp_path: Path, text: str) -> tuple[int, dict]:
    post = tmp_path / "post.txt"
    post.write_text(text, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "hvrescue", "triage", str(post), "--json", "--out",
         str(tmp_path / "out")],
        capture_output=True,
        check=False,
    )  # fmt: skip
    return run.returncode, json.loads(run.stdout)


def test_triage_of_an_error_record_is_not_healthy(tmp_path: Path) -> None:
    code, report = _triage(
        tmp_path,
        "PS C:\\> Start-VM -Name web01\n"
        "Start-VM : 'web01' failed to start.\n"
        "The file or directory is corrupted and unreadable. (0x80070570)\n"
        "At line:1 char:1\n"
        "+ Start-VM -Name web01\n"
        "+ ~~~~~~~~~~~~~~~~~~~~\n"
        "    + CategoryInfo          : NotSpecified: (:) [Start-VM], VirtualizationException\n"
        "    + FullyQualifiedErrorId : OperationFailed,"
        "Microsoft.HyperV.PowerShell.Commands.StartVM\n",
    )
    assert code == 1
    assert report["verdict"]["state"] == "problems"
    assert report["diagnoses"][0]["id"] == "generic.unexplained-error"


def test_triage_of_codes_alone_is_not_healthy(tmp_path: Path) -> None:
    code, report = _triage(tmp_path, "after the move the copy stops with 0x80070570, any idea?\n")
    assert report["verdict"]["state"] == "nothing-recognised"
    assert code == 0
