"""CBS.log / CbsPersist / dism.log lines as ``servicing_log`` facts (hvrescue.logs.commands.cbs),
whole, pasted, quoted, wrapped, cut between two pieces of a large file, and bounded on a log of
hundreds of thousands of lines; then the servicing rules (diagnose/rules/field_servicing.yaml)
end to end through ``hvrescue triage`` on the incident folders of tests/fixtures/field_servicing
(formats and where they were seen: its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.evidence import text as txt
from hvrescue.evidence.budget import Budget, MiB
from hvrescue.facts.model import Fact
from hvrescue.logs.collect import collect
from hvrescue.logs.collect_text import OUTPUT_START, facts_from_text
from hvrescue.logs.commands import cbs
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_servicing"
RULES = load_rules()


def servicing(path: Path) -> list[Fact]:
    text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    return [f for f in facts_from_text(text, str(path)) if f.kind == "servicing_log"]


def at(facts: list[Fact], line: int) -> dict[str, Any]:
    [fact] = [f for f in facts if f.provenance.locator == f"line:{line}"]
    return fact.attributes


def rec(time: str, level: str, component: str, message: str) -> str:
    return f"{time}, {level:<22}{component:<7}{message}"


# ---------------------------------------------------------------- the reader on each fixture
def test_cbs_log_of_a_restore_that_found_no_source():
    facts = servicing(FIXTURES / "source-missing-en" / "CBS.log")
    end = at(facts, 75)
    assert end["time"] == "2024-05-14 10:41:07" and end["level"] == "Info"
    assert (end["component"], end["hresult"], end["code_name"]) == (
        "CBS",
        "0x800f081f",
        "CBS_E_SOURCE_MISSING",
    )
    assert end["outcome"] is True and end["failed"] is True and end["format"] == "cbs-log"
    assert end["message"].startswith("Exec: Processing complete, session(Corruption Repairing)")
    error = at(facts, 76)
    assert error["level"] == "Error" and error["hresult"] == "0x800f081f"
    # The store scan's summary: the result, the corruption found and what stayed unrepaired.
    assert at(facts, 59)["hresult"] == "0x800f081f" and at(facts, 59)["outcome"] is True
    assert (at(facts, 61)["counts"], at(facts, 61)["count"]) == ("detected", 1)
    assert at(facts, 67)["unrepaired"] == 1
    assert at(facts, 54)["file"].endswith("\\vmbusr.sys")
    # The Info progress lines (TI, Session initialized, 40 hash lines of one template) are
    # not facts; the hash lines are not failures either.
    lines = {int(f.provenance.locator[5:]) for f in facts}
    assert not lines & set(range(1, 8))
    # An Info line whose first source failed (0x800f0906) is kept, but is no outcome.
    assert at(facts, 50)["hresult"] == "0x800f0906" and at(facts, 50)["outcome"] is False


def test_dism_log_lines_carry_provider_process_and_hr():
    facts = servicing(FIXTURES / "source-missing-en" / "dism.log")
    assert {f.attributes["format"] for f in facts} == {"dism-log"}
    first = at(facts, 6)  # Info, "(CBS HRESULT=0x800f081f) - CCbsConUIHandler::Error"
    assert (first["level"], first["hresult"], first["pid"], first["tid"]) == (
        "Info",
        "0x800f081f",
        4412,
        5344,
    )
    assert first["provider"] == "DISM Package Manager" and first["outcome"] is False
    restore = at(facts, 9)
    assert restore["level"] == "Error" and restore["component"] == "DISM"
    assert restore["hresult"] == "0x800f081f" and restore["outcome"] is True
    assert restore["time"] == "2024-05-14 10:41:07"
    # The banner, the command line, "Image session has been closed" are not facts.
    assert [int(f.provenance.locator[5:]) for f in facts] == [6, 7, 8, 9, 10]


def test_cbs_persist_log_names_the_missing_package():
    facts = servicing(FIXTURES / "store-corruption-en" / "CbsPersist_20240410031301.log")
    missing = at(facts, 4)
    assert missing["hresult"] is None and missing["level"] == "Info"
    assert missing["package"] == "Package_2817_for_KB5036896~31bf3856ad364e35~amd64~~10.0.1.6"
    assert missing["kb"] == "KB5036896"
    pin = at(facts, 7)
    assert pin["code_name"] == "ERROR_SXS_ASSEMBLY_MISSING" and pin["hresult"] == "0x80073701"
    assert pin["package"].startswith("Microsoft-Windows-Hyper-V-Guest-Package~31bf3856ad364e35")
    assert not pin["package"].endswith(".")
    assert at(facts, 11)["code_name"] == "CBS_E_STORE_CORRUPTION"
    assert at(facts, 11)["level"] == "Error"


def test_japanese_post_quoted_and_undated_lines():
    facts = servicing(FIXTURES / "installers-failed-ja" / "post-ja.txt")
    # The quoted dated record with CSI's indented continuation lines (not the prose after).
    phase = at(facts, 15)
    assert phase["sequence"] == "00000c6f" and phase["level"] == "Error"
    assert "resulted in success? FALSE" in phase["message"]
    assert phase["message"].startswith("(F) Done with generic command 2480")
    startup = at(facts, 19)
    assert (startup["hresult"], startup["code_name"]) == ("0x800f0922", "CBS_E_INSTALLERS_FAILED")
    assert "Microsoft" not in startup["message"]  # the Japanese prose below is not joined
    # Microsoft's date-less form inside a code fence.
    undated = at(facts, 26)
    assert undated["time"] is None and undated["component"] == "CSI"
    assert undated["hresult"] == "0x80070002" and undated["sequence"] == "00000c6b"
    assert not any(f.provenance.locator == "line:1" for f in facts)


def test_sfc_lines_in_a_markdown_fence_with_non_breaking_spaces():
    facts = servicing(FIXTURES / "sfc-cannot-repair-en" / "post.md")
    first = at(facts, 11)
    assert first["component"] == "SR" and first["logged_by"] == "CSI"
    assert first["file"] == "storvsp.sys" and first["message"].startswith("[SR] Cannot repair")
    assert at(facts, 12)["file"] == "vmbusr.sys"
    assert at(facts, 13)["file"] == "C:\\Windows\\System32\\drivers\\storvsp.sys"
    assert at(facts, 14)["outcome"] is True  # [SR] Verify complete
    # The first record is padded with non-breaking spaces: read all the same, not a fact
    # (verifying is progress).
    assert not any(f.provenance.locator == "line:9" for f in facts)


def test_mail_wrapped_inside_words_is_joined_back():
    facts = servicing(FIXTURES / "reboot-pending-en" / "mail.txt")
    pending = at(facts, 12)
    assert pending["message"] == (
        "Pending transaction content must be resolved, cannot begin another transaction yet"
    )
    analysis = at(facts, 14)
    assert analysis["hresult"] == "0x80070bc9"
    assert analysis["code_name"] == "ERROR_FAIL_REBOOT_REQUIRED"
    assert analysis["message"].endswith("[HRESULT = 0x80070bc9 - ERROR_FAIL_REBOOT_REQUIRED]")
    assert at(facts, 17)["code_name"] == "ERROR_FAIL_REBOOT_REQUIRED"
    assert {int(f.provenance.locator[5:]) for f in facts} == {12, 14, 17}


def test_healthy_log_keeps_its_outcomes_and_noise_but_no_failure_outcome():
    facts = servicing(FIXTURES / "healthy-en" / "CBS.log")
    assert at(facts, 41)["hresult"] == "0x00000000" and at(facts, 41)["failed"] is False
    assert at(facts, 44)["unrepaired"] == 0
    assert not [f for f in facts if f.attributes["outcome"] and f.attributes["failed"]]
    assert not [f for f in facts if f.attributes["level"] in ("Error", "Warning")]


# ---------------------------------------------------------------- pastes built here
def test_wrapped_hresult_inside_its_brackets_and_a_quoted_paste():
    text = "\n".join(
        [
            "> 2020-12-14 11:20:01, Error CBS Shtd: Failed while processing non-critical driver "
            "operations queue. [HRES",
            "> ULT = 0xe0000100 - Unknown Error]",
            "> 2020-12-14 11:20:01, Info CBS Shtd: Rolling back KTM, because drivers failed.",
        ]
    )
    facts = [f for f in facts_from_text(text, "post.txt") if f.kind == "servicing_log"]
    [fact] = facts
    a = fact.attributes
    assert (a["level"], a["component"], a["hresult"]) == ("Error", "CBS", "0xe0000100")
    assert a["code_name"] is None  # "Unknown Error" is no code name
    assert a["message"].endswith("[HRESULT = 0xe0000100 - Unknown Error]")
    assert fact.provenance.locator == "line:1"


def test_code_name_wrapped_in_the_middle():
    doc = Text.of(
        rec(
            "2024-05-14 10:41:07",
            "Info",
            "CBS",
            "Exec: Processing complete [HRESULT = 0x800f081f - CBS_E_SOURCE_MI",
        )
        + "\nSSING]\n",
        "CBS.log",
    )
    [fact] = cbs.parse(doc)
    assert fact.attributes["code_name"] == "CBS_E_SOURCE_MISSING"


def test_prose_and_other_logs_are_not_servicing_records():
    text = "\n".join(
        [
            "Error CBS could not be reached, said the vendor.",  # no component column
            "2024-05-14 10:21:03 Error something else",  # no comma, no component
            "Info: the update was installed.",
            "2024-05-14 10:21:03, Information  Service started",  # not a level of these logs
        ]
    )
    assert cbs.parse(Text.of(text, "notes.txt")) == []


# ---------------------------------------------------------------- large logs
def test_two_hundred_thousand_info_lines_stay_bounded():
    lines = []
    for k in range(200_000):
        lines.append(
            rec(
                "2024-02-14 03:04:05",
                "Info",
                "CBS",
                f"Exec: Processing package KB50{k % 10000:05d}",
            )
        )
        if k % 40 == 0:  # 5,000 errors of one template, numbers varying
            lines.append(
                rec(
                    "2024-02-14 03:04:05",
                    "Error",
                    "CBS",
                    f"Failed to get session {k} [HRESULT = 0x80070002 - ERROR_FILE_NOT_FOUND]",
                )
            )
        if k % 100 == 0:  # 2,000 distinct warnings
            lines.append(
                rec(
                    "2024-02-14 03:04:05",
                    "Warning",
                    "CBS",
                    f"Unexpected state {'x' * (k // 100 % 500)}",
                )
            )
    facts = cbs.parse(Text(lines, "CBS.log"))
    assert len(facts) <= cbs.MAX_KEPT + cbs.MAX_SUMMARY + 1
    kept = facts[:-1]
    errors = [f for f in kept if f.attributes["level"] == "Error"]
    assert len(errors) == cbs.PER_TEMPLATE  # one template: its first three
    omitted = facts[-1].attributes
    assert omitted["omitted"] + len(kept) == 5_000 + 2_000
    assert omitted["omitted_errors"] == 5_000 - cbs.PER_TEMPLATE
    assert omitted["omitted_warnings"] == 2_000 - (len(kept) - cbs.PER_TEMPLATE)
    assert omitted["records"] == 207_000


def test_only_info_lines_give_no_fact():
    lines = [
        rec("2024-02-14 03:04:05", "Info", "CBS", "Exec: Processing package KB5034768")
    ] * 50_000
    assert cbs.parse(Text(lines, "CBS.log")) == []


def test_a_record_cut_between_two_pieces_is_not_misread(tmp_path: Path):
    # A file larger than one piece (64 KiB at this budget), without blank lines: the cut
    # falls at the last line end before 64 KiB, here between a record wrapped inside its
    # brackets and the rest of it.
    size = Budget(max_memory=4 * MiB).piece_chars()
    filler = rec("2024-02-14 03:04:05", "Info", "CBS", "Exec: Processing package KB5034768")
    head = [filler] * ((size - 300) // (len(filler) + 1))
    cut = rec("2024-02-14 03:05:00", "Error", "CBS", "Failed to repair store [HRES")
    used = sum(len(x) + 1 for x in head) + len(cut) + 1
    rest = "ULT = 0x800f081f - CBS_E_SOURCE_MISSING]" + " " * (size - used + 10)
    after = rec(
        "2024-02-14 03:06:00",
        "Error",
        "CBS",
        "Failed to perform operation. [HRESULT = 0x800f0831 - CBS_E_STORE_CORRUPTION]",
    )
    tail = [filler] * 2000
    lines = [*head, cut, rest, after, *tail]
    path = tmp_path / "CBS.log"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert path.stat().st_size > 2 * size
    # The walker's cut is where this test means it to be: right after the "[HRES" line.
    first = next(txt.pieces(["\n".join(lines)], size, OUTPUT_START))
    assert first.text.endswith("[HRES") and first.ends_line
    found = collect([str(path)], budget=Budget(max_memory=4 * MiB), jobs=1)
    facts = [f for f in found.facts if f.kind == "servicing_log"]
    by_line = {f.provenance.locator: f.attributes for f in facts}
    cut_line, after_line = len(head) + 1, len(head) + 3
    # Each record at its own line in the whole file; the orphaned half is no record.
    assert set(by_line) == {f"line:{cut_line}", f"line:{after_line}"}
    assert by_line[f"line:{after_line}"]["code_name"] == "CBS_E_STORE_CORRUPTION"
    # The cut record keeps what its piece held: an error, no code guessed from elsewhere.
    assert by_line[f"line:{cut_line}"]["level"] == "Error"
    assert by_line[f"line:{cut_line}"]["hresult"] is None
    # Read whole (one piece), the same record gets its code back.
    whole = cbs.parse(Text(lines, "CBS.log"))
    assert whole[0].attributes["hresult"] == "0x800f081f"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                rec("2024-05-14 10:41:07", "Error", "CBS", "Failed [HRES"),
                "ULT = 0x800f081f - CBS_E_SOURCE_MISSING]",
                rec(
                    "2024-05-14 10:41:07",
                    "Info",
                    "CSI",
                    "00000008 [SR] Cannot repair member file [l:",
                ),
                '11]"x.sys" of y',
                "    Installer name: 'Task Scheduler'",
                "Error    CSI    00000c63 (F) Logged @: hr:0x",
                rec("2024-05-14 10:41:07", "Info", "CBS", "Total Repaired Corruption:\t"),
                "Total Detected Corruption:\t99999999999999999999",
                "> ",
                "",
                "(((([[[[",
            ]
        )
        | st.text(max_size=60),
        max_size=60,
    )
)
def test_damaged_and_partial_lines_never_crash(lines: list[str]):
    facts = cbs.parse(Text(lines, "CBS.log"))
    assert len(facts) <= cbs.MAX_KEPT + cbs.MAX_SUMMARY + 1
    for fact in facts:
        hresult = fact.attributes.get("hresult")
        assert hresult is None or (hresult.startswith("0x") and len(hresult) == 10)


# ---------------------------------------------------------------- rules
def diagnose(*attrs: dict[str, Any]) -> list[str]:
    from hvrescue.facts.model import Provenance

    facts = [
        Fact("servicing_log", a, Provenance("CBS.log", f"line:{i + 1}"))
        for i, a in enumerate(attrs)
    ]
    return [d.rule.id for d in evaluate(RULES, facts) if SEVERITY_ORDER[d.severity] >= 1]


def line(**attrs: Any) -> dict[str, Any]:
    base = {"time": "2024-05-14 10:41:07", "level": "Info", "component": "CBS", "message": "x"}
    base.update({"hresult": None, "failed": False, "outcome": False, "format": "cbs-log"})
    base.update(attrs)
    return base


def test_a_code_in_a_progress_line_is_no_diagnosis():
    for code in ("0x800f081f", "0x800f0831", "0x80073712", "0x800f0922"):
        assert diagnose(line(hresult=code, failed=True)) == []


def test_the_same_code_as_an_outcome_or_an_error_is():
    expected = {
        "0x800f081f": "guest.servicing.source-missing",
        "0x800f0906": "guest.servicing.source-missing",
        "0x800f0831": "guest.servicing.store-corruption",
        "0x80073712": "guest.servicing.store-corruption",
        "0x800f0922": "guest.servicing.installers-failed",
    }
    for code, rule in expected.items():
        assert diagnose(line(hresult=code, failed=True, outcome=True))[0] == rule
        assert diagnose(line(hresult=code, failed=True, level="Error"))[0] == rule


def test_an_unknown_failed_outcome_is_not_left_healthy():
    assert diagnose(line(hresult="0xe0000100", failed=True, outcome=True)) == [
        "guest.servicing.operation-failed"
    ]
    # An Error line with its code pasted alone, without the outcome below it.
    assert diagnose(line(level="Error", hresult="0xe0000100", failed=True)) == [
        "guest.servicing.operation-failed"
    ]
    # Not when a specific rule explains it, nor for a success code.
    assert diagnose(line(level="Error", hresult="0x800f0922", failed=True)) == [
        "guest.servicing.installers-failed"
    ]
    assert diagnose(line(hresult="0x00000000", outcome=True)) == []


# ---------------------------------------------------------------- end to end
CASES = [
    ("source-missing-en", "guest.servicing.source-missing", "/LimitAccess", "en"),
    ("store-corruption-en", "guest.servicing.store-corruption", "/ScanHealth", "en"),
    ("installers-failed-ja", "guest.servicing.installers-failed", "schtasks", "ja"),
    ("sfc-cannot-repair-en", "guest.servicing.sfc-cannot-repair", "/RestoreHealth", "en"),
    ("reboot-pending-en", "guest.servicing.reboot-pending", "RevertPendingActions", "en"),
    ("healthy-en", None, None, "en"),
    ("dism-console-en", "guest.servicing.source-missing", "/LimitAccess", "en"),
    ("dism-console-ja", "guest.servicing.source-missing", "/LimitAccess", "ja"),
    ("sfc-console-en", "guest.servicing.sfc-cannot-repair", "/RestoreHealth", "en"),
    ("sfc-console-ja", "guest.servicing.sfc-cannot-repair", "/RestoreHealth", "ja"),
    ("scanhealth-repairable-en", "guest.servicing.store-corruption", "/RestoreHealth", "en"),
    ("console-healthy-ja", None, None, "ja"),
    # Windows Update's own event 20 with 0x800F0922, no CBS.log at hand (Japanese: field_ja).
    ("wu-event-20-en", "guest.servicing.installers-failed", "schtasks", "en"),
    ("../field_ja/wu-install-failed-ja", "guest.servicing.installers-failed", "schtasks", "ja"),
]


@pytest.mark.parametrize(("name", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_incident_folder_through_triage(tmp_path: Path, name: str, expected, command, lang: str):
    triage_incident(FIXTURES / name, tmp_path, expected, command, lang, healthy=True)


def test_a_log_ending_in_zeros_after_a_power_loss_is_read(tmp_path: Path):
    # A guest that crashed while servicing leaves CBS.log with a run of NULs at its end.
    data = (FIXTURES / "source-missing-en" / "CBS.log").read_bytes() + b"\0" * 8192
    path = tmp_path / "CBS.log"
    path.write_bytes(data)
    found = collect([str(path)], jobs=1)
    facts = [f for f in found.facts if f.kind == "servicing_log"]
    assert [f.provenance.locator for f in facts] == [
        f.provenance.locator for f in servicing(FIXTURES / "source-missing-en" / "CBS.log")
    ]
    assert any(f.attributes["code_name"] == "CBS_E_SOURCE_MISSING" for f in facts)


def test_the_console_of_dism_and_sfc():
    from hvrescue.logs.commands import dism_console

    def read(text: str) -> list[dict[str, Any]]:
        return [f.attributes for f in dism_console.parse(Text.of(text, "post.txt"))]

    banner = "Deployment Image Servicing and Management tool\nVersion: 10.0.20348.1\n\n"
    [error] = read(banner + "Error: 87\n\nThe parameter is incorrect.\n")
    assert (error["hresult"], error["failed"], error["format"]) == (
        "0x80070057",
        True,
        "dism-console",
    )
    assert error["message"] == "Error: 87 The parameter is incorrect."
    [hex_error] = read(banner + "Error: 0x800F0906\n\nThe source files could not be downloaded.\n")
    assert hex_error["hresult"] == "0x800f0906"
    # without DISM's banner or command, "Error: 5" is anybody's line
    assert read("Backup job failed\nError: 5\nAccess is denied.\n") == []
    [ok] = read(banner + "The restore operation completed successfully.\n")
    assert (ok["failed"], ok["unrepaired"], ok["level"]) == (False, 0, "Info")
    [sfc] = read(
        "Windows Resource Protection found corrupt files but was unable to fix some\n"
        "of them. For online repairs, details are included in the CBS log file.\n"
    )
    assert (sfc["component"], sfc["failed"], sfc["format"]) == ("SR", True, "sfc-console")
    [clean] = read("Windows Resource Protection did not find any integrity violations.\n")
    assert clean["failed"] is False
