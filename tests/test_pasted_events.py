"""Events pasted from Event Viewer in the layouts people really paste (General tab, "Copy details
as text", Friendly View, list rows), in English, Japanese, German and French, reposted, wrapped
and cut. Fixtures and where each layout was seen: tests/fixtures/pasted_events/README.md."""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest

from hvrescue.facts.model import Fact
from hvrescue.logs import repost, text_events, viewer_friendly, viewer_rows
from hvrescue.logs.collect import collect, facts_from_text
from hvrescue.logs.textutil import Text

FIX = Path(__file__).parent / "fixtures" / "pasted_events"
MINE = {"text", "viewer-text", "viewer-friendly", "viewer-row"}
VMMS = "Microsoft-Windows-Hyper-V-VMMS"
VM_ID = "5B2C1E7A-3D4F-4A6B-9C8D-7E6F5A4B3C2D"
MERGE_EN = "'web01' background disk merge failed to complete: The requested operation"
MERGE_JA = "'web01' のバックグラウンド ディスク マージを完了できませんでした"


def read_events(text: str, path: str = "pasted.txt") -> list[Fact]:
    """The events this reader family gives for ``text`` (cleaner first, as collect does)."""
    doc = Text.of(repost.clean(text), path)
    facts = text_events.parse(doc) + viewer_friendly.parse(doc) + viewer_rows.parse(doc)
    return sorted(facts, key=lambda f: int((f.provenance.locator or "line:0")[5:]))


def events_of(name: str) -> list[dict]:
    return [f.attributes for f in read_events((FIX / name).read_text(encoding="utf-8"), name)]


def summary(e: dict) -> tuple:
    return (e["format"], e["provider"], e["source_name"], e["event_id"], e["level_name"])


# ---------------------------------------------------------------- General tab / copy as text
def test_copy_details_without_source_line_in_two_label_orders():
    e1, e2 = events_of("copy_details_nosource_en.txt")
    assert summary(e1) == ("viewer-text", None, None, 19100, "error")
    assert e1["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin"
    assert e1["time_local"] == "2023-10-02T09:12:01" and e1["computer"] == "HV01.contoso.local"
    assert e1["message"].startswith(MERGE_EN) and e1["message"].endswith(f"{VM_ID})")
    assert e1["confidence"] == 0.9  # no source: read tolerantly
    assert summary(e2) == ("viewer-text", None, None, 16010, "error")
    assert e2["time_local"] == "2023-10-02T09:14:36"
    assert e2["message"] == "The operation failed because the file was not found."


def test_general_tab_message_first_then_the_two_column_grid():
    [e] = events_of("general_tab_en.txt")
    assert summary(e) == ("viewer-text", VMMS, "Hyper-V-VMMS", 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["task"] == "None"
    assert e["computer"] == "HV01.contoso.local" and e["opcode"] == "Info"
    assert e["message"].startswith(MERGE_EN) and "0x80070299" in e["message"]
    assert "confidence" not in e  # source, level and time all there


def test_general_tab_japanese_with_accelerator_keys():
    [e] = events_of("general_tab_ja.txt")
    assert summary(e) == ("viewer-text", VMMS, "Hyper-V-VMMS", 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["task"] == "なし"
    assert e["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin" and e["opcode"] == "情報"
    assert e["message"].startswith(MERGE_JA)


def test_japanese_full_width_colons_and_digits():
    e1, e2 = events_of("copy_details_ja_fullwidth.txt")
    assert (e1["event_id"], e1["level_name"], e1["provider"]) == (19100, "error", None)
    assert e1["time_local"] == "2023-10-02T09:12:01" and e1["computer"] == "HV01.contoso.local"
    assert e1["message"].startswith(MERGE_JA)
    assert summary(e2) == (
        "text",
        "Microsoft-Windows-Hyper-V-Hypervisor",
        "Microsoft-Windows-Hyper-V-Hypervisor",
        80,
        "error",
    )
    assert "0xC00000BB" in e2["message"]


def test_german_copy_details():
    [e] = events_of("copy_details_de.txt")
    assert summary(e) == ("viewer-text", VMMS, VMMS, 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["task"] == "Keine"
    assert e["message"].startswith("Die Zusammenführung") and "0x80070299" in e["message"]


def test_french_copy_details_reads_the_date_day_first():
    [e] = events_of("copy_details_fr.txt")
    assert summary(e) == ("viewer-text", VMMS, VMMS, 19100, "error")
    # 02/10/2023 is 2 October in French, not 10 February.
    assert e["time_local"] == "2023-10-02T09:12:01"
    assert e["message"].startswith("Échec de la fusion") and e["task"] == "Aucun"


def test_french_general_tab():
    [e] = events_of("general_tab_fr.txt")
    assert summary(e) == ("viewer-text", VMMS, "Hyper-V-VMMS", 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["computer"] == "HV01.contoso.local"
    assert e["message"].startswith("Échec de la fusion")


def test_german_general_tab_with_protokolliert():
    [e] = events_of("general_tab_de.txt")
    assert summary(e) == ("viewer-text", VMMS, "Hyper-V-VMMS", 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["task"] == "Keine"
    assert e["opcode"] == "Info" and e["message"].startswith("Die Zusammenführung")


def test_fragment_without_its_first_lines_gives_fewer_fields():
    [e] = events_of("fragment_en.txt")
    assert (e["event_id"], e["level_name"], e["provider"], e["time_local"]) == (
        19100,
        "error",
        None,
        None,
    )
    assert e["computer"] == "HV01.contoso.local" and e["confidence"] == 0.9
    assert e["message"].startswith("'web01' background disk merge failed to complete")


def test_wrapped_by_a_mail_client_joins_names_broken_after_a_hyphen_and_keeps_pm():
    [e] = events_of("wrapped_en.txt")
    assert summary(e) == ("text", VMMS, VMMS, 19100, "error")
    assert e["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin"
    assert e["time_local"] == "2023-10-02T21:12:01"  # "PM" was on a line of its own
    assert " ".join(e["message"].split()).endswith(f"(Virtual machine ID {VM_ID})")


def test_english_copy_details_still_reads_as_before():
    text = (FIX.parent / "commands" / "events_text_en.txt").read_text(encoding="utf-8")
    events = [f.attributes for f in read_events(text)]
    assert [summary(e) for e in events] == [
        ("text", "Microsoft-Windows-Hyper-V-Hypervisor", "Microsoft-Windows-Hyper-V-Hypervisor",
         80, "error"),
        ("text", "Microsoft-Windows-Hyper-V-Worker", "Microsoft-Windows-Hyper-V-Worker", 3112,
         "error"),
    ]  # fmt: skip
    assert all("confidence" not in e for e in events)


def test_japanese_copy_with_its_event_xml_is_enriched_from_the_xml():
    text = (FIX.parent / "commands" / "events_text_with_xml_en.txt").read_text(encoding="utf-8")
    text = text.replace("Log Name:      Application", "ログの名前:     Application")
    text = text.replace("Event Xml:", "イベント Xml:")
    [e] = [f.attributes for f in read_events(text)]
    assert (e["event_id"], e["record_id"], e["time"]) == (
        8193,
        5521,
        "2018-10-01T12:00:19.000000000Z",
    )
    assert e["data"] == ["CoCreateInstance", "hr = 0x800401fb, Object is not registered."]
    assert "Subscribing Writer" in e["message"] and "<Event" not in e["message"]


def test_wevtutil_text_format_reads_each_record_and_its_utc_date():
    e1, e2 = events_of("wevtutil_text_en.txt")
    hv = "Microsoft-Windows-Hyper-V-Hypervisor"
    assert summary(e1) == ("viewer-text", hv, hv, 80, "error")
    assert e1["time"] == "2023-10-02T08:55:10.1230000Z" and e1["time_local"] is None
    assert e1["message"].endswith("error 0xC00000BB.")  # not the next record's heading
    assert (e2["event_id"], e2["message"]) == (
        41,
        "Hypervisor launch failed; Either VMX not present or not enabled in BIOS.",
    )


# ---------------------------------------------------------------- Friendly View
def test_friendly_view_as_pasted_in_a_forum_code_block():
    [e] = events_of("friendly_en.txt")
    assert summary(e) == ("viewer-friendly", VMMS, VMMS, 19100, "error")
    assert e["time"] == "2023-10-02T00:12:01.5275837Z" and e["record_id"] == 4823
    assert e["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin"
    assert (e["process_id"], e["thread_id"], e["user_sid"]) == (3312, 5140, "S-1-5-18")
    assert e["data"] == {
        "VmName": "web01",
        "VmId": VM_ID,
        "ErrorMessage": "%%2147942553",
        "ErrorCode": "0x80070299",
    }
    assert "confidence" not in e


def test_friendly_view_classic_event_from_a_japanese_host():
    [e] = events_of("friendly_ja.txt")
    assert summary(e) == (
        "viewer-friendly",
        "Service Control Manager",
        "Service Control Manager",
        7031,
        "error",
    )
    assert e["qualifiers"] == 49152 and e["channel"] == "System"
    assert (
        e["data"]["param1"] == "Hyper-V 仮想マシン管理" and e["data"]["param5"] == "サービスの再開"
    )
    assert e["binary"] == "76006D006D0073000000" and len(e["data"]) == 5


def test_friendly_view_pasted_as_a_table_one_item_per_line():
    [e] = events_of("friendly_table_en.txt")
    assert summary(e) == ("viewer-friendly", VMMS, VMMS, 16010, "error")
    assert e["time"] == "2023-10-02T00:14:36.1180522Z" and e["record_id"] == 4825
    assert e["data"] == {"VmName": "web01", "VmId": VM_ID}


def test_friendly_view_flattened_onto_one_line_keeps_the_system_part_only():
    [e] = events_of("friendly_flat_en.txt")
    assert summary(e) == ("viewer-friendly", VMMS, VMMS, 19100, "error")
    assert e["time"] == "2023-10-02T00:12:01.5275837Z" and e["computer"] == "HV01.contoso.local"
    assert e["data"] == {} and e["confidence"] == 0.9


def test_friendly_view_hard_wrapped_by_a_console_joins_the_broken_name():
    text = (FIX / "friendly_en.txt").read_text(encoding="utf-8")
    text = text.replace(
        "Channel Microsoft-Windows-Hyper-V-VMMS-Admin",
        "Channel Microsoft-Windows-Hy\nper-V-VMMS-Admin",
    )
    [e] = read_events(text)
    assert e.attributes["channel"] == "Microsoft-Windows-Hyper-V-VMMS-Admin"


def test_text_after_a_friendly_view_is_not_glued_to_its_last_name():
    text = (FIX / "friendly_table_en.txt").read_text(encoding="utf-8").split("-\nUserData")[0]
    [e] = read_events(text.rstrip() + "\n\nThanks\n")
    assert e.attributes["computer"] == "HV01.contoso.local"


# ---------------------------------------------------------------- list rows
def test_rows_saved_as_tab_delimited_text_with_quoted_messages():
    events = events_of("rows_export_en.txt")
    assert [(e["event_id"], e["level_name"], e["provider"]) for e in events] == [
        (16010, "error", VMMS),
        (19100, "error", VMMS),
        (19070, "information", VMMS),
        (7031, "warning", "Service Control Manager"),
    ]
    assert events[1]["message"].startswith(MERGE_EN) and events[1]["message"].endswith(")")
    assert events[2]["message"].endswith("into its parent.") and "\n\n" in events[2]["message"]
    assert events[0]["time_local"] == "2023-10-02T09:14:36" and events[0]["task"] == "None"
    assert all(e["format"] == "viewer-row" and "confidence" not in e for e in events)
    assert [e["source_name"] for e in events][:1] == ["Hyper-V-VMMS"]


def test_rows_copied_from_the_list_with_their_messages():
    events = events_of("rows_copied_en.txt")
    assert [
        (e["event_id"], e["level_name"], e["source_name"], e["time_local"]) for e in events
    ] == [
        (16010, "error", "Hyper-V-VMMS", "2023-10-02T09:14:36"),
        (19100, "error", "Hyper-V-VMMS", "2023-10-02T09:12:01"),
        (1106, "error", "Hyper-V-VMMS", None),
        (7031, "error", "Service Control Manager", "2023-10-02T09:01:12"),
        (9, "warning", "Hyper-V-StorageVSP", "2023-10-02T08:58:40"),
    ]
    assert events[0]["message"] == "The operation failed because the file was not found."
    assert events[1]["message"].startswith(MERGE_EN)
    assert events[4]["provider"] == "Microsoft-Windows-Hyper-V-StorageVSP"
    assert all(e["confidence"] == 0.9 for e in events)


def test_rows_japanese():
    events = events_of("rows_ja.txt")
    assert [(e["event_id"], e["level_name"], e["time_local"]) for e in events] == [
        (16010, "error", "2023-10-02T09:14:36"),
        (19100, "error", "2023-10-02T09:12:01"),
        (1106, "error", "2023-10-02T09:12:01"),
        (9, "warning", "2023-10-02T08:58:40"),
    ]
    assert events[1]["message"].startswith(MERGE_JA) and events[0]["task"] == "なし"


def test_rows_copied_from_a_japanese_list():
    e1, e2 = events_of("rows_copied_ja.txt")
    assert (e1["event_id"], e1["source_name"], e1["time_local"]) == (
        19100,
        "Hyper-V-VMMS",
        "2023-10-02T09:12:01",
    )
    assert e1["message"].startswith(MERGE_JA) and e1["task"] == "なし"
    assert (e2["event_id"], e2["level_name"], e2["message"]) == (9, "warning", None)


def test_single_spaced_row_with_a_source_of_several_words_is_not_guessed():
    # Where "Microsoft Office 16 Alerts" ends cannot be told unless the category says so.
    assert read_events("Error 10/2/2023 9:12:01 AM Microsoft Office 16 Alerts 300 Outlook") == []
    [e] = read_events("Error 10/2/2023 9:12:01 AM Microsoft Office 16 Alerts 300 None")
    assert (e.attributes["source_name"], e.attributes["event_id"]) == (
        "Microsoft Office 16 Alerts",
        300,
    )


# ---------------------------------------------------------------- reposted text
def test_reposted_email_quote_with_fence_and_web_spaces_reads_like_the_clean_text():
    [e] = events_of("reposted_en.txt")
    assert summary(e) == ("text", VMMS, VMMS, 19100, "error")
    assert e["time_local"] == "2023-10-02T09:12:01" and e["message"].startswith(MERGE_EN)
    assert e["computer"] == "HV01.contoso.local"
    [fact] = read_events((FIX / "reposted_en.txt").read_text(encoding="utf-8"))
    assert fact.provenance.locator == "line:5"  # the line of "> Log Name:" in the original


def test_reposted_japanese_blog_quote():
    [e] = events_of("reposted_ja.txt")
    assert summary(e) == ("text", VMMS, VMMS, 19100, "error")
    assert e["task"] == "なし" and e["message"].startswith(MERGE_JA)


def test_cleaner_keeps_every_line_in_its_place():
    raw = (FIX / "reposted_en.txt").read_text(encoding="utf-8")
    cleaned = repost.clean(raw)
    assert cleaned.count("\n") == raw.count("\n")
    lines = cleaned.split("\n")
    assert lines[4] == "Log Name:      Microsoft-Windows-Hyper-V-VMMS-Admin"
    assert lines[3] == ""  # the fence
    assert lines[7] == "Event ID:      19100"  # the zero-width space is gone, the NBSPs are spaces
    assert repost.clean(cleaned) == cleaned


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  > レベル：エラー", "レベル:エラー"),
        ("イベント ID：　１９１００", "イベント ID: 19100"),
        ("| Source: VSS", "Source: VSS"),
        (">> > Level: Error", "Level: Error"),
        ("- System", "  System"),
        ("• Event ID: 7", "  Event ID: 7"),
        ("```powershell", ""),
        ("Quelle:&nbsp;&nbsp;VSS <br />", "Quelle:  VSS "),
        ("C:\\>vssadmin list writers", "C:\\>vssadmin list writers"),
        ("---------", "---------"),
        (
            "    + CategoryInfo          : ObjectNotFound",
            "    + CategoryInfo          : ObjectNotFound",
        ),
        ("（0x80070005）", "（0x80070005）"),
    ],
)
def test_cleaner_undoes_reposting_only(raw: str, clean: str):
    assert repost.clean(raw) == clean


# ---------------------------------------------------------------- what is not an event
def test_prose_about_an_event_is_not_read_as_one():
    assert events_of("prose_en.txt") == []


def test_powershell_format_list_is_not_read_as_a_copied_event():
    text = (
        "TimeCreated  : 10/2/2023 9:12:01 AM\nProviderName : Microsoft-Windows-Hyper-V-VMMS\n"
        "Id           : 19100\nMessage      : 'web01' background disk merge failed.\n"
    )
    assert read_events(text) == []
    text = "EventID            : 8193\nMachineName        : FS01\nSource             : VSS\n"
    assert read_events(text) == []


def test_a_lone_event_id_label_is_not_an_event():
    assert read_events("Event ID: 19100\n\nWhat does this mean?\n") == []
    assert read_events("EventID 19100\n") == []


# ---------------------------------------------------------------- through the whole reader
def test_collect_reads_every_fixture_end_to_end(tmp_path):
    out = collect([str(FIX)])
    mine = [f for f in out.facts if f.kind == "event" and f.attributes["format"] in MINE]
    by_file: dict[str, int] = {}
    for fact in mine:
        name = Path(fact.provenance.path).name
        by_file[name] = by_file.get(name, 0) + 1
    expected = {p.name: len(events_of(p.name)) for p in FIX.glob("*.txt")}
    assert by_file == {k: v for k, v in expected.items() if v}
    assert sum(by_file.values()) == 35


def test_facts_from_text_uses_the_cleaner_before_every_parser():
    text = (FIX / "reposted_ja.txt").read_text(encoding="utf-8")
    events = [
        f
        for f in facts_from_text(text, "r.txt")
        if f.kind == "event" and f.attributes["format"] in MINE
    ]
    assert [(f.attributes["event_id"], f.provenance.locator) for f in events] == [(19100, "line:2")]


# ---------------------------------------------------------------- fragments and mangling
LAYOUTS = sorted(p.name for p in FIX.glob("*.txt") if p.name != "prose_en.txt")


def _key(e: dict) -> tuple:
    return (e["event_id"], e["provider"])


def _consistent(mangled: list[dict], clean: list[dict]) -> None:
    """Every event read from mangled text is one of the clean text's, with nothing different:
    the same id, and the same provider, level and time where it has them."""
    for e in mangled:
        same_id = [c for c in clean if c["event_id"] == e["event_id"]]
        assert same_id, f"event id {e['event_id']} is not in the clean text"
        assert any(
            all(e[k] is None or e[k] == c[k] for k in ("provider", "level", "time", "time_local"))
            for c in same_id
        ), f"{e} differs from {same_id}"


@pytest.mark.parametrize("name", LAYOUTS)
def test_fragments_give_the_same_events_or_fewer_never_other_ones(name: str):
    lines = (FIX / name).read_text(encoding="utf-8").split("\n")
    clean = events_of(name)
    for cut in range(1, min(len(lines), 14)):
        _consistent([f.attributes for f in read_events("\n".join(lines[cut:]))], clean)
        _consistent([f.attributes for f in read_events("\n".join(lines[:-cut]))], clean)


def _wrap(text: str, width: int, hyphens: bool) -> str:
    out: list[str] = []
    for line in text.split("\n"):
        wrapped = textwrap.wrap(
            line,
            width,
            break_long_words=False,
            break_on_hyphens=hyphens,
            replace_whitespace=False,
            expand_tabs=False,
        )
        out.extend(wrapped or [""])
    return "\n".join(out)


def _mangle(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        text = _wrap(text, rng.randint(24, 100), rng.random() < 0.5)
    elif rng.random() < 0.4:  # a console breaks lines at its width, inside words
        width = rng.randint(20, 100)
        text = "\n".join(
            line[k : k + width]
            for line in text.split("\n")
            for k in range(0, len(line) or 1, width)
        )
    lines = text.split("\n")
    lines = lines[rng.randint(0, 3) : len(lines) - rng.randint(0, 3)]
    if rng.random() < 0.3:
        lines = [f"> {line}" for line in lines]
    if rng.random() < 0.3:
        lines = ["```", *lines, "```"]
    if rng.random() < 0.3:
        lines = [line.replace(": ", "： ", 1) for line in lines]
    if rng.random() < 0.3:
        lines = [re.sub(r"  ", "\u00a0 ", line) for line in lines]
    if rng.random() < 0.3:
        lines = [x for line in lines for x in ([line, ""] if not line.strip() else [line])]
    if rng.random() < 0.3:  # retyped with a Japanese input method: full-width digits
        wide = str.maketrans("0123456789", "０１２３４５６７８９")
        lines = [line.translate(wide) if rng.random() < 0.5 else line for line in lines]
    if rng.random() < 0.2:  # a zero-width space pasted in from a web page
        lines = [f"\u200b{line}" for line in lines]
    return "\n".join(lines)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None)
    @given(name=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1))
    def test_mangled_pastes_never_crash_and_never_give_a_wrong_event(name: str, seed: int):
        text = (FIX / name).read_text(encoding="utf-8")
        mangled = _mangle(text, random.Random(seed))
        _consistent([f.attributes for f in read_events(mangled)], events_of(name))

except ImportError:  # pragma: no cover - hypothesis is a test dependency

    @pytest.mark.parametrize("seed", range(300))
    def test_mangled_pastes_never_crash_and_never_give_a_wrong_event(seed: int):
        rng = random.Random(seed)
        name = rng.choice(LAYOUTS)
        mangled = _mangle((FIX / name).read_text(encoding="utf-8"), rng)
        _consistent([f.attributes for f in read_events(mangled)], events_of(name))


@pytest.mark.parametrize("name", LAYOUTS)
def test_wrapped_at_mail_width_reads_the_same_ids_and_providers(name: str):
    text = (FIX / name).read_text(encoding="utf-8")
    clean = events_of(name)
    for width in (72, 80):
        wrapped = [f.attributes for f in read_events(_wrap(text, width, False))]
        _consistent(wrapped, clean)
        if name.startswith(("copy_details", "reposted", "general_tab", "rows_export", "rows_ja")):
            # wrapping at mail width loses no event of these layouts
            assert sorted(map(_key, wrapped), key=str) == sorted(map(_key, clean), key=str)
