"""`audit` on storage trees built here with exactly planted conditions: it reports those and no
others, thresholds move the verdict, the JSON and the Prometheus textfile agree, and the
evidence is left as it was."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.inventory import CHECK_MODULES
from tests.builders import make_chain
from tests.helpers import CORPUS, run_cli

prometheus_parser = pytest.importorskip("prometheus_client.parser")

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
WEB01 = "4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F"
DB01 = "7C2E9B14-3F6A-4D21-9B85-1E2F3A4B5C6D"
DAY = 86400
LEFTOVERS = "hvrescue.hyperv.leftovers" in CHECK_MODULES


def xml_config(path: Path, name: str, vm_id: str, disks: list[str]) -> None:
    """A Hyper-V 2012 R2 style configuration (UTF-16, typed leaves), as test_inventory's."""
    drives = "".join(
        f'<drive{i}><pathname type="string">{d}</pathname><type type="string">VHD</type></drive{i}>'
        for i, d in enumerate(disks)
    )
    text = (
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>\n'
        "<configuration>"
        f"<_d422512d-2bf2-4752-809d-7b82b5fcb1b4_><controller0>{drives}</controller0>"
        "</_d422512d-2bf2-4752-809d-7b82b5fcb1b4_>"
        "<global_settings>"
        '<disk_merge_pending type="bool">False</disk_merge_pending>'
        '<snapshots><list><size type="integer">0</size></list></snapshots>'
        "</global_settings>"
        f'<properties><name type="string">{name}</name>'
        f'<global_id type="string">{vm_id}</global_id>'
        '<type_id type="string">Virtual Machines</type_id>'
        '<version type="integer">1280</version></properties>'
        "</configuration>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-16"))


def vm_folder(root: Path, name: str, vm_id: str, depth: int, seed: int) -> list[Path]:
    """root/NAME: a chain of ``depth`` files in "Virtual Hard Disks", the VM on its leaf."""
    home = root / name
    files = make_chain(home / "Virtual Hard Disks", depth=depth, seed=seed)
    leaf = f"D:\\Hyper-V\\{name}\\Virtual Hard Disks\\{files[-1].name}"
    xml_config(home / "Virtual Machines" / f"{vm_id}.xml", name, vm_id, [leaf])
    return files


def age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Any]:
    """Hyper-V/web01: base <- c1 <- c2, base last written 30 days ago (an old checkpoint: c1);
    c2's ACL (given with --acl) lacks web01's grant.
    Hyper-V/db01: base <- c1 .. c4 (depth 4: deeper than --max-depth 3); c4's ACL (an icacls
    output found in the tree, Japanese, quoted) lacks db01's grant.
    Hyper-V/old: base <- c1 used by no VM (an orphaned differencing disk).
    Hyper-V/web01/Virtual Hard Disks/gone.vhdx.rct: change tracking of a disk not there."""
    root = tmp_path / "Hyper-V"
    web = vm_folder(root, "web01", WEB01, 3, seed=11)
    db = vm_folder(root, "db01", DB01, 5, seed=22)
    old = make_chain(root / "old", depth=2, seed=33)
    (root / "web01" / "Virtual Hard Disks" / "gone.vhdx.rct").write_bytes(b"\0" * 4096)
    shutil.copyfile(FIXTURES / "icacls_db01_ja_quoted.txt", root / "db01" / "icacls.txt")
    age(web[0], 30)
    for p in [*web[1:], *db, *old]:
        age(p, 0.5)
    expected = {
        ("inventory.checkpoint-old", str(web[1])),
        ("inventory.chain-too-deep", str(db[-1])),
        ("inventory.orphan-differencing", str(old[1])),
        ("audit.acl-missing-vm-grant", str(web[2])),
        ("audit.acl-missing-vm-grant", str(db[-1])),
    }
    if LEFTOVERS:
        rct = root / "web01" / "Virtual Hard Disks" / "gone.vhdx.rct"
        expected.add(("inventory.rct-orphan", str(rct)))
    return {"root": root, "web": web, "db": db, "old": old, "expected": expected}


def audit(*args: str | Path, evidence: list[Path]) -> Any:
    return run_cli("audit", *args, evidence=evidence)


def found(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["code"], f["path"]) for f in data["findings"]}


def test_reports_exactly_the_planted_conditions(planted: dict[str, Any], tmp_path: Path):
    root, acl = planted["root"], FIXTURES / "icacls_web01_en.txt"
    r = audit(root, "--max-depth", "3", "--acl", acl, "--json", evidence=[root, acl])
    assert r.rc == 1, r.stderr
    data = r.json()
    assert found(data) == planted["expected"]
    assert data["status"] == "findings" and data["roots"] == [str(root)]
    assert data["thresholds"]["max_depth"] == 3 and data["thresholds"]["older_than_days"] == 14
    # Every file of both VMs' chains had an ACL to compare (web01: 3, db01: 5).
    assert data["acl_checked"] == 8
    grant = next(f for f in data["findings"] if f["path"] == str(planted["web"][2]))
    assert grant["params"]["grant"] == (
        'icacls "D:\\Hyper-V\\web01\\Virtual Hard Disks\\c2.avhdx" /grant '
        f'"NT VIRTUAL MACHINE\\{WEB01}":(F)'
    )
    assert grant["params"]["grant"] in grant["message"]
    chains = {c["leaf"]: c for c in data["chains"]}
    web_chain = chains[str(planted["web"][2])]
    assert web_chain["depth"] == 2 and web_chain["vm"] == "web01"
    assert web_chain["base"] == str(planted["web"][0])
    assert web_chain["oldest_checkpoint_days"] == 30
    db_chain = chains[str(planted["db"][-1])]
    assert db_chain["depth"] == 4 and db_chain["vm"] == "db01"
    assert db_chain["oldest_checkpoint_days"] == 0
    assert chains[str(planted["old"][1])]["vm"] is None
    vms = {v["name"]: v for v in data["vms"]}
    assert set(vms) == {"web01", "db01"}
    assert vms["web01"]["vm_id"] == WEB01 and vms["web01"]["oldest_checkpoint_days"] == 30
    assert sorted(vms["web01"]["findings"]) == [
        "audit.acl-missing-vm-grant",
        "inventory.checkpoint-old",
    ]
    assert vms["db01"]["depth"] == 4
    for chain in data["chains"]:
        assert chain["free_bytes"] is None or chain["free_bytes"] > 0


def test_a_clean_tree_exits_0_with_no_findings(tmp_path: Path):
    root = tmp_path / "Hyper-V"
    vm_folder(root, "web01", WEB01, 3, seed=11)
    acl = FIXTURES / "icacls_web01_clean_en.txt"
    r = audit(root, "--acl", acl, "--json", evidence=[root, acl])
    assert r.rc == 0, r.stdout + r.stderr
    data = r.json()
    assert data["findings"] == [] and data["status"] == "clean" and data["acl_checked"] == 3
    [chain] = data["chains"]
    assert chain["depth"] == 2 and chain["oldest_checkpoint_days"] == 0
    text = audit(root, "--acl", acl, evidence=[root])
    assert text.rc == 0 and "Nothing above the thresholds." in text.stdout


def test_thresholds_move_the_verdict(planted: dict[str, Any], tmp_path: Path):
    root = planted["root"]
    acl = FIXTURES / "icacls_web01_en.txt"
    # Deeper limit, older age: the chain and the checkpoint are no longer reported.
    r = audit(
        root, "--max-depth", "4", "--older-than", "31", "--acl", acl, "--json", evidence=[root]
    )
    codes = {code for code, _ in found(r.json())}
    assert "inventory.chain-too-deep" not in codes and "inventory.checkpoint-old" not in codes
    assert r.rc == 1  # the ACLs and the orphan still stand
    # A clean tree turns to findings when the limit drops under its depth.
    clean = tmp_path / "clean"
    files = vm_folder(clean, "web01", WEB01, 3, seed=11)
    r = audit(clean, "--max-depth", "1", "--json", evidence=[clean])
    assert r.rc == 1
    assert found(r.json()) == {("inventory.chain-too-deep", str(files[-1]))}
    age(files[0], 3)
    r = audit(clean, "--older-than", "2", "--json", evidence=[clean])
    assert r.rc == 1 and found(r.json()) == {("inventory.checkpoint-old", str(files[1]))}
    r = audit(clean, "--older-than", "4", "--json", evidence=[clean])
    assert r.rc == 0 and r.json()["findings"] == []
    if LEFTOVERS:
        # A change-tracking file of 2 MiB beside its disk: within the default, above 1M.
        rct = files[-1].with_name(files[-1].name + ".rct")
        with open(rct, "wb") as f:
            f.truncate(2 * 1024 * 1024)
        r = audit(clean, "--older-than", "4", "--json", evidence=[clean])
        assert r.rc == 0, r.stdout
        r = audit(clean, "--older-than", "4", "--rct-max-size", "1M", "--json", evidence=[clean])
        assert r.rc == 1 and found(r.json()) == {("inventory.rct-oversized", str(rct))}
        assert r.json()["thresholds"]["rct_max_bytes"] == 1024 * 1024


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in prometheus_parser.text_string_to_metric_families(text)}


def test_prometheus_textfile_parses_and_agrees_with_json(planted: dict[str, Any], tmp_path: Path):
    root = planted["root"]
    acl = FIXTURES / "icacls_web01_en.txt"
    prom = tmp_path / "textfile" / "hvrescue.prom"
    prom.parent.mkdir()
    args = [root, "--max-depth", "3", "--acl", acl, "--prometheus", prom]
    r = audit(*args, "--json", evidence=[root])
    assert r.rc == 1
    data = r.json()
    text = prom.read_text(encoding="utf-8")
    fams = _families(text)
    assert "# TYPE hvrescue_audit_chain_depth gauge" in text
    assert "# HELP hvrescue_audit_chain_depth " in text
    [success] = fams["hvrescue_audit_success"].samples
    assert success.value == 1
    [stamp] = fams["hvrescue_audit_last_run_timestamp_seconds"].samples
    assert abs(stamp.value - time.time()) < 600
    depth = {s.labels["chain"]: s.value for s in fams["hvrescue_audit_chain_depth"].samples}
    assert depth == {c["leaf"]: c["depth"] for c in data["chains"]}
    ages = {s.labels["chain"]: s.value for s in fams["hvrescue_audit_checkpoint_age_days"].samples}
    want = {c["leaf"]: c["oldest_checkpoint_days"] for c in data["chains"]}
    assert ages == {k: v for k, v in want.items() if v is not None}
    vm_label = {
        s.labels["chain"]: s.labels["vm"] for s in fams["hvrescue_audit_chain_depth"].samples
    }
    assert vm_label[str(planted["web"][2])] == "web01"
    counts = {
        (s.labels["code"], s.labels["severity"]): s.value
        for s in fams["hvrescue_audit_findings"].samples
    }
    expected_counts: dict[tuple[str, str], int] = {}
    for f in data["findings"]:
        key = (f["code"], f["severity"])
        expected_counts[key] = expected_counts.get(key, 0) + 1
    assert counts == expected_counts
    assert counts[("audit.acl-missing-vm-grant", "warning")] == 2
    [orphans] = fams["hvrescue_audit_orphaned_files"].samples
    assert orphans.value == data["orphaned_files"] == (2 if LEFTOVERS else 1)
    free = {s.labels["chain"]: s.value for s in fams["hvrescue_audit_free_bytes"].samples}
    assert free == {c["leaf"]: c["free_bytes"] for c in data["chains"] if c["free_bytes"]}
    # The next run replaces the file of the previous one, leaving nothing else in the folder.
    before = prom.stat().st_mtime_ns
    time.sleep(0.01)
    r = audit(*args, "--max-depth", "10", evidence=[root])
    assert r.rc == 1
    assert prom.stat().st_mtime_ns != before
    assert sorted(os.listdir(prom.parent)) == ["hvrescue.prom"]
    fams = _families(prom.read_text(encoding="utf-8"))
    codes = {s.labels["code"] for s in fams["hvrescue_audit_findings"].samples}
    assert "inventory.chain-too-deep" not in codes


def test_label_values_are_escaped_as_the_exposition_format_says():
    from hvrescue.audit.prometheus import render

    data = {
        "chains": [
            {
                "leaf": 'D:\\VMs\\a "b"\nc.avhdx',
                "vm": 'we"b\\01',
                "depth": 1,
                "oldest_checkpoint_days": None,
                "merge_bytes": 10,
                "free_bytes": None,
            }
        ],
        "findings": [],
        "orphaned_files": 0,
        "acl_checked": 0,
        "thresholds": {"older_than_days": 14, "max_depth": 5},
    }
    text = render(data, lambda name: f"help of {name}\\ with a\nbreak", 1.5)
    fams = _families(text)
    [depth] = fams["hvrescue_audit_chain_depth"].samples
    assert depth.labels == {"vm": 'we"b\\01', "chain": 'D:\\VMs\\a "b"\nc.avhdx'}
    assert fams["hvrescue_audit_checkpoint_age_days"].samples == []  # unknown: left out
    [merge] = fams["hvrescue_audit_merge_bytes_needed"].samples
    assert merge.value == 10
    assert fams["hvrescue_audit_chain_depth"].documentation == "help of chain_depth\\ with a\nbreak"


def test_bad_input_exits_2_with_a_clear_message(planted: dict[str, Any], tmp_path: Path):
    root = planted["root"]
    not_icacls = tmp_path / "notes.txt"
    not_icacls.write_text("The VM would not start after the restore.\n", encoding="utf-8")
    r = audit(root, "--acl", not_icacls, evidence=[root, not_icacls])
    assert r.rc == 2 and "No icacls output in" in r.stderr
    r = audit(planted["web"][0], evidence=[root])
    assert r.rc == 2 and "Not a folder" in r.stderr
    r = audit(root, root / "web01", evidence=[root])
    assert r.rc == 2 and "give each folder once" in " ".join(r.stderr.split())
    r = audit(root, "--rct-max-size", "lots", evidence=[root])
    assert r.rc == 2 and "Not a size: lots" in r.stderr
    r = audit(root / "missing", evidence=[root])
    assert r.rc == 2 and "Traceback" not in r.stderr
    # The textfile never goes into the evidence, nor over a file an audit did not write.
    r = audit(root, "--prometheus", root / "web01" / "audit.prom", evidence=[root])
    assert r.rc == 2 and not (root / "web01" / "audit.prom").exists()
    foreign = tmp_path / "node.prom"
    foreign.write_text("node_textfile_thing 1\n", encoding="utf-8")
    r = audit(root, "--prometheus", foreign, evidence=[root, foreign])
    assert r.rc == 2 and "not written by hvrescue audit" in r.stderr
    r = run_cli("--lang", "ja", "audit", root, "--acl", not_icacls, evidence=[root])
    assert r.rc == 2 and "icacls の出力がありません" in r.stderr


def test_a_run_that_cannot_audit_says_so_in_the_textfile(planted: dict[str, Any], tmp_path: Path):
    root = planted["root"]
    prom = tmp_path / "hvrescue.prom"
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing here\n", encoding="utf-8")
    r = audit(root, "--acl", bad, "--prometheus", prom, evidence=[root])
    assert r.rc == 2
    fams = _families(prom.read_text(encoding="utf-8"))
    assert fams["hvrescue_audit_success"].samples[0].value == 0
    assert "hvrescue_audit_chain_depth" not in fams


def test_japanese_report(planted: dict[str, Any]):
    root = planted["root"]
    acl = FIXTURES / "icacls_web01_en.txt"
    r = run_cli("--lang", "ja", "audit", root, "--acl", acl, evidence=[root])
    assert r.rc == 1
    assert "VM web01 自身のアカウント" in r.stdout and "件の該当がありました" in r.stdout


def test_on_windows_icacls_runs_on_each_disk_file(planted: dict[str, Any], monkeypatch):
    """The process boundary is replaced: what icacls would print for each file (db01's leaf
    lacks the grant), and the command lines it was asked to run are kept."""
    from hvrescue.audit import AuditOptions, run_audit
    from hvrescue.collector import process

    root = planted["root"]
    (root / "db01" / "icacls.txt").unlink()  # only what icacls prints now
    ran: list[list[str]] = []
    leaf = planted["db"][-1]

    def fake_run(argv, stdout_path, stderr_path, timeout, cap, cwd):
        ran.append(list(argv))
        # As icacls prints it on the host: a drive-letter path.
        path = "D:" + argv[1].replace("/", "\\")
        vm = WEB01 if "web01" in path else DB01
        lacking = argv[1] == str(leaf)
        first = "NT AUTHORITY\\SYSTEM:(I)(F)" if lacking else f"NT VIRTUAL MACHINE\\{vm}:(R,W)"
        text = f"{path} {first}\r\n{' ' * (len(path) + 1)}BUILTIN\\Administrators:(I)(F)\r\n\r\n"
        text += "Successfully processed 1 files; Failed processing 0 files\r\n"
        Path(stdout_path).write_bytes(text.encode("utf-8"))
        Path(stderr_path).write_bytes(b"")
        return process.Outcome("exited", 0, 0.01, len(text))

    monkeypatch.setattr(process, "run", fake_run)
    result = run_audit([str(root)], AuditOptions(max_depth=10, live_acl=True))
    acl = sorted(f.path for f in result.findings if f.code == "audit.acl-missing-vm-grant")
    assert acl == [str(leaf)]
    assert result.acl_checked == 8
    assert all(argv[0] == "icacls" and len(argv) == 2 for argv in ran)  # lists only
    assert sorted(argv[1] for argv in ran) == sorted(
        str(p) for p in [*planted["web"], *planted["db"]]
    )


def test_merge_headroom_from_the_volume_free_space(planted: dict[str, Any], monkeypatch):
    """The free space of the tree's volume (the OS boundary, replaced): a chain whose merge
    writes more than the free space times the margin is reported; with room it is not."""
    import shutil as real_shutil

    from hvrescue.audit import AuditOptions, run_audit
    from hvrescue.audit import run as audit_run

    root = planted["root"]
    options = AuditOptions(max_depth=10, older_than_days=100)
    free = {"bytes": 1 << 50}

    def disk_usage(path: str) -> Any:
        return real_shutil._ntuple_diskusage(free["bytes"] * 2, free["bytes"], free["bytes"])  # type: ignore[attr-defined]

    monkeypatch.setattr(audit_run.shutil, "disk_usage", disk_usage)
    roomy = run_audit([str(root)], options)
    assert not [f for f in roomy.findings if f.code.startswith("hyperv.merge-headroom")]
    web_leaf = str(planted["web"][-1])
    [web] = [c for c in roomy.chains if c["leaf"] == web_leaf]
    assert web["free_bytes"] == 1 << 50
    # What a merge writes: data of the differencing layers, no more than their files hold.
    assert 0 < web["merge_bytes"] <= sum(p.stat().st_size for p in planted["web"][1:])
    free["bytes"] = web["merge_bytes"]  # below the need times the margin (1.1)
    tight = run_audit([str(root)], options)
    short = {f.path for f in tight.findings if f.code == "hyperv.merge-headroom.insufficient"}
    assert web_leaf in short
    [web] = [c for c in tight.chains if c["leaf"] == web_leaf]
    assert "hyperv.merge-headroom.insufficient" in web["findings"]
    wide = run_audit(
        [str(root)], AuditOptions(max_depth=10, older_than_days=100, headroom_margin=1.0)
    )
    assert web_leaf not in {
        f.path for f in wide.findings if f.code == "hyperv.merge-headroom.insufficient"
    }


def test_an_acl_is_taken_for_its_own_file_only(planted: dict[str, Any], tmp_path: Path):
    """Near miss: db01's icacls output lists base.vhdx, c1.avhdx and c2.avhdx of *its* folder;
    web01 has files of the same names, which must not be judged by them. A copy of the tree
    under another name is still matched, through the paths the VMs' configurations name."""
    root = planted["root"]
    r = audit(root, "--json", "--max-depth", "10", evidence=[root])
    acl = {
        (f["params"]["vm"], f["path"])
        for f in r.json()["findings"]
        if f["code"].startswith("audit.")
    }
    assert acl == {("db01", str(planted["db"][-1]))}
    assert r.json()["acl_checked"] == 5
    copy = root.rename(tmp_path / "copy-of-host")
    given = FIXTURES / "icacls_web01_en.txt"
    r = audit(copy, "--json", "--max-depth", "10", "--acl", given, evidence=[copy])
    acl = {
        (f["params"]["vm"], Path(f["path"]).name)
        for f in r.json()["findings"]
        if f["code"].startswith("audit.")
    }
    assert acl == {("db01", "c4.avhdx"), ("web01", "c2.avhdx")}
    assert r.json()["acl_checked"] == 8


@settings(max_examples=60, deadline=None)
@given(vm=st.text(max_size=20), chain=st.text(min_size=1, max_size=60))
def test_any_label_value_survives_the_reference_parser(vm: str, chain: str):
    """Whatever a VM or a path is called (quotes, backslashes, newlines, any Unicode), the
    textfile parses and gives the names back."""
    from hvrescue.audit.prometheus import render

    data = {
        "chains": [
            {
                "leaf": chain,
                "vm": vm,
                "depth": 3,
                "oldest_checkpoint_days": 2,
                "merge_bytes": None,
                "free_bytes": None,
            }
        ],
        "findings": [{"code": "inventory.chain-too-deep", "severity": "warning"}],
        "orphaned_files": 0,
        "acl_checked": 0,
        "thresholds": {"older_than_days": 14, "max_depth": 2},
    }
    fams = _families(render(data, lambda name: name, 1.0))
    [depth] = fams["hvrescue_audit_chain_depth"].samples
    assert depth.labels == {"vm": vm, "chain": chain} and depth.value == 3


def test_a_copy_is_judged_by_the_hosts_volume_free_space(planted: dict[str, Any]):
    """--volume-free gives the host's free space per drive (as Get-Volume shows it): the
    chains of the VMs whose disks are on D: are judged by it; the orphaned chain (no VM, so no
    drive) has no free figure rather than the copy's."""
    root = planted["root"]
    base = [root, "--max-depth", "10", "--older-than", "100", "--json"]
    roomy = audit(*base, "--volume-free", "D:=1G", evidence=[root]).json()
    assert not [f for f in roomy["findings"] if f["code"].startswith("hyperv.merge-headroom")]
    chains = {c["leaf"]: c for c in roomy["chains"]}
    assert chains[str(planted["web"][-1])]["free_bytes"] == 1 << 30
    assert chains[str(planted["old"][-1])]["free_bytes"] is None
    assert roomy["thresholds"]["volume_free"] == {"D:": 1 << 30}
    tight = audit(*base, "--volume-free", "d=1M", evidence=[root])
    assert tight.rc == 1
    short = {
        f["path"]
        for f in tight.json()["findings"]
        if f["code"] == "hyperv.merge-headroom.insufficient"
    }
    assert short == {str(planted["web"][-1]), str(planted["db"][-1])}
    r = audit(root, "--volume-free", "120G", evidence=[root])
    assert r.rc == 2 and "Not a volume and a size: 120G" in r.stderr


JSON_KEYS = {
    "roots",
    "as_of",
    "thresholds",
    "vms",
    "chains",
    "findings",
    "skipped",
    "acl_checked",
    "vm_info",
    "configs_not_read",
    "orphaned_files",
    "status",
}
VM_KEYS = {
    "name",
    "vm_id",
    "config",
    "source",
    "root",
    "chains",
    "depth",
    "checkpoint_count",
    "oldest_checkpoint_days",
    "merge_bytes",
    "free_bytes",
    "findings",
}
CHAIN_KEYS = {
    "leaf",
    "base",
    "depth",
    "oldest_checkpoint_days",
    "merge_bytes",
    "free_bytes",
    "vm",
    "findings",
}


def test_the_json_document_keeps_the_documented_shape(planted: dict[str, Any]):
    """docs/audit.md's --json contract: the keys of the document, of a VM and of a chain; the
    merge figures come from the disks' block tables (hyperv.headroom) for every chain with a
    checkpoint, and status says exactly what the exit code says."""
    root = planted["root"]
    r = audit(root, "--json", "--max-depth", "10", "--older-than", "100", evidence=[root])
    data = r.json()
    assert set(data) == JSON_KEYS
    assert all(set(v) == VM_KEYS for v in data["vms"]) and data["vms"]
    assert all(set(c) == CHAIN_KEYS for c in data["chains"]) and data["chains"]
    assert {v["source"] for v in data["vms"]} == {"configuration"}
    assert all(c["merge_bytes"] and c["merge_bytes"] > 0 for c in data["chains"])
    assert data["configs_not_read"] == [] and data["vm_info"]["vms"] == 0
    assert (r.rc, data["status"]) in ((0, "clean"), (1, "findings"))
    assert set(data["vm_info"]) == {"files", "live", "found", "ambiguous_rows", "vms", "matched"}


@pytest.mark.skipif(
    not (CORPUS / "dissect-hypervisor" / "test.vmcx").is_file(),
    reason="../shared/corpus is not present",
)
def test_a_vmcx_the_parser_cannot_read_leaves_the_rest_reported(
    planted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    """A plain install (dissect.hypervisor not importable) and a modern VM beside the planted
    ones: its .vmcx is named unread (a warning, and in configs_not_read), its chain's depth is
    still reported, and its disks are not taken for orphans (whose they are is not known)."""
    from hvrescue.audit import AuditOptions, run_audit

    monkeypatch.setitem(sys.modules, "dissect.hypervisor.descriptor.hyperv", None)
    root = planted["root"]
    app = make_chain(root / "app01" / "Virtual Hard Disks", depth=5, seed=44)
    cfg = root / "app01" / "Virtual Machines" / "0B7D2A51-93C4-4E0F-8F3E-5C1A2D9E7B60.vmcx"
    cfg.parent.mkdir(parents=True)
    shutil.copyfile(CORPUS / "dissect-hypervisor" / "test.vmcx", cfg)
    for p in app:
        age(p, 0.5)
    options = AuditOptions(
        max_depth=3, acl_files=(str(FIXTURES / "icacls_web01_en.txt"),), live_acl=False
    )
    result = run_audit([str(root)], options)
    got = {(f.code, f.path) for f in result.findings}
    assert got == planted["expected"] | {
        ("inventory.chain-too-deep", str(app[-1])),
        ("vm.config.parser-missing", str(cfg)),
    }
    assert result.configs_not_read == [{"path": str(cfg), "vm": None}]
    assert result.status == "findings"
    [chain] = [c for c in result.chains if c["leaf"] == str(app[-1])]
    assert chain["depth"] == 4 and chain["vm"] is None
