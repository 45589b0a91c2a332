"""`hvrescue collect`: the real collector run against stand-in Windows commands.

tests/standins/ holds executables named like the Windows commands; they replay recorded real
outputs (tests/fixtures/commands, tests/fixtures/collect, the corpus's EVTX logs and
systeminfo) and misbehave on purpose (hang past the timeout with a grandchild, refuse in
English and Japanese, print garbage or 200 MB, exit non-zero, are missing). The bundle is
checked against its manifest, and its triage against the triage of the same recorded outputs
given as files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hvrescue.collector.commands import all_argv, load_templates, phase1
from hvrescue.collector.process import Outcome
from hvrescue.collector.status import looks_binary, status_of
from hvrescue.evidence.bundle import read_manifest, route_of, routes
from tests.helpers import CORPUS, run_cli

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
COMMANDS = HERE / "fixtures" / "commands"
COLLECT = HERE / "fixtures" / "collect"
EVTX = CORPUS / "evtx"
VMID = "6f1c0f4e-2b7a-4c55-9a61-0d2e54b1c3a7"
VMID2 = "0b7d2a51-93c4-4e0f-8f3e-5c1a2d9e7b60"
SERVICES = ("CryptSvc", "EventSystem", "VSS", "vmms")

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the stand-ins are sh scripts")


# ---------------------------------------------------------------- the stand-in host
@dataclass
class Host:
    env: dict[str, str]
    home: Path  # STANDIN_DIR: replayed files, plan.json, calls.log, hang.pids
    vmroot: Path
    replayed: list[Path]  # the recorded outputs the stand-ins print (for the files triage)
    exported: list[Path]  # the EVTX logs wevtutil "exports"
    configs: list[Path]  # the VM configuration files in the VM folders


def _windows_to_here(value: Any, root: Path) -> Any:
    """The fixtures' D:\\Hyper-V paths moved under ``root`` (this host has no D: drive)."""
    if isinstance(value, list):
        return [_windows_to_here(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _windows_to_here(v, root) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("D:\\Hyper-V"):
        return str(root) + value[len("D:\\Hyper-V") :].replace("\\", "/")
    return value


def _vm_folders(root: Path) -> list[Path]:
    vmcx = CORPUS / "dissect-hypervisor" / "test.vmcx"
    vmrs = CORPUS / "dissect-hypervisor" / "test.VMRS"
    configs = []
    for name, vmid in (("web01", VMID), ("sql01", VMID2)):
        vms = root / name / "Virtual Machines"
        vms.mkdir(parents=True)
        shutil.copyfile(vmcx, vms / f"{vmid.upper()}.vmcx")
        shutil.copyfile(vmrs, vms / f"{vmid.upper()}.vmrs")
        configs += [vms / f"{vmid.upper()}.vmcx", vms / f"{vmid.upper()}.vmrs"]
        disks = root / name / "Virtual Hard Disks"
        disks.mkdir()
        with open(disks / f"{name}.vhdx", "wb") as fh:
            fh.truncate(8 << 30)  # sparse: listed, never copied
    avhdx = (
        root / "web01" / "Virtual Hard Disks" / "web01_A4B7E0C2-6D1F-4F3E-9B2A-7C8D9E0F1A2B.avhdx"
    )
    avhdx.write_bytes(b"vhdxfile" + bytes(4088))
    return configs


def make_host(
    tmp: Path, lang: str = "en", plan: dict[str, Any] | None = None, absent: tuple[str, ...] = ()
) -> Host:
    bin_dir, home, vmroot = tmp / "bin", tmp / "standin", tmp / "Hyper-V"
    bin_dir.mkdir()
    home.mkdir()
    for src in STANDINS.iterdir():
        if src.name in absent:
            continue
        dest = bin_dir / src.name
        shutil.copyfile(src, dest)
        dest.chmod(0o755)
    configs = _vm_folders(vmroot)
    oem = "cp932" if lang == "ja" else "utf-8"
    replayed: list[Path] = []

    def text(src: Path, name: str) -> dict[str, Any]:
        # Japanese Windows prints its console commands in the OEM code page (CP932).
        data = src.read_text(encoding="utf-8").encode(oem)
        (home / name).write_bytes(data)
        replayed.append(home / name)
        return {"file": name}

    def as_json(src: Path, name: str) -> dict[str, Any]:
        obj = _windows_to_here(json.loads(src.read_text(encoding="utf-8")), vmroot)
        (home / name).write_text(json.dumps(obj, indent=4), encoding="utf-8")
        replayed.append(home / name)
        return {"file": name}

    steps: dict[str, Any] = {
        "vssadmin list writers": text(COMMANDS / f"vssadmin_writers_empty_{lang}.txt", "w.txt"),
        "vssadmin list providers": text(COMMANDS / f"vssadmin_providers_{lang}.txt", "p.txt"),
        "vssadmin list shadowstorage": text(COLLECT / lang / "vssadmin_shadowstorage.txt", "s.txt"),
        "tasklist /svc": text(COMMANDS / f"tasklist_svc_{lang}.txt", "t.txt"),
        "sc qc EventSystem": text(COMMANDS / "sc_qc_en.txt", "qc-EventSystem.txt"),
        "dism /Online /Get-Packages": text(COMMANDS / f"dism_packages_{lang}.txt", "d.txt"),
        "bcdedit /enum all": text(COMMANDS / f"bcdedit_{lang}.txt", "b.txt"),
        "fltmc filters": text(COLLECT / "any" / "fltmc_filters.txt", "f.txt"),
        "manage-bde -status": text(COLLECT / lang / "manage_bde_status.txt", "m.txt"),
        "icacls": {
            **text(COLLECT / lang / "icacls.txt", "i.txt"),
            "subst_path": True,
            "encoding": oem,
        },
        "powershell Get-ClusterLog": {"stdout": "not clustered\r\n"},
    }
    servicing = HERE / "fixtures" / "field_servicing" / "source-missing-en"
    for log in ("CBS.log", "dism.log"):  # Get-Content's output: the file's newest lines
        shutil.copyfile(servicing / log, home / log)
        replayed.append(home / log)
        steps[f"powershell Get-Content {log}"] = {"file": log}
    if lang == "en":
        steps["systeminfo"] = text(
            CORPUS / "text" / "jc" / "systeminfo-windows-2012r2.txt", "si.txt"
        )
    else:
        steps["systeminfo"] = text(COMMANDS / "systeminfo_ja.txt", "si.txt")
    for svc in SERVICES:
        if svc != "EventSystem":
            steps[f"sc qc {svc}"] = text(COLLECT / "any" / f"sc_qc_{svc}.txt", f"qc-{svc}.txt")
        steps[f"sc queryex {svc}"] = text(
            COLLECT / "any" / f"sc_queryex_{svc}.txt", f"qx-{svc}.txt"
        )
        sd = "sc_sdshow_vmms.txt" if svc == "vmms" else "sc_sdshow_default.txt"
        steps[f"sc sdshow {svc}"] = text(COLLECT / "any" / sd, f"sd-{svc}.txt")
    for cmdlet, src in (
        ("Get-VMHost", "get_vmhost"),
        ("Get-VM", "get_vm"),
        ("Get-VMSnapshot", "get_vmsnapshot"),
        ("Get-VHD", "get_vhd"),
        ("Get-VMHardDiskDrive", "get_vmharddiskdrive"),
        ("Get-Volume", "get_volume"),
        ("Get-HotFix", "get_hotfix"),
    ):
        steps[f"powershell {cmdlet}"] = as_json(COLLECT / "any" / f"{src}.json", f"{src}.json")
    exported = {
        "System": EVTX / "python-evtx" / "system.evtx",
        "Application": EVTX / "DeepBlueCLI" / "many-events-application.evtx",
    }
    no_channel = (
        "Failed to export log {}. The specified channel could not be found."
        " Check channel configuration.\r\n"
    )
    if lang == "ja":
        no_channel = (
            "ログ {} をエクスポートできませんでした。指定されたチャネルが見つかりませんでした。"
            "チャネルの構成を確認してください。\r\n"
        )
    for cmd in phase1(load_templates()):
        if cmd.argv[0] == "wevtutil":
            channel = cmd.argv[2]
            if channel in exported:
                steps[f"wevtutil epl {channel}"] = {"export": str(exported[channel])}
            else:
                steps[f"wevtutil epl {channel}"] = {
                    "stdout": no_channel.format(channel),
                    "encoding": oem,
                    "exit": 15007,
                }
    steps.update(plan or {})
    (home / "plan.json").write_text(json.dumps(steps, ensure_ascii=False), encoding="utf-8")
    env = {
        "PATH": str(bin_dir),
        "STANDIN_DIR": str(home),
        "STANDIN_PYTHON": sys.executable,
        "HVRESCUE_COLLECT_ANY_OS": "1",
    }
    return Host(env, home, vmroot, replayed, list(exported.values()), configs)


def collect(host: Host, out: Path, *extra: str) -> Any:
    # The VM files are evidence: the configurations are hashed before and after; the sparse
    # 8 GiB disks (never read) keep their size and times.
    disks = sorted(host.vmroot.rglob("*.vhdx"))
    before = [(d.stat().st_size, d.stat().st_mtime_ns, d.stat().st_atime_ns) for d in disks]
    small = [p for p in host.vmroot.rglob("*") if p.is_file() and p not in disks]
    res = run_cli("collect", out, "--json", *extra, evidence=small, env=host.env)
    assert res.rc in (0, 1), res.stderr
    after = [(d.stat().st_size, d.stat().st_mtime_ns, d.stat().st_atime_ns) for d in disks]
    assert before == after
    return res.json()


def members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def manifest(bundle: Path) -> dict[str, Any]:
    return json.loads(members(bundle)["hvrescue-bundle.json"])


def by_id(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in m["commands"]}


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        return stat.read_text().split(") ", 1)[1][:1] != "Z"  # a zombie has ended
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- the command list
READ_ONLY = {
    "wevtutil": lambda a: len(a) == 3 and a[0] == "epl" and a[2] == "{out}",
    "vssadmin": lambda a: (
        len(a) == 2 and a[0] == "list" and a[1] in ("writers", "providers", "shadowstorage")
    ),
    "tasklist": lambda a: a == ["/svc"],
    "sc": lambda a: len(a) == 2 and a[0] in ("qc", "queryex", "sdshow"),
    "systeminfo": lambda a: a == [],
    "dism": lambda a: a == ["/Online", "/Get-Packages"],
    "bcdedit": lambda a: a == ["/enum", "all"],
    "icacls": lambda a: len(a) == 1 and not a[0].startswith("/"),
    "fltmc": lambda a: a == ["filters"],
    "manage-bde": lambda a: a == ["-status"],
}
# The verbs a PowerShell script of the list may use: none of them changes anything.
PS_VERBS = {"Get", "ConvertTo", "Select", "Where", "ForEach"}
PS_PREFIX = "[Console]::OutputEncoding = [Text.UTF8Encoding]::new($false); "


def _unhashed(script: str) -> str:
    """The script without its hashtable literals (@{Name=...; Expression={...}}), whose ";"
    separates keys, not statements."""
    out, depth, i = [], 0, 0
    while i < len(script):
        if depth == 0 and script.startswith("@{", i):
            depth, i = 1, i + 2
            continue
        if depth:
            depth += {"{": 1, "}": -1}.get(script[i], 0)
        else:
            out.append(script[i])
        i += 1
    return "".join(out)


def _powershell_read_only(args: list[str]) -> bool:
    import re

    if args[:3] != ["-NoProfile", "-NonInteractive", "-Command"] or len(args) != 4:
        return False
    script = args[3]
    if not script.startswith(PS_PREFIX):
        return False
    body = script[len(PS_PREFIX) :]
    if re.search(r"[;&]|Invoke|iex|\.Delete|\.Set|Remove|Start-|Stop-|Set-|New-", _unhashed(body)):
        return False
    verbs = {m.group(1) for m in re.finditer(r"\b([A-Z][A-Za-z]+)-[A-Z][A-Za-z]+\b", body)}
    verbs -= {"Hyper", "Microsoft"}  # not cmdlets: names inside strings
    return bool(verbs) and verbs <= PS_VERBS


def test_every_command_of_the_list_is_a_read_only_verb():
    argvs = all_argv(load_templates())
    assert len(argvs) > 40
    refused = []
    for argv in argvs:
        program, args = argv[0], list(argv[1:])
        ok = (
            _powershell_read_only(args)
            if program == "powershell"
            else READ_ONLY.get(program, lambda a: False)(args)
        )
        if not ok:
            refused.append(argv)
    assert not refused, refused


def test_the_read_only_check_refuses_what_would_change_the_host():
    assert not _powershell_read_only(
        ["-NoProfile", "-NonInteractive", "-Command", PS_PREFIX + "Get-VM | Stop-VM"]
    )
    assert not _powershell_read_only(
        ["-NoProfile", "-NonInteractive", "-Command", PS_PREFIX + "Remove-VMSnapshot -VMName x"]
    )
    assert not READ_ONLY["vssadmin"](["delete", "shadows"])
    assert not READ_ONLY["icacls"](["D:\\x", "/grant", "Everyone:F"])
    assert not READ_ONLY["wevtutil"](["cl", "System", "{out}"])


def test_the_list_covers_what_the_source_documents_ask_for():
    templates = load_templates()
    cmds = phase1(templates)
    channels = {c.argv[2] for c in cmds if c.argv[0] == "wevtutil"}
    hyper_v = ("VMMS", "Worker", "Hypervisor", "Compute", "Config", "StorageVSP")
    wanted = [
        "System",
        "Application",
        "Setup",
        *(f"Microsoft-Windows-Hyper-V-{name}-Admin" for name in hyper_v),
        "Microsoft-Windows-Hyper-V-High-Availability-Admin",
        "Microsoft-Windows-VHDMP-Operational",
        "Microsoft-Windows-CAPI2/Operational",
        "Microsoft-Windows-FailoverClustering/Operational",
        "Microsoft-Windows-Backup",
    ]
    assert not [name for name in wanted if name not in channels]
    scripts = " ".join(c.argv[-1] for c in cmds if c.argv[0] == "powershell")
    for cmdlet in (
        "Get-VMHost",
        "Get-VM ",
        "Get-VMSnapshot",
        "Get-VMHardDiskDrive",
        "Get-VHD",
        "Get-HotFix",
        "Get-ClusterLog",
    ):
        assert cmdlet in scripts, cmdlet
    ids = {c.id for c in cmds}
    for svc in SERVICES:
        assert {f"sc-qc-{svc}", f"sc-queryex-{svc}", f"sc-sdshow-{svc}"} <= ids
    phase2_for = {t.phase2 for t in templates if t.phase2}
    assert phase2_for == {"vm-folder", "disk", "volume"}
    assert all(c.timeout > 0 and c.kind and c.windows for c in cmds)


# ---------------------------------------------------------------- statuses, read from bytes
def _outcome(code: int | None, state: str = "exited") -> Outcome:
    return Outcome(state, code, 0.5, 100)


@pytest.mark.parametrize("encoding", ["utf-8", "cp932", "utf-16-le"])
def test_a_refusal_is_read_in_english_and_japanese_in_every_console_encoding(encoding: str):
    en = (COLLECT / "en" / "bcdedit_denied.txt").read_text(encoding="utf-8")
    ja = (COLLECT / "ja" / "bcdedit_denied.txt").read_text(encoding="utf-8")
    for text in (en, ja):
        assert status_of(_outcome(1), "txt", text.encode(encoding), b"")[0] == "denied"
    # The same exit code with another message is a failure, not a refusal.
    assert (
        status_of(_outcome(1), "txt", "The RPC server is unavailable.".encode(encoding), b"")[0]
        == "failed"
    )


def test_statuses_from_exit_codes_and_output():
    assert status_of(_outcome(740), "txt", b"", b"")[0] == "denied"
    assert status_of(_outcome(15007), "evtx", b"", b"")[0] == "missing"
    assert status_of(_outcome(0), "json", b"not json at all", b"")[0] == "error"
    assert status_of(_outcome(0), "json", "[\r\n]".encode("utf-16"), b"")[0] == "ok"
    assert status_of(_outcome(0), "txt", bytes(range(256)) * 4, b"")[0] == "error"
    assert status_of(_outcome(None, "timeout"), "txt", b"", b"")[0] == "timeout"
    utf16 = (COMMANDS / "vssadmin_writers_ja.txt").read_text(encoding="utf-8").encode("utf-16")
    assert not looks_binary(utf16)


# ---------------------------------------------------------------- end to end
@posix_only
def test_collect_refuses_a_host_that_is_not_windows(tmp_path: Path):
    env = {"HVRESCUE_COLLECT_ANY_OS": ""}
    res = run_cli("collect", tmp_path / "b.zip", "--json", env=env)
    assert res.rc == 2
    assert res.json()["error"]["key"] == "error.collect.not-windows"
    assert not (tmp_path / "b.zip").exists()


def _triage(*paths: Path, evidence: list[Path]) -> dict[str, Any]:
    res = run_cli("triage", "--json", *paths, evidence=evidence)
    assert res.rc in (0, 1), res.stderr
    return res.json()


def _icacls_outputs(host: Host, lang: str) -> list[Path]:
    """What the icacls stand-in printed for each path it was given, as files."""
    calls = [json.loads(line) for line in (host.home / "calls.log").read_text().splitlines()]
    template = (host.home / "i.txt").read_bytes()
    oem = "cp932" if lang == "ja" else "utf-8"
    outs = []
    for n, call in enumerate(c for c in calls if c[0] == "icacls"):
        path = host.home.parent / f"icacls-{n}.txt"
        path.write_bytes(template.replace(b"%PATH%", call[-1].encode(oem)))
        outs.append(path)
    assert len(outs) == 5  # two VM folders, three disks
    return outs


def _without_paths(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k not in ("path", "paths")}
    return value


@posix_only
@needs_corpus
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_bundle_triage_equals_the_triage_of_the_same_outputs_as_files(tmp_path: Path, lang: str):
    host = make_host(tmp_path, lang)
    out = tmp_path / "out" / "bundle.zip"
    out.parent.mkdir()
    summary = collect(host, out)
    m = manifest(out)
    statuses = {c["id"]: c["status"] for c in m["commands"]}
    assert {s for i, s in statuses.items() if not i.startswith("evtx-")} == {"ok"}, statuses
    assert statuses["evtx-System"] == statuses["evtx-Application"] == "ok"
    assert statuses["evtx-Microsoft-Windows-FailoverClustering-Operational"] == "missing"
    assert summary["status"] == "complete"
    bundle_triage = _triage(out, evidence=[out])
    files = [*host.replayed, *host.exported, *host.configs, *_icacls_outputs(host, lang)]
    files.remove(host.home / "i.txt")  # icacls prints the path it was given: one per call
    files_triage = _triage(*files, evidence=files)
    assert bundle_triage["diagnoses"], "the recorded outputs imply a diagnosis"
    ids = {d["id"] for d in bundle_triage["diagnoses"]}
    assert "vss.writers-missing.eventsystem-shared-host" in ids
    assert "guest.servicing.source-missing" in ids  # the tails of CBS.log and dism.log
    assert _without_paths(bundle_triage["diagnoses"]) == _without_paths(files_triage["diagnoses"])
    assert bundle_triage["verdict"] == files_triage["verdict"]


@posix_only
@needs_corpus
def test_bundle_holds_every_output_with_its_hash_and_the_vm_files_but_no_disk(tmp_path: Path):
    host = make_host(tmp_path, "en")
    out = tmp_path / "bundle.zip"
    collect(host, out)
    got = members(out)
    m = json.loads(got.pop("hvrescue-bundle.json"))
    assert m["format"] == "hvrescue-bundle" and m["version"] == 1
    assert m["host"] and m["started"] <= m["finished"] and isinstance(m["elevated"], bool)
    listed = {f["path"]: f for f in m["files"]}
    assert set(listed) == set(got)  # every member is in the manifest, and only members
    for name, data in got.items():
        assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert listed[name]["size"] == len(data)
    ids = by_id(m)
    for cmd in ids.values():
        for key in ("output", "stderr"):
            assert cmd[key] is None or cmd[key] in got, (cmd["id"], key)
    # Outputs are the recorded bytes, unchanged.
    assert got["commands/vssadmin-list-writers.txt"] == (host.home / "w.txt").read_bytes()
    assert got["logs/System.evtx"] == (EVTX / "python-evtx" / "system.evtx").read_bytes()
    # Phase 2 ran on the folders and disks that Get-VM / Get-VMHardDiskDrive / Get-VHD named.
    targets = sorted(c["argv"][1] for c in m["commands"] if c["id"].startswith("icacls-folder"))
    assert targets == [str(host.vmroot / "sql01"), str(host.vmroot / "web01")]
    disks = sorted(c["argv"][1] for c in m["commands"] if c["id"].startswith("icacls-disk"))
    assert len(disks) == 3 and all(d.endswith(("vhdx", "avhdx")) for d in disks)
    assert sum(1 for i in ids if i.startswith("volume-")) == 1
    # The configuration files are copied, hashed, with their source; disks are only listed.
    for config in host.configs:
        entry = next(f for f in m["files"] if f["source"] == str(config))
        assert got[entry["path"]] == config.read_bytes()
        assert entry["path"].startswith("vms/")
    assert not [n for n in got if n.lower().endswith((".vhdx", ".avhdx"))]
    # The manifest routes every member: which command printed it and whether that ended well.
    table = routes(read_manifest(json.dumps(m).encode()) or {})
    assert set(table) == set(got)
    writers = route_of(table, f"{out}!/commands/vssadmin-list-writers.txt")
    assert writers is not None and writers.complete and writers.role == "output"
    assert writers.prompt_line() == "C:\\> vssadmin list writers"
    assert route_of(table, "logs/System.evtx").role == "export"
    assert not route_of(table, "listings/vm-files.json").evidence
    # The evidence walker hands on every member, each classified by what it is.
    from hvrescue.evidence import Item, Walk

    walked = {
        e.path.rsplit("!/", 1)[-1]: e.kind
        for e in Walk([str(out)])
        if isinstance(e, Item) and "!/" in e.path
    }
    assert set(walked) == set(got) | {"hvrescue-bundle.json"}
    assert walked["logs/System.evtx"] == "event-log"
    assert {walked[n] for n in got if n.endswith(".vmcx")} == {"vm-config"}
    assert {walked[n] for n in got if n.endswith(".vmrs")} == {"vm-runtime"}
    assert {walked[n] for n in got if n.startswith("commands/")} == {"text"}
    listing = json.loads(got["listings/vm-files.json"])["files"]
    sparse = next(f for f in listing if f["path"].endswith("sql01.vhdx"))
    assert sparse["size"] == 8 << 30 and sparse["role"] == "disk" and sparse["member"] is None


@posix_only
@needs_corpus
def test_every_misbehaviour_is_recorded_and_none_stops_the_run(tmp_path: Path):
    def en(name: str) -> str:
        return (COLLECT / "en" / name).read_text(encoding="utf-8")

    plan = {
        "vssadmin list shadowstorage": {"hang": 120},
        "bcdedit /enum all": {"stdout": en("bcdedit_denied.txt"), "exit": 1},
        "dism /Online /Get-Packages": {
            "stdout": (COLLECT / "ja" / "dism_denied.txt").read_text(encoding="utf-8"),
            "encoding": "cp932",
            "exit": 740,
        },
        "fltmc filters": {"garbage": 8192},
        "sc sdshow vmms": {"stdout": en("sc_no_service.txt"), "exit": 1060},
        "systeminfo": {"stderr": "ERROR: The RPC server is unavailable.\r\n", "exit": 1},
        "tasklist /svc": {"flood": 200_000_000},
        "powershell Get-VMHost": {"stderr": en("powershell_denied.txt"), "exit": 1},
        "powershell Get-HotFix": {"garbage": 3000},
    }
    host = make_host(tmp_path, "en", plan, absent=("manage-bde",))
    out = tmp_path / "bundle.zip"
    summary = collect(host, out, "--max-time", "3", "--max-output", "4M")
    m = manifest(out)
    ids = by_id(m)
    expected = {
        "vssadmin-list-shadowstorage": "timeout",
        "bcdedit-enum": "denied",
        "dism-packages": "denied",
        "fltmc-filters": "error",
        "sc-sdshow-vmms": "missing",
        "systeminfo": "failed",
        "tasklist-svc": "too-large",
        "get-vmhost": "denied",
        "get-hotfix": "error",
        "manage-bde-status": "missing",
    }
    assert {k: ids[k]["status"] for k in expected} == expected
    assert ids["manage-bde-status"]["exit_code"] is None
    # 740 as a POSIX stand-in can exit (mod 256): the refusal is read from its Japanese text.
    assert ids["dism-packages"]["exit_code"] == 740 % 256
    # None stopped the run: the commands after each misbehaving one were collected.
    others = {
        i: c["status"] for i, c in ids.items() if i not in expected and not i.startswith("evtx")
    }
    assert set(others.values()) == {"ok"}, others
    assert any(i.startswith("icacls-folder") for i in ids)
    assert summary["status"] == "partial"
    # The hang was killed at its timeout, its grandchild with it.
    assert 2.5 < ids["vssadmin-list-shadowstorage"]["duration_s"] < 15
    pids = [
        int(p)
        for line in (host.home / "hang.pids").read_text().split("\n")
        if line
        for p in line.split()
    ]
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    # The first part of the 200 MB output is kept, exactly the cap.
    got = members(out)
    assert len(got[ids["tasklist-svc"]["output"]]) == 4 * 1024 * 1024
    assert got[ids["tasklist-svc"]["output"]].startswith(b"svchost.exe")
    # What the refused and failed commands said is kept too.
    assert "RPC server" in got[ids["systeminfo"]["stderr"]].decode()
    assert "PermissionDenied" in got[ids["get-vmhost"]["stderr"]].decode()
    # A refusal's words are routed as such: not a complete output of its command.
    table = routes(read_manifest(got["hvrescue-bundle.json"]) or {})
    assert not route_of(table, ids["bcdedit-enum"]["output"]).complete
    assert not route_of(table, ids["tasklist-svc"]["output"]).complete
    assert route_of(table, ids["get-vmhost"]["stderr"]).role == "stderr"


@posix_only
@needs_corpus
def test_an_existing_bundle_is_never_overwritten(tmp_path: Path):
    host = make_host(tmp_path, "en")
    out = tmp_path / "bundle.zip"
    out.write_bytes(b"an earlier bundle")
    res = run_cli("collect", out, "--json", evidence=[*host.configs, out], env=host.env)
    assert res.rc == 2
    assert res.json()["error"]["key"] == "error.output.exists"
    assert out.read_bytes() == b"an earlier bundle"
    assert not (host.home / "calls.log").exists()  # refused before anything ran


@posix_only
@needs_corpus
def test_ctrl_c_leaves_no_partial_bundle_and_no_process(tmp_path: Path):
    host = make_host(tmp_path, "en", {"vssadmin list writers": {"hang": 300}})
    out = tmp_path / "out" / "bundle.zip"
    out.parent.mkdir()
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, **host.env, "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hvrescue", "collect", str(out), "--temp-dir", str(temp)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids_file = host.home / "hang.pids"
    deadline = time.monotonic() + 120
    while not pids_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert pids_file.exists(), proc.communicate()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary .part file either
    assert list(temp.iterdir()) == []
    pids = [int(p) for p in pids_file.read_text().split()]
    assert not any(alive(p) for p in pids)


# Everything but the VSS commands: what --skip leaves out is neither run nor in the manifest.
ONLY_VSS = ("evtx", "tasklist-svc", "sc-qc", "sc-queryex", "sc-sdshow", "systeminfo",
            "get-hotfix", "dism-packages", "bcdedit-enum", "get-vmhost", "get-vm",
            "get-vmsnapshot", "get-vmharddiskdrive", "get-vhd", "fltmc-filters",
            "manage-bde-status", "cluster-log", "cbs-log", "dism-log")  # fmt: skip


def _not_elevated_vss_bundle(tmp_path: Path, *keep: str) -> tuple[Host, Path]:
    denied = (COLLECT / "en" / "vssadmin_denied.txt").read_text(encoding="utf-8")
    refused = {"stdout": denied, "exit": 2}
    plan = {f"vssadmin list {what}": refused for what in ("writers", "providers", "shadowstorage")}
    host = make_host(tmp_path, "en", plan)
    out = tmp_path / "bundle.zip"
    collect(host, out, *(arg for s in ONLY_VSS if s not in keep for arg in ("--skip", s)))
    return host, out


@posix_only
@needs_corpus
def test_skipped_commands_are_not_run_and_refused_ones_are_denied(tmp_path: Path):
    host, out = _not_elevated_vss_bundle(tmp_path)
    ids = by_id(manifest(out))
    assert set(ids) == {"vssadmin-list-writers", "vssadmin-list-providers",
                        "vssadmin-list-shadowstorage"}  # fmt: skip
    assert {c["status"] for c in ids.values()} == {"denied"}
    calls = (host.home / "calls.log").read_text().splitlines()
    assert len(calls) == 3 and all(json.loads(c)[0] == "vssadmin" for c in calls)


@posix_only
@needs_corpus
def test_a_refused_vssadmin_does_not_claim_the_writers_are_gone(tmp_path: Path):
    # Not elevated: vssadmin is refused, tasklist /svc (no elevation needed) shows EventSystem
    # sharing its svchost, as it does on many healthy hosts.
    _, out = _not_elevated_vss_bundle(tmp_path, "tasklist-svc")
    ids = {d["id"] for d in _triage(out, evidence=[out])["diagnoses"]}
    assert not {i for i in ids if i.startswith("vss.writers-missing")}
