"""The host's storage as admins paste it (task H8): Get-PhysicalDisk, Get-VirtualDisk,
Get-StoragePool, Get-Disk, Get-StorageJob and Get-StorageSubSystem tables and lists read into
``storage_object`` facts, the rules that say what is broken under the VMs and the safe way back
(rules/field_hoststorage.yaml), and `hvrescue triage` end to end on posts as people write them
(tests/fixtures/field_hoststorage, sources in its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.collect_text import facts_from_text
from hvrescue.logs.commands.psstorage import size, statuses
from tests.helpers import JAPANESE, triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_hoststorage"
RULES = load_rules()
TB = 1 << 40
GB = 1 << 30


def read(text: str, path: str = "/evidence/pasted.txt") -> list[Fact]:
    return facts_from_text(text, path)


def fixture_facts(case: str) -> list[Fact]:
    (path,) = sorted((FIXTURES / case).iterdir())
    return read(path.read_text(encoding="utf-8"), str(path))


def storage(facts: list[Fact], what: str | None = None) -> list[dict[str, Any]]:
    return [
        f.attributes
        for f in facts
        if f.kind == "storage_object" and (what is None or f.attributes["object"] == what)
    ]


def serious(*items: tuple[str, dict[str, Any]]) -> list[str]:
    facts = [
        Fact(kind, attrs, Provenance("/evidence/pasted.txt", f"line:{i + 1}"))
        for i, (kind, attrs) in enumerate(items)
    ]
    return [
        d.rule.id
        for d in evaluate(RULES, facts)
        if SEVERITY_ORDER[d.severity] >= SEVERITY_ORDER["warning"]
    ]


def obj(what: str, **attrs: Any) -> tuple[str, dict[str, Any]]:
    return ("storage_object", {"object": what, **attrs})


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("OK", "OK"),
        ("Lost Communication", "Lost Communication"),
        ("{Degraded, Incomplete}", ["Degraded", "Incomplete"]),
        ("{Degraded}", "Degraded"),
        ("{}", None),
        ("", None),
    ],
)
def test_operational_status_is_kept_as_printed_and_a_list_split(printed, expected):
    assert statuses(printed) == expected


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("3.64 TB", round(3.64 * TB)),
        ("446.63 GB", round(446.63 * GB)),
        ("7 TB", 7 * TB),
        ("1000204886016", 1000204886016),
        ("50.00%", None),
        ("3.64 T", None),
        ("", None),
    ],
)
def test_sizes_are_bytes_where_a_unit_is_printed(printed, expected):
    assert size(printed) == expected


# --------------------------------------------------------------------------- tables and lists


def test_quoted_transcript_of_three_cmdlets_maps_pool_virtual_and_physical_disks():
    facts = fixture_facts("pool-degraded-en")
    pools = {p["name"]: p for p in storage(facts, "pool")}
    assert pools["VMPool"]["operational_status"] == "Degraded"
    assert pools["VMPool"]["health_status"] == "Warning"
    assert pools["VMPool"]["is_primordial"] is False and pools["VMPool"]["is_readonly"] is False
    assert pools["VMPool"]["size"] == round(14.55 * TB)
    assert pools["VMPool"]["allocated"] == round(7.03 * TB)
    assert pools["Primordial"]["is_primordial"] is True
    (vmstore,) = [v for v in storage(facts, "virtual_disk") if v["name"] == "VMStore"]
    assert vmstore["resiliency"] == "Mirror"
    assert vmstore["fault_domain_redundancy"] == 1
    assert vmstore["operational_status"] == "Degraded"
    assert vmstore["size"] == round(3.5 * TB) and vmstore["footprint_on_pool"] == 7 * TB
    drives = {d.get("serial"): d for d in storage(facts, "physical_disk")}
    assert len(storage(facts, "physical_disk")) == 5
    lost = drives["ZC1K81XA"]
    assert lost["name"] == "ATA ST4000NM0035-1V4"
    assert lost["operational_status"] == "Lost Communication"
    assert lost["health_status"] == "Warning"
    assert lost["usage"] == "Auto-Select" and lost["media_type"] == "HDD"
    assert lost["can_pool"] is False and lost["size"] == round(3.64 * TB)
    # The PERC's row has no serial: the blank cell is not read as the next column's value.
    (perc,) = [d for d in storage(facts, "physical_disk") if d["name"].startswith("DELL")]
    assert "serial" not in perc and perc["media_type"] == "Unspecified"


def test_quoted_and_plain_pastes_give_the_same_objects():
    path = next((FIXTURES / "pool-degraded-en").iterdir())
    text = path.read_text(encoding="utf-8")
    plain = "\n".join(line[2:] if line.startswith("> ") else line for line in text.splitlines())
    plain = plain.replace("\n>\n", "\n\n")
    quoted = storage(read(text))
    assert quoted and storage(read(plain)) == quoted


def test_format_list_under_another_cmdlets_prompt_is_read_by_its_columns():
    facts = fixture_facts("pool-degraded-list-ja")
    (space,) = storage(facts, "virtual_disk")
    assert space["name"] == "VM-DATA" and space["resiliency"] == "Parity"
    assert space["operational_status"] == ["Degraded", "Incomplete"]
    assert space["detached_reason"] == "None"
    # The physical disks' list follows the Get-VirtualDisk prompt without one of its own.
    drives = storage(facts, "physical_disk")
    assert [d["serial"] for d in drives] == [
        "S3Z9NB0K612345A",
        "S3Z9NB0K612346B",
        "S3Z9NB0K612347C",
    ]
    assert [d["operational_status"] for d in drives] == ["OK", "Lost Communication", "OK"]
    assert all(d["size"] == 1000204886016 and d["media_type"] == "SSD" for d in drives)


def test_a_table_wrapped_by_a_narrow_console_is_put_back_together():
    facts = fixture_facts("disk-predictive-wrapped")
    drives = storage(facts, "physical_disk")
    assert [d["serial"] for d in drives] == ["W46100AB", "W46100CD", "W46100EF"]
    failing = drives[1]
    assert failing["operational_status"] == "Predictive Failure"
    assert failing["health_status"] == "Warning"  # cut in two by the console: "He" / "althStatus"
    assert failing["bus_type"] == "SAS" and failing["allocated"] == round(1.2 * TB)
    assert all(f.attributes.get("confidence", 1) < 1 for f in facts if f.kind == "storage_object")


def test_storage_job_table_maps_state_and_progress():
    facts = fixture_facts("repair-running-en")
    (job,) = storage(facts, "job")
    assert job["name"] == "VMStore-Repair" and job["job_state"] == "Running"
    assert job["percent_complete"] == 37 and job["is_background_task"] is False
    assert job["elapsed_time"] == "02:14:33"
    assert job["bytes_processed"] == round(1.29 * TB) and job["bytes_total"] == round(3.5 * TB)


def test_storage_job_layout_of_the_2012_help_without_a_prompt():
    text = (
        "Name                  ElapsedTime           JobState              PercentComplete       "
        "IsBackgroundTask\n"
        "----                  -----------           --------              ---------------       "
        "----------------\n"
        "Regeneration          00:00:00              Running               50                    "
        "True\n"
    )
    (job,) = storage(read(text), "job")
    assert job["name"] == "Regeneration" and job["percent_complete"] == 50
    assert job["is_background_task"] is True


def test_get_disk_and_subsystem_and_pool_list():
    ja = fixture_facts("near-miss-healthy-ja")
    disks = storage(ja, "disk")
    assert [(d["number"], d["partition_style"]) for d in disks] == [(0, "GPT"), (3, "GPT")]
    assert disks[1]["name"] == "Microsoft Storage Space Device"
    assert disks[1]["operational_status"] == "Online"
    (pool,) = storage(ja, "pool")  # an indented (code block) Format-List without a prompt
    assert pool["name"] == "VMPool" and pool["size"] == 15998753177600
    en = fixture_facts("near-miss-healthy-en")
    (subsystem,) = storage(en, "subsystem")
    assert subsystem["name"] == "Windows Storage on HV01"
    assert subsystem["health_status"] == "Healthy"


def test_three_generic_columns_without_a_prompt_are_no_subsystem():
    text = (
        "FriendlyName HealthStatus OperationalStatus\n"
        "------------ ------------ -----------------\n"
        "Volume2      Warning      Degraded\n"
    )
    assert storage(read(text)) == []
    typed = "PS C:\\> Get-VirtualDisk | Select-Object FriendlyName, HealthStatus, OperationalStatus"
    typed += "\n\n"
    (space,) = storage(read(typed + text))
    assert space["object"] == "virtual_disk" and space["operational_status"] == "Degraded"


def test_a_status_cut_by_the_console_is_kept_unread_and_named():
    text = (
        "PS C:\\> Get-PhysicalDisk | Format-Table FriendlyName, SerialNumber, OperationalStatus\n\n"
        "FriendlyName         SerialNumber OperationalStatus\n"
        "------------         ------------ -----------------\n"
        "ATA ST4000NM0035-1V4 ZC1K81XA     Lost Communicat...\n"
    )
    (drive,) = storage(read(text))
    assert "operational_status" not in drive
    assert drive["truncated_fields"] == ["OperationalStatus"]
    assert serious(("storage_object", drive)) == []


def test_get_volume_and_get_vm_tables_still_map_as_before():
    facts = fixture_facts("ntfs-55-en")
    volumes = {f.attributes["drive_letter"]: f.attributes for f in facts if f.kind == "volume"}
    assert volumes["D"]["operational_status"] == "Full Repair Needed"
    assert volumes["D"]["health"] == "Warning" and volumes["D"]["label"] == "VMs"
    assert storage(facts) == []
    vm = (
        "Name      State   CPUUsage(%) MemoryAssigned(M) Uptime   Status             Version\n"
        "----      -----   ----------- ----------------- ------   ------             -------\n"
        "SRV-APP01 Running 2           4096              01:02:03 Operating normally 9.0\n"
    )
    vms = [f for f in read(vm) if f.kind == "vm"]
    assert [v.attributes["name"] for v in vms] == ["SRV-APP01"] and storage(read(vm)) == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "FriendlyName SerialNumber CanPool OperationalStatus HealthStatus Usage Size",
                "------------ ------------ ------- ----------------- ------------ ----- ----",
                "ATA X        ZC1          False   Lost Communication Warning Auto-Select 3.64 TB",
                "OperationalStatus : {Degraded, Incomplete",
                "FriendlyName      : VMStore",
                "ResiliencySettingName : Mirror",
                "JobState : Running",
                "PercentComplete : 999999999999999999999999",
                "PS C:\\> Get-StorageJob",
                "Size : 3.64 PB",
                "",
                "> ",
                "```",
            ]
        ),
        max_size=30,
    )
)
def test_damaged_and_shuffled_pastes_never_raise(lines):
    for fact in read("\n".join(lines)):
        if fact.kind == "storage_object":
            a = fact.attributes
            assert a["object"] in {"physical_disk", "virtual_disk", "pool", "disk", "job"}
            assert a.get("percent_complete") is None or 0 <= a["percent_complete"] <= 100


# --------------------------------------------------------------------------- the rules


def test_healthy_storage_raises_nothing():
    assert (
        serious(
            obj("pool", name="VMPool", operational_status="OK", health_status="Healthy"),
            obj("pool", name="Primordial", is_primordial=True, operational_status="OK"),
            obj("virtual_disk", name="VMStore", operational_status="OK", health_status="Healthy"),
            obj("physical_disk", name="d1", operational_status="OK", health_status="Healthy"),
            obj("disk", name="d2", operational_status="Online", health_status="Healthy"),
            obj("job", name="VMStore-Repair", job_state="Completed", percent_complete=100),
            obj("subsystem", name="Windows Storage on HV01", health_status="Healthy"),
        )
        == []
    )


def test_a_degraded_space_leads_and_cites_the_lost_drive():
    lost = obj(
        "physical_disk", name="d3", serial="ZC1K81XA", operational_status="Lost Communication"
    )
    space = obj("virtual_disk", name="VMStore", operational_status=["Degraded", "Incomplete"])
    assert serious(lost, space) == ["host.storage.pool-degraded"]
    assert serious(lost) == ["host.storage.disk-failing"]


def test_a_running_repair_replaces_the_degraded_diagnosis():
    space = obj("virtual_disk", name="VMStore", operational_status="Degraded")
    job = obj("job", name="VMStore-Repair", job_state="Running", percent_complete=37)
    assert serious(space, job) == ["host.storage.repair-running"]
    done = obj("job", name="VMStore-Repair", job_state="Completed", percent_complete=100)
    assert serious(space, done) == ["host.storage.pool-degraded"]


def test_get_disk_list_of_an_offline_disk_and_of_a_storage_space():
    text = (
        "PS C:\\> Get-Disk | Format-List Number, FriendlyName, HealthStatus, OperationalStatus, "
        "IsOffline, OfflineReason, IsReadOnly\n\n\n"
        "Number            : 2\n"
        "FriendlyName      : HGST HUS726T4TALA6L4\n"
        "HealthStatus      : Healthy\n"
        "OperationalStatus : Offline\n"
        "IsOffline         : True\n"
        "OfflineReason     : Critical Write Failures\n"
        "IsReadOnly        : False\n\n"
        "Number            : 5\n"
        "FriendlyName      : Microsoft Storage Space Device\n"
        "HealthStatus      : Warning\n"
        "OperationalStatus : Online\n"
        "IsOffline         : False\n"
        "OfflineReason     :\n"
        "IsReadOnly        : False\n\n"
    )
    facts = read(text)
    offline, space = storage(facts, "disk")
    assert (offline["number"], offline["is_offline"]) == (2, True)
    assert offline["offline_reason"] == "Critical Write Failures"
    assert offline["is_readonly"] is False and "offline_reason" not in space
    items = [("storage_object", f.attributes) for f in facts if f.kind == "storage_object"]
    # The drive that Windows took offline fails; the space's own disk is the space's state.
    assert serious(items[0]) == ["host.storage.disk-failing"]
    assert serious(items[1]) == ["host.storage.pool-degraded"]


def test_retries_alone_are_a_warning_and_a_bad_block_makes_them_a_failing_drive():
    retried = (
        "event",
        {"provider": "disk", "event_id": 153, "level": 3, "message": "The IO operation ..."},
    )
    bad = (
        "event",
        {"provider": "disk", "event_id": 7, "level": 2, "message": "has a bad block."},
    )
    assert serious(retried) == ["host.storage.disk-io-retried"]
    assert serious(retried, bad) == ["host.storage.disk-failing"]


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"),
    [
        ("pool-degraded-en", "host.storage.pool-degraded", "Repair-VirtualDisk", "en"),
        ("pool-degraded-en", "host.storage.pool-degraded", "ZC1K81XA", "ja"),
        ("pool-degraded-list-ja", "host.storage.pool-degraded", "Get-StorageJob", "ja"),
        ("repair-running-en", "host.storage.repair-running", "Get-StorageJob", "en"),
        (
            "disk-failing-events-ja",
            "host.storage.disk-failing",
            "Get-StorageReliabilityCounter",
            "ja",
        ),
        ("disk-predictive-wrapped", "host.storage.disk-failing", "W46100CD", "en"),
        ("io-retried-table", "host.storage.disk-io-retried", "mpclaim", "en"),
        ("ntfs-55-en", "host.storage.ntfs-corruption", "Repair-Volume", "en"),
        ("near-miss-healthy-en", None, None, "en"),
        ("near-miss-healthy-ja", None, None, "ja"),
    ],
)
def test_triage_of_pasted_host_storage(name, expected, command, lang, tmp_path):
    data = triage_incident(FIXTURES / name, tmp_path, expected, command, lang)
    if expected is None:
        assert data["verdict"]["state"] == "healthy"
        return
    top = data["diagnoses"][0]
    assert any(e["kind"] in ("storage_object", "event") for e in top["evidence"])
    if lang == "ja":
        assert JAPANESE.search(top["avoid"][0])
