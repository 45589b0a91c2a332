"""Free-text signals, message signatures and dialogs: evidence as people paste it.

Fixtures in tests/fixtures/signatures/ (sources in its README.md). Expected lines are found in
the fixture's own text (the line holding a distinctive fragment), never typed in by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.codes import decode
from hvrescue.facts.model import Fact
from hvrescue.logs import signals as sig
from hvrescue.logs.collect import facts_from_bytes, facts_from_text
from hvrescue.logs.signatures import catalogue
from tests.helpers import run_cli

FIX = Path(__file__).resolve().parent / "fixtures" / "signatures"
CODE = re.compile(r"^0x[0-9a-f]{8}$")


def read(name: str) -> str:
    return (FIX / name).read_text("utf-8")


def line_of(text: str, fragment: str) -> str:
    """The locator of the first line of ``text`` holding ``fragment``."""
    for n, line in enumerate(text.split("\n"), 1):
        if fragment in line:
            return f"line:{n}"
    raise AssertionError(f"{fragment!r} is not in the text")


def facts_of(name: str) -> list[Fact]:
    return facts_from_text(read(name), name)


def signals_of(facts: list[Fact]) -> dict[tuple[str, str], Fact]:
    return {(f.attributes["type"], f.attributes["value"]): f for f in facts if f.kind == "signal"}


def signature_events(facts: list[Fact]) -> dict[str, Fact]:
    out: dict[str, Fact] = {}
    for f in facts:
        if f.kind == "event" and f.attributes["format"] == "signature":
            out.setdefault(f.attributes["signature"], f)
    return out


# ---------------------------------------------------------------- free-text signals
def test_a_post_gives_each_code_kb_event_and_path_at_its_own_line():
    text = read("post_merge_en.md")
    found = signals_of(facts_of("post_merge_en.md"))
    path = re.search(r"[A-Z]:\\.*?\.avhdx", text).group(0)  # type: ignore[union-attr]
    expected = {
        ("event_ref", "Microsoft-Windows-Hyper-V-VMMS:19100"): "VMMS 19100",
        ("hresult", "0x80070299"): "0x80070299",
        ("kb", "KB4534273"): "KB4534273",
        ("vdisk_path", path): path,
    }
    for key, fragment in expected.items():
        assert key in found, key
        fact = found[key]
        assert fact.provenance.locator == line_of(text, fragment)
        assert fact.attributes["confidence"] == 0.5
        assert fragment in fact.attributes["text"]
    assert (
        found[("event_ref", "Microsoft-Windows-Hyper-V-VMMS:19100")].attributes["event_id"] == 19100
    )


def test_a_dotted_dotnet_name_is_no_disk_path_but_a_path_at_a_sentence_end_is():
    text = (
        "    + FullyQualifiedErrorId : InvalidParameter,Microsoft.Vhd.PowerShell.Cmdlets.SetVhd\n"
        "The merge of D:\\VMs\\web01\\web01.avhdx. failed with error 0x80070299\n"
    )
    paths = {v for (t, v) in signals_of(facts_from_text(text, "post.txt")) if t == "vdisk_path"}
    assert paths == {"D:\\VMs\\web01\\web01.avhdx"}


def test_a_signal_is_kept_once_per_file_with_its_first_line_and_a_count():
    text = "first 0x80070005 here\nnothing\nagain 0X80070005\nand (0x80070005)\n"
    found = signals_of(facts_from_text(text, "note.txt"))
    fact = found[("hresult", "0x80070005")]
    assert fact.provenance.locator == "line:1"
    assert fact.attributes["count"] == 3


def test_a_file_read_in_pieces_keeps_one_signal_per_value():
    # Far larger than one piece of the smallest budget: parsed in several pieces.
    filler = "".join(f"line {i} of a long console log with nothing in it\n" for i in range(60000))
    text = "error 0x80070070 at the start\n" + filler + "again 0x80070070 at the end\n"
    from hvrescue.evidence import Budget

    found = facts_from_bytes(text.encode(), "big.log", budget=Budget.from_option("64M"))
    hits = [f for f in found.facts if f.kind == "signal" and f.attributes["value"] == "0x80070070"]
    assert len(hits) == 1
    assert hits[0].provenance.locator == "line:1"
    assert hits[0].attributes["count"] == 2


@pytest.mark.parametrize(
    ("line", "kind", "value"),
    [
        ("Error code: 80070005", "hresult", "0x80070005"),
        ("hr = 0x800401fb, Object is not registered.", "hresult", "0x800401fb"),
        ("STATUS 0XC000021A", "ntstatus", "0xc000021a"),
        ("failed with error 32.", "win32", "0x00000020"),
        ("System error 5 has occurred.", "win32", "0x00000005"),
        ("エラー 1450 が発生しました", "win32", "0x000005aa"),
        ("Error: 0x5", "win32", "0x00000005"),
    ],
)
def test_codes_are_normalised_and_typed(line: str, kind: str, value: str):
    found = signals_of(facts_from_text(line + "\n", "n.txt"))
    assert (kind, value) in found
    if kind == "win32":
        assert found[(kind, value)].attributes["win32"] == int(value, 16)


@pytest.mark.parametrize(
    "line",
    [
        "Bugcheck parameters 0xfffff8025e2b1234 0x0000004b4e1fe8b0",  # addresses, not codes
        "The bugcheck was: 0x0000007e (0x0, 0x0, 0x0, 0x0)",  # a stop code, not a status
        "Error 3/14/2024 10:02:11 AM",  # a date after a level word
        "Windows Server 2019 build 17763.5458",
    ],
)
def test_numbers_that_are_no_codes_give_no_code_signal(line: str):
    found = signals_of(facts_from_text(line + "\n", "n.txt"))
    assert not [k for k in found if k[0] in ("hresult", "ntstatus", "win32")]


def test_every_code_signal_is_typed_as_the_independent_decoder_types_it():
    for name in sorted(p.name for p in FIX.glob("*.*")):
        for (kind, value), fact in signals_of(facts_of(name)).items():
            if kind in ("hresult", "ntstatus"):
                assert CODE.match(value), value
                # The error-code decoder of diagnose/ reads the value's own bits: it must agree.
                assert decode(int(value, 16))["kind"].startswith(kind), value
            assert len(fact.attributes["text"]) <= 300


@pytest.mark.parametrize(
    ("line", "provider", "event_id"),
    [
        ("VSS 8193 every night", "VSS", 8193),
        ("see event ID 12289 in Application", None, 12289),
        ("イベント ID 12140 が記録されています", None, 12140),
        ("イベントID：16010", None, 16010),
        ("Event 19100 from Hyper-V-VMMS keeps coming", "Microsoft-Windows-Hyper-V-VMMS", 19100),
        ("CAPI2 Event ID: 513", "Microsoft-Windows-CAPI2", 513),
        ("ソース:VSS、ID:8193 のエラー", "VSS", 8193),
        (
            "Error  3/14/2024 10:02:11 AM  Hyper-V-VMMS  16010  None",
            "Microsoft-Windows-Hyper-V-VMMS",
            16010,
        ),
        ("event 41 (Kernel-Power) after the crash", "Microsoft-Windows-Kernel-Power", 41),
    ],
)
def test_event_references_in_english_and_japanese(line: str, provider: str | None, event_id: int):
    refs = [
        f.attributes
        for f in facts_from_text(line + "\n", "n.txt")
        if f.kind == "signal" and f.attributes["type"] == "event_ref"
    ]
    assert {"provider": provider, "event_id": event_id} in [
        {"provider": r["provider"], "event_id": r["event_id"]} for r in refs
    ]


def test_a_path_the_console_wrapped_is_joined_and_guids_know_their_role():
    facts = facts_of("ps_missing_checkpoint_en.txt")
    found = signals_of(facts)
    paths = [v for (k, v) in found if k == "vdisk_path"]
    assert paths == [
        "E:\\Hyper-V\\FS01\\Virtual Hard Disks\\FS01_A1B2C3D4-E5F6-4789-9ABC-DEF012345678.avhdx"
    ]
    text = (
        "(Virtual machine ID 2C7D9E11-5A4B-4C3D-8E2F-1A0B9C8D7E6F)\n"
        "Writer Id: {e8132975-6f93-4464-a53e-1050253ae220}\n"
        "Checkpoint ID 11111111-2222-3333-4444-555555555555\n"
    )
    found = signals_of(facts_from_text(text, "g.txt"))
    assert found[("vm_guid", "2c7d9e11-5a4b-4c3d-8e2f-1a0b9c8d7e6f")].attributes["role"] == "vm"
    # A writer id in a healthy listing is no signal; a GUID on a line about a failure is.
    assert ("guid", "e8132975-6f93-4464-a53e-1050253ae220") not in found
    failing = "Writer {e8132975-6f93-4464-a53e-1050253ae220} failed: 0x800423f4\n"
    assert ("guid", "e8132975-6f93-4464-a53e-1050253ae220") in signals_of(
        facts_from_text(failing, "g.txt")
    )
    assert (
        found[("vm_guid", "11111111-2222-3333-4444-555555555555")].attributes["role"]
        == "checkpoint"
    )


def test_signal_counts_are_bounded_on_a_text_of_noise():
    text = "".join(f"0x8{i:07x}\n" for i in range(3000))
    facts = [f for f in facts_from_text(text, "noise.txt") if f.kind == "signal"]
    assert len(facts) == sig.MAX_SIGNALS


# ---------------------------------------------------------------- signatures
CASES: list[tuple[str, str, str | None, int | None, str | None, str]] = [
    # fixture, signature, provider, event id, a code it carries, a fragment of its first line
    (
        "post_merge_en.md",
        "vmms-merge-failed",
        "Microsoft-Windows-Hyper-V-VMMS",
        19100,
        "0x80070299",
        "background disk merge",
    ),
    (
        "post_merge_en.md",
        "file-system-limitation",
        None,
        None,
        "0x80070299",
        "background disk merge",
    ),
    (
        "post_merge_ja.md",
        "vmms-merge-failed",
        "Microsoft-Windows-Hyper-V-VMMS",
        19100,
        "0x80070299",
        "バックグラウンド",
    ),
    (
        "post_merge_ja.md",
        "file-system-limitation",
        None,
        None,
        "0x80070299",
        "ファイル システムの制限",
    ),
    (
        "dialog_chain_en.txt",
        "vhd-chain-broken",
        None,
        None,
        "0xc03a000d",
        "Synthetic SCSI Controller",
    ),
    ("dialog_chain_ja.txt", "vhd-chain-broken", None, None, "0xc03a000d", "チェーンが壊れて"),
    (
        "dialog_chain_ja.txt",
        "attachment-open-failed",
        "Microsoft-Windows-Hyper-V-Worker",
        12140,
        None,
        "アタッチメント",
    ),
    ("dialog_see_details_ja.txt", "vhd-chain-inaccessible", None, None, None, "Emulated IDE"),
    (
        "dialog_access_en.txt",
        "general-access-denied",
        None,
        None,
        "0x80070005",
        "Failed to Power on",
    ),
    (
        "ps_missing_checkpoint_en.txt",
        "checkpoint-missing",
        "Microsoft-Windows-Hyper-V-VMMS",
        None,
        "0x80070002",
        "is missing a checkpoint",
    ),
    (
        "ps_missing_checkpoint_en.txt",
        "vhd-parent-not-found",
        None,
        None,
        "0x80070002",
        "Failed to get VHD parent",
    ),
    (
        "hypervisor_ja.txt",
        "hypervisor-not-running",
        "Microsoft-Windows-Hyper-V-VMMS",
        None,
        None,
        "ハイパーバイザーが実行されていない",
    ),
    (
        "hypervisor_ja.txt",
        "hypervisor-launch-failed",
        "Microsoft-Windows-Hyper-V-Hypervisor",
        80,
        "0xc00000bb",
        "Hypervisor launch failed",
    ),
    (
        "capi2_513_bare_en.txt",
        "capi2-513-system-writer",
        "Microsoft-Windows-CAPI2",
        513,
        None,
        "OnIdentity()",
    ),
    (
        "vss_8193_bare_en.txt",
        "vss-8193-unexpected-error",
        "VSS",
        8193,
        "0x800401fb",
        "CoCreateInstance",
    ),
    (
        "vss_8193_13_ja.txt",
        "vss-8193-unexpected-error",
        "VSS",
        8193,
        "0x800401fb",
        "CoCreateInstance",
    ),
    ("vss_8193_13_ja.txt", "vss-13-com-server", "VSS", 13, "0x800401fb", "CEventSystem"),
    ("bugcheck_entrypoint_en.txt", "bugcheck-c000021a", None, None, "0xc0000139", "STOP: c000021a"),
    (
        "bugcheck_entrypoint_en.txt",
        "entry-point-not-found",
        None,
        None,
        "0xc0000139",
        "status of 0xc0000139",
    ),
]


@pytest.mark.parametrize(("name", "signature", "provider", "event_id", "code", "fragment"), CASES)
def test_a_pasted_message_is_the_event_it_comes_from(
    name: str,
    signature: str,
    provider: str | None,
    event_id: int | None,
    code: str | None,
    fragment: str,
):
    text = read(name)
    found = signature_events(facts_from_text(text, name))
    assert signature in found, sorted(found)
    a = found[signature].attributes
    assert (a["provider"], a["event_id"]) == (provider, event_id)
    assert found[signature].provenance.locator == line_of(text, fragment)
    assert 0.6 <= a["confidence"] <= 0.8
    assert a["level_name"] in ("error", "critical")
    if code:
        assert code in a["codes"]
    assert all(CODE.match(c) for c in a["codes"])
    assert fragment.split()[0] in a["message"]


def test_a_message_keeps_the_details_that_tell_its_causes_apart():
    found = signature_events(facts_of("capi2_513_bare_en.txt"))
    message = found["capi2-513-system-writer"].attributes["message"]
    assert "AddLegacyDriverFiles" in message and "Access is denied" in message


def wrap_hard(text: str, width: int) -> str:
    """As a console wraps: at the width, in the middle of words."""
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


MESSAGE = (
    "'SQL01' background disk merge failed to complete: The requested operation could not be "
    "completed due to a file system limitation (0x80070299). (Virtual machine ID "
    "6A3C1F2E-9B4D-4E5F-8A7B-1C2D3E4F5A6B)"
)


@pytest.mark.parametrize(
    "mangled",
    [
        wrap_hard(MESSAGE, 37),
        "\n".join("> " + line for line in wrap_hard(MESSAGE, 50).split("\n")),
        MESSAGE.replace(" ", "\u00a0"),
        full_width(MESSAGE),
        "```\n" + MESSAGE.replace(" ", "   ") + "\n```",
    ],
    ids=["wrapped-mid-word", "quoted", "nbsp", "full-width", "fenced-spaced"],
)
def test_a_mangled_message_is_still_recognised_at_its_first_line(mangled: str):
    text = "Here is what the log says:\n\n" + mangled + "\n"
    found = signature_events(facts_from_text(text, "post.txt"))
    assert "vmms-merge-failed" in found
    assert (
        found["vmms-merge-failed"].provenance.locator == "line:3"
        if not mangled.startswith("```")
        else "line:4"
    )
    assert "0x80070299" in found["file-system-limitation"].attributes["codes"]


@pytest.mark.parametrize("name", ["near_miss_backup_ok_en.txt", "near_miss_kb_titles_en.txt"])
def test_near_misses_raise_no_failure(name: str):
    facts = facts_of(name)
    failures = [f for f in facts if f.kind == "event" and (f.attributes["level"] or 9) <= 3]
    assert failures == []


def test_a_healthy_backup_message_is_recognised_as_information():
    found = signature_events(facts_of("near_miss_backup_ok_en.txt"))
    assert found["wsb-backup-completed"].attributes["level_name"] == "information"


def test_a_parsed_record_is_not_counted_again_by_its_signature():
    text = (
        "Log Name:      Microsoft-Windows-Hyper-V-VMMS-Admin\n"
        "Source:        Microsoft-Windows-Hyper-V-VMMS\n"
        "Date:          3/14/2024 2:10:11 AM\n"
        "Event ID:      19100\n"
        "Level:         Error\n"
        "Description:\n" + MESSAGE + "\n"
    )
    facts = facts_from_text(text, "event.txt")
    events = [f for f in facts if f.kind == "event"]
    assert [e.attributes["format"] for e in events] == ["text"]


# The General tab of Event Viewer selected and copied: the message first, then the labels, and
# no "Source:" line when the selection stops short of it. The reader gives the record with a
# null provider; its signature must not count the same event a second time.
NO_SOURCE_EN = (
    MESSAGE + "\n\n"
    "Log Name:      {log}\n"
    "Event ID:      19100\n"
    "Level:         Error\n"
    "Logged:        11/28/2026 3:10:44 AM\n"
    "Computer:      HV01\n"
)
NO_SOURCE_JA = (
    "'SQL01' バックグラウンドのディスク マージに失敗しました: ファイル システムの制限のため、"
    "要求された操作を完了できませんでした (0x80070299)。(仮想マシン ID "
    "6A3C1F2E-9B4D-4E5F-8A7B-1C2D3E4F5A6B)\n\n"
    "ログの名前：Microsoft-Windows-Hyper-V-VMMS-Admin\n"
    "イベント ID：19100\n"
    "レベル：エラー\n"
    "ログの日付：2026/11/28 3:10:44\n"
    "コンピューター：HV01\n"
)
CAPI2_NO_SOURCE = (
    "Cryptographic Services failed while processing the OnIdentity() call in the System Writer "
    "Object.\n\nDetails:\nAddLegacyDriverFiles: Unable to back up image of binary Contoso "
    "Storage Filter.\n\nSystem Error:\nThe system cannot find the file specified.\n.\n\n"
    "Log Name:      Application\n"
    "Event ID:      513\n"
    "Level:         Error\n"
    "Logged:        11/28/2026 2:14:07 AM\n"
    "Computer:      HV01\n"
)


def events_of(text: str) -> list[Fact]:
    return [f for f in facts_from_text(text, "ev.txt") if f.kind == "event"]


@pytest.mark.parametrize(
    "text",
    [NO_SOURCE_EN.format(log="Microsoft-Windows-Hyper-V-VMMS-Admin"), NO_SOURCE_JA],
    ids=["en", "ja"],
)
def test_a_record_without_its_source_line_is_one_event(text: str):
    [event] = events_of(text)
    a = event.attributes
    assert (a["format"], a["event_id"], a["channel"]) == (
        "viewer-text",
        19100,
        "Microsoft-Windows-Hyper-V-VMMS-Admin",
    )
    # what the signature knew is kept: the provider its log belongs to
    assert a["provider"] == "Microsoft-Windows-Hyper-V-VMMS"
    assert "0x80070299" in a["message"]


def test_a_record_without_its_source_line_in_a_classic_log_keeps_the_whole_message():
    [event] = events_of(CAPI2_NO_SOURCE)
    a = event.attributes
    assert (a["event_id"], a["channel"], a["provider"]) == (
        513,
        "Application",
        "Microsoft-Windows-CAPI2",
    )
    # the reader kept only the last paragraph; the signature read the message from its start
    assert a["message"].startswith("Cryptographic Services failed while processing")
    assert "The system cannot find the file specified." in a["message"]


def test_a_record_of_another_providers_log_is_not_taken_for_the_signatures_event():
    # Same id, same place, but the log belongs to another provider: not the same event.
    events = events_of(NO_SOURCE_EN.format(log="Microsoft-Windows-Hyper-V-Worker-Admin"))
    assert sorted(e.attributes["format"] for e in events) == ["signature", "viewer-text"]
    viewer = next(e for e in events if e.attributes["format"] == "viewer-text")
    assert viewer.attributes["provider"] is None


def test_a_record_of_another_id_is_not_taken_for_the_signatures_event():
    text = NO_SOURCE_EN.format(log="Microsoft-Windows-Hyper-V-VMMS-Admin").replace("19100", "19060")
    events = events_of(text)
    assert sorted(e.attributes["format"] for e in events) == ["signature", "viewer-text"]


def test_facts_of_a_record_without_its_source_line_through_the_cli(tmp_path: Path):
    (tmp_path / "ev.txt").write_text(CAPI2_NO_SOURCE, "utf-8")
    r = run_cli("facts", tmp_path, "--json")
    assert r.rc == 0, r.stderr
    events = [f for f in r.json()["facts"] if f["kind"] == "event"]
    assert [(e["attributes"]["event_id"], e["attributes"]["format"]) for e in events] == [
        (513, "viewer-text")
    ]


def test_every_catalogue_entry_is_well_formed():
    entries = catalogue()
    assert len({s.id for s in entries}) == len(entries)
    for s in entries:
        assert s.patterns, s.id
        assert 0.6 <= s.confidence <= 0.8, s.id
        assert all(CODE.match(c) for c in s.codes), s.id
        assert s.level is not None, s.id
        assert {lang for lang, _, _ in s.patterns} >= {"en"}, s.id


# ---------------------------------------------------------------- dialogs
def dialog_of(name: str) -> dict[str, Any]:
    dialogs = [f for f in facts_of(name) if f.kind == "dialog"]
    assert len(dialogs) == 1
    assert dialogs[0].attributes["confidence"] == 0.8
    return dialogs[0].attributes


def test_a_task_dialog_copied_with_ctrl_c_in_english():
    d = dialog_of("dialog_chain_en.txt")
    assert d["title"] == "Hyper-V Manager"
    assert d["instruction"].startswith("An error occurred while attempting to start")
    assert "'web01' failed to start." in d["content"]
    assert "Virtual machine ID 2C7D9E11" in d["content"]  # the expanded information, joined
    assert d["codes"] == ["0xc03a000d"]


def test_a_task_dialog_in_japanese():
    d = dialog_of("dialog_chain_ja.txt")
    assert d["title"] == "Hyper-V マネージャー"
    assert d["instruction"] == "選択された仮想マシンの起動中にエラーが発生しました。"
    assert "仮想ハード ディスクのチェーンが壊れています" in d["content"]
    assert d["codes"] == ["0xc03a000d"]


@pytest.mark.parametrize(
    ("name", "title", "start"),
    [
        ("dialog_access_en.txt", "Hyper-V Manager", "An error occurred while attempting to start"),
        ("dialog_see_details_ja.txt", "Hyper-V マネージャー", "'DC01' の状態を変更しようとして"),
    ],
)
def test_an_unlabelled_dialog_and_its_see_details_text(name: str, title: str, start: str):
    d = dialog_of(name)
    assert d["title"] == title
    assert d["instruction"].startswith(start)
    assert "See details" not in (d["content"] or "") and "詳細の非表示" not in (d["content"] or "")


# ---------------------------------------------------------------- mangled text never breaks
NEAR_MISSES = [read("near_miss_backup_ok_en.txt"), read("near_miss_kb_titles_en.txt")]


def _mangle(text: str, width: int, nbsp: bool, wide: bool, quote: bool, cut: int) -> str:
    if nbsp:
        text = text.replace(" ", "\u00a0")
    if wide:
        text = full_width(text)
    text = "\n".join(wrap_hard(line, width) for line in text.split("\n"))
    if quote:
        text = "\n".join("> " + line for line in text.split("\n"))
    return text[: max(0, len(text) - cut)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(NEAR_MISSES),
    st.integers(min_value=8, max_value=120),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=40),
)
def test_mangled_near_misses_never_become_failures(
    text: str, width: int, nbsp: bool, wide: bool, quote: bool, cut: int
):
    facts = facts_from_text(_mangle(text, width, nbsp, wide, quote, cut), "mangled.txt")
    assert not [f for f in facts if f.kind == "event" and (f.attributes["level"] or 9) <= 3]


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_gives_bounded_facts_without_error(text: str):
    facts = facts_from_text(text, "random.txt")
    for f in facts:
        if f.kind == "signal":
            assert f.attributes["type"] in sig.TYPES
            assert f.provenance.locator and f.provenance.locator.startswith("line:")


def test_a_kb_number_is_a_signal_but_a_servicing_package_identity_is_not():
    text = (
        "after KB5034441 (and kb 5034768) the guest fails\nPackage_for_KB5031361~31bf3856ad364e35\n"
    )
    kbs = {v for (k, v) in signals_of(facts_from_text(text, "n.txt")) if k == "kb"}
    assert kbs == {"KB5034441", "KB5034768"}
