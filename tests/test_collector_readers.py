"""Readers for what the live collector's bundles hold and the earlier readers missed: vssadmin
refusals and other listings (no false "writers gone"), Hyper-V objects as ConvertTo-Json told
apart by their properties (checkpoints, disk drives, volumes, the host), `manage-bde -status`
and `icacls`, in English and Japanese, whole, reposted and in fragments."""

from __future__ import annotations

import json
import shutil
import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.facts.model import Fact
from hvrescue.logs.collect import facts_from_bytes, facts_from_text
from hvrescue.logs.commands import icacls, manage_bde, powershell, vssadmin
from hvrescue.logs.textutil import Text
from tests.helpers import run_cli

HERE = Path(__file__).parent / "fixtures"
FIX = HERE / "collector_readers"
CMD = HERE / "commands"
COLLECT = HERE / "collect"


def read(path: Path) -> list[Fact]:
    return facts_from_text(path.read_text(encoding="utf-8"), path.name)


def of(facts: list[Fact], kind: str) -> list[dict[str, Any]]:
    return [f.attributes for f in facts if f.kind == kind]


def kinds(facts: list[Fact]) -> set[str]:
    return {f.kind for f in facts if f.kind != "signal"}


# ---------------------------------------------------------------- vssadmin: no false alarm
@pytest.mark.parametrize(
    "path",
    [
        FIX / "vssadmin_refused_writers_en.txt",
        FIX / "vssadmin_refused_ja.txt",
        FIX / "vssadmin_refused_reposted_en.txt",
        COLLECT / "en" / "vssadmin_denied.txt",
    ],
    ids=lambda p: p.name,
)
def test_a_refused_vssadmin_is_no_listing(path: Path):
    found = read(path)
    assert not of(found, "vss_writer_list") and not of(found, "vss_provider_list")


@pytest.mark.parametrize(
    "path",
    [
        FIX / "vssadmin_list_shadows_none_en.txt",
        COLLECT / "en" / "vssadmin_shadowstorage.txt",
        COLLECT / "ja" / "vssadmin_shadowstorage.txt",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_other_vssadmin_listings_are_not_writer_lists(path: Path):
    assert not of(read(path), "vss_writer_list")


@pytest.mark.parametrize(
    "path",
    [
        CMD / "vssadmin_writers_empty_en.txt",
        CMD / "vssadmin_writers_empty_ja.txt",
        FIX / "vssadmin_writers_waiting_empty_en.txt",
        FIX / "vssadmin_listed_writers_empty_prompt_en.txt",
    ],
    ids=lambda p: p.name,
)
def test_an_empty_writer_list_still_says_no_writer(path: Path):
    (listing,) = of(read(path), "vss_writer_list")
    assert listing["count"] == 0 and listing["names"] == []


def test_a_refusal_then_the_elevated_run_gives_one_listing_of_the_second():
    found = read(FIX / "vssadmin_refused_then_elevated_en.txt")
    lists = [f for f in found if f.kind == "vss_writer_list"]
    assert len(lists) == 1
    assert lists[0].attributes["names"] == ["System Writer", "Microsoft Hyper-V VSS Writer"]
    assert lists[0].provenance.locator == "line:9"  # the second banner, not the refused one
    assert lists[0].attributes["command"] == "vssadmin list writers"


def test_a_writer_list_closes_at_an_error_only_when_it_has_no_writer():
    # Records always win: a writer list followed by an error line keeps its writers.
    text = (CMD / "vssadmin_writers_en.txt").read_text(encoding="utf-8") + "\nError: later\n"
    (listing,) = of(vssadmin.parse(Text.of(text, "w.txt")), "vss_writer_list")
    assert listing["count"] == 3


@pytest.mark.parametrize(
    ("writers", "fires"),
    [("vssadmin_refused_writers_en.txt", False), ("vssadmin_writers_empty_en.txt", True)],
)
def test_shared_eventsystem_diagnosis_needs_a_real_empty_list(
    tmp_path: Path, writers: str, fires: bool
):
    folder = tmp_path / "case"
    folder.mkdir()
    src = FIX / writers if (FIX / writers).exists() else CMD / writers
    shutil.copyfile(src, folder / "vssadmin.txt")
    shutil.copyfile(CMD / "tasklist_svc_en.txt", folder / "tasklist.txt")
    out = tmp_path / "report"
    res = run_cli("triage", folder, "--out", out, "--json", evidence=[folder])
    assert res.rc in (0, 1), res.stdout + res.stderr
    ids = {d["id"] for d in res.json()["diagnoses"]}
    assert ("vss.writers-missing.eventsystem-shared-host" in ids) is fires


# ---------------------------------------------------------------- ConvertTo-Json objects
def test_json_objects_become_their_own_kinds_not_vms():
    expect = {
        "ps_vmsnapshot_ps7.json": ("checkpoint", 3),
        "ps_vmsnapshot_ps51.json": ("checkpoint", 3),
        "ps_vmharddiskdrive.json": ("vm_disk", 4),
        "ps_volume.json": ("volume", 3),
        "ps_vmhost.json": ("vm_host", 1),
    }
    for name, (kind, count) in expect.items():
        found = read(FIX / name)
        assert [f.kind for f in found] == [kind] * count, name
    for name in ("get_vmsnapshot", "get_vmharddiskdrive", "get_volume", "get_vmhost"):
        assert "vm" not in kinds(read(COLLECT / "any" / f"{name}.json")), name
    # Get-VM objects carry ParentSnapshotName too: they stay VMs.
    assert kinds(read(COLLECT / "any" / "get_vm.json")) == {"vm"}
    assert kinds(read(CMD / "get_vm.json")) == {"vm"}


def test_a_dvd_drive_is_not_a_disk():
    assert read(FIX / "ps_vmdvddrive.json") == []


def _attrs(facts: list[Fact], kind: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in f.attributes.items() if k not in ("confidence", "properties")}
        for f in facts
        if f.kind == kind
    ]


def test_checkpoints_from_a_table_and_from_json_are_the_same_facts():
    table = _attrs(read(FIX / "ps_vmsnapshot_table_en.txt"), "checkpoint")
    as_json = _attrs(read(FIX / "ps_vmsnapshot_ps7.json"), "checkpoint")
    # The JSON names each VM's id too; the default table has no such column.
    assert all(c["vm_id"] for c in as_json) and not any(c["vm_id"] for c in table)
    assert len(table) == 3 and table == [{**c, "vm_id": None} for c in as_json]
    assert [c["snapshot_type"] for c in as_json] == ["Standard", "Standard", "Recovery"]
    assert as_json[2]["creation_time"] == "2024-03-07T01:00:04"  # the host's local time
    assert as_json[2]["parent_checkpoint_name"] == "Before patching"


def test_disk_drives_from_a_table_and_from_json_are_the_same_facts():
    table = _attrs(read(FIX / "ps_vmharddiskdrive_table_en.txt"), "vm_disk")
    as_json = _attrs(read(FIX / "ps_vmharddiskdrive.json"), "vm_disk")
    assert all(d["vm_id"] for d in as_json) and not any(d["vm_id"] for d in table)
    assert len(table) == 4 and table == [{**d, "vm_id": None} for d in as_json]
    assert [d["controller_type"] for d in as_json] == ["SCSI", "SCSI", "IDE", "SCSI"]
    assert as_json[3]["disk_number"] == 3 and as_json[0]["disk_number"] is None


def test_volumes_from_a_table_and_from_json_agree_up_to_the_tables_rounding():
    table = _attrs(read(FIX / "ps_volume_table_en.txt"), "volume")
    as_json = _attrs(read(FIX / "ps_volume.json"), "volume")
    assert len(table) == len(as_json) == 3
    for t, j in zip(table, as_json, strict=True):
        exact = {k: v for k, v in j.items() if k not in ("size", "free")}
        assert {k: v for k, v in t.items() if k not in ("size", "free")} == exact
        for key in ("size", "free"):
            # The table prints three significant digits: within 0.5 % (or both 0).
            assert abs(t[key] - j[key]) <= j[key] * 0.005, (key, t, j)
    assert [(v["drive_letter"], v["filesystem"], v["health"]) for v in as_json] == [
        ("C", "NTFS", "Healthy"),
        ("D", "ReFS", "Healthy"),
        ("E", "NTFS", "Warning"),
    ]
    assert as_json[2]["operational_status"] == "Degraded" and as_json[2]["free"] == 0


def test_windows_powershell_json_dates_are_utc_and_enums_named():
    found = _attrs(read(FIX / "ps_vmsnapshot_ps51.json"), "checkpoint")
    assert [c["snapshot_type"] for c in found] == ["AppConsistentReplica", "Recovery", "Missing"]
    raw = json.loads((FIX / "ps_vmsnapshot_ps51.json").read_text(encoding="utf-8"))
    ms = int(raw[1]["CreationTime"].strip("\\/").removeprefix("Date(").removesuffix(")"))
    oracle = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # "\/Date(ms)\/" is UTC: the host's local time is not known from it, and not invented.
    assert found[1]["creation_time"] is None and found[1]["creation_time_utc"] == oracle
    assert found[2]["creation_time"] is None and "creation_time_utc" not in found[2]
    assert found[2]["path"] is None


@pytest.mark.parametrize(
    ("value", "local", "utc"),
    [
        ("/Date(1709773204000)/", None, "2024-03-07T01:00:04Z"),
        ("/Date(1709773204000+0900)/", "2024-03-07T10:00:04", "2024-03-07T01:00:04Z"),
        ("2024-03-07T10:00:04.0090000+09:00", "2024-03-07T10:00:04", None),
        ("2024-03-07T01:00:04Z", None, "2024-03-07T01:00:04Z"),
        (
            {"value": "/Date(1709773204000)/", "DateTime": "Thursday, March 7, 2024 10:00:04 AM"},
            "2024-03-07T10:00:04",
            "2024-03-07T01:00:04Z",
        ),
        (
            {"value": "/Date(1709773204000)/", "DateTime": "2024年3月7日 10:00:04"},
            "2024-03-07T10:00:04",
            "2024-03-07T01:00:04Z",
        ),
        ("/Date(99999999999999999)/", None, None),
        ("yesterday", None, None),
        (None, None, None),
    ],
)
def test_json_times(value: Any, local: str | None, utc: str | None):
    assert powershell.json_time(value) == (local, utc)


@pytest.mark.parametrize(
    "name", ["ps_vmhost.json", "ps_vmhost_list_en.txt", "ps_vmhost_table_en.txt"]
)
def test_the_vm_host(name: str):
    (host,) = of(read(FIX / name), "vm_host")
    assert host["name"] == "HV-HOST02" and host["logical_processors"] == 48
    assert host["memory_capacity"] == 384 * 1024**3
    if name != "ps_vmhost_table_en.txt":
        assert host["virtual_hard_disk_path"] == (
            "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks"
        )
        assert host["virtual_machine_path"] == "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V"
        assert host["numa_spanning_enabled"] is False
    else:  # the default table shows neither the paths nor NUMA spanning: unknown, not False
        assert host["virtual_hard_disk_path"] is None and host["numa_spanning_enabled"] is None


# ---------------------------------------------------------------- manage-bde -status
def test_manage_bde_english_with_a_locked_volume():
    vols = [f for f in read(FIX / "manage_bde_locked_en.txt") if f.kind == "bitlocker_volume"]
    assert [v.provenance.locator for v in vols] == ["line:7", "line:22", "line:38"]
    c, e, rec = (v.attributes for v in vols)
    assert c == {
        "volume": "C:",
        "label": None,
        "role": "OS Volume",
        "size": "222.85 GB",
        "size_bytes": round(222.85 * 1024**3),
        "version": "2.0",
        "conversion_status": "Fully Encrypted",
        "percentage_encrypted": 100.0,
        "encryption_method": "XTS-AES 256",
        "protection_status": "Protection On",
        "protection_on": True,
        "lock_status": "Unlocked",
        "locked": False,
        "identification_field": "Unknown",
        "key_protectors": ["TPM", "Numerical Password"],
        "auto_unlock": None,
    }
    assert (e["volume"], e["label"], e["locked"], e["lock_status"]) == (
        "E:",
        "VMSTORE",
        True,
        "Locked",
    )
    # What a locked volume cannot say is unknown, not zero.
    assert e["percentage_encrypted"] is None and e["size_bytes"] is None
    assert e["protection_on"] is None and e["key_protectors"] == ["Numerical Password", "Password"]
    assert e["auto_unlock"] == "Disabled"
    assert rec["volume"] == "\\\\?\\Volume{2f4e6a8c-1b3d-4f5a-9c7e-0d2b4f6a8c1e}\\"
    assert rec["key_protectors"] == [] and rec["percentage_encrypted"] == 0.0
    assert all("confidence" not in v.attributes for v in vols)


def test_manage_bde_japanese():
    c, d = of(read(FIX / "manage_bde_ja.txt"), "bitlocker_volume")
    assert (c["volume"], c["role"], c["conversion_status"]) == (
        "C:",
        "OS ボリューム",
        "暗号化は完全に解除されています",
    )
    assert c["percentage_encrypted"] == 0.0 and c["protection_on"] is False
    assert c["locked"] is False and c["key_protectors"] == []
    assert (d["volume"], d["label"], d["role"]) == ("D:", "仮想マシン", "データ ボリューム")
    assert d["locked"] is True and d["lock_status"] == "ロック"
    assert d["key_protectors"] == ["数字パスワード", "パスワード"] and d["auto_unlock"] == "無効"
    (ja,) = [v for v in of(read(COLLECT / "ja" / "manage_bde_status.txt"), "bitlocker_volume")]
    assert ja["conversion_status"] == "完全に復号化されています" and ja["size"] == "126.45 GB"


def test_manage_bde_fragments():
    (fenced,) = of(read(FIX / "manage_bde_fragment_fenced_en.txt"), "bitlocker_volume")
    assert fenced["volume"] == "C:" and fenced["conversion_status"] == "Fully Decrypted"
    assert fenced["identification_field"] is None and fenced["key_protectors"] == []
    (quoted,) = of(read(FIX / "manage_bde_fragment_quoted_en.txt"), "bitlocker_volume")
    assert quoted["volume"] is None and quoted["locked"] is True
    assert quoted["percentage_encrypted"] == 100.0  # "100,0%"
    assert 0 < quoted["confidence"] < 1.0


@pytest.mark.parametrize("name", ["manage_bde_denied_en.txt", "manage_bde_nearmiss.txt"])
def test_manage_bde_near_misses(name: str):
    assert not of(read(FIX / name), "bitlocker_volume")


# ---------------------------------------------------------------- icacls
def _entries(acl: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (e["principal"], e["rights"], e["inherited"], e["flags"], e["deny"]) for e in acl["entries"]
    ]


def test_icacls_of_a_disk_names_its_vm():
    (acl,) = of(read(FIX / "icacls_vhdx_en.txt"), "acl")
    assert acl["path"] == "D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01.vhdx"
    assert _entries(acl) == [
        ("NT VIRTUAL MACHINE\\6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7", ["R", "W"], False, [], False),
        ("NT AUTHORITY\\SYSTEM", ["F"], True, [], False),
        ("BUILTIN\\Administrators", ["F"], True, [], False),
        ("NT VIRTUAL MACHINE\\Virtual Machines", ["RX"], True, [], False),
    ]
    assert acl["vm_ids"] == ["6f1c0f4e-2b7a-4c55-9a61-0d2e54b1c3a7"] and acl["error"] is None
    assert "confidence" not in acl


def test_icacls_of_a_tree_gives_one_fact_per_path():
    found = [f for f in read(FIX / "icacls_tree_en.txt") if f.kind == "acl"]
    assert [(f.provenance.locator, f.attributes["error"]) for f in found] == [
        ("line:2", None),
        ("line:7", None),
        ("line:12", None),
        ("line:15", "access-denied"),
    ]
    folder, disk, child, denied = (f.attributes for f in found)
    assert _entries(folder)[2] == ("CREATOR OWNER", ["F"], False, ["OI", "CI", "IO"], False)
    assert _entries(folder)[3][3] == ["OI", "CI", "NP"] and folder["vm_ids"] == []
    assert _entries(disk)[3] == ("CONTOSO\\backup-svc", ["W", "D"], True, [], True)
    # An unresolved VM account: S-1-5-83-1-a-b-c-d holds the VM id's bytes, little-endian
    # (sql01's id: data1 0x0B7D2A51, data2|data3 0x93C4 0x4E0F, then 8F3E5C1A 2D9E7B60).
    sid = disk["entries"][0]["principal"]
    parts = [int(x) for x in sid.split("-")[5:]]
    assert parts == [0x0B7D2A51, (0x4E0F << 16) | 0x93C4, 0x1A5C3E8F, 0x607B9E2D]
    assert disk["vm_ids"] == ["0b7d2a51-93c4-4e0f-8f3e-5c1a2d9e7b60"]
    assert child["path"].endswith("sql01_4E1A2B3C-5D6E-4F70-8192-A3B4C5D6E7F8.avhdx")
    assert child["vm_ids"] == []  # the checkpoint disk lacks its VM's grant
    assert denied["path"] == "D:\\Hyper-V\\sql01\\Virtual Hard Disks\\old-copy.vhdx"
    assert denied["entries"] == []


def test_the_vm_sid_conversion_matches_uuid_byte_order():
    vm = uuid.UUID("6f1c0f4e-2b7a-4c55-9a61-0d2e54b1c3a7")
    sid = "S-1-5-83-1-" + "-".join(str(n) for n in struct.unpack("<4I", vm.bytes_le))
    text = f"D:\\x.vhdx {sid}:(R,W)\n"
    (acl,) = of(icacls.parse(Text.of(text, "i.txt")), "acl")
    assert acl["vm_ids"] == [str(vm)]


def test_icacls_japanese_with_its_errors():
    found = [f for f in read(FIX / "icacls_ja.txt") if f.kind == "acl"]
    ok, missing, denied = (f.attributes for f in found)
    assert ok["path"] == "E:\\仮想マシン\\app01\\app01.vhdx"
    assert ok["vm_ids"] == ["0b7d2a51-93c4-4e0f-8f3e-5c1a2d9e7b60"] and len(ok["entries"]) == 4
    assert (missing["path"], missing["error"]) == (
        "E:\\仮想マシン\\app01\\app01-old.vhdx",
        "not-found",
    )
    assert (denied["path"], denied["error"]) == (
        "E:\\仮想マシン\\app01\\private.avhdx",
        "access-denied",
    )
    assert [f.provenance.locator for f in found] == ["line:2", "line:6", "line:10"]


def test_icacls_path_wrapped_by_the_console():
    (acl,) = of(read(FIX / "icacls_wrapped_en.txt"), "acl")
    assert acl["path"] == (
        "D:\\Hyper-V\\Virtual Machines\\app02\\Virtual Hard Disks\\"
        "app02_0D1E2F30-4152-4637-8495-A6B7C8D9E0F1.avhdx"
    )
    assert [e["principal"] for e in acl["entries"]] == [
        "NT AUTHORITY\\SYSTEM",
        "BUILTIN\\Administrators",
        "BUILTIN\\Users",
    ]
    assert acl["vm_ids"] == [] and 0 < acl["confidence"] < 1.0


def test_icacls_grant_is_no_listing():
    assert not of(read(FIX / "icacls_grant_nearmiss_en.txt"), "acl")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_collectors_icacls_fixture(lang: str):
    text = (COLLECT / lang / "icacls.txt").read_text(encoding="utf-8")
    text = text.replace("%PATH%", "D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01.avhdx")
    (acl,) = of(facts_from_text(text, "icacls.txt"), "acl")
    assert acl["path"] == "D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01.avhdx"
    assert acl["vm_ids"] == ["6f1c0f4e-2b7a-4c55-9a61-0d2e54b1c3a7"]
    assert len(acl["entries"]) == (6 if lang == "en" else 5)


def test_japanese_outputs_in_the_console_code_page():
    # The collector saves what Japanese Windows prints: CP932 bytes.
    for name in ("manage_bde_ja.txt", "icacls_ja.txt", "vssadmin_refused_ja.txt"):
        data = (FIX / name).read_text(encoding="utf-8").encode("cp932")
        facts = facts_from_bytes(data, name).facts
        utf8 = read(FIX / name)
        assert [(f.kind, f.attributes) for f in facts if f.kind != "signal"] == [
            (f.kind, f.attributes) for f in utf8 if f.kind != "signal"
        ]


# ---------------------------------------------------------------- damaged input
SAMPLES = [
    FIX / "manage_bde_locked_en.txt",
    FIX / "manage_bde_ja.txt",
    FIX / "icacls_tree_en.txt",
    FIX / "icacls_ja.txt",
    FIX / "vssadmin_refused_then_elevated_en.txt",
]


@settings(max_examples=60, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.integers(min_value=0, max_value=4000),
    junk=st.text(alphabet=" \t:()[]%\\\u00a0\u3000>`-ア0", max_size=40),
    at=st.integers(min_value=0, max_value=4000),
)
def test_mangled_outputs_never_crash(sample: Path, cut: int, junk: str, at: int):
    text = sample.read_text(encoding="utf-8")[:cut]
    text = text[:at] + junk + text[at:]
    doc = Text.of(text, "x.txt")
    for parse in (manage_bde.parse, icacls.parse, vssadmin.parse, powershell.parse):
        for fact in parse(doc):
            json.dumps(fact.attributes)  # plain data
            if fact.kind == "vss_writer_list":
                # A cut writer list never counts writers it did not see.
                assert fact.attributes["count"] == len(fact.attributes["names"])


@settings(max_examples=40, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["SnapshotType", "ControllerType", "ControllerLocation",
                                         "DriveLetter", "SizeRemaining", "VMName", "Name",
                                         "CreationTime", "VirtualMachinePath",
                                         "LogicalProcessorCount", "HealthStatus", "Path"]),
                        c, max_size=8),
                    max_leaves=20))  # fmt: skip
def test_any_json_gives_facts_or_nothing(value: Any):
    found = powershell.parse_json(json.dumps(value), "x.json")
    for fact in found or []:
        json.dumps(fact.attributes)
