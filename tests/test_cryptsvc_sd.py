"""CryptSvc / EventSystem security descriptors against what System Writer needs (source 004):
compared as parsed entries, never as one string. A later Windows's default (more entries, no
SACL in the registry) is no gap; a gap gives an error only where a list of writers shows System
Writer missing, a warning otherwise; the fix puts back only the missing entries.

Fixtures in tests/fixtures/cryptsvc/ (sources in its README.md); the Windows 10 descriptor is
also read from the public SYSTEM hive of Windows 10 1709."""

from __future__ import annotations

import functools
import lzma
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.derive_acl import SYSTEM_WRITER_NEEDS, service_sd_gaps
from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.sddl import missing_grants, parse_sddl, rights_mask, with_grants
from tests.helpers import CORPUS, run_cli

FIX = Path(__file__).resolve().parent / "fixtures" / "cryptsvc"
ERROR = "vss.system-writer-missing.service-security"
WARNING = "vss.system-writer.service-security-gap"
SU = "(A;;CCLCSWLOCRRC;;;SU)"
DEFAULT_2008 = (
    "D:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)(A;;CCLCSWLOCRRC;;;IU)"
    "(A;;CCLCSWLOCRRC;;;SU)S:(AU;FA;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)"
)


def sddl_of(folder: str) -> str:
    return (FIX / folder / "sdshow.txt").read_text("utf-8").split("\n")[2]


@functools.cache
def win10_cryptsvc() -> str:
    """CryptSvc's descriptor as the guest reader gives it from the Windows 10 1709 hive."""
    from hvrescue.guest.artefacts import by_name, run_artefact
    from hvrescue.guest.artefacts.registry_hives import SYSTEM
    from hvrescue.guest.context import GuestContext
    from hvrescue.guest.result import GuestResult
    from tests.test_guest import FakeVolume

    hive = lzma.decompress((CORPUS / "registry/regipy/SYSTEM_WIN_10_1709.xz").read_bytes())
    result = GuestResult("mem")
    with tempfile.TemporaryDirectory() as work:
        ctx = GuestContext(FakeVolume({SYSTEM: hive}), "mem", result, work)  # type: ignore[arg-type]
        run_artefact(by_name("services-drivers"), ctx)
    [found] = [
        f.attributes["sddl"]
        for f in result.facts
        if f.kind == "service_security" and f.attributes["service_name"] == "CryptSvc"
    ]
    return str(found)


def security(sddl: str, name: str = "CryptSvc") -> Fact:
    return Fact("service_security", {"service_name": name, "sddl": sddl}, Provenance("t", "1"))


def writers(*names: str) -> Fact:
    attrs = {"count": len(names), "names": list(names)}
    return Fact("vss_writer_list", attrs, Provenance("w", "1"))


def fired(*facts: Fact) -> dict[str, Any]:
    return {d.rule.id: d for d in evaluate(load_rules(), list(facts))}


# ------------------------------------------------------------------ comparison as entries
def test_the_windows_10_default_from_the_registry_lacks_nothing():
    sddl = win10_cryptsvc()
    assert "S:" not in sddl and "SO)" in sddl  # no SACL, and entries the 2008 default lacks
    assert sddl != DEFAULT_2008.split("S:")[0]  # the old string test fired on this
    assert missing_grants(sddl, SYSTEM_WRITER_NEEDS) == []
    assert service_sd_gaps([security(sddl)]) == []


def test_order_full_sids_and_generic_rights_are_the_same_entries():
    sddl = (
        "D:(A;;CCLCSWLOCRRC;;;S-1-5-6)(A;;GA;;;S-1-5-32-544)(A;;0x2018d;;;IU)"
        "(A;;CCLCSWRPWPDTLOCRRC;;;S-1-5-18)"
    )
    assert missing_grants(sddl, SYSTEM_WRITER_NEEDS) == []
    assert rights_mask("GA") == rights_mask("CCDCLCSWRPWPDTLOCRSDRCWDWO")


def test_local_system_keeps_its_rights_through_administrators():
    # SYSTEM's token holds BUILTIN\Administrators: with BA's full control, no SY entry is needed.
    sddl = DEFAULT_2008.replace("(A;;CCLCSWRPWPDTLOCRRC;;;SY)", "")
    assert missing_grants(sddl, SYSTEM_WRITER_NEEDS) == []


@pytest.mark.parametrize(
    ("sddl", "sid", "rights", "reason"),
    [
        (DEFAULT_2008.replace(SU, ""), "SU", "CCLCSWLOCRRC", "absent"),
        (DEFAULT_2008.replace(SU, "(A;;CCLC;;;SU)"), "SU", "SWLOCRRC", "partial"),
        ("D:(D;;LC;;;WD)" + DEFAULT_2008[2:], "IU", "LC", "denied"),
    ],
)
def test_a_missing_short_or_denied_entry_is_a_gap(sddl: str, sid: str, rights: str, reason: str):
    gaps = {g["sid"]: g for g in missing_grants(sddl, SYSTEM_WRITER_NEEDS)}
    assert gaps[sid]["rights"] == rights and gaps[sid]["reason"] == reason


def test_the_repair_adds_only_the_missing_entry_and_keeps_every_other():
    sddl = win10_cryptsvc().replace(SU, "")
    [gap] = missing_grants(sddl, SYSTEM_WRITER_NEEDS)
    repaired = with_grants(sddl, [gap])
    before = {(a["sid"], a["rights"]) for a in parse_sddl(sddl)["dacl"]}
    after = {(a["sid"], a["rights"]) for a in parse_sddl(repaired)["dacl"]}
    assert after - before == {("SU", "CCLCSWLOCRRC")}
    assert before <= after  # SO and the AppContainer entries stay
    assert missing_grants(repaired, SYSTEM_WRITER_NEEDS) == []


def test_the_repair_drops_the_deny_entry_and_keeps_the_sacl():
    sddl = "D:(D;;RPWP;;;WD)" + DEFAULT_2008[2:]
    repaired = with_grants(sddl, missing_grants(sddl, SYSTEM_WRITER_NEEDS))
    assert repaired == DEFAULT_2008


# ------------------------------------------------------------------ the rules
def test_a_healthy_windows_10_guest_gets_no_system_writer_diagnosis():
    found = fired(security(win10_cryptsvc()), writers("ASR Writer", "Registry Writer"))
    assert ERROR not in found and WARNING not in found


def test_a_gap_with_system_writer_missing_is_an_error_and_without_a_list_a_warning():
    gap = security(DEFAULT_2008.replace(SU, ""))
    found = fired(gap, writers("ASR Writer", "Registry Writer"))
    assert ERROR in found and WARNING not in found
    assert found[ERROR].rule.severity == "error"
    alone = fired(gap)
    assert WARNING in alone and ERROR not in alone
    assert alone[WARNING].rule.severity == "warning"
    listed = fired(gap, writers("System Writer", "ASR Writer"))
    assert ERROR not in listed and WARNING not in listed


def test_eventsystem_is_checked_too_other_services_are_not():
    assert WARNING in fired(security(DEFAULT_2008.replace(SU, ""), "EventSystem"))
    assert WARNING not in fired(security("D:(A;;CC;;;SY)", "Spooler"))


# ------------------------------------------------------------------ end to end
def triage(folder: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    copy = tmp_path / folder
    shutil.copytree(FIX / folder, copy)
    r = run_cli("triage", copy, "--out", tmp_path / "report", "--json", evidence=[copy])
    assert r.rc in (0, 1), r.stderr
    return {d["id"]: d for d in r.json()["diagnoses"]}


def sdset(diagnosis: dict[str, Any]) -> str:
    [command] = [s["command"] for s in diagnosis["steps"] if "sdset" in s["command"]]
    return str(command)


def test_triage_windows_2008_descriptor_without_su_and_no_system_writer(tmp_path: Path):
    found = triage("su-missing-2008r2", tmp_path)
    assert WARNING not in found
    d = found[ERROR]
    assert d["severity"] == "error" and "SU: CCLCSWLOCRRC" in d["title"]
    assert {e["kind"] for e in d["evidence"]} >= {"service_sd_gap", "vss_writer_list"}
    assert sdset(d) == f'sc sdset cryptsvc "{DEFAULT_2008}"'  # SU back, SACL kept


def test_triage_windows_10_default_with_system_writer_missing_blames_not_the_descriptor(
    tmp_path: Path,
):
    found = triage("win10-default", tmp_path)
    assert ERROR not in found and WARNING not in found


def test_triage_windows_10_descriptor_without_su_keeps_the_newer_entries(tmp_path: Path):
    found = triage("win10-su-missing", tmp_path)
    assert ERROR not in found
    d = found[WARNING]
    assert d["severity"] == "warning"
    command = sdset(d)
    current = sddl_of("win10-su-missing")
    assert command == f'sc sdset cryptsvc "{current}{SU}"'
    assert "(A;;CCLCSWRPWPDTLOCRRC;;;SO)" in command and "S-1-15-2-1)" in command
    assert "S:(AU;" not in command  # never the older default's SACL
