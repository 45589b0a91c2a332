"""Failover cluster nodes (task H4): Cluster Shared Volumes paused or lost, clustered VM roles
that failed, nodes removed from membership, live migrations that failed. First through the rule
engine on facts shaped as the readers give them (each cause told apart from its neighbours and
from the records of a healthy cluster), then end to end through `hvrescue triage` on incident
folders of evidence as people paste it (tests/fixtures/field_cluster, sources in its README)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.engine import SEVERITY_ORDER, Diagnosis, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from tests.helpers import JAPANESE, run_cli, triage_incident

RULES = load_rules()
CLUSTER_RULES = [r for r in RULES if r.id.startswith("cluster.")]
FIXTURES = Path(__file__).parent / "fixtures" / "field_cluster"
FC = "Microsoft-Windows-FailoverClustering"

PAUSE_5120 = (
    "Cluster Shared Volume 'Volume1' ('Cluster Disk 2') has entered a paused state because of "
    "'STATUS_IO_TIMEOUT(c00000b5)'. All I/O will temporarily be queued until a path to the "
    "volume is reestablished."
)
LOST_5142 = (
    "Cluster Shared Volume 'Volume1' ('Cluster Disk 2') is no longer accessible from this cluster "
    "node because of error '(1460)'. Please troubleshoot this node's connectivity to the storage "
    "device and network connectivity."
)
VM_1069 = (
    "Cluster resource 'Virtual Machine SRV-APP01' of type 'Virtual Machine' in clustered role "
    "'SRV-APP01' failed."
)
ROLE_ONLINE = "The Cluster service successfully brought the clustered role 'SRV-APP01' online."


def event(provider: str | None, event_id: int | None, level: int | None, message: str, **more):
    attrs = {"provider": provider, "event_id": event_id, "level": level, "message": message}
    return ("event", {**attrs, **more})


def diagnose(*items: tuple[str, dict[str, Any]]) -> list[Diagnosis]:
    facts = [
        Fact(kind, attrs, Provenance("/evidence/pasted.txt", f"line:{i + 1}"))
        for i, (kind, attrs) in enumerate(items)
    ]
    return evaluate(RULES, facts)


def serious(found: list[Diagnosis]) -> list[str]:
    return [d.rule.id for d in found if SEVERITY_ORDER[d.severity] >= SEVERITY_ORDER["warning"]]


# --------------------------------------------------------------------------- the engine


def test_a_pause_alone_is_a_warning_and_a_lost_volume_an_error_ranked_first():
    pause = event(FC, 5120, 2, PAUSE_5120, time_local="2026-11-29T02:14:07")
    assert serious(diagnose(pause)) == ["cluster.csv-paused"]
    found = diagnose(pause, event(FC, 5142, 2, LOST_5142, time_local="2026-11-29T02:16:41"))
    assert serious(found)[0] == "cluster.csv-unavailable"
    # Once recovery failed the pause is part of that diagnosis, cited as its evidence.
    assert "cluster.csv-paused" not in serious(found)
    assert {e["binding"] for e in found[0].evidence()} == {"lost", "pause"}


def test_a_pause_followed_by_the_roles_online_is_information_only():
    pause = event(FC, 5120, 2, PAUSE_5120, time_local="2026-11-29T02:14:07")
    back = event(FC, 1201, 4, ROLE_ONLINE, time_local="2026-11-29T02:15:30")
    found = diagnose(pause, back)
    assert serious(found) == []
    assert [d.rule.id for d in found] == ["cluster.csv-paused-recovered"]


def test_online_before_the_pause_is_no_recovery():
    before = event(FC, 1201, 4, ROLE_ONLINE, time_local="2026-11-29T01:00:00")
    pause = event(FC, 5120, 2, PAUSE_5120, time_local="2026-11-29T02:14:07")
    assert serious(diagnose(before, pause)) == ["cluster.csv-paused"]


def test_a_failed_vm_role_is_told_apart_from_other_resource_types():
    vm = VM_1069
    disk = (
        "Cluster resource 'Cluster Disk 4' of type 'Physical Disk' in clustered role 'FS01' failed."
    )
    assert serious(diagnose(event(FC, 1069, 2, vm))) == ["cluster.vm-role-failed"]
    assert serious(diagnose(event(FC, 1069, 2, disk))) == []


def test_a_failed_vm_role_cites_the_csv_pause_that_caused_it():
    vm = VM_1069
    alone = diagnose(event(FC, 1069, 2, vm))
    with_cause = diagnose(event(FC, 5120, 2, PAUSE_5120), event(FC, 1069, 2, vm))
    role = next(d for d in with_cause if d.rule.id == "cluster.vm-role-failed")
    assert "storage" in role.bindings
    assert role.confidence > next(d for d in alone if d.rule.id == role.rule.id).confidence


def test_node_removal_needs_the_cluster_provider():
    text = "Cluster node 'HV-NODE03' was removed from the active failover cluster membership."
    assert serious(diagnose(event(FC, 1135, 1, text))) == ["cluster.node-removed"]
    assert serious(diagnose(event("Microsoft-Windows-Kernel-General", 1135, 2, "Other."))) == []


@pytest.mark.parametrize(
    "message",
    [
        "Live migration of 'Virtual Machine SRV-APP01' failed.",
        "Virtual machine migration operation for 'SRV-APP01' failed at migration destination "
        "'HV-NODE02'.",
    ],
)
def test_live_migration_failure_in_either_wording(message: str):
    ha = "Microsoft-Windows-Hyper-V-High-Availability"
    assert serious(diagnose(event(ha, 21502, 2, message))) == ["cluster.live-migration-failed"]


def test_a_bare_21502_reference_counts_only_when_its_text_names_live_migration():
    def ref(text: str):
        return ("signal", {"type": "event_ref", "value": "21502", "event_id": 21502, "text": text})

    named = ref("Hyper-V-High-Availability イベント ID 21502 でライブ マイグレーションが失敗")
    assert serious(diagnose(named)) == ["cluster.live-migration-failed"]
    assert serious(diagnose(ref("Event ID: 21502"))) == []


def test_a_post_naming_the_provider_and_21502_is_read_as_that_event():
    from hvrescue.logs.collect_text import facts_from_text

    post = "Every live migration of SRV-WEB02 fails: Hyper-V-High-Availability event 21502.\n"
    [found] = [f for f in facts_from_text(post, "post.txt") if f.kind == "signal"]
    ha = "Microsoft-Windows-Hyper-V-High-Availability"
    assert (found.attributes["provider"], found.attributes["event_id"]) == (ha, 21502)
    assert serious(evaluate(load_rules(), [found])) == ["cluster.live-migration-failed"]


def test_a_completed_live_migration_says_nothing():
    ha = "Microsoft-Windows-Hyper-V-High-Availability"
    done = event(ha, 21508, 4, "Live migration of 'Virtual Machine SRV-APP01' completed.")
    assert diagnose(done) == []


# The first move of every cluster rule keeps the evidence, and no step does what the avoid
# lists warn of: a repair that locks a CSV, evicting a node, forcing quorum, removing a disk or
# a role from the cluster.
RISKY_COMMANDS = re.compile(
    r"chkdsk\b[^;]*/f|Remove-ClusterNode|ForceQuorum|clussvc /fq|Remove-ClusterSharedVolume"
    r"|Remove-ClusterGroup|Remove-ClusterResource",
    re.I,
)


@pytest.mark.parametrize("rule", CLUSTER_RULES, ids=lambda r: r.id)
def test_every_cluster_rule_preserves_first_and_proposes_nothing_risky(rule):
    first = rule.steps[0]
    assert first.precondition == "none"
    assert "Get-ClusterLog" in first.command and "-UseLocalTime" in first.command
    assert all(not RISKY_COMMANDS.search(s.command) for s in rule.steps), rule.id
    assert rule.avoid and all(":" in a.en and "。" in a.ja for a in rule.avoid)


def test_the_cluster_rules_are_few():
    assert 4 <= len(CLUSTER_RULES) <= 6, [r.id for r in CLUSTER_RULES]


# --------------------------------------------------------------------------- through the CLI

INCIDENTS = [
    ("csv-lost-en", "cluster.csv-unavailable", "Get-ClusterSharedVolumeState", "en"),
    ("csv-post-ja", "cluster.csv-unavailable", "mpclaim -s -d", "ja"),
    ("csv-paused-list", "cluster.csv-paused", "Get-ClusterNetwork", "en"),
    ("vm-role-failed-ja", "cluster.vm-role-failed", "Start-ClusterGroup", "ja"),
    ("vm-role-failed-ja", "cluster.vm-role-failed", "Get-ClusterResource", "en"),
    ("node-removed-table", "cluster.node-removed", "Test-Cluster -Include 'Network'", "en"),
    # The event names its reason (processor features): the reason's own rule leads
    # (field_migration.yaml), the cluster's "a live migration failed" comes second.
    (
        "live-migration-en",
        "vm.migration-failed.processor-compatibility",
        "CompatibilityForMigrationEnabled",
        "en",
    ),
    (
        "live-migration-en",
        "vm.migration-failed.processor-compatibility",
        "CompatibilityForMigrationEnabled",
        "ja",
    ),
    (
        "live-migration-switch-ja",
        "vm.migration-failed.switch-missing",  # the missing switch, not only "migration failed"
        "Get-VMSwitch -ComputerName",
        "ja",
    ),
    ("node-removed-ja", "cluster.node-removed", "Get-ClusterNode", "ja"),
    ("near-miss-5120-recovered", None, None, "en"),
    ("near-miss-info", None, None, "en"),
]


@pytest.mark.parametrize(
    ("name", "expected", "command", "lang"),
    INCIDENTS,
    ids=[f"{i[0]}-{i[3]}" for i in INCIDENTS],
)
def test_incident_folder_through_the_cli(tmp_path: Path, name: str, expected, command, lang: str):
    data = triage_incident(FIXTURES / name, tmp_path, expected, command, lang)
    if expected is not None and lang == "ja":
        top = data["diagnoses"][0]
        assert JAPANESE.search(top["avoid"][0])
        if expected.startswith("cluster."):  # the cluster rules' first step: the cluster log
            assert "<フォルダー>" in top["steps"][0]["command"]


def test_the_recovered_pause_is_reported_as_information_with_its_event(tmp_path: Path):
    folder = tmp_path / "recovered"
    shutil.copytree(FIXTURES / "near-miss-5120-recovered", folder)
    r = run_cli("triage", folder, "--out", tmp_path / "report", "--json", evidence=[folder])
    data = r.json()
    (info,) = [d for d in data["diagnoses"] if d["id"] == "cluster.csv-paused-recovered"]
    assert info["severity"] == "info"
    cited = {(e["attributes"].get("event_id"), e["binding"]) for e in info["evidence"]}
    assert cited == {(5120, "pause"), (1201, "back")}


CLUSTER_TABLES = """PS C:\\> Get-ClusterGroup -Name SRV-APP01 | Get-ClusterResource

Name                                    State  OwnerGroup ResourceType
----                                    -----  ---------- ------------
Virtual Machine Configuration SRV-APP01 Online SRV-APP01  Virtual Machine Configuration
Virtual Machine SRV-APP01               Failed SRV-APP01  Virtual Machine

PS C:\\> Get-ClusterNode

Name      State Id
----      ----- --
HV-NODE01 Up    1
HV-NODE03 Down  3
"""


def test_the_cluster_cmdlets_tables_are_evidence():
    from hvrescue.logs.collect_text import facts_from_text

    found = [f for f in facts_from_text(CLUSTER_TABLES, "tables.txt") if f.kind == "cluster_object"]
    rows = [(f.attributes["object"], f.attributes["name"], f.attributes["state"]) for f in found]
    assert rows == [
        ("resource", "Virtual Machine Configuration SRV-APP01", "Online"),
        ("resource", "Virtual Machine SRV-APP01", "Failed"),
        ("node", "HV-NODE01", "Up"),
        ("node", "HV-NODE03", "Down"),
    ]
    assert found[1].attributes["resource_type"] == "Virtual Machine"
    assert found[1].provenance.locator == "line:6"
    assert serious(evaluate(load_rules(), found)) == ["cluster.vm-role-failed"]
    online = CLUSTER_TABLES.replace(
        "Failed SRV-APP01  Virtual Machine\n", "Online SRV-APP01  Virtual Machine\n"
    )
    calm = [f for f in facts_from_text(online, "tables.txt") if f.kind == "cluster_object"]
    assert serious(evaluate(load_rules(), calm)) == []
