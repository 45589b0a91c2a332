"""triage, explain and the report, end to end through the CLI, on incident folders in English
and Japanese built from the fixture outputs (near misses and healthy evidence included)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import CORPUS, run_cli

FIX = Path(__file__).parent / "fixtures"
CMD = FIX / "commands"
INC = FIX / "incidents"


def incident(tmp_path: Path, name: str, files: list[Path], extra: dict[str, str] | None = None):
    folder = tmp_path / name
    folder.mkdir()
    for f in files:
        shutil.copyfile(f, folder / f.name)
    for fname, text in (extra or {}).items():
        (folder / fname).write_text(text, encoding="utf-8")
    return folder


def triage(folder: Path, *args: str, lang: str = "en"):
    out = folder.parent / f"{folder.name}-report"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", *args, evidence=[folder])
    assert r.rc in (0, 1), r.stdout + r.stderr
    return r, out


TASKLIST_ALONE = """
Image Name                     PID Services
========================= ======== ============================================
svchost.exe                   1024 EventSystem
svchost.exe                   1088 FontCache, netprofm, nsi
"""


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_vss_writers_gone_eventsystem_shared(tmp_path: Path, lang: str):
    folder = incident(
        tmp_path,
        f"vss-{lang}",
        [
            CMD / f"vssadmin_writers_empty_{lang}.txt",
            CMD / f"tasklist_svc_{lang}.txt",
            CMD / f"events_viewer_{lang}.csv",
        ],
    )
    r, out = triage(folder, lang=lang)
    data = r.json()
    top = data["diagnoses"][0]
    assert top["id"] == "vss.writers-missing.eventsystem-shared-host"
    assert r.rc == 1 and data["verdict"]["id"] == top["id"]
    kinds = {e["kind"] for e in top["evidence"]}
    assert {"process", "vss_writer_list", "event"} <= kinds
    assert all(e["path"].startswith(str(folder)) for e in top["evidence"])
    commands = [s["command"] for s in top["steps"]]
    assert "sc config EventSystem type= own" in commands
    pid = next(e for e in top["evidence"] if e["kind"] == "process")["attributes"]["pid"]
    assert f'tasklist /svc /fi "PID eq {pid}"' in commands
    if lang == "ja":
        assert re.search("[ぁ-んァ-ン一-龯]", top["title"])
    for name in ("report.html", "report.md", "report.json"):
        assert (out / name).is_file()
    assert (
        json.loads((out / "report.json").read_text(encoding="utf-8"))["diagnoses"][0]["id"]
        == top["id"]
    )


def test_vss_near_miss_eventsystem_alone(tmp_path: Path):
    folder = incident(
        tmp_path,
        "vss-alone",
        [CMD / "vssadmin_writers_empty_en.txt", CMD / "events_viewer_en.csv"],
        {"tasklist.txt": TASKLIST_ALONE},
    )
    r, _ = triage(folder)
    ids = [d["id"] for d in r.json()["diagnoses"]]
    assert "vss.writers-missing.eventsystem-shared-host" not in ids


def test_healthy_evidence_gives_no_warning(tmp_path: Path):
    folder = incident(
        tmp_path,
        "healthy",
        [CMD / "vssadmin_writers_stable_en.txt", CMD / "vssadmin_providers_en.txt"],
        {"tasklist.txt": TASKLIST_ALONE},
    )
    r, out = triage(folder)
    assert r.rc == 0
    data = r.json()
    assert not [d for d in data["diagnoses"] if d["severity"] != "info"]
    assert data["verdict"]["status"] == "no-problem-found"
    assert data["verdict"]["state"] == "healthy" and data["verdict"]["severity"] == "ok"
    assert "No problem found" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_hypervisor_not_running_after_update(tmp_path: Path, lang: str):
    folder = incident(
        tmp_path, f"hv-{lang}", [CMD / f"events_text_{lang}.txt", CMD / f"get_hotfix_{lang}.txt"]
    )
    r, _ = triage(folder, lang=lang)
    top = r.json()["diagnoses"][0]
    assert top["id"] == "host.hypervisor-not-running.after-update"
    commands = " ".join(s["command"] for s in top["steps"])
    assert "wusa /uninstall /kb:5008868" in commands
    assert "wusa /uninstall /kb:5009624" in commands


def test_hypervisor_failure_without_a_recent_update_is_not_blamed_on_one(tmp_path: Path):
    old = (
        "Source        Description      HotFixID      InstalledBy          InstalledOn\n"
        "------        -----------      --------      -----------          -----------\n"
        "HV-HOST01     Update           KB4012345     NT AUTHORITY\\SYSTEM  6/1/2021 12:00:00 AM\n"
    )
    folder = incident(tmp_path, "hv-old", [CMD / "events_text_en.txt"], {"hotfix.txt": old})
    r, _ = triage(folder)
    ids = [d["id"] for d in r.json()["diagnoses"]]
    assert "host.hypervisor-not-running.after-update" not in ids


@pytest.mark.parametrize("events", ["kernel_power_41.xml", "bugcheck_1001_ja.csv"])
def test_stop_0xc000021a_with_a_pending_update(tmp_path: Path, events: str):
    folder = incident(tmp_path, "bsod", [INC / events, CMD / "dism_packages_en.txt"])
    r, _ = triage(folder, lang="ja" if "ja" in events else "en")
    top = r.json()["diagnoses"][0]
    assert top["id"] == "guest.stop-0xc000021a.pending-update"
    commands = [s["command"] for s in top["steps"]]
    assert "DISM /Image:D:\\ /Cleanup-Image /RevertPendingActions" in commands
    assert (
        "DISM /Image:D:\\ /Remove-Package "
        "/PackageName:Package_for_KB5034768~31bf3856ad364e35~amd64~~17763.5329.1.7" in commands
    )
    assert [s["precondition"] for s in top["steps"]][:2] == ["after-preserve", "winre"]


def test_a_disk_whose_parent_is_gone(corpus_dir: Path, tmp_path: Path):
    folder = tmp_path / "disks"
    folder.mkdir()
    shutil.copyfile(corpus_dir / "dissect-hypervisor/differencing.avhdx", folder / "web01_A.avhdx")
    r, _out = triage(folder, "--symptom", "parent-not-found")
    data = r.json()
    ids = [d["id"] for d in data["diagnoses"]]
    assert ids[0] == "vdisk.chain.parent-missing"
    assert "symptom.parent-not-found" in ids  # the triage table's guidance ranks below evidence
    assert data["disks"][0]["path"] == str(folder / "web01_A.avhdx")
    assert not any(u["reason"] == "disk-image" for u in data["unrecognised"])


def test_report_is_self_contained_and_verdict_first(tmp_path: Path):
    folder = incident(
        tmp_path, "vss", [CMD / "vssadmin_writers_empty_ja.txt", CMD / "tasklist_svc_ja.txt"]
    )
    _r, out = triage(folder, lang="ja")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets
    assert page.index('id="verdict"') < page.index("<section")
    assert "判定" in page and 'name="viewport"' in page
    assert "sc config EventSystem type= own" in page
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.splitlines()[0].startswith("# ") and "sc config EventSystem type= own" in md


def test_default_report_folder_is_beside_the_evidence(tmp_path: Path):
    folder = incident(tmp_path, "case1", [CMD / "vssadmin_writers_empty_en.txt"])
    r = run_cli("triage", folder, evidence=[folder])
    assert r.rc in (0, 1)
    made = [p for p in tmp_path.iterdir() if p.name.startswith("case1-hvrescue-")]
    assert len(made) == 1 and (made[0] / "report.html").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["vssadmin_writers_empty_en.txt"]


@pytest.mark.parametrize(
    "code,expect",
    [
        ("0xC03A000D", "STATUS_VHD_PARENT_VHD_NOT_FOUND"),
        ("c03a000e", "STATUS_VHD_CHILD_PARENT_ID_MISMATCH"),
        ("0xc000021a", "STATUS_SYSTEM_PROCESS_TERMINATED"),
        ("VSS/8193", "VSS/8193"),
        ("Hyper-V-Hypervisor/80", "Microsoft-Windows-Hyper-V-Hypervisor/80"),
        ("chain.parent.missing", "chain.parent.missing"),
        (
            "vss.writers-missing.eventsystem-shared-host",
            "vss.writers-missing.eventsystem-shared-host",
        ),
    ],
)
def test_explain(code: str, expect: str):
    r = run_cli("explain", code, "--json")
    assert r.rc == 0, r.stdout
    data = r.json()
    assert expect in (data.get("name"), data["code"])
    assert data["meaning"] and data["layer_text"]
    ja = run_cli("--lang", "ja", "explain", code, "--json").json()
    assert ja["meaning"] != data["meaning"]


def test_explain_unknown():
    assert run_cli("explain", "0x12345678").rc == 2


def test_vhd_status_values_are_the_right_ones():
    """Values as golang.org/x/sys/windows zerrors_windows.go has them; a name finds its value."""
    data = run_cli("explain", "STATUS_VHD_PARENT_VHD_NOT_FOUND", "--json").json()
    assert data["code"] == "0xC03A000D"
    data = run_cli("explain", "0xC03A0010", "--json").json()
    assert data["name"] == "STATUS_VHD_METADATA_READ_FAILURE"
    _ = CORPUS


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_screenshot_shows_the_verdict_at_the_top(tmp_path: Path, lang: str):
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    image = pytest.importorskip("PIL.Image")
    folder = incident(
        tmp_path,
        "vss",
        [CMD / f"vssadmin_writers_empty_{lang}.txt", CMD / f"tasklist_svc_{lang}.txt"],
    )
    _r, out = triage(folder, lang=lang)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=412,900",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    im = image.open(shot).convert("RGB")
    assert im.size == (412, 900)
    # The verdict banner (severity error: #c62828) fills the top of a phone-sized page...
    band = [im.getpixel((x, y)) for x in range(30, 380, 7) for y in range(20, 150, 6)]
    red = sum(1 for p in band if abs(p[0] - 0xC6) < 25 and p[1] < 70 and p[2] < 70)
    white = sum(1 for p in band if min(p) > 220)
    assert red > 0.5 * len(band), "no verdict banner at the top"
    assert white > 0.03 * len(band), "the banner carries no text"
    # ...and the diagnoses follow below it on the light page background.
    below = [im.getpixel((x, 600)) for x in range(30, 380, 10)]
    assert sum(1 for p in below if min(p) > 230) > len(below) / 2


def test_evidence_skipped_at_a_limit_is_named_and_never_healthy(tmp_path: Path):
    import zipfile

    folder = incident(tmp_path, "limits", [CMD / "vssadmin_writers_en.txt"])
    text = (CMD / "events_text_en.txt").read_bytes()
    with zipfile.ZipFile(folder / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("logs/app.log", text * 20_000)  # ~20 MB from ~50 KB: a zip bomb's ratio
        zf.writestr("logs/writers.txt", (CMD / "vssadmin_writers_en.txt").read_bytes())
    r, out = triage(folder)
    data = r.json()
    member = f"{folder / 'bundle.zip'}!/logs/app.log"
    assert [(s["path"], s["reason"]) for s in data["skipped"]] == [(member, "zip-ratio")]
    assert r.rc == 1 and data["verdict"]["state"] == "problems"
    [d] = [d for d in data["diagnoses"] if d["id"] == "generic.evidence-unreadable"]
    assert (
        d["evidence"][0]["path"] == member and "evidence.zip-ratio" in d["evidence"][0]["excerpt"]
    )
    # The rest of the bundle was read.
    assert data["verdict"]["basis"]["skipped"] == 1
    assert (
        json.loads((out / "report.json").read_text(encoding="utf-8"))["skipped"] == data["skipped"]
    )
