"""A VM whose firmware finds nothing to boot, as people copy it off VM Connection: the boot
summary reader (``logs/commands/boot_summary.py``) and the posts of
``tests/fixtures/field_guestboot`` through ``hvrescue triage``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvrescue.logs.commands import boot_summary
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_guestboot"


def _read(case: str) -> list[dict]:
    lines = (FIXTURES / case / "post.txt").read_text("utf-8").splitlines()
    return [f.attributes for f in boot_summary.parse(Text(lines, "post.txt"))]


def test_a_numbered_summary_in_columns() -> None:
    [summary] = _read("secure-boot-linux-en")
    assert summary["firmware"] == "uefi" and summary["no_os_loaded"] is True
    assert [(e["device"], e["kind"], e["reason"]) for e in summary["entries"]] == [
        ("SCSI Disk (0,0)", "disk", "secure-boot"),
        ("Network Adapter (00155D0A1B02)", "network", "no-image"),
    ]
    assert summary["disk_reasons"] == ["secure-boot"]


def test_a_retyped_summary_without_numbers_quoted() -> None:
    [summary] = _read("secure-boot-iso-en")
    assert [(e["kind"], e["reason"]) for e in summary["entries"]] == [
        ("dvd", "secure-boot"),
        ("network", "no-image"),
        ("disk", "no-uefi-fs"),
    ]
    assert summary["entries"][1]["message"] == "DHCP failed"


def test_the_older_firmware_lines_and_a_bios() -> None:
    [efi] = _read("efi-boot-failed-en")
    assert [e["kind"] for e in efi["entries"]] == ["disk", "disk", "network"]
    assert efi["disk_reasons"] == ["no-os"] and efi["no_os_loaded"] is True
    [bios] = _read("bios-gen1-en")
    assert bios["firmware"] == "bios"


def test_text_without_a_boot_screen_gives_nothing() -> None:
    assert _read("near-miss-template-en") == []
    lines = ["1. SCSI Disk (0,0)  The boot loader did not load an operating system."] * 3
    # Entries without the summary's head are no summary of their own.
    assert boot_summary.parse(Text(lines, "x.txt")) == []


CASES = [
    (
        "secure-boot-linux-en",
        "vm.boot.secure-boot-template",
        "MicrosoftUEFICertificateAuthority",
        "en",
    ),
    ("secure-boot-iso-en", "vm.boot.secure-boot-template", "Get-VMFirmware", "en"),
    ("secure-boot-ja", "vm.boot.secure-boot-template", "MicrosoftUEFICertificateAuthority", "ja"),
    ("gen1-disk-on-gen2-en", "vm.boot.disk-not-bootable", "hvrescue ls", "en"),
    ("efi-boot-failed-en", "vm.boot.disk-not-bootable", "-Generation 1", "ja"),
    ("bios-gen1-en", "vm.boot.no-boot-device", "Get-VMHardDiskDrive", "en"),
]


@pytest.mark.parametrize(("case", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_incident_diagnosis(case: str, expected: str, command: str, lang: str, tmp_path: Path):
    triage_incident(FIXTURES / case, tmp_path, expected, command, lang)


def test_a_question_about_templates_raises_nothing(tmp_path: Path) -> None:
    triage_incident(FIXTURES / "near-miss-template-en", tmp_path, None, None, "en")


def test_a_screen_retyped_on_a_japanese_ime_keeps_its_devices() -> None:
    # Full-width brackets and a full-width quote marker: the cleaning of posts leaves them, as
    # they belong to Japanese prose; on a boot screen they are the firmware's ASCII.
    text = (
        "＞ Boot Failed. EFI SCSI Device.\n"
        "＞ Boot Failed. EFI Network.\n"
        "＞ No Operating System was Loaded. Press a key to retry the boot sequence...\n"
        "\n"
        "Virtual Machine Boot Summary\n"
        "1. SCSI Disk （0,0）  No UEFI-compatible file system was found.\n"
        "No operating system was loaded.\n"
    )
    older, summary = (f.attributes for f in boot_summary.parse(Text.of(text, "post.txt")))
    assert [(e["kind"], e["reason"]) for e in older["entries"]] == [
        ("disk", "no-os"),
        ("network", "other"),
    ]
    assert older["no_os_loaded"] is True
    assert [(e["device"], e["message"]) for e in summary["entries"]] == [
        ("SCSI Disk (0,0)", "No UEFI-compatible file system was found."),
    ]
