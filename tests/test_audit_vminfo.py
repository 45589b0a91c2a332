"""`audit` with Hyper-V's own VM list (Get-VM, Get-VMHardDiskDrive, Get-VMSnapshot) where the
`.vmcx` configurations cannot be read (no dissect.hypervisor): the same planted conditions from
every format people give (JSON of Windows PowerShell 5.1 and 7, English Format-List and
Format-Table, a Japanese post with quotes, fences and non-breaking spaces), from outputs kept
in the audited folder, and from the cmdlets run on the Windows host (the process boundary
replaced); consistent with the configurations when both are there."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.audit import AuditOptions, run_audit
from hvrescue.inventory import CHECK_MODULES
from tests.builders import make_chain
from tests.helpers import CORPUS, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
VMCX = CORPUS / "dissect-hypervisor" / "test.vmcx"
WEB01 = "4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F"
DB01 = "7C2E9B14-3F6A-4D21-9B85-1E2F3A4B5C6D"
SNAP = "5F6E7D8C-9B0A-4C1D-8E2F-3A4B5C6D7E8F"
AS_OF = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LEFTOVERS = "hvrescue.hyperv.leftovers" in CHECK_MODULES
WEB_CFG = f"web01/Virtual Machines/{WEB01}.vmcx"
DB_CFG = f"db01/Virtual Machines/{DB01}.vmcx"
SNAP_CFG = f"db01/Snapshots/{SNAP}.vmcx"
# The checkpoints of the fixtures: (VM, name in English outputs, in the Japanese post, type,
# local time on the host). Their ages at AS_OF are the same read as local or as UTC.
CHECKPOINTS = [
    ("web01", "web01 - (10/31/2026 - 11:20:05 AM)", "web01 - (2026/10/31 - 11:20:05)", "Standard"),
    ("db01", "Before upgrade", "アップグレード前", "Standard"),
    ("db01", "VG_Snapshot1", "VG_Snapshot1", "Standard"),
    (
        "db01",
        "BE_Snapshot_1F2E3D4C - (11/27/2026 - 10:15:02 PM)",
        "BE_Snapshot_1F2E3D4C - (2026/11/27 - 22:15:02)",
        "Standard",
    ),
    (
        "db01",
        "db01 - Backup - (11/28/2026 - 1:00:04 AM)",
        "db01 - Backup - (2026/11/28 - 1:00:04)",
        "Recovery",
    ),
]
FORMATS = {
    "ps51-json": ["get_vm_ps51.json", "get_vmharddiskdrive_ps51.json", "get_vmsnapshot_ps51.json"],
    "ps7-transcript": ["vminfo_ps7_transcript.txt"],
    "en-text": [
        "get_vm_list_en.txt",
        "get_vmharddiskdrive_table_en.txt",
        "get_vmsnapshot_table_en.txt",
    ],
    "ja-post": ["vminfo_post_ja.md"],
}

needs_corpus = pytest.mark.skipif(not VMCX.is_file(), reason="../shared/corpus is not present")


@pytest.fixture
def no_dissect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain install: the optional parser of .vmcx cannot be imported."""
    monkeypatch.setitem(sys.modules, "dissect.hypervisor.descriptor.hyperv", None)


def _set_age(path: Path, now: float, days: float) -> None:
    when = now - days * 86400
    os.utime(path, (when, when))


def build_host(base: Path, now: float) -> dict[str, Any]:
    """Hyper-V/web01 (base <- c1 <- c2, base last written 30 days ago), Hyper-V/db01 (depth
    4) and a checkpoint configuration of db01, each VM with its real .vmcx (from the corpus)
    named by its id; Hyper-V/old (an orphaned differencing disk); an orphaned .rct; the
    icacls output of db01 in its folder (c4 lacks the VM's grant)."""
    root = base / "Hyper-V"
    web = make_chain(root / "web01" / "Virtual Hard Disks", depth=3, seed=11)
    db = make_chain(root / "db01" / "Virtual Hard Disks", depth=5, seed=22)
    old = make_chain(root / "old", depth=2, seed=33)
    for rel in (WEB_CFG, DB_CFG, SNAP_CFG):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(VMCX, root / rel)
    (root / "web01" / "Virtual Hard Disks" / "gone.vhdx.rct").write_bytes(b"\0" * 4096)
    shutil.copyfile(FIXTURES / "icacls_db01_ja_quoted.txt", root / "db01" / "icacls.txt")
    _set_age(web[0], now, 30)
    for p in [*web[1:], *db, *old]:
        _set_age(p, now, 0.5)
    return {"root": root, "web": web, "db": db, "old": old}


def seen_without_vms(host: dict[str, Any]) -> Counter[tuple[str, str, str]]:
    """What any audit of the tree sees, whoever the VMs are."""
    root = host["root"]
    out: Counter[tuple[str, str, str]] = Counter(
        {
            ("inventory.checkpoint-old", rel(root, host["web"][1]), ""): 1,
            ("inventory.chain-too-deep", rel(root, host["db"][-1]), ""): 1,
        }
    )
    if LEFTOVERS:
        out[("inventory.rct-orphan", "web01/Virtual Hard Disks/gone.vhdx.rct", "")] += 1
    return out


def checkpoint_findings(now: dt.datetime, names: int, limit: int = 14) -> Counter[Any]:
    """The checkpoint findings the fixtures plant, from their own dates (independent of the
    readers): backup ones always, other ones older than the limit unless their VM's old
    checkpoint disk is reported already (web01's)."""
    created = {
        "web01 - (10/31/2026 - 11:20:05 AM)": dt.datetime(2026, 10, 31, 11, 20, 5),
        "Before upgrade": dt.datetime(2026, 11, 10, 9, 2, 11),
        "VG_Snapshot1": dt.datetime(2026, 11, 20, 10, 0, 0),
    }
    out: Counter[Any] = Counter()
    for vm, en, ja, kind in CHECKPOINTS:
        name = en if names == 0 else ja
        if kind == "Recovery" or name.startswith("BE_Snapshot"):
            out[("audit.backup-checkpoint-leftover", DB_CFG, name)] += 1
        elif vm == "db01":
            days = (now - created[en].replace(tzinfo=dt.UTC)).days
            if days > limit:
                out[("audit.checkpoint-old", DB_CFG, name)] += 1
    return out


def rel(root: Path, path: Any) -> str:
    return os.path.relpath(str(path), root).replace(os.sep, "/")


def got(root: Path, findings: list[Any]) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for f in findings:
        code, path, params = (
            (f.code, f.path, f.params)
            if hasattr(f, "code")
            else (f["code"], f["path"], f["params"])
        )
        out[(code, rel(root, path), str(params.get("checkpoint", "")))] += 1
    return out


def options(*vm_info: str, **more: Any) -> AuditOptions:
    return AuditOptions(
        max_depth=3,
        as_of=AS_OF,
        acl_files=(str(FIXTURES / "icacls_web01_en.txt"),),
        vm_info_files=tuple(str(FIXTURES / f) for f in vm_info),
        live_acl=False,
        live_vm_info=more.pop("live_vm_info", False),
        **more,
    )


def planted_with_vms(host: dict[str, Any], names: int) -> Counter[Any]:
    root = host["root"]
    expected = seen_without_vms(host)
    expected += Counter(
        {
            ("inventory.orphan-differencing", rel(root, host["old"][1]), ""): 1,
            ("audit.acl-missing-vm-grant", rel(root, host["web"][2]), ""): 1,
            ("audit.acl-missing-vm-grant", rel(root, host["db"][-1]), ""): 1,
            ("audit.config-not-read", WEB_CFG, ""): 1,
            ("audit.config-not-read", DB_CFG, ""): 1,
            ("audit.config-not-read", SNAP_CFG, ""): 1,
        }
    )
    return expected + checkpoint_findings(AS_OF, names)


@needs_corpus
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_of_the_vm_list_gives_the_planted_conditions(
    fmt: str, tmp_path: Path, no_dissect: None
):
    host = build_host(tmp_path, AS_OF.timestamp())
    root = host["root"]
    result = run_audit([str(root)], options(*FORMATS[fmt]))
    assert got(root, result.findings) == planted_with_vms(host, 1 if fmt == "ja-post" else 0)
    assert result.acl_checked == 8  # every file of both chains, through the listed VM ids
    data = result.as_dict()
    assert data["status"] == "findings"
    assert {v["name"]: v["source"] for v in data["vms"]} == {"web01": "vm-info", "db01": "vm-info"}
    vms = {v["name"]: v for v in data["vms"]}
    assert vms["db01"]["oldest_checkpoint_days"] == 20 and vms["db01"]["checkpoint_count"] == 4
    assert vms["web01"]["oldest_checkpoint_days"] == 30 and vms["web01"]["depth"] == 2
    assert sorted(vms["db01"]["findings"]).count("audit.backup-checkpoint-leftover") == 2
    assert {(Path(u["path"]).name, u["vm"]) for u in data["configs_not_read"]} == {
        (f"{WEB01}.vmcx", "web01"),
        (f"{DB01}.vmcx", "db01"),
        (f"{SNAP}.vmcx", "db01"),
    }
    assert data["vm_info"]["matched"] == ["web01", "db01"]
    recovery = next(f for f in result.findings if f.params.get("type") == "Recovery")
    assert recovery.code == "audit.backup-checkpoint-leftover"
    assert recovery.params["vm"] == "db01" and recovery.params["days"] == 2
    assert recovery.params["created"].startswith("2026-11-2")
    assert set(recovery.params) == {"vm", "checkpoint", "type", "created", "days"}


def test_listed_vms_that_match_no_audited_folder_are_said_as_a_finding(tmp_path: Path):
    """A folder that is not the VMs' (another volume, or the folder above "Hyper-V"): the
    listed VMs match nothing, and the findings say so, not only the text output."""
    other = tmp_path / "other"
    other.mkdir()
    result = run_audit([str(other)], options(*FORMATS["ps51-json"]))
    found = [f for f in result.findings if f.code == "audit.vm-info-unmatched"]
    assert len(found) == 1 and found[0].params["count"] == 2
    assert found[0].params["names"] == "db01, web01"
    assert found[0].severity.name == "INFO"  # exit code as before: nothing found is no condition
    assert result.as_dict()["vm_info"]["matched"] == []


@needs_corpus
def test_without_a_vm_list_the_visible_conditions_stand_and_the_configs_are_named(
    tmp_path: Path, no_dissect: None
):
    """Near miss of the above: no list. What the files show is reported; no ACL, orphan or
    checkpoint is judged against VMs nobody named; each unread .vmcx stays a warning."""
    host = build_host(tmp_path, AS_OF.timestamp())
    root = host["root"]
    result = run_audit([str(root)], options())
    expected = seen_without_vms(host) + Counter(
        {
            ("vm.config.parser-missing", WEB_CFG, ""): 1,
            ("vm.config.parser-missing", DB_CFG, ""): 1,
            ("vm.config.parser-missing", SNAP_CFG, ""): 1,
            ("inventory.no-vm-config", ".", ""): 1,
        }
    )
    assert got(root, result.findings) == expected
    assert result.acl_checked == 0 and result.status == "findings"
    assert [u["vm"] for u in result.configs_not_read] == [None, None, None]


@needs_corpus
def test_outputs_kept_in_the_audited_folder_are_read(tmp_path: Path, no_dissect: None):
    host = build_host(tmp_path, AS_OF.timestamp())
    root = host["root"]
    kept = root / "collect" / "vminfo.txt"
    kept.parent.mkdir()
    shutil.copyfile(FIXTURES / "vminfo_ps7_transcript.txt", kept)
    result = run_audit([str(root)], options())
    assert got(root, result.findings) == planted_with_vms(host, 0)
    assert result.vm_info["found"] == [str(kept)]


@needs_corpus
def test_on_the_windows_host_the_cmdlets_run_and_only_list(
    tmp_path: Path, no_dissect: None, monkeypatch: pytest.MonkeyPatch
):
    """The process boundary is replaced by what each cmdlet prints (the PS 5.1 JSON
    fixtures); the command lines it was asked to run are kept."""
    from hvrescue.collector import process

    host = build_host(tmp_path, AS_OF.timestamp())
    root = host["root"]
    outputs = {
        "Get-VM ": "get_vm_ps51.json",
        "Get-VMHardDiskDrive ": "get_vmharddiskdrive_ps51.json",
        "Get-VMSnapshot ": "get_vmsnapshot_ps51.json",
    }
    ran: list[tuple[list[str], float, int]] = []

    def fake_run(argv: list[str], out: str, err: str, timeout: float, cap: int, cwd: str) -> Any:
        ran.append((list(argv), timeout, cap))
        script = argv[-1]
        [name] = [f for k, f in outputs.items() if k in script]
        data = (FIXTURES / name).read_bytes()
        Path(out).write_bytes(data)
        Path(err).write_bytes(b"")
        return process.Outcome("exited", 0, 0.1, len(data))

    monkeypatch.setattr(process, "run", fake_run)
    result = run_audit([str(root)], options(live_vm_info=True))
    assert got(root, result.findings) == planted_with_vms(host, 0)
    assert result.vm_info["live"] == {
        "ran": ["get-vm", "get-vmharddiskdrive", "get-vmsnapshot"],
        "failed": [],
    }
    scripts = [argv[-1] for argv, _, _ in ran]
    assert all(
        a[:4] == ["powershell", "-NoProfile", "-NonInteractive", "-Command"] for a, _, _ in ran
    )
    assert any(
        "Get-VM | Select-Object VMName,VMId,State,Path,ConfigurationLocation | ConvertTo-Json" in s
        for s in scripts
    )
    assert any(
        "Get-VMSnapshot -VMName * | Select-Object VMName,VMId,Name,SnapshotType,CreationTime,"
        "ParentCheckpointName,Path | ConvertTo-Json" in s
        for s in scripts
    )
    for script in scripts:  # nothing but listing
        words = script.replace("|", " ").replace(";", " ").split()
        verbs = {w.split("-")[0].lower() for w in words if "-" in w and w[0].isupper()}
        assert verbs <= {"get", "select", "convertto"}, script
    assert all(timeout > 0 and cap > 0 for _, timeout, cap in ran)

    def refused(argv: list[str], out: str, err: str, timeout: float, cap: int, cwd: str) -> Any:
        Path(out).write_bytes(b"")
        Path(err).write_bytes(b"Get-VM : You do not have the required permission.\r\n")
        return process.Outcome("exited", 1, 0.1, 0)

    monkeypatch.setattr(process, "run", refused)
    result = run_audit([str(root)], options(live_vm_info=True))
    assert result.vm_info["live"]["failed"] == ["get-vm", "get-vmharddiskdrive", "get-vmsnapshot"]
    assert ("vm.config.parser-missing", WEB_CFG, "") in got(root, result.findings)


def _xml(path: Path, name: str, vm_id: str, disks: list[str], type_id: str, created: int) -> None:
    drives = "".join(
        f'<drive{i}><pathname type="string">{d}</pathname><type type="string">VHD</type></drive{i}>'
        for i, d in enumerate(disks)
    )
    text = (
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>\n<configuration>'
        f"<_d422512d-2bf2-4752-809d-7b82b5fcb1b4_><controller0>{drives}</controller0>"
        "</_d422512d-2bf2-4752-809d-7b82b5fcb1b4_><global_settings>"
        '<disk_merge_pending type="bool">False</disk_merge_pending></global_settings>'
        f'<properties><name type="string">{name}</name>'
        f'<global_id type="string">{vm_id}</global_id><type_id type="string">{type_id}</type_id>'
        f'<creation_time type="integer">{created}</creation_time></properties></configuration>'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-16"))


def _filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds()) * 10_000_000


def test_configurations_read_and_the_vm_list_agree_without_duplicates(tmp_path: Path):
    """Both sources for the same VMs (2012 R2 XML configurations, read without any extra):
    the list adds the checkpoints, and nothing twice: the orphan and the Recovery checkpoint
    (also in its own configuration) are reported once."""
    root = tmp_path / "Hyper-V"
    web = make_chain(root / "web01" / "Virtual Hard Disks", depth=3, seed=11)
    db = make_chain(root / "db01" / "Virtual Hard Disks", depth=5, seed=22)
    old = make_chain(root / "old", depth=2, seed=33)
    for name, vm_id, files in (("web01", WEB01, web), ("db01", DB01, db)):
        leaf = f"D:\\Hyper-V\\{name}\\Virtual Hard Disks\\{files[-1].name}"
        cfg = root / name / "Virtual Machines" / f"{vm_id}.xml"
        _xml(cfg, name, vm_id, [leaf], "Virtual Machines", _filetime(AS_OF))
    recovery = "db01 - Backup - (11/28/2026 - 1:00:04 AM)"
    when = dt.datetime(2026, 11, 27, 16, 0, 4, tzinfo=dt.UTC)
    kind = "Microsoft:Hyper-V:Snapshot:Recovery"
    _xml(root / "db01" / "Snapshots" / f"{SNAP}.xml", recovery, SNAP, [], kind, _filetime(when))
    _set_age(web[0], AS_OF.timestamp(), 30)
    for p in [*web[1:], *db, *old]:
        _set_age(p, AS_OF.timestamp(), 0.5)
    alone = run_audit([str(root)], options())
    both = run_audit([str(root)], options(*FORMATS["ps51-json"]))
    plain = got(root, alone.findings)
    assert plain[("inventory.orphan-differencing", rel(root, old[1]), "")] == 1
    assert plain[("audit.backup-checkpoint-leftover", f"db01/Snapshots/{SNAP}.xml", recovery)] == 1
    added = got(root, both.findings) - plain
    db_cfg = f"db01/Virtual Machines/{DB01}.xml"
    be = "BE_Snapshot_1F2E3D4C - (11/27/2026 - 10:15:02 PM)"
    assert added == Counter(
        {
            ("audit.backup-checkpoint-leftover", db_cfg, be): 1,
            ("audit.checkpoint-old", db_cfg, "Before upgrade"): 1,
        }
    )
    assert plain - got(root, both.findings) == Counter()
    assert max(got(root, both.findings).values()) == 1
    assert {v["source"] for v in both.as_dict()["vms"]} == {"configuration"}
    assert both.acl_checked == alone.acl_checked == 3  # web01's files: its icacls given


def test_two_vms_of_one_name_are_kept_apart_by_id_and_never_guessed():
    from hvrescue.audit.vminfo import facts_of_text
    from hvrescue.audit.vms import gather

    listing = (
        b"VMName : app\r\nVMId   : 11111111-2222-4333-8444-555555555555\r\n\r\n"
        b"VMName : app\r\nVMId   : 66666666-7777-4888-9999-aaaaaaaaaaaa\r\n\r\n"
    )
    table = (FIXTURES / "get_vmharddiskdrive_table_en.txt").read_text(encoding="utf-8")
    table = table.replace("web01", "app  ").replace("db01 ", "app  ")
    facts = facts_of_text(listing, "vm.txt") + facts_of_text(table.encode(), "hdd.txt")
    vms, ambiguous = gather(facts)
    assert [(v.vm_id, v.disks) for v in vms] == [
        ("11111111-2222-4333-8444-555555555555", []),
        ("66666666-7777-4888-9999-aaaaaaaaaaaa", []),
    ]
    assert ambiguous == 2
    # With the VMId ConvertTo-Json keeps on each disk, each disk goes to its own VM.
    disks = (FIXTURES / "get_vmharddiskdrive_ps51.json").read_text(encoding="utf-8")
    disks = disks.replace('"web01"', '"app"').replace('"db01"', '"app"')
    disks = disks.replace(WEB01.lower(), "11111111-2222-4333-8444-555555555555")
    disks = disks.replace(DB01.lower(), "66666666-7777-4888-9999-aaaaaaaaaaaa")
    vms, ambiguous = gather(facts_of_text(listing, "vm.txt") + facts_of_text(disks.encode(), "d"))
    assert ambiguous == 0
    assert [len(v.disks) for v in vms] == [1, 1]
    assert vms[0].disks[0].endswith("web01\\Virtual Hard Disks\\c2.avhdx")


def test_a_path_that_only_ends_alike_is_not_taken(tmp_path: Path):
    """Near miss: a host whose VM lives in E:\\VMs\\web01 (not under a folder named like the
    one audited) has a disk of the same name as one of the tree: it is not matched, and its
    checkpoints are not reported on this tree."""
    host_json = (FIXTURES / "vminfo_ps7_transcript.txt").read_text(encoding="utf-8")
    moved = tmp_path / "moved.txt"
    moved.write_text(host_json.replace("D:\\\\Hyper-V\\\\", "E:\\\\VMs\\\\"), encoding="utf-8")
    root = tmp_path / "Hyper-V"
    make_chain(root / "web01" / "Virtual Hard Disks", depth=3, seed=11)
    result = run_audit(
        [str(root)], AuditOptions(as_of=AS_OF, vm_info_files=(str(moved),), live_vm_info=False)
    )
    assert result.vm_info["vms"] == 2 and result.vm_info["matched"] == []
    assert result.vms == [] and result.acl_checked == 0
    # Nothing reported of them but that they matched nothing here (info: no condition found).
    said = [f for f in result.findings if f.code.startswith("audit.")]
    assert [(f.code, f.params["count"]) for f in said] == [("audit.vm-info-unmatched", 2)]


def test_the_backup_names_are_the_diagnosis_rules():
    from hvrescue.audit.checkpoints import FALLBACK_VENDOR, is_backup, vendor_pattern

    assert vendor_pattern().pattern == FALLBACK_VENDOR
    assert is_backup("VG_Recovery_6A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9", "Standard")
    assert is_backup("Before KB5044284", "Recovery")
    assert is_backup("SQL02 - Backup", "Microsoft:Hyper-V:Snapshot:Recovery")
    assert not is_backup("VG_Snapshot1", "Standard")  # kept on purpose between backups
    assert not is_backup("Before KB5044284", "Standard")


def _shadowed_dissect(tmp_path: Path) -> dict[str, str]:
    """An environment where ``dissect`` is an empty package: the CLI runs as on a plain
    install, whatever this machine has."""
    shadow = tmp_path / "shadow" / "dissect"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("", encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}


@needs_corpus
def test_the_command_line_on_a_plain_install(tmp_path: Path):
    pytest.importorskip("prometheus_client.parser")
    from prometheus_client.parser import text_string_to_metric_families

    host = build_host(tmp_path, time.time())
    root = host["root"]
    env = _shadowed_dissect(tmp_path)
    acl = FIXTURES / "icacls_web01_en.txt"
    files = [FIXTURES / f for f in FORMATS["en-text"]]
    prom = tmp_path / "out.prom"
    args: list[Any] = [root, "--max-depth", "3", "--acl", acl]
    for f in files:
        args += ["--vm-info", f]
    r = run_cli("audit", *args, "--json", "--prometheus", prom, evidence=[root, *files], env=env)
    assert r.rc == 1, r.stderr
    data = r.json()
    now = dt.datetime.now(dt.UTC)
    expected = planted_with_vms(host, 0) - checkpoint_findings(AS_OF, 0)
    assert got(root, data["findings"]) == expected + checkpoint_findings(now, 0)
    leftover = next(f for f in data["findings"] if f["code"] == "audit.backup-checkpoint-leftover")
    assert leftover["params"]["checkpoint"] in leftover["message"]
    assert "Remove-VMSnapshot" in leftover["message"]
    counts = {
        (s.labels["code"], s.labels["severity"]): s.value
        for fam in text_string_to_metric_families(prom.read_text(encoding="utf-8"))
        if fam.name == "hvrescue_audit_findings"
        for s in fam.samples
    }
    assert counts[("audit.backup-checkpoint-leftover", "warning")] == 2
    assert counts[("audit.config-not-read", "info")] == 3
    # Without the list: the text says the configurations were not read, and what to give.
    r = run_cli("audit", root, "--max-depth", "3", evidence=[root], env=env)
    assert r.rc == 1
    assert "3 VM configuration(s) not read" in r.stdout and "--vm-info" in r.stdout
    r = run_cli("--lang", "ja", "audit", root, evidence=[root], env=env)
    assert "VM の構成ファイル 3 個を読み取っていません" in r.stdout


def test_a_file_that_is_no_vm_list_is_refused(tmp_path: Path):
    root = tmp_path / "Hyper-V"
    make_chain(root / "web01" / "Virtual Hard Disks", depth=2, seed=11)
    notes = tmp_path / "notes.txt"
    notes.write_text("The VMs were moved to the new host last week.\n", encoding="utf-8")
    r = run_cli("audit", root, "--vm-info", notes, evidence=[root, notes])
    assert r.rc == 2 and "No Get-VM, Get-VMHardDiskDrive or Get-VMSnapshot output in" in r.stderr
    r = run_cli("--lang", "ja", "audit", root, "--vm-info", notes, evidence=[root, notes])
    assert r.rc == 2 and "の出力がありません" in r.stderr


_KEYS = [
    "VMName",
    "VMId",
    "Name",
    "State",
    "Path",
    "ConfigurationLocation",
    "ControllerType",
    "ControllerLocation",
    "ControllerNumber",
    "SnapshotType",
    "CreationTime",
    "ParentCheckpointName",
]
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(objects=st.lists(st.dictionaries(st.sampled_from(_KEYS), _VALUES), max_size=6))
def test_any_convertto_json_a_person_edited_is_read_without_a_traceback(objects: list[Any]):
    """Objects with the cmdlets' properties and any values (a JSON edited, cut or made by
    another tool): read, gathered and laid over a tree, never an exception."""
    import json

    from hvrescue.audit.vminfo import facts_of_text
    from hvrescue.audit.vms import TreeMap, gather, overlay
    from hvrescue.inventory import Inventory

    facts = facts_of_text(json.dumps(objects).encode(), "edited.json")
    vms, _ = gather(facts)
    inv = Inventory("/nonexistent/Hyper-V", AS_OF)
    overlay(inv, vms)
    TreeMap(inv)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_outputs_are_read_without_a_traceback(data: st.DataObject):
    """Any fixture cut anywhere, or with bytes flipped: facts or nothing, never an exception."""
    from hvrescue.audit.vminfo import facts_of_text
    from hvrescue.audit.vms import gather

    name = data.draw(st.sampled_from(sorted(f for files in FORMATS.values() for f in files)))
    raw = bytearray((FIXTURES / name).read_bytes())
    cut = data.draw(st.integers(0, len(raw)))
    raw = raw[:cut]
    for _ in range(data.draw(st.integers(0, 8))):
        if raw:
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] = data.draw(st.integers(0, 255))
    gather(facts_of_text(bytes(raw), name))


@needs_corpus
def test_the_listed_disks_name_their_drive_for_the_hosts_free_space(
    tmp_path: Path, no_dissect: None
):
    """--volume-free on a copy: the drive of each chain comes from the listed disk paths when
    the .vmcx is unread; 1 MiB free on D: is too little for both VMs' merges, 1 GiB is not."""
    host = build_host(tmp_path, AS_OF.timestamp())
    root = host["root"]
    code = "hyperv.merge-headroom.insufficient"
    tight = run_audit([str(root)], options(*FORMATS["ps51-json"], volume_free={"D:": 1 << 20}))
    short = {rel(root, f.path) for f in tight.findings if f.code == code}
    assert short == {rel(root, host["web"][-1]), rel(root, host["db"][-1])}
    chains = {c["leaf"]: c for c in tight.chains}
    assert chains[str(host["web"][-1])]["free_bytes"] == 1 << 20
    assert chains[str(host["old"][-1])]["free_bytes"] is None  # no VM, so no drive
    roomy = run_audit([str(root)], options(*FORMATS["ps51-json"], volume_free={"D:": 1 << 30}))
    assert not [f for f in roomy.findings if f.code == code]
    alone = run_audit([str(root)], options(volume_free={"D:": 1 << 20}))
    assert not [f for f in alone.findings if f.code == code]  # near miss: no list, no drive
