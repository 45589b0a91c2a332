"""chkdsk pasted from a Hyper-V host (logs/commands/chkdsk.py): each run as a chkdsk_result,
its verdict, the problems it printed and the virtual disks named in them; a run that found
errors tells to copy the VM files off before any repair (host.volume-corruption.chkdsk). And a
VM's Backup integration service off or silent in Get-VMIntegrationService's table, and a VM that
Get-VM shows Paused-Critical, and the host's Hyper-V writer failed in vssadmin's list."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvrescue.logs.collect_text import facts_from_text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_storage"


def _runs(name: str) -> list[dict]:
    [path] = [p for p in (FIXTURES / name).iterdir()]
    text = path.read_text(encoding="utf-8")
    return [f.attributes for f in facts_from_text(text, str(path)) if f.kind == "chkdsk_result"]


def test_a_read_only_run_that_found_errors():
    [run] = _runs("chkdsk-errors-en")
    assert (run["volume"], run["filesystem"], run["verdict"]) == ("D:", "NTFS", "errors")
    assert run["read_only"] is True and run["errors"] is True
    # "0 bad file records processed." is a count, not a problem
    assert run["problem_count"] == 1 and "is incorrect" in run["problems"][0]
    assert run["virtual_disk_files"] == ["SRV-APP01_6E0B2F4C-1D3A-4E8B-9C57-2A1F0D4B8E63.avhdx"]


def test_the_same_run_in_japanese():
    [run] = _runs("chkdsk-errors-ja")
    assert (run["volume"], run["verdict"], run["read_only"]) == ("E:", "errors", True)
    assert run["problem_count"] == 1 and run["virtual_disk_files"] == ["SRV-DB01.vhdx"]


def test_a_clean_run_is_clean():
    [run] = _runs("chkdsk-clean-en")
    assert (run["verdict"], run["errors"], run["problem_count"], run["bad_sectors_kb"]) == (
        "clean",
        False,
        0,
        0,
    )


def test_bad_sectors_alone_are_errors():
    text = (
        "C:\\>chkdsk F:\nThe type of the file system is NTFS.\n\nStage 1: Examining basic file"
        " system structure ...\n\n 976759807 KB total disk space.\n      2,048 KB in bad sectors.\n"
    )
    [run] = [f.attributes for f in facts_from_text(text, "p.txt") if f.kind == "chkdsk_result"]
    assert (run["volume"], run["bad_sectors_kb"], run["errors"]) == ("F:", 2048, True)


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"),
    [
        ("chkdsk-errors-en", "host.volume-corruption.chkdsk", "hvrescue preserve", "en"),
        ("chkdsk-errors-ja", "host.volume-corruption.chkdsk", "chkdsk E: /F", "ja"),
        ("chkdsk-clean-en", None, None, "en"),
        (
            "integration-vss-off-en",
            "vm.backup-integration-unavailable",
            "Enable-VMIntegrationService",
            "en",
        ),
        ("integration-ok-en", None, None, "en"),
        ("vm-paused-critical-en", "vm.paused-critical", 'Resume-VM -Name "SRV-APP01"', "en"),
        ("vm-paused-critical-en", "vm.paused-critical", 'Resume-VM -Name "SRV-APP01"', "ja"),
        ("hyperv-writer-failed-en", "vss.hyperv-writer-failed", "Restart-Service vmms", "en"),
    ],
)
def test_incident_folder_through_triage(tmp_path: Path, name: str, expected, command, lang: str):
    data = triage_incident(FIXTURES / name, tmp_path, expected, command, lang, healthy=True)
    if expected is not None:
        steps = [s["command"] for s in data["diagnoses"][0]["steps"]]
        # the copy comes before the repair
        if expected == "host.volume-corruption.chkdsk":
            first_copy = next(i for i, c in enumerate(steps) if "hvrescue preserve" in c)
            first_repair = next(i for i, c in enumerate(steps) if "/F" in c)
            assert first_copy < first_repair
        elif expected == "vm.backup-integration-unavailable":
            assert steps[0] == 'Enable-VMIntegrationService -VMName "SRV-SQL01" -Name "VSS"'
