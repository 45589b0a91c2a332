"""Each optional package missing in turn: the command that needs it says which package and why;
every command that does not need it keeps working.

A package is made absent by a ``sitecustomize`` that refuses its import, as an interpreter without
it installed would (``ModuleNotFoundError``), in a fresh ``hvrescue`` process.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import make_guest_raw, ntfs_tools
from tests.helpers import CORPUS
from tests.test_fs import _fuse_works

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLE = ROOT / "examples" / "incident"
DISK = EXAMPLE / "Virtual Hard Disks" / "web01-restored.vhdx"

BLOCKER = """
import importlib.abc, sys
_BLOCKED = {blocked!r}
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == _BLOCKED or name.startswith(_BLOCKED + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def run_without(module: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / f"no-{module}"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=module), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    )
    env["HVRESCUE_LANG"] = "en"
    return subprocess.run(
        [sys.executable, "-m", "hvrescue", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


def test_the_blocker_really_hides_a_package(tmp_path: Path) -> None:
    site = tmp_path / "probe"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked="evtx"), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(site))
    probe = subprocess.run(
        [sys.executable, "-c", "import evtx"], capture_output=True, text=True, env=env
    )
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """Text, CSV, XML and EVTX evidence side by side."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    for name in ("events_text_en.txt", "events_getwinevent.csv", "events_saved.xml"):
        shutil.copyfile(FIXTURES / "commands" / name, folder / name)
    shutil.copyfile(
        CORPUS / "evtx" / "EVTX-to-MITRE-Attack" / "ID7009-service-timeout.evtx",
        folder / "system.evtx",
    )
    shutil.copyfile(EXAMPLE / "Host" / "vssadmin list writers.txt", folder / "vssadmin.txt")
    return folder


def _facts(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data: dict[str, object] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize(("module", "reader"), [("evtx", "system.evtx"), ("defusedxml", ".xml")])
def test_facts_without_an_event_reader_reads_the_rest(
    module: str, reader: str, evidence: Path, tmp_path: Path
) -> None:
    data = _facts(run_without(module, tmp_path, "facts", str(evidence), "--json"))
    text = json.dumps(data)
    # the file that needs the package is reported, naming the package ...
    assert "facts.dependency-missing" in text
    assert f'"package": "{module}"' in text
    # ... and the rest was read: facts from the text, the CSV and vssadmin
    facts: list[dict[str, dict[str, str]]] = data["facts"]  # type: ignore[assignment]
    paths = {f["provenance"]["path"] for f in facts}
    assert any(p.endswith("vssadmin.txt") for p in paths)
    assert any(p.endswith(".csv") for p in paths)
    assert not any(p.endswith(reader) for p in paths)


@pytest.mark.parametrize("module", ["evtx", "defusedxml", "pytsk3", "regipy", "mfusepy"])
def test_disk_commands_need_no_optional_package(module: str, tmp_path: Path) -> None:
    for args in (["info", str(DISK)], ["check", str(DISK), "--json"]):
        proc = run_without(module, tmp_path, *args)
        assert proc.returncode in (0, 1), (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("module", "command"),
    [
        ("pyfsext", ["ls", "{disk}", "1:/"]),
        ("pytsk3", ["guest", "{disk}"]),
        ("mfusepy", ["mount", "{disk}", "{mnt}"]),
    ],
)
def test_a_command_that_needs_a_missing_package_names_it(
    module: str, command: list[str], tmp_path: Path
) -> None:
    """A disk with a filesystem (dfVFS's test image): the command gets as far as needing it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    disk = CORPUS / "dfvfs" / "image.vhd"
    args = [a.format(disk=disk, mnt=mnt) for a in command]
    proc = run_without(module, tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Internal error" not in proc.stderr
    assert module in proc.stderr


def test_guest_without_regipy_names_it(tmp_path: Path) -> None:
    """A Windows guest (an NTFS volume with a SYSTEM hive): its hives cannot be read without
    regipy, and guest says so instead of reporting no facts."""
    if not ntfs_tools():
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools and fdisk")
    if not _fuse_works(tmp_path):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    system = lzma.decompress((CORPUS / "registry" / "regipy" / "SYSTEM.xz").read_bytes())
    raw = make_guest_raw(tmp_path / "g", "mbr", {"Windows/System32/config/SYSTEM": system})
    proc = run_without("regipy", tmp_path, "guest", str(raw))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Internal error" not in proc.stderr
    assert "regipy" in proc.stderr


def test_triage_without_evtx_still_gives_a_verdict(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_without("evtx", tmp_path, "triage", str(EXAMPLE), "--out", str(out), "--json")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    verdict = json.loads(proc.stdout)["verdict"]
    assert verdict["state"] == "problems"
    assert (out / "report.html").is_file()


def test_triage_of_a_guest_disk_without_regipy_says_the_guest_was_not_read(tmp_path: Path) -> None:
    if not ntfs_tools() or not shutil.which("qemu-img"):
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools, fdisk and qemu-utils")
    if not _fuse_works(tmp_path):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    system = lzma.decompress((CORPUS / "registry" / "regipy" / "SYSTEM.xz").read_bytes())
    raw = make_guest_raw(tmp_path / "g", "mbr", {"Windows/System32/config/SYSTEM": system})
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    disk = evidence / "guest.vhdx"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(raw), str(disk)],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "report"
    proc = run_without("regipy", tmp_path, "triage", str(evidence), "--out", str(out), "--json")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    missing = [p for p in data["problems"] if p["code"] == "facts.dependency-missing"]
    assert missing and missing[0]["params"]["package"] == "regipy"
    assert data["verdict"]["state"] == "problems"
