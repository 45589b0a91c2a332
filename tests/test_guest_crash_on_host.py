"""A guest's crash as its host records it (Hyper-V-Worker 18590, "'VM' has encountered a fatal
error. The guest operating system reported that it failed with the following error codes:
ErrorCode0: 0x7E, ..."): a bugcheck of that guest, from the event's named data or its message."""

from __future__ import annotations

from hvrescue.diagnose.derive import derived_facts
from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance

WORKER = "Microsoft-Windows-Hyper-V-Worker"
MESSAGE = (
    "'SQL01' has encountered a fatal error. The guest operating system reported that it failed"
    " with the following error codes: ErrorCode0: 0x7E, ErrorCode1: 0xFFFFFFFFC0000005,"
    " ErrorCode2: 0xFFFFF80312345678, ErrorCode3: 0xFFFFB2017C6A7A58, ErrorCode4:"
    " 0xFFFFB2017C6A7290. If the problem persists, contact Product Support for the guest"
    " operating system. (Virtual machine ID 1A2B3C4D-5E6F-7081-92A3-B4C5D6E7F809)"
)


def _event(**attrs) -> Fact:
    base = {"provider": WORKER, "event_id": 18590, "level": 1}
    return Fact("event", {**base, **attrs}, Provenance("Worker-Admin.evtx", "record:7"))


def test_the_stop_code_and_parameters_from_the_message() -> None:
    [bugcheck] = [f for f in derived_facts([_event(message=MESSAGE)]) if f.kind == "bugcheck"]
    a = bugcheck.attributes
    assert a["stop_code"] == 0x7E and a["stop_code_hex"] == "0x0000007e"
    assert a["parameters"][0].lower() == "0xffffffffc0000005" and len(a["parameters"]) == 4
    assert a["source"] == "Hyper-V Worker 18590"


def test_the_stop_code_from_named_data_and_the_extended_form() -> None:
    data = {"VmName": "SQL01", "ErrorCode0": "0x1000007E", "ErrorCode1": "0xFFFFFFFFC0000005"}
    [bugcheck] = [f for f in derived_facts([_event(data=data)]) if f.kind == "bugcheck"]
    # 0x1000007E is 0x7E's "_M" form, named as such (codes.stop_code)
    assert bugcheck.attributes["stop_code_hex"] == "0x1000007e"
    assert bugcheck.attributes["stop_name"] == "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"


def test_no_code_no_bugcheck_and_other_providers_are_not_read() -> None:
    assert derived_facts([_event(message="'SQL01' has encountered a fatal error.")]) == []
    other = _event(message=MESSAGE, provider="Microsoft-Windows-Hyper-V-VMMS")
    assert derived_facts([other]) == []


def test_the_guest_bugcheck_rule_speaks_for_it() -> None:
    found = evaluate(load_rules(), [_event(message=MESSAGE)])
    assert found and found[0].rule.id == "guest.bugcheck"
