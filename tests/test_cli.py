"""The commands as a person and a script use them: shapes, languages, exit codes, and the
evidence left untouched whatever happens."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import codes, run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "incident"
EXAMPLE_LEAF = EXAMPLE / "Virtual Hard Disks" / "web01_6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.avhdx"


def test_bundled_example_is_what_the_generator_makes(tmp_path: Path):
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_example.py"), str(tmp_path / "ex")],
        check=True,
    )
    for shipped in sorted(p for p in EXAMPLE.rglob("*") if p.is_file()):
        made = tmp_path / "ex" / shipped.relative_to(EXAMPLE)
        assert (
            hashlib.sha256(made.read_bytes()).digest()
            == hashlib.sha256(shipped.read_bytes()).digest()
        ), shipped.name


def test_readme_triage_of_the_example(tmp_path: Path):
    copy = tmp_path / "incident"
    shutil.copytree(EXAMPLE, copy)
    result = run_cli("triage", copy, "--json", evidence=[copy])
    assert result.rc == 1
    ids = [d["id"] for d in result.json()["diagnoses"]]
    assert ids[0] == "vss.writers-missing.eventsystem-shared-host"
    assert "vdisk.log-replay-needed" in ids
    made = [p for p in tmp_path.iterdir() if p.name.startswith("incident-hvrescue-")]
    assert len(made) == 1 and (made[0] / "report.html").is_file()


def test_readme_example_reports_both_problems(tmp_path: Path):
    copy = tmp_path / "incident"
    shutil.copytree(EXAMPLE, copy)
    leaf = copy / EXAMPLE_LEAF.relative_to(EXAMPLE)
    result = run_cli("check", "--json", leaf, evidence=[copy])
    assert result.rc == 1
    assert codes(result.json()) == {"vhdx.log.replay-needed", "chain.parent.found-elsewhere"}
    human = run_cli("check", leaf, evidence=[copy])
    assert "found by identity" in human.stdout and human.rc == 1


def test_info_json_shows_every_vhdx_structure(corpus_dir: Path):
    data = run_cli("info", "--json", corpus_dir / "discutils/vhdx-log-replay.vhdx").json()
    assert data["format"] == "vhdx"
    assert data["creator"].startswith("Microsoft Windows 10.0.15063")
    assert len(data["headers"]) == 2 and len(data["region_tables"]) == 2
    assert sum(h["current"] for h in data["headers"]) == 1
    items = data["metadata"]["items"]
    assert items["block_size"] == 32 * 1024 * 1024 and items["virtual_disk_size"] == 1 << 30
    assert items["logical_sector_size"] == 512 and "virtual_disk_id" in items
    assert data["log"]["replayed_sectors"] == 1
    assert data["bat"]["states"]["fully_present"] == 1  # only after replay


def test_info_json_shows_every_vhd_structure(corpus_dir: Path):
    data = run_cli("info", "--json", corpus_dir / "dfvfs/fat-differential.vhd").json()
    assert data["format"] == "vhd" and data["differencing"] is True
    assert data["footer"]["disk_type"] == "differencing"
    assert data["footer_copy"]["unique_id"] == data["footer"]["unique_id"]
    platforms = {loc["platform"]: loc.get("path") for loc in data["parent_locators"]}
    assert platforms["W2ru"] == ".\\fat-parent.vhd"
    assert platforms["W2ku"].endswith("fat-parent.vhd")


def test_info_human_output_in_both_languages(corpus_dir: Path):
    path = corpus_dir / "dissect-hypervisor/dynamic.vhdx"
    en = run_cli("info", path)
    assert en.rc == 0 and "virtual_size" in en.stdout and "Field" in en.stdout
    ja = run_cli("--lang", "ja", "info", path)
    assert "項目" in ja.stdout


def test_chain_human_output(tmp_path: Path):
    from tests.builders import make_chain

    paths = make_chain(tmp_path / "vm", depth=2)
    out = run_cli("chain", paths[-1], evidence=paths)
    assert out.rc == 0
    assert "relative_path" in out.stdout and "complete" in out.stdout
    paths[0].unlink()
    broken = run_cli("--lang", "ja", "chain", paths[-1], evidence=paths[1:])
    assert broken.rc == 1 and "不完全" in broken.stdout


def test_hash_human_output(corpus_dir: Path):
    out = run_cli("hash", corpus_dir / "dissect-hypervisor/fixed.vhdx")
    assert out.rc == 0
    assert "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62" in out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--json"],
        ["check"],
        ["info", "--json"],
        ["info"],
        ["chain", "--json"],
        ["chain"],
        ["hash", "--json"],
        ["hash"],
    ],
)
def test_every_command_leaves_damaged_inputs_untouched(tmp_path: Path, args: list[str]):
    # A broken chain, a damaged header, an empty file and junk: the failure paths.
    from tests.builders import make_chain, patch

    paths = make_chain(tmp_path / "vm", depth=2)
    patch(paths[0], 64 * 1024 + 10, b"\xff\xff")
    empty = tmp_path / "empty.avhdx"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.vhd"
    junk.write_bytes(b"\x01" * 5000)
    for target in (paths[-1], empty, junk):
        result = run_cli(*args, target, evidence=[tmp_path])
        assert result.rc in (0, 1, 2)
        if "--json" in args:
            result.json()  # always valid JSON, also on failure


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("hvrescue")
    assert "check" in run_cli("--help").stdout


def test_unknown_option_is_a_clean_error():
    result = run_cli("check", "--no-such-option", "x.vhdx")
    assert result.rc == 2


def test_check_of_several_files_lists_each_finding_once(tmp_path: Path):
    from tests.builders import make_chain, patch

    base, child = make_chain(tmp_path / "vm", depth=2)
    patch(base, 64 * 1024 + 10, b"\xff\xff")  # damage the base's first header
    data = run_cli("check", "--json", child, base, evidence=[tmp_path]).json()
    keys = [(f["code"], f["path"], f["offset"]) for f in data["findings"]]
    assert len(keys) == len(set(keys))
    assert ("vhdx.header.checksum", str(base), 64 * 1024) in keys
    assert [f["path"] for f in data["files"]] == [str(child), str(base)]


def test_brackets_in_paths_are_shown_not_taken_for_markup(tmp_path: Path, corpus_dir: Path):
    folder = tmp_path / "[bold red]x[blink]"
    folder.mkdir()
    disk = folder / "[magenta].vhdx"
    shutil.copyfile(corpus_dir / "dissect-hypervisor/differencing.avhdx", disk)
    for args in (["check"], ["chain"], ["info"]):
        result = run_cli(*args, disk)
        assert result.rc in (0, 1)
        assert "[magenta].vhdx" in result.stdout.replace("\n", "")
