"""CBS.log and dism.log inside a Windows guest (guest/artefacts/servicing_logs.py): read by the
same reader as a pasted excerpt, located in the tail that was read, said as offline-image facts;
a guest whose last update failed is diagnosed from its disk alone."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from hvrescue.guest.artefacts import by_name, run_artefact
from hvrescue.guest.artefacts import servicing_logs as sl
from hvrescue.guest.context import GuestContext
from hvrescue.guest.result import GuestResult
from hvrescue.logs.commands import cbs
from hvrescue.logs.textutil import Text
from tests.builders import make_guest_raw, ntfs_tools
from tests.fs_linux_builders import to_vhdx
from tests.helpers import CORPUS, run_cli
from tests.test_fs import _fuse_works
from tests.test_guest import FakeVolume

SERVICING = Path(__file__).parent / "fixtures" / "field_servicing"
CBS_LOG = (SERVICING / "source-missing-en" / "CBS.log").read_bytes()
DISM_LOG = (SERVICING / "source-missing-en" / "dism.log").read_bytes()


def _run(files: dict[str, bytes], tmp_path: Path) -> GuestResult:
    result = GuestResult("mem")
    ctx = GuestContext(FakeVolume(files), "mem", result, str(tmp_path))  # type: ignore[arg-type]
    assert run_artefact(by_name("servicing-logs"), ctx).status == "ok"
    return result


def test_the_guest_logs_give_what_the_pasted_logs_give(tmp_path: Path):
    result = _run({sl.LOGS[0]: CBS_LOG, sl.LOGS[1]: DISM_LOG}, tmp_path)
    found = [f for f in result.facts if f.kind == "servicing_log"]
    pasted = [
        *cbs.parse(Text.of(CBS_LOG.decode("utf-8"), "CBS.log")),
        *cbs.parse(Text.of(DISM_LOG.decode("utf-8"), "dism.log")),
    ]
    assert found and len(found) == len(pasted)
    for ours, theirs in zip(found, pasted, strict=True):
        assert {**theirs.attributes, "image": "offline"} == ours.attributes
        assert ours.provenance.locator == "tail-" + str(theirs.provenance.locator)
    files = [f.attributes for f in result.facts if f.kind == "servicing_log_file"]
    assert [(f["file"], f["whole"]) for f in files] == [(sl.LOGS[0], True), (sl.LOGS[1], True)]


def test_a_large_log_is_read_from_its_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    filler = b"2024-05-14 09:00:00, Info                  CBS    Progress line\r\n" * 5000
    monkeypatch.setattr(sl, "TAIL", len(CBS_LOG) + 100)
    result = _run({sl.LOGS[0]: filler + CBS_LOG}, tmp_path)
    [info] = [f.attributes for f in result.facts if f.kind == "servicing_log_file"]
    assert info["whole"] is False and info["tail_bytes"] == len(CBS_LOG) + 100
    found = [f for f in result.facts if f.kind == "servicing_log"]
    assert found and all(f.provenance.locator.startswith("tail-line:") for f in found)


def test_a_utf16_log_and_no_log(tmp_path: Path):
    utf16 = b"\xff\xfe" + CBS_LOG.decode("utf-8").encode("utf-16-le")
    assert [f.kind for f in _run({sl.LOGS[0]: utf16}, tmp_path).facts].count("servicing_log") > 0
    assert _run({"/Windows/notepad.exe": b"MZ"}, tmp_path).facts == []


def test_a_guest_whose_update_failed_is_diagnosed_from_its_disk(tmp_path: Path):
    if not ntfs_tools() or not shutil.which("qemu-img"):
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools, fdisk and qemu-utils")
    if not _fuse_works(tmp_path):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    system = lzma.decompress((CORPUS / "registry/regipy/SYSTEM.xz").read_bytes())
    files = {
        "Windows/System32/config/SYSTEM": system,
        "Windows/Logs/CBS/CBS.log": CBS_LOG,
        "Windows/Logs/DISM/dism.log": DISM_LOG,
    }
    raw = make_guest_raw(tmp_path, "gpt", files, {}, size=96 * 1024 * 1024)
    disk = to_vhdx(raw, tmp_path / "guest.vhdx")
    r = run_cli("triage", disk, "--out", tmp_path / "report", "--json", evidence=[disk])
    assert r.rc == 1, r.stderr
    top = r.json()["diagnoses"][0]
    assert top["id"] == "guest.servicing.source-missing"
    assert any("CBS.log" in (e.get("path") or "") for e in top["evidence"])
    # the disk's own Windows volume names the drive of the offline repair (GPT: C: in WinRE)
    offline = [s["command"] for s in top["steps"] if "/Image:" in (s.get("command") or "")]
    assert offline and offline[0].startswith("DISM /Image:C:\\ /Cleanup-Image /RestoreHealth")


def test_a_log_line_is_cited_as_the_log_wrote_it():
    from hvrescue.diagnose.engine import excerpt

    [fact] = [
        f
        for f in cbs.parse(Text.of(DISM_LOG.decode("utf-8"), "dism.log"))
        if "Failed to restore the image health" in f.attributes["message"]
    ]
    line = next(
        line for line in DISM_LOG.decode("utf-8").splitlines() if "restore the image" in line
    )
    cited = excerpt(fact)
    assert cited.startswith(f"{fact.attributes['time']} Error DISM: DISM Package Manager:")
    # the words of the line, in its order (the log pads its columns with spaces)
    assert " ".join(line.split()[4:])[:100] in " ".join(cited.split())
