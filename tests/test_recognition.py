"""What was recognised in each input (issue 14, item 4), and saved outputs named only by their
file name (`sc sdshow cryptsvc > sd-cryptsvc.txt`)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from hvrescue.logs.collect import collect
from hvrescue.report.i18n import Messages
from tests.helpers import CORPUS, run_cli

HERE = Path(__file__).resolve().parent
SIG = HERE / "fixtures" / "signatures"
COMMANDS = HERE / "fixtures" / "commands"
EVTX = sorted((CORPUS / "evtx").rglob("*.evtx")) if (CORPUS / "evtx").is_dir() else []
SDDL = (
    "\r\nD:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)"
    "(A;;CCLCSWLOCRRC;;;IU)(A;;CCLCSWLOCRRC;;;SU)\r\n\r\n"
)


# ---------------------------------------------------------------- file-name labels
@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("sd-cryptsvc.txt", "CryptSvc"),
        ("CryptSvc_sd.txt", "CryptSvc"),
        ("vss-sdshow.txt", "VSS"),
        ("sdshow_eventsystem_before.txt", "EventSystem"),
    ],
)
def test_an_sdshow_output_named_only_by_its_file_is_the_service_in_the_name(
    name: str, service: str
):
    found = collect([str(SIG / "sc_labels" / name)])
    [fact] = found.of_kind("service_security")
    assert fact.attributes["service_name"] == service
    assert fact.attributes["service_name_from"] == "file_name"
    assert fact.attributes["dacl"]  # the SDDL itself was read


def test_a_service_the_evidence_names_elsewhere_labels_the_file(tmp_path: Path):
    (tmp_path / "sd-before-edrsvc.txt").write_text(SDDL, "utf-8")
    alone = collect([str(tmp_path)]).of_kind("service_security")
    assert alone[0].attributes["service_name"] == "edrsvc"  # no better guess: the word as written
    (tmp_path / "sc_qc.txt").write_text(
        "[SC] QueryServiceConfig SUCCESS\n\nSERVICE_NAME: EdrSvc\n"
        "        TYPE               : 10  WIN32_OWN_PROCESS\n"
        "        START_TYPE         : 2   AUTO_START\n"
        "        BINARY_PATH_NAME   : C:\\Program Files\\Edr\\edrsvc.exe\n",
        "utf-8",
    )
    found = collect([str(tmp_path)])
    [sec] = found.of_kind("service_security")
    assert sec.attributes["service_name"] == "EdrSvc"  # spelled as the evidence spells it


# ---------------------------------------------------------------- the inputs list
def mixed_folder(root: Path) -> dict[str, Path]:
    """A folder of evidence as it arrives: a post, a dialog, a command output, a note with only
    an error code, an empty file, a binary, a zip with one of each, an EVTX log."""
    root.mkdir()
    files = {
        "post": root / "post_merge_en.md",
        "dialog": root / "dialog_chain_ja.txt",
        "systeminfo": root / "systeminfo_ja.txt",
        "note": root / "note.txt",
        "empty": root / "empty.txt",
        "binary": root / "blob.bin",
        "zip": root / "bundle.zip",
    }
    shutil.copyfile(SIG / "post_merge_en.md", files["post"])
    shutil.copyfile(SIG / "dialog_chain_ja.txt", files["dialog"])
    shutil.copyfile(COMMANDS / "systeminfo_ja.txt", files["systeminfo"])
    files["note"].write_text("it failed again with 0x80070005 after KB5034441\n", "utf-8")
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(bytes(range(256)) * 4)
    with zipfile.ZipFile(files["zip"], "w") as z:
        z.writestr("inner/note.txt", "see error 0x80070070\n")
        z.writestr("inner/hello.txt", "nothing to see here\n")
    if EVTX:
        files["evtx"] = root / "log.evtx"
        shutil.copyfile(EVTX[0], files["evtx"])
    return files


def by_path(inputs: list[dict]) -> dict[str, dict]:
    return {i["path"]: i for i in inputs}


def test_facts_json_lists_every_input_and_why_it_was_or_was_not_recognised(tmp_path: Path):
    root = tmp_path / "evidence"
    files = mixed_folder(root)
    r = run_cli("facts", root, "--json", evidence=[root])
    assert r.rc == 0
    data = r.json()
    assert {"facts", "unrecognised", "problems", "skipped", "inputs"} <= set(data)
    inputs = by_path(data["inputs"])
    keys = {"path", "recognised", "formats", "facts", "reason", "detail", "signals_only"}
    assert all(keys <= set(i) for i in inputs.values())
    # every file of the folder, every zip member, no archive itself, each once
    expected = {str(p) for k, p in files.items() if k != "zip"}
    expected |= {f"{files['zip']}!/inner/note.txt", f"{files['zip']}!/inner/hello.txt"}
    assert set(inputs) == expected
    assert len(data["inputs"]) == len(expected)
    # the counts agree with the facts listed
    for path, entry in inputs.items():
        assert entry["facts"] == sum(1 for f in data["facts"] if f["provenance"]["path"] == path)
        assert entry["recognised"] == (entry["facts"] > 0)
        assert (entry["reason"] is None) == entry["recognised"]

    post = inputs[str(files["post"])]
    assert "signature" in post["formats"] and post["formats"][-1] == "signal"
    assert not post["signals_only"]
    assert {"dialog", "signature"} <= set(inputs[str(files["dialog"])]["formats"])
    assert "systeminfo" in inputs[str(files["systeminfo"])]["formats"]
    for note in (str(files["note"]), f"{files['zip']}!/inner/note.txt"):
        assert inputs[note]["recognised"] and inputs[note]["signals_only"]
        assert inputs[note]["formats"] == ["signal"]
    assert inputs[str(files["empty"])]["reason"] == "no-known-content"
    assert inputs[str(files["binary"])]["reason"] == "binary"
    assert inputs[f"{files['zip']}!/inner/hello.txt"]["reason"] == "no-known-content"
    if EVTX:
        assert inputs[str(files["evtx"])]["formats"] == ["evtx"]
    # the reasons are the same codes as the older unrecognised list
    for u in data["unrecognised"]:
        assert inputs[u["path"]]["reason"] == u["reason"]


def test_a_disk_image_is_not_recognised_by_facts_and_says_why(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    disk = root / "web01.vhdx"
    disk.write_bytes(b"vhdxfile" + bytes(1024 * 1024 - 8))
    data = run_cli("facts", root, "--json", evidence=[root]).json()
    [entry] = data["inputs"]
    assert (entry["recognised"], entry["reason"]) == (False, "disk-image")


def squeezed(text: str) -> str:
    return "".join(text.split())  # rich wraps long lines at spaces


def said_lines(root: Path, lang: str) -> list[str]:
    """What the facts command must say of the inputs, from its own JSON and the catalogue."""
    inputs = run_cli("facts", root, "--json", evidence=[root]).json()["inputs"]
    msg = Messages(lang)
    seen = sum(1 for i in inputs if i["recognised"])
    lines = [msg("ui.facts.inputs", recognised=seen, count=len(inputs))]
    lines += [
        msg("ui.facts.input-signals-only", path=i["path"], facts=i["facts"])
        for i in inputs
        if i["signals_only"]
    ]
    assert len(lines) >= 3  # the mixed folder has two signals-only inputs
    return lines


def test_jsonl_keeps_its_records_and_says_the_inputs_on_stderr(tmp_path: Path):
    root = tmp_path / "evidence"
    mixed_folder(root)
    r = run_cli("facts", root, "--format", "jsonl", evidence=[root])
    assert r.rc == 0
    records = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert records
    for line in said_lines(root, "en"):
        assert squeezed(line) in squeezed(r.stderr)
        assert squeezed(line) not in squeezed(r.stdout)


def test_the_human_output_says_the_inputs_in_japanese(tmp_path: Path):
    root = tmp_path / "evidence"
    mixed_folder(root)
    r = run_cli("--lang", "ja", "facts", root, evidence=[root])
    assert r.rc == 0
    for line in said_lines(root, "ja"):
        assert squeezed(line) in squeezed(r.stdout)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_triage_report_shows_each_input_recognised_or_not_and_why(tmp_path: Path, lang: str):
    root = tmp_path / "evidence"
    files = mixed_folder(root)
    out = tmp_path / "report"
    r = run_cli("--lang", lang, "triage", root, "--out", out, evidence=[root])
    assert r.rc in (0, 1)
    report = json.loads((out / "report.json").read_text("utf-8"))
    inputs = by_path(report["inputs"])
    assert inputs[str(files["post"])]["recognised"] is True
    assert inputs[str(files["binary"])]["recognised"] is False
    assert inputs[str(files["binary"])]["reason"] == "binary"
    assert inputs[str(files["note"])]["signals_only"] is True
    assert f"{files['zip']}!/inner/note.txt" in inputs
    assert inputs[str(files["zip"])]["recognised"] is None  # an archive: its members say
    # the inventory's "empty file" finding is about the file, not something read in it
    assert inputs[str(files["empty"])]["recognised"] is False
    assert inputs[str(files["empty"])]["reason"] == "no-known-content"
    msg = Messages(lang)
    page = (out / "report.html").read_text("utf-8")
    assert msg("ui.report.col.recognised") in page
    assert msg("ui.report.input.not-recognised", reason=msg("facts.reason.binary")) in page
    signals_only = msg("ui.report.input.signals-only", facts=inputs[str(files["note"])]["facts"])
    assert signals_only in page
    md = (out / "report.md").read_text("utf-8")
    assert msg("ui.report.input.not-recognised", reason=msg("facts.reason.binary")) in md


def test_a_disk_the_engine_read_counts_as_recognised_in_the_triage(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    disk = root / "web01.vhdx"
    disk.write_bytes(b"vhdxfile" + bytes(1024 * 1024 - 8))  # a signature, then damage
    out = tmp_path / "report"
    run_cli("triage", root, "--out", out, evidence=[root])
    report = json.loads((out / "report.json").read_text("utf-8"))
    [entry] = [i for i in report["inputs"] if i["path"] == str(disk)]
    checks = [d for d in report["disks"] if d["path"] == str(disk)]
    assert checks  # the disk engine read it ...
    if checks[0]["status"] == "error":
        assert (entry["recognised"], entry["reason"]) == (False, "disk-unreadable")
    else:  # ... and its findings are what was recognised
        assert entry["recognised"] and entry["formats"][0] == "virtual-disk"
