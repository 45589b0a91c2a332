"""Evidence to facts: every command format in English and Japanese and in every encoding, event
exports in every form, transcripts, bundles; the field values checked, not just the count."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from hvrescue.facts.model import Fact
from hvrescue.logs.collect import collect, facts_from_bytes
from tests.helpers import SHARED, run_cli

FIX = Path(__file__).parent / "fixtures" / "commands"
SEEDS = SHARED / "seeds"


def encodings(text: str) -> dict[str, bytes]:
    crlf = text.replace("\n", "\r\n")
    out = {
        "utf-8": text.encode("utf-8"),
        "utf-8-bom-crlf": b"\xef\xbb\xbf" + crlf.encode("utf-8"),
        "utf-16-le-bom": b"\xff\xfe" + crlf.encode("utf-16-le"),
        "utf-16-le-nobom": crlf.encode("utf-16-le"),
        "utf-16-be-bom": b"\xfe\xff" + text.encode("utf-16-be"),
    }
    # Every fixture is CP932-encodable (Shift_JIS covers ASCII and the Japanese used here).
    out["cp932-crlf"] = crlf.encode("cp932")
    return out


def facts_of(name: str, data: bytes | None = None) -> list[Fact]:
    raw = data if data is not None else (FIX / name).read_bytes()
    result = facts_from_bytes(raw, name)
    assert not result.unrecognised, result.unrecognised
    return result.facts


def kinds(facts: list[Fact], kind: str) -> list[dict]:
    return [f.attributes for f in facts if f.kind == kind]


ALL_TEXT = sorted(p.name for p in FIX.iterdir() if p.suffix in (".txt", ".csv", ".xml", ".json"))


@pytest.mark.parametrize("name", ALL_TEXT)
def test_every_encoding_gives_the_same_facts(name: str):
    text = (FIX / name).read_text(encoding="utf-8")
    reference = [(f.kind, f.attributes) for f in facts_of(name)]
    assert reference
    for label, data in encodings(text).items():
        got = [(f.kind, f.attributes) for f in facts_of(name, data)]
        assert got == reference, label


def test_vssadmin_writers_english_fields():
    facts = facts_of("vssadmin_writers_en.txt")
    writers = kinds(facts, "vss_writer")
    assert [w["name"] for w in writers] == ["Task Scheduler Writer", "System Writer", "ASR Writer"]
    system = writers[1]
    assert system["state_code"] == 8 and system["state"] == "failed_at_prepare_snapshot"
    assert system["last_error"] == "Timed out" and system["last_error_ok"] is False
    assert system["writer_id"] == "{e8132975-6f93-4464-a53e-1050253ae220}"
    assert kinds(facts, "vss_writer_list")[0]["count"] == 3


def test_vssadmin_writers_japanese_fields():
    writers = kinds(facts_of("vssadmin_writers_ja.txt"), "vss_writer")
    assert writers[0]["state"] == "stable" and writers[0]["last_error_ok"] is True
    assert writers[1]["name"] == "WMI Writer" and writers[1]["state_code"] == 7
    assert writers[1]["last_error_ok"] is False


@pytest.mark.parametrize("name", ["vssadmin_writers_empty_en.txt", "vssadmin_writers_empty_ja.txt"])
def test_empty_writer_list_is_a_fact(name: str):
    facts = facts_of(name)
    assert [f.kind for f in facts] == ["vss_writer_list"]
    assert facts[0].attributes["count"] == 0


def test_vssadmin_providers():
    en = kinds(facts_of("vssadmin_providers_en.txt"), "vss_provider")
    assert en[1] == {
        "name": "Microsoft Software Shadow Copy provider 1.0",
        "type": "System",
        "provider_id": "{b5946137-7b9f-4925-af80-51abd60b20d5}",
        "version": "1.0.0.7",
    }
    ja = kinds(facts_of("vssadmin_providers_ja.txt"), "vss_provider")
    assert ja[0]["type"] == "システム" and ja[0]["version"] == "1.0.0.7"


def test_seed_002_japanese_article():
    if not SEEDS.is_dir():
        pytest.skip("../shared/seeds is not present")
    path = next(SEEDS.glob("002_*.txt"))
    result = collect([str(path)])
    writers = kinds(result.facts, "vss_writer")
    assert [w["name"] for w in writers] == [
        "System Writer",
        "ASR Writer",
        "Registry Writer",
        "WMI Writer",
        "COM+ REGDB Writer",
        "Shadow Copy Optimization Writer",
    ]
    assert all(w["state"] == "stable" and w["last_error_ok"] for w in writers)
    listings = kinds(result.facts, "vss_writer_list")
    assert [x["count"] for x in listings] == [6, 0]  # healthy example, then the empty list
    groups = [(p["pid"], p["services"]) for p in kinds(result.facts, "process")]
    assert groups == [
        (816, ["EventSystem", "FontCache", "netprofm", "nsi"]),
        (816, ["EventSystem", "FontCache", "netprofm", "nsi"]),
        (816, ["FontCache", "netprofm", "nsi"]),
        (1025, ["EventSystem"]),
    ]
    events = kinds(result.facts, "event")
    assert [(e["provider"], e["event_id"], e["level_name"]) for e in events] == [
        ("VSS", 8193, "error"),
        ("VSS", 13, "error"),
    ]
    assert "0x800401fb" in events[0]["message"] and "CEventSystem" in events[1]["message"]


def test_tasklist_wrapped_services_and_japanese_na():
    procs = kinds(facts_of("tasklist_svc_en.txt"), "process")
    by_pid = {p["pid"]: p for p in procs}
    assert by_pid[876]["services"] == [
        "BrokerInfrastructure",
        "DcomLaunch",
        "LSM",
        "PlugPlay",
        "Power",
        "SystemEventsBroker",
    ]
    assert by_pid[1024]["shared"] is True and by_pid[1310]["shared"] is False
    assert by_pid[4]["services"] == [] and by_pid[4]["image"] == "System"
    ja = {p["pid"]: p for p in kinds(facts_of("tasklist_svc_ja.txt"), "process")}
    assert ja[0]["services"] == [] and ja[816]["services"][0] == "EventSystem"


def test_sc_qc_and_queryex():
    cfg = kinds(facts_of("sc_qc_en.txt"), "service_config")[0]
    assert cfg["service_name"] == "EventSystem"
    assert cfg["type"] == {"code": 0x20, "name": "WIN32_SHARE_PROCESS"}
    assert cfg["shared_process"] is True and cfg["own_process"] is False
    assert cfg["start_type"] == {"code": 2, "name": "AUTO_START"}
    assert cfg["dependencies"] == ["rpcss", "EventLog"]
    assert cfg["service_start_name"] == "NT AUTHORITY\\LocalService"
    status = {s["service_name"]: s for s in kinds(facts_of("sc_queryex_en.txt"), "service_status")}
    assert status["CryptSvc"]["running"] is False
    assert status["CryptSvc"]["state"] == {"code": 1, "name": "STOPPED"}
    assert status["EventSystem"]["running"] is True and status["EventSystem"]["pid"] == 1024
    assert "NOT_PAUSABLE" in status["EventSystem"]["state_flags"]


def test_dism_packages_online_and_offline_image():
    en = kinds(facts_of("dism_packages_en.txt"), "package")
    assert en[0]["kb"] == "KB5034768" and en[0]["state_code"] == "install_pending"
    assert en[0]["image"] == "online" and en[0]["image_version"] == "10.0.17763.5329"
    assert en[0]["install_time_local"] == "2024-02-14T03:04:00"
    assert en[1]["state_code"] == "superseded"
    ja = kinds(facts_of("dism_packages_ja.txt"), "package")
    assert ja[0]["identity"].startswith("Package_for_KB5034768")
    assert ja[0]["state_code"] == "install_pending" and ja[0]["image"] == "D:\\"
    assert (
        ja[1]["state_code"] == "installed" and ja[0]["install_time_local"] == "2024-02-14T03:04:00"
    )


@pytest.mark.parametrize(
    "name,source",
    [
        ("get_hotfix_en.txt", "get-hotfix"),
        ("get_hotfix_ja.txt", "get-hotfix"),
        ("wmic_qfe_en.txt", "wmic-qfe"),
    ],
)
def test_hotfix_tables(name: str, source: str):
    fixes = kinds(facts_of(name), "hotfix")
    assert fixes and all(f["source"] == source for f in fixes)
    assert fixes[0]["kb"] == "KB5008868" and fixes[0]["installed_on_local"].startswith("2022-01-12")
    assert fixes[0]["computer"] == "HV-HOST01"
    assert fixes[-1]["kb"] == "KB5009624"


def test_systeminfo_english_corpus_and_japanese():
    en = collect([str(SHARED / "corpus/public/text/jc/systeminfo-windows-2012r2.txt")])
    info = kinds(en.facts, "system_info")[0]
    assert info["os_build"] == 9600 and info["hypervisor_detected"] is True
    assert len(kinds(en.facts, "hotfix")) == 5
    ja = facts_of("systeminfo_ja.txt")
    info = kinds(ja, "system_info")[0]
    assert info["host_name"] == "HV-HOST01" and info["os_build"] == 9600
    assert info["system_boot_time_local"] == "2022-01-12T03:15:02"
    assert info["hypervisor_detected"] is True
    assert [h["kb"] for h in kinds(ja, "hotfix")] == ["KB5008868", "KB5008883", "KB5009624"]


def test_bcdedit_hypervisorlaunchtype():
    en = kinds(facts_of("bcdedit_en.txt"), "bcd_entry")
    assert [e["identifier"] for e in en] == ["{bootmgr}", "{current}"]
    assert en[1]["hypervisorlaunchtype"] == "Auto"
    assert en[0]["elements"]["displayorder"] == [
        "{current}",
        "{2f3f1c4c-7a3b-11ec-8d3d-0242ac130003}",
    ]
    ja = kinds(facts_of("bcdedit_ja.txt"), "bcd_entry")
    assert ja[1]["section"] == "Windows ブート ローダー" and ja[1]["hypervisorlaunchtype"] == "Off"


def test_get_vm_and_get_vhd_list_and_json():
    vms = kinds(facts_of("get_vm_fl.txt"), "vm")
    assert [(v["name"], v["state"], v["generation"]) for v in vms] == [
        ("web01", "Off", 2),
        ("sql01", "Saved", 1),
    ]
    vm = kinds(facts_of("get_vm.json"), "vm")[0]
    assert vm["state"] == "Running" and vm["vm_id"] == "6f1c0f4e-2b7a-4c55-9a61-0d2e54b1c3a7"
    vhd = kinds(facts_of("get_vhd_fl.txt"), "vhd")[0]
    assert vhd["vhd_type"] == "Differencing" and vhd["size"] == 8388608
    assert vhd["path"].endswith("4B1C3A7.avhdx")  # the wrapped value is joined
    assert vhd["parent_path"].endswith("web01.vhdx")
    js = kinds(facts_of("get_vhd.json"), "vhd")[0]
    assert js["vhd_format"] == "VHDX" and js["vhd_type"] == "Dynamic" and js["parent_path"] is None


def test_transcript_yields_each_commands_facts():
    facts = facts_of("transcript_en.txt")
    assert [f.kind for f in facts] == [
        "vss_writer_list",
        "process",
        "process",
        "service_security",
        "service_status",
        "bcd_entry",
    ]
    assert facts[0].attributes["count"] == 0
    security = facts[3].attributes
    assert security["service_name"] == "cryptsvc" and security["service_name_from"] == "command"
    assert [a["sid"] for a in security["dacl"]] == ["SY", "BA", "IU"]
    assert security["dacl"][0]["rights_names"][:2] == [
        "SERVICE_QUERY_CONFIG",
        "SERVICE_QUERY_STATUS",
    ]
    assert security["sacl"][0]["type"] == "audit"
    assert facts[5].attributes["hypervisorlaunchtype"] == "Auto"


def test_sdshow_saved_to_a_file_named_after_the_service(tmp_path: Path):
    path = tmp_path / "EventSystem.txt"
    path.write_text("\nD:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCLCSWLOCRRC;;;IU)\n\n")
    fact = collect([str(path)]).facts[0]
    assert fact.attributes["service_name"] == "EventSystem"
    assert fact.attributes["service_name_from"] == "file_name"


def test_event_text_english_and_japanese():
    en = kinds(facts_of("events_text_en.txt"), "event")
    assert [(e["channel"], e["provider"], e["event_id"], e["level_name"]) for e in en] == [
        ("System", "Microsoft-Windows-Hyper-V-Hypervisor", 80, "error"),
        (
            "Microsoft-Windows-Hyper-V-Worker-Admin",
            "Microsoft-Windows-Hyper-V-Worker",
            3112,
            "error",
        ),
    ]
    assert "0xC00000BB" in en[0]["message"] and en[0]["time_local"] == "2022-01-12T03:15:23"
    ja = kinds(facts_of("events_text_ja.txt"), "event")[0]
    assert ja["event_id"] == 80 and ja["level_name"] == "error" and "0xC00000BB" in ja["message"]
    assert ja["computer"] == "HV-HOST01"


def test_event_xml_exports():
    wev = kinds(facts_of("events_wevtutil.xml"), "event")
    assert wev[0]["record_id"] == 48211 and wev[0]["event_id"] == 80
    assert wev[0]["data"] == {"ErrorCode": "0xc00000bb"}
    assert wev[0]["message"].startswith("Hypervisor launch failed")
    assert wev[0]["time"] == "2022-01-12T03:15:23.4567890Z"
    assert wev[1]["qualifiers"] == 16384 and wev[1]["source_name"] == "Service Control Manager"
    saved = kinds(facts_of("events_saved.xml"), "event")
    assert [(e["provider"], e["event_id"], e["record_id"]) for e in saved] == [
        ("VSS", 8193, 5521),
        ("VSS", 13, 5522),
    ]
    assert isinstance(saved[0]["data"], list) and "0x800401fb" in saved[0]["data"][1]
    assert saved[1]["data"][1] == "CEventSystem"


def test_event_csv_exports():
    en = kinds(facts_of("events_viewer_en.csv"), "event")
    assert [(e["provider"], e["event_id"], e["level_name"]) for e in en] == [
        ("VSS", 8193, "error"),
        ("VSS", 13, "error"),
        ("Microsoft-Windows-Winlogon", 7001, "information"),
    ]
    assert en[0]["time_local"] == "2018-10-01T21:00:19" and "Subscribing Writer" in en[0]["message"]
    ja = kinds(facts_of("events_viewer_ja.csv"), "event")
    assert ja[1]["event_id"] == 13 and ja[1]["level_name"] == "error"
    assert ja[1]["time_local"] == "2018-05-09T21:00:19" and "CEventSystem" in ja[1]["message"]
    ps = kinds(facts_of("events_getwinevent.csv"), "event")[0]
    assert (ps["channel"], ps["provider"], ps["event_id"], ps["record_id"]) == (
        "System",
        "Microsoft-Windows-Hyper-V-Hypervisor",
        80,
        48211,
    )
    assert ps["level_name"] == "error" and ps["time_local"] == "2022-01-12T03:15:23"


def test_zip_bundle_and_unrecognised(tmp_path: Path):
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(FIX / "vssadmin_writers_ja.txt", "host/vss.txt")
        zf.writestr("host/notes.bin", b"\x00\x01\x02" * 100)
        zf.write(
            SHARED / "corpus/public/evtx/EVTX-to-MITRE-Attack/ID7009-service-timeout.evtx",
            "host/logs/System.evtx",
        )
    result = run_cli("facts", "--json", bundle)
    assert result.rc == 0
    data = result.json()
    paths = {f["provenance"]["path"] for f in data["facts"]}
    assert f"{bundle}!/host/vss.txt" in paths and f"{bundle}!/host/logs/System.evtx" in paths
    events = [f for f in data["facts"] if f["kind"] == "event"]
    assert len(events) == 3 and all("record_id" in e["attributes"] for e in events)
    assert data["unrecognised"] == [{"path": f"{bundle}!/host/notes.bin", "reason": "binary"}]


def test_facts_json_shape_and_human_output():
    data = run_cli("facts", "--json", FIX / "sc_qc_en.txt").json()
    fact = data["facts"][0]
    assert set(fact) == {"kind", "attributes", "provenance"}
    assert fact["provenance"] == {"path": str(FIX / "sc_qc_en.txt"), "locator": "line:3"}
    human = run_cli("--lang", "ja", "facts", FIX / "tasklist_svc_ja.txt")
    assert human.rc == 0 and "ファクト 3 件" in human.stdout


def test_damaged_zip_and_empty_file(tmp_path: Path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\xff" * 200)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    data = run_cli("facts", "--json", broken, empty).json()
    reasons = {u["path"]: u["reason"] for u in data["unrecognised"]}
    assert (
        reasons[str(broken)].startswith("damaged-zip") and reasons[str(empty)] == "no-known-content"
    )


def test_dism_table_format():
    packages = kinds(facts_of("dism_packages_table_en.txt"), "package")
    assert [(p["kb"], p["state_code"]) for p in packages] == [
        ("KB5034768", "install_pending"),
        (None, "installed"),
    ]
    assert packages[0]["image"] == "online" and packages[0]["release_type"] == "Security Update"


def test_incident_folder_with_disks_and_logs(tmp_path: Path, corpus_dir: Path):
    folder = tmp_path / "incident"
    folder.mkdir()
    shutil.copyfile(corpus_dir / "dissect-hypervisor/dynamic.vhdx", folder / "web01.vhdx")
    shutil.copyfile(FIX / "tasklist_svc_ja.txt", folder / "tasklist.txt")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 5000)
    data = run_cli("facts", "--json", folder, evidence=[folder]).json()
    reasons = {Path(u["path"]).name: u["reason"] for u in data["unrecognised"]}
    assert reasons == {"web01.vhdx": "disk-image", "photo.jpg": "binary"}
    assert {f["kind"] for f in data["facts"]} == {"process"}


def test_copied_event_with_its_xml_is_enriched():
    event = kinds(facts_of("events_text_with_xml_en.txt"), "event")
    assert len(event) == 1
    e = event[0]
    assert (e["provider"], e["event_id"], e["record_id"], e["channel"]) == (
        "VSS",
        8193,
        5521,
        "Application",
    )
    assert (
        e["time"] == "2018-10-01T12:00:19.000000000Z" and e["time_local"] == "2018-10-01T21:00:19"
    )
    assert e["data"] == ["CoCreateInstance", "hr = 0x800401fb, Object is not registered."]
    assert "Subscribing Writer" in e["message"] and e["format"] == "text"


def test_wmic_cr_cr_lf_line_ends():
    text = (FIX / "wmic_qfe_en.txt").read_text(encoding="utf-8").replace("\n", "\r\r\n")
    fixes = kinds(facts_of("wmic_qfe_en.txt", b"\xff\xfe" + text.encode("utf-16-le")), "hotfix")
    assert [f["kb"] for f in fixes] == ["KB5008868", "KB5009624"]


def test_tasklist_filtered_through_findstr_into_a_file(tmp_path: Path):
    path = tmp_path / "tasklist.txt"
    path.write_bytes(
        b"svchost.exe                    816 EventSystem, FontCache, netprofm, nsi\r\n"
        b"svchost.exe                   1025 CryptSvc\r\n"
    )
    procs = kinds(collect([str(path)]).facts, "process")
    assert [(p["pid"], p["shared"]) for p in procs] == [(816, True), (1025, False)]
    # Prose that happens to hold a number is not a process list.
    prose = tmp_path / "notes.txt"
    prose.write_text("We restarted the server 3 times today.\n")
    assert not collect([str(prose)]).facts


@pytest.mark.parametrize(
    "name,expected",
    [
        # A known service is named in its own spelling, whatever the file name's case.
        ("sc sdshow cryptsvc.txt", "CryptSvc"),
        ("sdshow_EventSystem.log", "EventSystem"),
        ("cryptsvc-sddl-before.txt", "CryptSvc"),
        ("eventsystem.txt", "EventSystem"),
        ("sd-cryptsvc.txt", "CryptSvc"),
    ],
)
def test_sdshow_service_name_from_the_file_name(tmp_path, name, expected):
    from hvrescue.logs.collect import facts_from_file

    path = tmp_path / name
    path.write_text("\nD:(A;;CCLCSWRPWPDTLOCRRC;;;SY)S:(AU;FA;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)\n")
    [fact] = facts_from_file(str(path)).facts
    assert fact.attributes["service_name"] == expected
    assert fact.attributes["service_name_from"] == "file_name"


@pytest.mark.skipif(not hasattr(__import__("os"), "symlink"), reason="no symbolic links")
def test_facts_say_what_was_skipped_in_both_languages(tmp_path: Path):
    import os

    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copyfile(FIX / "sc_qc_en.txt", folder / "sc.txt")
    os.symlink(FIX / "tasklist_svc_en.txt", folder / "tasklist.txt")
    data = run_cli("facts", "--json", folder).json()
    assert data["skipped"] == [
        {
            "path": str(folder / "tasklist.txt"),
            "reason": "link-outside",
            "detail": str(FIX / "tasklist_svc_en.txt"),
        }
    ]
    assert {f["kind"] for f in data["facts"]} == {"service_config"}
    en = run_cli("facts", folder).stdout
    ja = run_cli("--lang", "ja", "facts", folder).stdout
    assert "Skipped:" in en and "not followed" in en
    assert "読み飛ばし" in ja and "たどっていません" in ja
