"""The aftermath of risky advice (issue 16): a checkpoint disk renamed to .vhdx, checkpoint files
deleted in the file system, a parent written to after its child was made, Set-VHD
-IgnoreIdMismatch. Disk evidence is built with the project's writer and then treated the way
the advice treats it (renamed, deleted, written to); each goes through `inventory --json` and
`triage`, with the near misses that must stay quiet. Pasted evidence lives in
tests/fixtures/field_aftermath (sources in its README). Last, the `avoid` lists: every
virtual-disk rule whose steps work on a chain names a risky action and what it breaks."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.diagnose.rules import load_rules
from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx
from tests.builders import MiB, make_chain, set_data_write_guid
from tests.helpers import run_cli
from tests.test_inventory import xml_config

FIXTURES = Path(__file__).parent / "fixtures" / "field_aftermath"
JAPANESE = re.compile("[ぁ-んァ-ン一-龯]")
GUID = "9C3E7A12-5B44-4F0D-8E21-6A7B9C0D1E2F"
WIN = "D:\\Hyper-V\\web01\\Virtual Hard Disks\\"


@pytest.fixture
def ev(tmp_path: Path) -> Path:
    """The evidence tree; reports go beside it, never inside."""
    return tmp_path / "evidence"


def vm_tree(root: Path, leaf: str = "c2.avhdx", checkpoint_disk: str | None = None) -> Path:
    """web01: base.vhdx <- c1.avhdx <- c2.avhdx; the VM uses ``leaf``, and a checkpoint
    configuration (Snapshots/) names ``checkpoint_disk`` when given."""
    home = root / "web01"
    make_chain(home / "Virtual Hard Disks", depth=3)
    xml_config(home / "Virtual Machines" / "A1.xml", "web01", [WIN + leaf])
    if checkpoint_disk:
        xml_config(home / "Snapshots" / "B2.xml", "web01", [WIN + checkpoint_disk])
    return home


def inventory(root: Path) -> list[dict]:
    r = run_cli("inventory", root, "--json", evidence=[root])
    assert r.rc in (0, 1), r.stderr
    return r.json()["findings"]


def of(findings: list[dict], code: str) -> list[dict]:
    return [f for f in findings if f["code"] == code]


def triage(tmp_path: Path, evidence: Path, lang: str = "en") -> dict:
    out = tmp_path / f"report-{lang}-{uuid.uuid4().hex[:8]}"
    r = run_cli("--lang", lang, "triage", evidence, "--out", out, "--json", evidence=[evidence])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    data = r.json()
    data["rc"] = r.rc
    return data


def serious(data: dict) -> list[str]:
    return [
        d["id"]
        for d in data["diagnoses"]
        if SEVERITY_ORDER[d["severity"]] >= SEVERITY_ORDER["warning"]
    ]


def age(path: Path, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


# ------------------------------------------------------------------ renamed .avhdx -> .vhdx


def test_a_checkpoint_disk_renamed_to_vhdx_is_recognised(tmp_path: Path, ev: Path):
    home = vm_tree(ev)
    disks = home / "Virtual Hard Disks"
    (disks / "c2.avhdx").rename(disks / "c2.vhdx")
    found = inventory(ev)
    [renamed] = of(found, "hyperv.renamed-differencing")
    assert renamed["path"].endswith("c2.vhdx")
    assert renamed["params"] == {"file": "c2.vhdx", "parent": ".\\c1.avhdx", "original": "c2.avhdx"}
    assert of(found, "vm.disk.missing"), "the configuration still names the old file"
    data = triage(tmp_path, ev)
    top = data["diagnoses"][0]
    assert top["id"] == data["verdict"]["id"] == "aftermath.renamed-differencing"
    assert any('-NewName "c2.avhdx"' in s["command"] for s in top["steps"])
    assert any("IgnoreIdMismatch" in a for a in top["avoid"])


def test_a_guid_named_differencing_vhdx_needs_no_configuration_to_be_recognised(ev: Path):
    disks = ev / "restore"
    make_chain(disks, depth=2)
    (disks / "c1.avhdx").rename(disks / f"web01_{GUID}.vhdx")
    [renamed] = of(inventory(ev), "hyperv.renamed-differencing")
    assert renamed["params"]["original"] == f"web01_{GUID}.avhdx"
    assert renamed["params"]["parent"] == ".\\base.vhdx"


def test_a_child_that_names_the_old_name_gives_the_rename_away(ev: Path):
    disks = ev / "restore"
    make_chain(disks, depth=3)
    (disks / "c1.avhdx").rename(disks / "c1.vhdx")  # c2 still names .\c1.avhdx
    [renamed] = of(inventory(ev), "hyperv.renamed-differencing")
    assert renamed["path"].endswith("c1.vhdx")


def test_a_differencing_vhdx_made_on_purpose_is_not_called_renamed(ev: Path):
    """New-VHD -Differencing under a .vhdx name, used by its VM under that name."""
    lab = ev / "lab"
    [base] = make_chain(lab, depth=1)
    write_vhdx(
        str(lab / "web01-diff.vhdx"),
        VhdxSpec(
            virtual_size=64 * MiB,
            block_size=2 * MiB,
            parent=ParentSpec(_data_write_guid(base), relative_path=".\\base.vhdx"),
        ),
        {0: b"\x42" * 4096},
    )
    xml_config(lab / "Virtual Machines" / "L1.xml", "lab", ["D:\\lab\\web01-diff.vhdx"])
    found = inventory(ev)
    assert not of(found, "hyperv.renamed-differencing"), found
    assert not of(found, "vm.disk.missing")


def test_a_copy_under_a_vhdx_name_beside_its_original_is_not_a_rename(ev: Path):
    disks = ev / "restore"
    make_chain(disks, depth=2)
    shutil.copyfile(disks / "c1.avhdx", disks / "c1.vhdx")
    assert not of(inventory(ev), "hyperv.renamed-differencing")


def _data_write_guid(path: Path) -> uuid.UUID:
    from hvrescue.vdisk.detect import probe_identity

    probe = probe_identity(str(path))
    assert probe is not None and probe[1]
    return uuid.UUID(probe[1])


# ------------------------------------------------------------------ checkpoint files deleted


def test_a_deleted_checkpoint_disk_under_the_running_disk_is_recognised(tmp_path: Path, ev: Path):
    home = vm_tree(ev, checkpoint_disk="c1.avhdx")
    (home / "Virtual Hard Disks" / "c1.avhdx").unlink()
    found = inventory(ev)
    [deleted] = of(found, "hyperv.checkpoint-files-deleted")
    assert deleted["path"].endswith(os.path.join("Snapshots", "B2.xml"))
    assert deleted["params"] == {
        "vm": "web01",
        "missing_disk": "c1.avhdx",
        "child_disk": "c2.avhdx",
        "config_kind": "snapshot",
    }
    assert of(found, "chain.parent.missing") and of(found, "vm.disk.missing")
    for lang in ("en", "ja"):
        data = triage(tmp_path, ev, lang)
        top = data["diagnoses"][0]
        assert top["id"] == "aftermath.checkpoint-files-deleted" and data["rc"] == 1
        assert any('-Filter "c1.avhdx"' in s["command"] for s in top["steps"])
        assert "vdisk.chain.parent-missing" in serious(data)  # the broader rule still stands
        if lang == "ja":
            assert JAPANESE.search(top["title"]) and JAPANESE.search(top["avoid"][0])


def test_a_missing_parent_no_configuration_names_is_only_a_broken_chain(ev: Path):
    home = vm_tree(ev)  # no checkpoint configuration
    (home / "Virtual Hard Disks" / "c1.avhdx").unlink()
    found = inventory(ev)
    assert of(found, "chain.parent.missing")
    assert not of(found, "hyperv.checkpoint-files-deleted")


def test_a_deleted_leaf_is_a_missing_disk_not_a_deleted_parent(ev: Path):
    home = vm_tree(ev, checkpoint_disk="c1.avhdx")
    (home / "Virtual Hard Disks" / "c2.avhdx").unlink()
    found = inventory(ev)
    assert of(found, "vm.disk.missing")
    assert not of(found, "hyperv.checkpoint-files-deleted")


# ------------------------------------------------------------------ parent written after child


def test_a_parent_written_after_its_child_is_recognised_beside_the_mismatch(
    tmp_path: Path, ev: Path
):
    home = vm_tree(ev)
    disks = home / "Virtual Hard Disks"
    for name in ("base.vhdx", "c1.avhdx", "c2.avhdx"):
        age(disks / name, 7200)
    set_data_write_guid(disks / "c1.avhdx", uuid.uuid4())  # what Hyper-V does on a write
    age(disks / "c1.avhdx", 60)
    found = inventory(ev)
    [mismatch] = of(found, "chain.parent.linkage-mismatch")
    [merged] = of(found, "hyperv.merged-away-parent")
    assert merged["severity"] == "info", "the mismatch is the error; this only explains it"
    assert merged["path"] == mismatch["path"] and merged["path"].endswith("c2.avhdx")
    assert merged["params"]["parent"].endswith("c1.avhdx")
    assert merged["params"]["parent_modified"] > merged["params"]["child_modified"]
    data = triage(tmp_path, ev)
    top = data["diagnoses"][0]
    assert top["id"] == "aftermath.merged-away-parent"
    assert "vdisk.chain.parent-mismatch" in serious(data)
    assert "generic.disk-damage" not in serious(data), "the undefined ranges are explained"
    assert any("hvrescue reparent" in s["command"] for s in top["steps"])
    assert any("Merge-VHD" in a for a in top["avoid"])


def test_a_replaced_parent_older_than_its_child_is_not_called_merged(tmp_path: Path, ev: Path):
    """Another disk restored at the parent's path (older than the child): a mismatch, not a
    parent written to after the child."""
    home = vm_tree(ev)
    disks = home / "Virtual Hard Disks"
    set_data_write_guid(disks / "c1.avhdx", uuid.uuid4())
    age(disks / "c1.avhdx", 86400 * 30)
    age(disks / "c2.avhdx", 60)
    found = inventory(ev)
    assert of(found, "chain.parent.linkage-mismatch")
    assert not of(found, "hyperv.merged-away-parent")
    data = triage(tmp_path, ev)
    assert data["diagnoses"][0]["id"] == "vdisk.chain.parent-mismatch"
    assert "aftermath.merged-away-parent" not in serious(data)


def test_an_untouched_chain_has_no_aftermath(ev: Path):
    vm_tree(ev, checkpoint_disk="c1.avhdx")
    found = inventory(ev)
    assert not [f for f in found if f["code"].startswith("hyperv.")], found


# ------------------------------------------------------------------ pasted evidence

INCIDENTS = [
    ("renamed-avhdx-en", "aftermath.renamed-differencing", '-NewName "FS01_', "en"),
    ("renamed-avhdx-ja", "aftermath.renamed-differencing", '-NewName "SRV-FILE02_', "ja"),
    ("ignore-id-mismatch-en", "aftermath.ignore-id-mismatch-used", "hvrescue chain", "en"),
    ("ignore-id-mismatch-ja", "aftermath.ignore-id-mismatch-used", "SRV-DB01_7A1B", "ja"),
    ("differencing-on-purpose-en", None, None, "en"),
]


@pytest.mark.parametrize(("name", "expected", "command", "lang"), INCIDENTS, ids=lambda x: x)
def test_incident_folder_through_triage(tmp_path: Path, name, expected, command, lang):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    data = triage(tmp_path, folder, lang)
    if expected is None:
        assert serious(data) == [] and data["verdict"]["state"] != "problems"
        return
    top = data["diagnoses"][0]
    assert top["id"] == data["verdict"]["id"] == expected, [d["id"] for d in data["diagnoses"]]
    assert data["rc"] == 1
    assert any(command in s["command"] for s in top["steps"]), [s["command"] for s in top["steps"]]
    assert all(e["path"].startswith(str(folder)) for e in top["evidence"])
    if lang == "ja":
        assert JAPANESE.search(top["title"]) and JAPANESE.search(top["steps"][0]["text"])


# ------------------------------------------------------------------ avoid lists

# A step works on a chain when its command maps, re-links, merges, renames or removes the
# disks of one (a grant or an event query on the files does not).
TOUCHES_CHAIN = re.compile(
    r"hvrescue (chain|reparent|merge)\b|Merge-VHD|Set-VHD|Remove-VMSnapshot|Rename-Item|\.avhdx",
    re.I,
)
# The risky actions people are told to take on a chain, each as its avoid names it.
RISKY = {
    "IgnoreIdMismatch": re.compile(r"IgnoreIdMismatch|ignore-id-mismatch"),
    "rename": re.compile(r"renam\w* (an |the )?\.avhdx|rename\w* .{0,40}\.vhdx", re.I),
    "Merge-VHD": re.compile(r"Merge-VHD|merge .{0,30}by hand", re.I),
    "delete": re.compile(r"delet\w* .{0,60}(\.avhdx|checkpoint)", re.I),
    "chkdsk/diskpart": re.compile(r"chkdsk|diskpart"),
    "compact/convert": re.compile(r"Optimize-VHD|Convert-VHD|compact", re.I),
    "start on the parent": re.compile(r"(start|attach|add)\w* .{0,40}(parent|base \.vhdx)", re.I),
}


def _chain_rules():
    return [
        r
        for r in load_rules()
        if r.layer == "virtual-disk" and any(TOUCHES_CHAIN.search(s.command) for s in r.steps)
    ]


def test_the_criterion_selects_the_rules_that_work_on_chains():
    ids = {r.id for r in _chain_rules()}
    assert {
        "vdisk.chain.parent-missing",
        "vdisk.chain.parent-found-elsewhere",
        "vdisk.merge-interrupted",
        "vdisk.checkpoint-disk-missing",
        "aftermath.merged-away-parent",
    } <= ids
    assert "vdisk.checked-clean" not in ids  # reads a disk, changes no chain
    assert "vdisk.access-denied" not in ids  # grants on the files, the chain as it is


@pytest.mark.parametrize("rule", _chain_rules(), ids=lambda r: r.id)
def test_chain_rules_name_a_risky_action_and_what_it_breaks(rule):
    """At least one avoid names a risky action and, after a colon, what it breaks; its
    Japanese twin names the same command or file type."""
    named = []
    for item in rule.avoid:
        for action, pattern in RISKY.items():
            m = pattern.search(item.en)
            if m and ":" in item.en[m.start() :]:
                named.append((action, item))
    assert named, f"{rule.id}: no avoid names a risky action with its consequence"
    for _action, item in named:
        for token in re.findall(r"[A-Za-z]+-VHD|-IgnoreIdMismatch|chkdsk|\.avhdx", item.en):
            assert token.lower() in item.ja.lower(), (rule.id, token, item.ja)


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize(
    "code",
    ["hyperv.renamed-differencing", "hyperv.checkpoint-files-deleted", "hyperv.merged-away-parent"],
)
def test_explain_knows_the_aftermath_findings(code: str, lang: str):
    data = run_cli("--lang", lang, "explain", code, "--json").json()
    assert data["kind"] == "finding" and data["code"] == code
    assert "{" not in data["meaning"] and "<" in data["meaning"]
    if lang == "ja":
        assert JAPANESE.search(data["meaning"])
