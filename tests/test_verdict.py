"""The triage verdict cannot be green over damage: damaged disks (written by other software and
damaged on purpose), files that are not disks, evidence that cannot be read, the README's own
incident and real crash logs, through the CLI in English and Japanese, inputs left untouched."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.diagnose.triage import Triage
from hvrescue.facts.model import Fact, Provenance, Unrecognised
from hvrescue.report.i18n import Messages
from tests.builders import make_chain
from tests.helpers import CORPUS, SHARED, run_cli

EXTERNAL = SHARED / "corpus" / "external"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "incident"
RESTARTS = Path(__file__).parent / "fixtures" / "restarts"
INCIDENTS = Path(__file__).parent / "fixtures" / "incidents"
COMMANDS = Path(__file__).parent / "fixtures" / "commands"
CRASH_EVTX = CORPUS / "evtx" / "python-evtx" / "system.evtx"
MiB = 1024 * 1024
# What a verdict over damage must never say, in either language.
GREEN = (
    "No problem found",
    "Nothing in this evidence was recognised",
    "問題が見つかりませんでした",
    "何も認識できませんでした",
)
JAPANESE = re.compile("[ぁ-んァ-ン一-龯]")


def storage(lang: str) -> str:
    """`<other storage>` as the commands of a report in ``lang`` show it."""
    return Messages(lang).placeholders("<other storage>")


def triage(folder: Path, *args: str, lang: str = "en", expect: int | None = None):
    out = folder.parent / f"{folder.name}-report-{lang}"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", *args, evidence=[folder])
    assert r.rc in (0, 1), r.stdout + r.stderr
    if expect is not None:
        assert r.rc == expect, r.stdout[:2000]
    return r.json(), out


def assert_not_green(data: dict, out: Path) -> None:
    verdict = data["verdict"]
    assert verdict["state"] == "problems" and verdict["status"] == "problem"
    assert verdict["severity"] in ("warning", "error", "critical")
    assert verdict["id"] and SEVERITY_ORDER[data["diagnoses"][0]["severity"]] >= 0
    for text in (
        verdict["title"],
        (out / "report.md").read_text(encoding="utf-8"),
        (out / "report.html").read_text(encoding="utf-8"),
    ):
        for phrase in GREEN:
            assert phrase not in text


def diagnoses_citing(data: dict, path: Path) -> list[dict]:
    return [
        d
        for d in data["diagnoses"]
        if SEVERITY_ORDER[d["severity"]] >= 1 and any(e["path"] == str(path) for e in d["evidence"])
    ]


# ---------------------------------------------------------------------------- external disks
def _damaged_cases() -> list[str]:
    if not EXTERNAL.is_dir():
        return []
    out = []
    for case in sorted(p for p in EXTERNAL.iterdir() if p.is_dir()):
        expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
        if "clean" not in expected["hvrescue"]["check_status"]:
            out.append(case.name)
    return out


DAMAGED = _damaged_cases()


@pytest.fixture(scope="module")
def damaged_disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each damaged case of ../shared/corpus/external decompressed (never beside the originals)."""
    if not DAMAGED:
        pytest.skip("../shared/corpus/external is not present beside the project")
    root = tmp_path_factory.mktemp("damaged-originals")
    disks = {}
    for name in DAMAGED:
        expected = json.loads((EXTERNAL / name / "expected.json").read_text(encoding="utf-8"))
        leaf = expected["leaf"]
        target = root / f"{name}{Path(leaf).suffix}"
        with gzip.open(EXTERNAL / name / f"{leaf}.gz", "rb") as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 22)
        disks[name] = target
    return disks


def test_the_external_corpus_has_damaged_disks_to_triage():
    if not EXTERNAL.is_dir():
        pytest.skip("../shared/corpus/external is not present beside the project")
    assert len(DAMAGED) >= 7, DAMAGED


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_triage_of_every_damaged_disk_together_is_never_green(
    damaged_disks: dict[str, Path], tmp_path: Path, lang: str
):
    folder = tmp_path / "disks"
    folder.mkdir()
    for disk in damaged_disks.values():
        os.link(disk, folder / disk.name)
    data, out = triage(folder, lang=lang, expect=1)
    assert_not_green(data, out)
    for name, disk in damaged_disks.items():
        cited = diagnoses_citing(data, folder / disk.name)
        assert cited, f"{name}: no diagnosis of warning or worse names it"
        # The codes the case must raise are among the evidence, with their meaning.
        expected = json.loads((EXTERNAL / name / "expected.json").read_text(encoding="utf-8"))
        want = set(expected["hvrescue"].get("require_any_code", []))
        codes = {e["attributes"].get("code") for d in cited for e in d["evidence"]}
        assert want & codes, (name, want, codes)
    generic = [d for d in data["diagnoses"] if d["id"] == "generic.disk-damage"]
    assert len(generic) == len(damaged_disks)  # one per damaged file
    for d in generic:
        commands = " ".join(s["command"] for s in d["steps"])
        path = next(e["path"] for e in d["evidence"] if e["path"])
        assert f"hvrescue preserve {path} {storage(lang)}" in commands
        for command in ("check --deep", "repair", "salvage", "extract"):
            assert f"hvrescue {command}" in commands
        assert all(": " in e["excerpt"] and "[" in e["excerpt"] for e in d["evidence"])
        if lang == "ja":
            assert JAPANESE.search(d["summary"]) and JAPANESE.search(d["steps"][0]["text"])


@pytest.mark.parametrize("case", DAMAGED)
def test_triage_of_each_damaged_disk_alone_is_never_green(
    damaged_disks: dict[str, Path], tmp_path: Path, case: str
):
    folder = tmp_path / case
    folder.mkdir()
    disk = folder / damaged_disks[case].name
    os.link(damaged_disks[case], disk)
    data, out = triage(folder, expect=1)
    assert_not_green(data, out)
    assert diagnoses_citing(data, disk)
    assert data["verdict"]["basis"]["serious_findings"] >= 1


# ---------------------------------------------------------------------------- broken shapes
def _zeroed_head(folder: Path) -> Path:
    [disk] = make_chain(folder.parent / "src-zeroed", depth=1, size=32 * MiB)
    target = folder / "zeroed.vhdx"
    shutil.copyfile(disk, target)
    with open(target, "r+b") as f:
        f.write(bytes(MiB))
    return target


def _empty(folder: Path) -> Path:
    target = folder / "empty.vhdx"
    target.write_bytes(b"")
    return target


def _random(folder: Path) -> Path:
    target = folder / "random.vhdx"
    target.write_bytes(os.urandom(3 * MiB))
    return target


def _truncated(folder: Path) -> Path:
    [disk] = make_chain(folder.parent / "src-cut", depth=1, size=32 * MiB)
    data = disk.read_bytes()
    target = folder / "cut.vhdx"
    target.write_bytes(data[: len(data) - MiB])
    return target


SHAPES = {
    "zeroed-first-mib": _zeroed_head,
    "empty": _empty,
    "random": _random,
    "truncated": _truncated,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_broken_disk_alone_is_never_green(tmp_path: Path, shape: str):
    folder = tmp_path / "evidence"
    folder.mkdir()
    disk = SHAPES[shape](folder)
    data, out = triage(folder, expect=1)
    assert_not_green(data, out)
    cited = diagnoses_citing(data, disk)
    assert [d["id"] for d in cited] == ["generic.disk-damage"], [d["id"] for d in cited]
    assert cited[0]["severity"] in ("error", "critical")
    # The disk engine speaks for it: it is not listed as merely "not recognised".
    assert not data["unrecognised"]


def test_a_folder_of_broken_disks_names_each(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    disks = [make(folder) for make in SHAPES.values()]
    for lang in ("en", "ja"):
        data, out = triage(folder, lang=lang, expect=1)
        assert_not_green(data, out)
        for disk in disks:
            assert diagnoses_citing(data, disk), disk.name


# ---------------------------------------------------------------------------- healthy, nothing
def test_a_healthy_disk_says_so(tmp_path: Path):
    folder = tmp_path / "evidence"
    [disk] = make_chain(folder, depth=1, size=32 * MiB)
    data, out = triage(folder, expect=0)
    verdict = data["verdict"]
    assert (verdict["state"], verdict["status"], verdict["severity"]) == (
        "healthy",
        "no-problem-found",
        "ok",
    )
    assert verdict["title"] == "No problem found in this evidence"
    assert verdict["basis"]["disks_read"] == 1 and verdict["basis"]["serious_findings"] == 0
    [clean] = [d for d in data["diagnoses"] if d["id"] == "vdisk.checked-clean"]
    assert clean["severity"] == "info" and clean["evidence"][0]["path"] == str(disk)
    assert clean["steps"][0]["command"] == f"hvrescue check --deep {disk}"
    assert "Evidence read and healthy" in (out / "report.html").read_text(encoding="utf-8")
    ja, _ = triage(folder, lang="ja", expect=0)
    assert ja["verdict"]["state"] == "healthy" and JAPANESE.search(ja["verdict"]["title"])


def test_a_disk_written_by_windows_that_is_healthy_says_so(tmp_path: Path):
    source = EXTERNAL / "nodevhd-fixed" / "fixed.vhd.gz"
    if not source.is_file():
        pytest.skip("../shared/corpus/external is not present beside the project")
    folder = tmp_path / "evidence"
    folder.mkdir()
    with gzip.open(source, "rb") as fin:
        (folder / "fixed.vhd").write_bytes(fin.read())
    data, _ = triage(folder, expect=0)
    assert data["verdict"]["state"] == "healthy"
    assert "vdisk.checked-clean" in [d["id"] for d in data["diagnoses"]]


def test_nothing_recognised_is_not_green(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "notes.txt").write_text("call the vendor on monday\n", encoding="utf-8")
    data, out = triage(folder, expect=0)
    verdict = data["verdict"]
    assert (verdict["state"], verdict["status"]) == ("nothing-recognised", "no-evidence-recognised")
    assert verdict["severity"] == "info"  # blue, not the green of a healthy verdict
    assert data["unrecognised"] == [
        {"path": str(folder / "notes.txt"), "reason": "no-known-content"}
    ]
    assert "#2e7d32" not in (out / "report.html").read_text(encoding="utf-8").split("</div>")[0]


# ---------------------------------------------------------------------------- unreadable evidence
def test_evidence_that_cannot_be_read_is_a_problem(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "bundle.zip").write_bytes(b"PK\x03\x04 not really a zip")
    shutil.copyfile(COMMANDS / "vssadmin_writers_en.txt", folder / "writers.txt")
    data, out = triage(folder, expect=1)
    assert_not_green(data, out)
    [d] = [d for d in data["diagnoses"] if d["id"] == "generic.evidence-unreadable"]
    assert d["evidence"][0]["path"] == str(folder / "bundle.zip")
    assert "evidence.damaged-zip" in d["evidence"][0]["excerpt"]
    assert d["steps"][0]["command"] == f"hvrescue facts {folder / 'bundle.zip'} --json"


def test_a_damaged_event_log_chunk_is_a_problem(tmp_path: Path):
    if not CRASH_EVTX.is_file():
        pytest.skip("../shared/corpus/public is not present beside the project")
    folder = tmp_path / "evidence"
    folder.mkdir()
    data = bytearray(CRASH_EVTX.read_bytes())
    data[4096 + 65536 : 4096 + 65536 + 8] = b"XXXXXXXX"  # the second chunk's magic
    (folder / "System.evtx").write_bytes(bytes(data))
    report, out = triage(folder, expect=1)
    assert_not_green(report, out)
    [d] = [d for d in report["diagnoses"] if d["id"] == "generic.evidence-unreadable"]
    assert "evtx.chunk-damaged" in d["evidence"][0]["excerpt"]


# ---------------------------------------------------------------------------- the README's incident
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_example_incident_names_reparent(tmp_path: Path, lang: str):
    out = tmp_path / "report"
    r = run_cli("--lang", lang, "triage", EXAMPLE, "--out", out, "--json", evidence=[EXAMPLE])
    assert r.rc == 1, r.stdout + r.stderr
    data = r.json()
    disks = EXAMPLE / "Virtual Hard Disks"
    child = disks / "web01_6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.avhdx"
    parent = disks / "web01-restored.vhdx"
    [d] = [d for d in data["diagnoses"] if d["id"] == "vdisk.chain.parent-found-elsewhere"]
    expected = f'hvrescue reparent "{child}" --parent "{parent}" "{storage(lang)}/{child.name}"'
    assert expected in [s["command"] for s in d["steps"]]
    assert parent.name in d["title"]
    if lang == "ja":
        assert JAPANESE.search(d["title"]) and JAPANESE.search(d["summary"])
    for name in ("report.json", "report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "hvrescue reparent" in text and "vdisk.chain.parent-found-elsewhere" in text
    assert expected in (out / "report.md").read_text(encoding="utf-8")
    # The command is right: run with a real output folder, it writes a child that resolves.
    fixed = tmp_path / "other-storage" / child.name
    fixed.parent.mkdir()
    done = run_cli("reparent", child, "--parent", parent, fixed, evidence=[EXAMPLE])
    assert done.rc == 0, done.stdout + done.stderr
    assert run_cli("check", "--deep", fixed, "--json").json()["status"] == "clean"


# ---------------------------------------------------------------------------- crashes
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_crash_evidence_from_a_public_evtx_gives_the_bugcheck_with_its_stop_code(
    tmp_path: Path, lang: str
):
    """python-evtx's system.evtx: two Kernel-Power 41 (one with BugcheckCode 65537), two
    EventLog 6008 and a BugCheck 1001 naming 0x00010001 and C:\\Windows\\MEMORY.DMP."""
    if not CRASH_EVTX.is_file():
        pytest.skip("../shared/corpus/public is not present beside the project")
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copyfile(CRASH_EVTX, folder / "System.evtx")
    data, out = triage(folder, lang=lang, expect=1)
    assert_not_green(data, out)
    top = data["diagnoses"][0]
    assert top["id"] == "guest.bugcheck" == data["verdict"]["id"]
    assert "0x00010001" in top["title"] and "0x00010001" in top["summary"]
    assert "C:\\Windows\\MEMORY.DMP" in top["summary"]
    assert f"copy C:\\Windows\\MEMORY.DMP {storage(lang)}" in top["steps"][0]["command"]
    sources = sorted(
        (e["attributes"]["source"], e["locator"]) for e in top["evidence"] if e["kind"] != "more"
    )
    assert sources == [
        ("BugCheck 1001", "record:13423"),
        ("EventLog 6008", "record:13388"),
        ("EventLog 6008", "record:13530"),
        ("Kernel-Power 41", "record:13392"),
        ("Kernel-Power 41", "record:13392"),
        ("Kernel-Power 41", "record:13534"),
    ]
    assert all(e["path"] == str(folder / "System.evtx") for e in top["evidence"])
    # One restart diagnosis only: the restarts are this crash's evidence.
    assert "guest.unexpected-restart" not in [d["id"] for d in data["diagnoses"]]
    if lang == "ja":
        assert JAPANESE.search(top["title"]) and "停止コード" in top["summary"]


@pytest.mark.parametrize(
    "sample",
    [
        "evtx-real/DeepBlueCLI/many-events-application.evtx",  # WER 1001 of other kinds
        "evtx/omerbenamram-evtx/system.evtx",  # clean shutdowns, Kernel-Power 42/109/172
    ],
)
def test_public_evtx_without_crashes_gives_no_restart_diagnosis(tmp_path: Path, sample: str):
    source = CORPUS / sample
    if not source.is_file():
        pytest.skip("../shared/corpus/public is not present beside the project")
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copyfile(source, folder / source.name)
    data, _ = triage(folder)
    ids = [d["id"] for d in data["diagnoses"]]
    assert "guest.bugcheck" not in ids and "guest.unexpected-restart" not in ids


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_bluescreen_report_explains_its_stop_code(tmp_path: Path, lang: str):
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copyfile(RESTARTS / "wer_bluescreen.xml", folder / "application.xml")
    data, _ = triage(folder, lang=lang, expect=1)
    [d] = [d for d in data["diagnoses"] if d["id"] == "guest.bugcheck"]
    assert "0x00000133" in d["title"] and "DPC_WATCHDOG_VIOLATION" in d["title"]
    meaning = run_cli("--lang", lang, "explain", "0x133", "--json").json()["meaning"]
    assert meaning in d["summary"]  # the same words as `hvrescue explain`
    assert "C:\\Windows\\Minidump\\030224-8906-01.dmp" in d["summary"]


def test_a_restart_without_a_stop_code(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copyfile(RESTARTS / "unexpected_restart.xml", folder / "system.xml")
    data, out = triage(folder, expect=1)
    assert_not_green(data, out)
    assert [d["id"] for d in data["diagnoses"]] == ["guest.unexpected-restart"]
    d = data["diagnoses"][0]
    assert d["severity"] == "warning" and len(d["evidence"]) == 2
    assert "3/9/2024 10:58:12 PM" in " ".join(e["excerpt"] for e in d["evidence"])


def test_the_specific_0xc000021a_rule_ranks_above_the_bugcheck(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    for f in (INCIDENTS / "kernel_power_41.xml", COMMANDS / "dism_packages_en.txt"):
        shutil.copyfile(f, folder / f.name)
    data, _ = triage(folder, expect=1)
    ids = [d["id"] for d in data["diagnoses"]]
    assert ids.index("guest.stop-0xc000021a.pending-update") < ids.index("guest.bugcheck")
    bugcheck = data["diagnoses"][ids.index("guest.bugcheck")]
    assert "0xc000021a" in bugcheck["title"]
    assert "STATUS_SYSTEM_PROCESS_TERMINATED" in bugcheck["title"]


@pytest.mark.parametrize(
    "code,name",
    [
        ("0x7e", "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"),
        ("0x1000007E", "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"),
        ("209", "DRIVER_IRQL_NOT_LESS_OR_EQUAL"),  # Kernel-Power 41 writes it in decimal
        ("CRITICAL_PROCESS_DIED", "CRITICAL_PROCESS_DIED"),
        ("0xc000021a", "STATUS_SYSTEM_PROCESS_TERMINATED"),
    ],
)
def test_explain_knows_stop_codes(code: str, name: str):
    en = run_cli("explain", code, "--json").json()
    assert en["name"] == name and en["meaning"]
    ja = run_cli("--lang", "ja", "explain", code, "--json").json()
    assert JAPANESE.search(ja["meaning"])


@pytest.mark.parametrize(
    "event", ["EventLog/6008", "BugCheck/1001", "Windows Error Reporting/1001"]
)
def test_explain_knows_the_restart_events(event: str):
    assert run_cli("explain", event, "--json").rc == 0


# ---------------------------------------------------------------------------- the guarantee
SERIOUS = ("warning", "error", "critical")
CODES = [
    "vhdx.header.checksum",
    "vhdx.bat.invalid-state",
    "vhd.bitmap.inconsistent",
    "vhdx.bitmap.lost",
    "disk.undefined",
    "file.truncated",
    "file.not-a-disk",
    "io.read-error",
    "chain.parent.missing",
    "chain.parent.found-elsewhere",
    "chain.size-mismatch",
    "vhdx.log.replay-needed",
    "inventory.orphan-differencing",
    "inventory.empty-file",
    "vm.disk.missing",
    "vm.config.merge-pending",
    "some.code.nobody-knows",
]
finding_facts = st.builds(
    lambda code, severity, path: Fact(
        "finding",
        {"code": code, "severity": severity, "path": path},
        Provenance(path, None),
    ),
    st.sampled_from(CODES),
    st.sampled_from(["info", *SERIOUS]),
    st.sampled_from(["/e/a.vhdx", "/e/b.avhdx", "/e/VMs/web01.vmcx"]),
)
problem_facts = st.builds(
    lambda code, path: Fact(
        "evidence_problem",
        {"code": code, "severity": "warning", "path": path},
        Provenance(path, None),
    ),
    st.sampled_from(["evtx.chunk-damaged", "evidence.unreadable", "guest.hive-damaged"]),
    st.sampled_from(["/e/System.evtx", "/e/a.zip!/x.csv"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finding_facts, problem_facts), max_size=12))
def test_every_serious_finding_and_problem_becomes_a_serious_diagnosis(facts: list[Fact]):
    diagnoses = evaluate(load_rules(), facts)
    cited = {
        id(f)
        for d in diagnoses
        if SEVERITY_ORDER[d.severity] >= 1
        for fs in d.bindings.values()
        for f in fs
    }
    for fact in facts:
        if fact.kind == "evidence_problem" or fact.attributes["severity"] in SERIOUS:
            assert id(fact) in cited, fact
    result = Triage(["/e"], facts=facts, diagnoses=diagnoses)
    serious = any(
        f.kind == "evidence_problem" or f.attributes["severity"] in SERIOUS for f in facts
    )
    if serious:
        assert result.verdict_state() == "problems"
    elif not any(SEVERITY_ORDER[d.severity] >= 1 for d in diagnoses):
        assert result.verdict_state() != "problems"
    if not facts:
        assert result.verdict_state() == "nothing-recognised"


def test_an_unreadable_file_alone_makes_the_verdict_problems():
    result = Triage(["/e"], unrecognised=[Unrecognised("/e/System.evtx", "unreadable", "EIO")])
    assert result.verdict_state() == "problems"
    result = Triage(["/e"], unrecognised=[Unrecognised("/e/photo.jpg", "binary")])
    assert result.verdict_state() == "nothing-recognised"
