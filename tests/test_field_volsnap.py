"""VolSnap, VSS and Windows Backup texts pasted alone (task H15): the incidents of
``tests/fixtures/field_volsnap`` through ``hvrescue triage``, the VolSnap messages read as the
events they come from (``signatures_volsnap.yaml``), the Windows Backup codes ``explain``
knows, the 0xC03A000E sentence, and near misses that must stay quiet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.logs.collect import facts_from_text
from tests.helpers import JAPANESE, run_cli, triage_incident

FIXTURES = Path(__file__).parent / "fixtures"
HERE = FIXTURES / "field_volsnap"

DELETED = "storage.shadow-copies-deleted"
LIMIT = "storage.shadow-storage-limit-reached"
NO_SPACE = "storage.shadow-storage-no-space"
FLUSH = "vss.flush-hold-timeout"
TIMEOUT = "backup.wsb-shadow-copy-timeout"
WSB_SPACE = "backup.wsb-no-space-for-shadow-copy"
REQUESTER = "vss.writer-failed-in-backup-log"
HV_WRITER = "vss.hyperv-writer-failed"
WSB_NONRETRYABLE = "backup.wbadmin-writer-nonretryable"
CHECKPOINT = "vm.checkpoint-failed"
RESOURCES = "storage.shadow-copies-aborted-resources"
OURS = {DELETED, LIMIT, NO_SPACE, FLUSH, TIMEOUT, WSB_SPACE, REQUESTER, RESOURCES}

# folder, rule that leads, a step command fragment, the VolSnap ids its evidence cites (or None)
CASES: list[tuple[str, str, str, list[int] | None]] = [
    ("volsnap25-general-tab-en", DELETED, "vssadmin list shadowstorage", [25]),
    # Two nights, two records.
    ("volsnap25-getwinevent-en", DELETED, "vssadmin resize shadowstorage", [25, 25]),
    ("volsnap14-16-quoted-en", DELETED, "vssadmin list shadowstorage", [14, 16]),
    ("volsnap25-bare-ja", DELETED, "vssadmin list shadowstorage", [25]),
    ("volsnap36-fenced-en", LIMIT, "vssadmin resize shadowstorage", [36]),
    ("volsnap36-details-xml-en", LIMIT, "vssadmin list shadowstorage", [36]),
    ("volsnap35-24-ja", NO_SPACE, "Get-Volume", [24, 35]),
    ("volsnap24-35-en", NO_SPACE, "Move-VMStorage", [24, 35]),
    ("volsnap8-bare-en", FLUSH, "vssadmin list providers", [8]),
    ("volsnap20-bare-ja", RESOURCES, "Get-Counter", [20]),
    ("wsb-0x81000101-en", TIMEOUT, "vssadmin list shadows", None),
    ("wsb-0x80780119-dialog-en", WSB_SPACE, "Get-Volume", None),
    ("backupapp-writer-failed-at-freeze-en", REQUESTER, "vssadmin list writers", None),
    ("veeam-guest-vss-writer-en", REQUESTER, "Restart-Service vmms", None),
    ("vssadmin-hyperv-writer-failed-ja", HV_WRITER, "vssadmin list writers", None),
    # The VMMS record that the VM's backup checkpoint could not be created is the cause of the
    # writer's non-transient error: it leads (task H26); the WSB rule comes after it.
    ("wsb-hyperv-writer-nontransient-en", CHECKPOINT, "Hyper-V-VMMS-Admin", None),
]


def _ids(case: tuple[str, str, str, list[int] | None]) -> str:
    return case[0]


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize(("name", "expected", "command", "volsnap"), CASES, ids=map(_ids, CASES))
def test_incident_diagnosis(
    name: str, expected: str, command: str, volsnap: list[int] | None, lang: str, tmp_path: Path
):
    data = triage_incident(HERE / name, tmp_path, expected, command, lang)
    top = data["diagnoses"][0]
    assert "generic.unexplained-error" not in [d["id"] for d in data["diagnoses"]]
    if lang == "ja":
        assert JAPANESE.search(top["summary"]) and all(JAPANESE.search(a) for a in top["avoid"])
    if volsnap is not None:
        events = [e for e in top["evidence"] if e["kind"] == "event"]
        # Each VolSnap message of the paste is the event it comes from, cited once.
        assert sorted(e["attributes"]["event_id"] for e in events) == volsnap
        assert all(str(e["attributes"]["provider"]).lower() == "volsnap" for e in events)
        assert any(str(i) in top["title"] for i in volsnap), top["title"]
    CHECKS.get(expected, lambda top, lang: None)(top, lang)


def _texts(top: dict[str, Any]) -> str:
    return " ".join([top["summary"], *top["avoid"], *(s["text"] for s in top["steps"])])


def _deleted(top: dict[str, Any], lang: str) -> None:
    # The shadow storage is never to be deleted to "reset" VSS.
    words = "do not delete" if lang == "en" else "削除しない"
    assert words in _texts(top).lower()


def _no_space(top: dict[str, Any], lang: str) -> None:
    # Not the configured maximum of 36: the volume itself is full, and AVHDX files stay.
    assert "AVHDX" in " ".join(top["avoid"])
    assert top["severity"] == "error"


def _flush(top: dict[str, Any], lang: str) -> None:
    assert top["severity"] == "warning" and "0x80042313" in top["summary"]


def _timeout(top: dict[str, Any], lang: str) -> None:
    assert any("0x81000101" in (e.get("excerpt") or "") for e in top["evidence"])
    assert "KB 956136" in top["summary"]


def _wsb_space(top: dict[str, Any], lang: str) -> None:
    dialog = [e for e in top["evidence"] if e["kind"] == "dialog"]
    assert dialog and "0x80780119" in dialog[0]["attributes"]["codes"]
    assert "50 MB" in top["summary"] and "320 MB" in top["summary"]


def _requester(top: dict[str, Any], lang: str) -> None:
    excerpts = " ".join(e.get("excerpt") or "" for e in top["evidence"])
    assert "VSS_WS_FAILED_AT" in excerpts or "critical writer has failed" in excerpts


CHECKS = {
    DELETED: _deleted,
    NO_SPACE: _no_space,
    FLUSH: _flush,
    TIMEOUT: _timeout,
    WSB_SPACE: _wsb_space,
    REQUESTER: _requester,
}


NEAR_MISSES = ["near-miss-volsnap33-en", "near-miss-volsnap33-ja", "near-miss-writers-stable-ps-en"]


@pytest.mark.parametrize("name", NEAR_MISSES)
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_near_miss_stays_quiet(name: str, lang: str, tmp_path: Path):
    data = triage_incident(HERE / name, tmp_path, None, None, lang, healthy=True)
    assert not OURS & {d["id"] for d in data["diagnoses"]}


@pytest.mark.parametrize("name", ["near-miss-volsnap33-en", "near-miss-volsnap33-ja"])
def test_volsnap_33_is_read_as_information(name: str):
    """The deletion of the oldest copy under the limit is recognised, for what it is."""
    text = (HERE / name / "post.txt").read_text(encoding="utf-8")
    events = [f for f in facts_from_text(text, "post.txt") if f.kind == "event"]
    assert [(f.attributes["provider"], f.attributes["event_id"]) for f in events] == [
        ("volsnap", 33)
    ]
    assert events[0].attributes["level"] == 4


@pytest.mark.parametrize(
    ("message", "event_id"),
    [
        (
            "The shadow copies of volume D: were deleted because the shadow copy storage could not "
            "grow in time.  Consider reducing the IO load on the system.",
            25,
        ),
        (
            "The shadow copies of volume E: were aborted because volume E:, which contains shadow "
            "copy storage for this shadow copy, was force dismounted.",
            16,
        ),
        (
            "The shadow copies of volume C: were aborted because the shadow copy storage could not "
            "grow due to a user imposed limit.",
            36,
        ),
        (
            "The flush and hold writes operation on volume C: timed out while waiting for a "
            "release writes command.",
            8,
        ),
        (
            "ボリューム D: のシャドウ コピーは、シャドウ コピー記憶域に対する I/O エラーの"
            "ために中止されました。",
            14,
        ),
    ],
)
def test_a_volsnap_message_wrapped_mid_word_is_still_its_event(message: str, event_id: int):
    # A console or mail client wraps the message anywhere, also inside a word.
    wrapped = "\n".join(message[i : i + 37] for i in range(0, len(message), 37))
    facts = facts_from_text("Seen in the System log:\n\n" + wrapped + "\n", "post.txt")
    events = [f for f in facts if f.kind == "event"]
    assert [(e.attributes["provider"], e.attributes["event_id"]) for e in events] == [
        ("volsnap", event_id)
    ]
    # It cites a line of the message (the one where its own words start), never the intro.
    last = 2 + len(wrapped.split("\n"))
    assert 3 <= int(events[0].provenance.locator.removeprefix("line:")) <= last


def test_two_volsnap_messages_pasted_together_are_each_their_own_event():
    """English: 16 then 14, each cited at its own line. Japanese: 33 then 35 (the sequence
    Windows Server 2003 logs) is neither read as the user-limit abort (36) nor as one event."""
    text = (HERE / "volsnap14-16-quoted-en" / "post.md").read_text(encoding="utf-8")
    found = {
        f.attributes["event_id"]: f.provenance.locator
        for f in facts_from_text(text, "post.md")
        if f.kind == "event"
    }
    assert found == {16: "line:4", 14: "line:6"}
    ja = (
        "説明:\nボリューム X: の最も古いシャドウコピーは、ボリューム X: のシャドウ コピーの"
        "使用ディスク領域をユーザーが定義した制限より小さく保つために削除されました。\n\n"
        "説明:\nシャドウ コピーの記憶域を拡張できなかったためにボリューム X: のシャドウ "
        "コピーが中止しました。\n"
    )
    ids = [f.attributes["event_id"] for f in facts_from_text(ja, "post.txt") if f.kind == "event"]
    assert sorted(ids) == [33, 35]


def test_a_shadow_copy_named_in_prose_is_no_volsnap_event():
    text = "Previous Versions show the shadow copies of volume D: from last week, all fine.\n"
    assert not [f for f in facts_from_text(text, "post.txt") if f.kind == "event"]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("0x81000019", "shadow copy could not be created"),
        ("0x81000101", "timed out"),
        ("0x8100002F", "skipped"),
        ("0x80780119", "not enough disk space"),
    ],
)
def test_explain_knows_the_windows_backup_codes(code: str, words: str):
    r = run_cli("explain", code)
    assert r.rc == 0 and words in r.stdout.replace("\n", " ")
    assert "not in hvrescue's table" not in r.stdout
    ja = run_cli("--lang", "ja", "explain", code)
    assert ja.rc == 0 and JAPANESE.search(ja.stdout) and "Windows バックアップ" in ja.stdout


def test_the_0xc03a000e_sentence_is_the_identifier_mismatch(tmp_path: Path):
    """Windows' own words for 0xC03A000E, wrapped inside a quoted error: the parent-mismatch
    diagnosis, and not the generic 'chain corrupted' signature it opens with."""
    text = (FIXTURES / "signatures" / "vhd_id_mismatch_en.txt").read_text(encoding="utf-8")
    events = [f for f in facts_from_text(text, "post.txt") if f.kind == "event"]
    signatures = {f.attributes.get("signature") for f in events}
    assert "vhd-parent-id-mismatch" in signatures
    assert "vhd-chain-corrupted" not in signatures
    found = next(f for f in events if f.attributes.get("signature") == "vhd-parent-id-mismatch")
    assert "0xc03a000e" in found.attributes["codes"]
    folder = tmp_path / "post"
    folder.mkdir()
    (folder / "post.txt").write_text(text, encoding="utf-8")
    r = run_cli("triage", folder, "--out", tmp_path / "rep", "--json", evidence=[folder])
    assert r.json()["diagnoses"][0]["id"] == "vdisk.chain.parent-mismatch"
