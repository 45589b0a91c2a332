"""Disk permissions and backup leftovers (issue 16): the VM's own account missing from the
access lists of its chain (derived ``acl_gap`` facts), checkpoints left by backup products,
change-tracking files without their disk or grown huge (`inventory` and file listings), VHDMP
change-tracking events and the codes backup jobs report. Through the engine on facts shaped as
the readers give them, then end to end through the CLI on incident folders
(tests/fixtures/field_leftovers, sources in its README) and on VM folders built here."""

from __future__ import annotations

import json
import shutil
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.derive_acl import acl_gaps, derived_facts
from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.hyperv.leftovers import listed_leftovers, size_limit, tracked_disk
from hvrescue.inventory import CheckOptions, build_inventory
from hvrescue.logs.collect import facts_from_text
from hvrescue.logs.commands import backup_jobs, listing
from hvrescue.logs.textutil import Text
from tests.builders import make_chain
from tests.helpers import run_cli

RULES = load_rules()
FIXTURES = Path(__file__).parent / "fixtures" / "field_leftovers"
VM_ID = "3f2a9c41-7b0e-4c55-9d61-0a8e5b7c2d10"
OTHER_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
LEAF = r"D:\Hyper-V\SRV-APP01\Virtual Hard Disks\SRV-APP01_5C0D.avhdx"
MIDDLE = r"D:\Hyper-V\SRV-APP01\Virtual Hard Disks\SRV-APP01.vhdx"
BASE = r"E:\Templates\WS2022.vhdx"


def sid_of(vm_id: str) -> str:
    """The SID Windows gives a VM's account: its id's 16 bytes as four sub-authorities."""
    parts = struct.unpack("<4I", uuid.UUID(vm_id).bytes_le)
    return "S-1-5-83-1-" + "-".join(map(str, parts))


def icacls(*files: tuple[str, list[str]]) -> str:
    """icacls output as the console prints it: the path, its first entry, the rest aligned."""
    out = []
    for path, entries in files:
        out.append(f"{path} {entries[0]}")
        out += [" " * (len(path) + 1) + e for e in entries[1:]]
    out += ["", f"Successfully processed {len(files)} files; Failed processing 0 files", ""]
    return "\n".join(out)


INHERITED = ["BUILTIN\\Administrators:(I)(F)", "NT AUTHORITY\\SYSTEM:(I)(F)"]


def vm_config(chain: list[str], disk: str = LEAF) -> Fact:
    """A VM configuration as triage makes it: the disk and its chain, base first."""
    attrs = {
        "name": "SRV-APP01",
        "vm_id": VM_ID.upper(),
        "kind": "vm",
        "disks": [{"path": disk, "chain": chain, "found": True}],
        "path": "/evidence/SRV-APP01/Virtual Machines/x.vmcx",
    }
    return Fact("vm_config", attrs, Provenance(attrs["path"]))


def gaps_of(text: str, *more: Fact) -> dict[str, dict[str, Any]]:
    facts = facts_from_text(text, "/evidence/icacls.txt") + list(more)
    return {g.attributes["path"]: g.attributes for g in acl_gaps(facts)}


# ------------------------------------------------------------------ acl_gap derivation


def test_every_file_of_the_chain_without_the_grant_gets_the_exact_icacls_command():
    text = icacls((LEAF, INHERITED), (MIDDLE, INHERITED), (BASE, INHERITED))
    chain = ["/other/WS2022.vhdx", "Virtual Hard Disks/SRV-APP01.vhdx", LEAF]
    gaps = gaps_of(text, vm_config(chain))
    assert set(gaps) == {LEAF, MIDDLE, BASE}
    for path, gap in gaps.items():
        assert gap["vm_id"] == VM_ID and gap["missing"] == "vm-grant"
        assert gap["grant"] == f'icacls "{path}" /grant "NT VIRTUAL MACHINE\\{VM_ID.upper()}":(F)'
        assert gap["save"].startswith(f'icacls "{path}" /save ')
    assert gaps[BASE]["role"] == "parent" and gaps[LEAF]["role"] == "disk"
    # The parent in another folder is tied to its list by name: the chain holds a local path.
    assert gaps[BASE]["match"] == "name" and gaps[LEAF]["match"] == "path"


def test_the_vm_grant_counts_in_either_form_and_other_vms_do_not():
    by_name = f"NT VIRTUAL MACHINE\\{VM_ID.upper()}:(R,W)"
    by_sid = f"{sid_of(VM_ID)}:(F)"
    other = f"{sid_of(OTHER_ID)}:(F)"
    text = icacls((LEAF, [by_name, *INHERITED]), (MIDDLE, [by_sid, *INHERITED]), (BASE, [other]))
    chain = ["/other/WS2022.vhdx", "Virtual Hard Disks/SRV-APP01.vhdx", LEAF]
    gaps = gaps_of(text, vm_config(chain))
    assert set(gaps) == {BASE}  # the old host's VM id does not stand in for this VM's


@pytest.mark.parametrize(
    ("entry", "missing"),
    [
        (f"NT VIRTUAL MACHINE\\{VM_ID.upper()}:(DENY)(W)", "denied"),
        (f"NT VIRTUAL MACHINE\\{VM_ID.upper()}:(R)", "read-only"),
        (f"NT VIRTUAL MACHINE\\{VM_ID.upper()}:(OI)(CI)(IO)(F)", "vm-grant"),
        (f"NT VIRTUAL MACHINE\\{VM_ID.upper()}:(I)(F)", "inheritance-only"),
    ],
)
def test_what_is_missing_is_named(entry: str, missing: str):
    gaps = gaps_of(icacls((MIDDLE, [entry, *INHERITED])), vm_config([MIDDLE], MIDDLE))
    assert gaps[MIDDLE]["missing"] == missing


def test_a_chain_file_whose_list_was_not_given_is_granted_too_when_another_lacks_it():
    chain = [BASE, MIDDLE]
    only_middle = icacls((MIDDLE, INHERITED))
    gaps = gaps_of(only_middle, vm_config(chain, MIDDLE))
    assert gaps[MIDDLE]["missing"] == "vm-grant" and gaps[BASE]["missing"] == "not-shown"
    granted = icacls((MIDDLE, [f"NT VIRTUAL MACHINE\\{VM_ID}:(F)"]))
    assert gaps_of(granted, vm_config(chain, MIDDLE)) == {}  # nothing shown lacks it


def test_no_gap_without_a_known_vm_or_from_a_list_icacls_could_not_read():
    text = icacls((MIDDLE, INHERITED))
    assert gaps_of(text) == {}  # which VM should it grant? none is in the evidence
    denied = (
        f"{MIDDLE}: Access is denied.\nSuccessfully processed 0 files; Failed processing 1 files"
    )
    assert gaps_of(denied, vm_config([MIDDLE], MIDDLE)) == {}


def test_get_vhd_parents_extend_the_chain_of_get_vm_disks():
    text = (
        "PS C:\\> Get-VM SRV-APP01 | Format-List Name, VMId\n\n"
        f"Name : SRV-APP01\nVMId : {VM_ID}\n\n"
        "PS C:\\> Get-VMHardDiskDrive -VMName SRV-APP01 | Format-List VMName, Path\n\n"
        f"VMName : SRV-APP01\nPath   : {MIDDLE}\n\n"
        f'PS C:\\> Get-VHD -Path "{MIDDLE}" | Format-List Path, ParentPath\n\n'
        f"Path       : {MIDDLE}\nParentPath : {BASE}\n\n"
        f"PS C:\\> icacls {BASE}\n" + icacls((BASE, INHERITED))
    )
    gaps = gaps_of(text)
    assert gaps[BASE]["missing"] == "vm-grant" and gaps[BASE]["role"] == "parent"
    assert gaps[MIDDLE]["missing"] == "not-shown"  # its list was not given
    assert gaps[BASE]["disk"] == MIDDLE and gaps[BASE]["vm_name"] == "SRV-APP01"


# ------------------------------------------------------------------ rules on facts


def facts(*items: tuple[str, dict[str, Any]]) -> list[Fact]:
    return [
        Fact(k, a, Provenance("/evidence/pasted.txt", f"line:{i}"))
        for i, (k, a) in enumerate(items)
    ]


def test_prevention_without_any_failure_and_behind_access_denied_with_one():
    acl_text = icacls((MIDDLE, INHERITED), (BASE, INHERITED))
    base = [*facts_from_text(acl_text, "/evidence/icacls.txt"), vm_config([BASE, MIDDLE], MIDDLE)]
    found = evaluate(RULES, base)
    assert found[0].rule.id == "vdisk.acl-missing-vm-grant"
    failure = facts(
        (
            "event",
            {
                "provider": "Microsoft-Windows-Hyper-V-Worker",
                "event_id": 12140,
                "message": f"'SRV-APP01': Failed to open attachment '{MIDDLE}'. Error: 'General "
                f"access denied error' (0x80070005). (Virtual machine ID {VM_ID.upper()})",
            },
        )
    )
    ids = [d.rule.id for d in evaluate(RULES, base + failure)]
    assert ids.index("vdisk.access-denied") < ids.index("vdisk.acl-missing-vm-grant")


def test_grant_steps_name_each_file_once_with_the_vm_id():
    acl_text = icacls((LEAF, INHERITED), (MIDDLE, INHERITED), (BASE, INHERITED))
    config = vm_config(["/x/WS2022.vhdx", "Virtual Hard Disks/SRV-APP01.vhdx", LEAF])
    base = [*facts_from_text(acl_text, "/evidence/icacls.txt"), config]
    [diagnosis] = [d for d in evaluate(RULES, base) if d.rule.id == "vdisk.acl-missing-vm-grant"]
    from hvrescue.report.i18n import Messages

    commands = [s["command"] for s in diagnosis.as_dict("en", Messages("en"))["steps"]]
    grants = [c for c in commands if "/grant" in c]
    assert grants == [
        f'icacls "{p}" /grant "NT VIRTUAL MACHINE\\{VM_ID.upper()}":(F)'
        for p in (LEAF, MIDDLE, BASE)
    ]
    saves = [c for c in commands if "/save" in c]
    assert len(saves) == 3 and commands.index(saves[-1]) < commands.index(grants[0])


# ------------------------------------------------------------------ readers


def test_backup_job_logs_give_the_code_and_the_wrapped_message():
    text = (
        "28.11.2026 22:02:13 :: Failed to create VM recovery checkpoint (mode: Hyper-V child "
        "partition snapshot) Details: Job failed ('Checkpoint operation for 'SQL02' failed.\n"
        "'SQL02' could not initiate a checkpoint operation: The process cannot access the file\n"
        "because it is being used by another process. (0x80070020).\n"
        "Error code: '32768'.\n\n"
        "Block size 32768 bytes\n"
        "Final error: 0xa000971e - A recovery checkpoint cannot be created because Backup Exec\n"
        "detected another recovery checkpoint on the virtual machine 'FS01'.\n"
        "Final error category: Resource Errors\n"
    )
    found = backup_jobs.parse(Text.of(text, "/evidence/job.log"))
    assert [(f.attributes["tool"], f.attributes["code"]) for f in found] == [
        ("veeam", "32768"),
        ("backup-exec", "0xa000971e"),
    ]
    veeam, be = found
    assert veeam.attributes["codes"] == ["32768", "0x80070020"]
    assert "being used by another process" in veeam.attributes["message"]
    assert veeam.provenance.locator == "line:1"
    assert "another recovery checkpoint on the virtual machine 'FS01'" in be.attributes["message"]


def test_listings_of_dir_and_get_childitem_in_english_and_japanese():
    en = (FIXTURES / "rct-listing-en" / "dir_s.txt").read_text(encoding="utf-8")
    ja = (FIXTURES / "rct-listing-ja" / "get_childitem_ja.txt").read_text(encoding="utf-8")
    dir_ja = (
        " D:\\Hyper-V\\FS01 のディレクトリ\n\n"
        "2026/11/28  22:02    <DIR>          .\n"
        "2026/11/28  22:02    42,949,672,960 FS01.vhdx\n"
        "               1 個のファイル      42,949,672,960 バイト\n"
    )
    got = {
        name: {f.attributes["name"]: f.attributes["size"] for f in listing.parse(Text.of(t, "x"))}
        for name, t in (("en", en), ("ja", ja), ("dir_ja", dir_ja))
    }
    assert got["en"]["FS01.vhdx"] == 42_949_672_960 and "." not in got["en"]
    assert got["en"]["FS01-old.vhdx.rct"] == 20_971_520 and len(got["en"]) == 5
    assert got["ja"]["SQL02-data.vhdx.mrt"] == 3_221_225_472 and len(got["ja"]) == 6
    assert got["dir_ja"] == {"FS01.vhdx": 42_949_672_960}


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab:\\ .,'0123456789-/\nErorcdDiyfl()x")), max_size=400)
)
def test_readers_take_any_text_without_failing(text: str):
    for parser in (listing.parse, backup_jobs.parse):
        for fact in parser(Text.of(text, "x")):
            json.dumps(fact.as_dict())


def test_tracking_files_are_judged_against_their_disk():
    assert tracked_disk(r"D:\a\FS01.vhdx.RCT") == r"D:\a\FS01.vhdx"
    assert tracked_disk(r"D:\a\FS01.vhdx") is None
    assert size_limit(0) == 1 << 30  # no disk size known: the absolute limit
    assert size_limit(1 << 30) == 256 << 20  # a small disk: the floor
    assert size_limit(100 << 30) == 1 << 30
    entries = [(r"D:\a\x.vhdx", 100 << 30), (r"D:\a\x.vhdx.mrt", 2 << 30), (r"D:\a\y.vhdx.rct", 5)]
    found = {(code, path) for code, path, _ in listed_leftovers(entries)}
    assert found == {
        ("inventory.rct-oversized", r"D:\a\x.vhdx.mrt"),
        ("inventory.rct-orphan", r"D:\a\y.vhdx.rct"),
    }


def test_listing_findings_carry_the_listing_line():
    text = (FIXTURES / "rct-listing-en" / "dir_s.txt").read_text(encoding="utf-8")
    found = [f for f in derived_facts(facts_from_text(text, "/e/dir.txt")) if f.kind == "finding"]
    assert {f.attributes["param_file"].rsplit("\\", 1)[1] for f in found} == {
        "FS01-old.vhdx.rct",
        "FS01-old.vhdx.mrt",
    }
    assert all(f.provenance.path == "/e/dir.txt" and f.provenance.locator for f in found)


# ------------------------------------------------------------------ inventory on a built tree


@pytest.fixture
def tracked(tmp_path: Path) -> Path:
    """vm/Virtual Hard Disks: a chain, the leaf's .rct/.mrt (the .mrt sparse and grown to
    300 MiB), and the pair of a disk that is not there."""
    folder = tmp_path / "vm" / "Virtual Hard Disks"
    chain = make_chain(folder, depth=2, size=16 << 20, seed=5)
    leaf = chain[-1]
    (folder / f"{leaf.name}.rct").write_bytes(b"\0" * 4096)
    with open(folder / f"{leaf.name}.mrt", "wb") as f:
        f.truncate(300 << 20)
    (folder / "gone.vhdx.rct").write_bytes(b"\0" * 4096)
    (folder / "gone.vhdx.mrt").write_bytes(b"\0" * 4096)
    return tmp_path / "vm"


def test_inventory_json_reports_orphaned_and_oversized_tracking_files(tracked: Path):
    r = run_cli("inventory", tracked, "--json", evidence=[tracked])
    assert r.rc in (0, 1), r.stderr
    found = {(f["code"], Path(f["path"]).name) for f in r.json()["findings"]}
    leaf = sorted(p.name for p in (tracked / "Virtual Hard Disks").glob("*.avhdx"))[-1]
    assert {c for c in found if c[0].startswith("inventory.rct")} == {
        ("inventory.rct-orphan", "gone.vhdx.rct"),
        ("inventory.rct-orphan", "gone.vhdx.mrt"),
        ("inventory.rct-oversized", f"{leaf}.mrt"),
    }


def test_the_thresholds_are_options(tracked: Path):
    loose = build_inventory(str(tracked), options=CheckOptions(extra={"rct_max_ratio": 50.0}))
    codes = {(f.code, Path(f.path).name) for f in loose.findings if "rct" in f.code}
    # A ratio that allows anything still leaves the absolute limit (1 GiB) above 300 MiB.
    assert {c for c, _ in codes} == {"inventory.rct-orphan"}
    strict = build_inventory(str(tracked), options=CheckOptions(extra={"rct_max_bytes": 1024}))
    oversized = {
        n
        for c, n in ((f.code, Path(f.path).name) for f in strict.findings)
        if c == "inventory.rct-oversized"
    }
    assert len(oversized) == 2  # the leaf's .rct (4 KiB) and .mrt


def test_triage_of_a_built_vm_folder_names_every_chain_file_in_its_grants(tmp_path: Path):
    """A real chain and configuration, icacls output that lacks the VM on each file."""
    from tests.test_audit import xml_config

    home = tmp_path / "web01"
    files = make_chain(home / "Virtual Hard Disks", depth=3, size=16 << 20, seed=7)
    windows = [f"D:\\Hyper-V\\web01\\Virtual Hard Disks\\{f.name}" for f in files]
    xml_config(home / "Virtual Machines" / f"{VM_ID.upper()}.xml", "web01", VM_ID, [windows[-1]])
    (tmp_path / "icacls.txt").write_text(
        icacls(*((w, INHERITED) for w in windows)), encoding="utf-8"
    )
    out = tmp_path / "report"
    r = run_cli("triage", home, tmp_path / "icacls.txt", "--out", out, "--json", evidence=[home])
    assert r.rc == 1, r.stderr
    [acl] = [d for d in r.json()["diagnoses"] if d["id"] == "vdisk.acl-missing-vm-grant"]
    grants = sorted(s["command"] for s in acl["steps"] if "/grant" in s["command"])
    assert grants == sorted(
        f'icacls "{w}" /grant "NT VIRTUAL MACHINE\\{VM_ID.upper()}":(F)' for w in windows
    )


# ------------------------------------------------------------------ incident folders

INCIDENTS = [
    (
        "acl-restored-en",
        "vdisk.acl-missing-vm-grant",
        '/grant "NT VIRTUAL MACHINE\\3F2A9C41-7B0E-4C55-9D61-0A8E5B7C2D10":(F)',
        "en",
    ),
    (
        "acl-denied-ja",
        "vdisk.access-denied",
        "NT VIRTUAL MACHINE\\2D4F6A8C-1B3E-4F5A-9C7D-0E1F2A3B4C5D",
        "ja",
    ),
    (
        "be-checkpoint-en",
        "host.backup-checkpoint-leftover",
        '-Name "BE_Snapshot_7D3A91C2 - (11/27/2026 - 10:15:02 PM)" | Remove-VMSnapshot',
        "en",
    ),
    ("be-checkpoint-ja", "host.backup-checkpoint-leftover", "| Remove-VMSnapshot", "ja"),
    ("rct-corrupt-en", "vdisk.rct-corrupt", "Microsoft-Windows-VHDMP-Operational", "en"),
    ("rct-corrupt-ja", "vdisk.rct-corrupt", "Microsoft-Windows-VHDMP-Operational", "ja"),
    ("rct-listing-en", "vdisk.change-tracking-leftover", '-Filter "FS01-old.vhdx.?rt"', "en"),
    ("rct-listing-ja", "vdisk.change-tracking-leftover", '-like "*SQL02-data.vhdx"', "ja"),
    (
        "veeam-32768-en",
        "backup.checkpoint-failed-32768",
        "Microsoft-Windows-Hyper-V-VMMS-Admin",
        "en",
    ),
    (
        "veeam-in-use-en",
        "backup.file-in-use",
        "APPSRV-01_6F2D8B14-0A3C-4E57-9B61-D4C2A7E0F935.avhdx",
        "en",
    ),
    ("writer-timeout-en", "backup.vss-writer-timeout", "vssadmin list writers", "en"),
    ("acl-near-miss-en", None, None, "en"),
]


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"), INCIDENTS, ids=[i[0] for i in INCIDENTS]
)
def test_incident_folder_through_the_cli(tmp_path: Path, name: str, expected, command, lang: str):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    out = tmp_path / f"{name}-report"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    data = r.json()
    serious = [d for d in data["diagnoses"] if SEVERITY_ORDER[d["severity"]] >= 1]
    if expected is None:
        assert serious == [] and data["verdict"]["state"] == "healthy" and r.rc == 0
        return
    top = data["diagnoses"][0]
    assert top["id"] == expected, [d["id"] for d in data["diagnoses"]]
    assert r.rc == 1 and data["verdict"]["id"] == expected
    assert all(e["path"].startswith(str(folder)) for e in top["evidence"])
    assert any(command in s["command"] for s in top["steps"]), [s["command"] for s in top["steps"]]
    if lang == "ja":
        assert any("\u3040" <= ch <= "\u30ff" for ch in top["title"])


def test_acl_rule_stands_behind_access_denied_in_the_japanese_incident(tmp_path: Path):
    folder = tmp_path / "acl-denied-ja"
    shutil.copytree(FIXTURES / "acl-denied-ja", folder)
    r = run_cli("triage", folder, "--out", tmp_path / "out", "--json", evidence=[folder])
    ids = [d["id"] for d in r.json()["diagnoses"]]
    assert ids.index("vdisk.access-denied") < ids.index("vdisk.acl-missing-vm-grant")


@pytest.mark.parametrize(
    "code",
    [
        "inventory.rct-orphan",
        "inventory.rct-oversized",
        "vdisk.acl-missing-vm-grant",
        "backup.vss-writer-timeout",
    ],
)
def test_explain_knows_the_new_codes_and_rules(code: str):
    for lang in ("en", "ja"):
        r = run_cli("--lang", lang, "explain", code, "--json")
        assert r.rc == 0, r.stderr
        assert r.json()["meaning"]
        if code.startswith("inventory."):  # a finding's parameters are shown as labels
            assert "{" not in r.json()["meaning"] and "<" in r.json()["meaning"]
