"""`explain` decodes any HRESULT, NTSTATUS or Win32 error by its structure, with values checked
against Microsoft's documented definitions: winerror.h (HRESULT_FROM_WIN32, FACILITY_*,
ERROR_*), ntstatus.h (FACILITY_* of NTSTATUS), [MS-ERREF] 2.1/2.3 (the S R C N X bits),
vsserror.h (VSS_E_*), and Microsoft's published signed values (E_OUTOFMEMORY = -2147024882)."""

from __future__ import annotations

import pytest

from hvrescue.diagnose.codes import decode, lookup, parse_number, tables
from hvrescue.report.explain import explain
from tests.helpers import run_cli

# winerror.h: #define HRESULT_FROM_WIN32(x) ((x) <= 0 ? (x) : (((x) & 0xFFFF) | (7 << 16) |
# 0x80000000)); #define HRESULT_FACILITY(hr) (((hr) >> 16) & 0x1fff)
FACILITY_WIN32 = 7


def hresult_from_win32(code: int) -> int:
    return (code & 0xFFFF) | (FACILITY_WIN32 << 16) | 0x80000000


# Documented values (winerror.h / System Error Codes): name -> number.
WIN32 = {
    "ERROR_FILE_NOT_FOUND": 2,
    "ERROR_PATH_NOT_FOUND": 3,
    "ERROR_ACCESS_DENIED": 5,
    "ERROR_OUTOFMEMORY": 14,
    "ERROR_NOT_READY": 21,
    "ERROR_SHARING_VIOLATION": 32,
    "ERROR_LOCK_VIOLATION": 33,
    "ERROR_INVALID_PARAMETER": 87,
    "ERROR_DISK_FULL": 112,
    "ERROR_IO_DEVICE": 1117,
    "ERROR_FILE_CORRUPT": 1392,
    "ERROR_NO_SYSTEM_RESOURCES": 1450,
    "ERROR_COMMITMENT_LIMIT": 1455,
    "ERROR_TIMEOUT": 1460,
    "ERROR_ACCOUNT_EXPIRED": 1793,
}
# HRESULT facilities, Microsoft's "HRESULT_FACILITY macro" table.
HRESULT_FACILITIES = {
    0: "FACILITY_NULL",
    1: "FACILITY_RPC",
    2: "FACILITY_DISPATCH",
    3: "FACILITY_STORAGE",
    4: "FACILITY_ITF",
    7: "FACILITY_WIN32",
    8: "FACILITY_WINDOWS",
    53: "FACILITY_USERMODE_HYPERVISOR",
    55: "FACILITY_USERMODE_VIRTUALIZATION",
    56: "FACILITY_USERMODE_VOLMGR",
    57: "FACILITY_BCD",
    58: "FACILITY_USERMODE_VHD",
}
# NTSTATUS facilities (ntstatus.h): not the same numbering as HRESULT's.
NTSTATUS_FACILITIES = {
    0x7: "FACILITY_NTWIN32",
    0x35: "FACILITY_HYPERVISOR",
    0x37: "FACILITY_VIRTUALIZATION",
    0x38: "FACILITY_VOLMGR",
    0x50: "FACILITY_VOLSNAP",
    0x5C: "FACILITY_SHARED_VHDX",
}


def test_the_win32_table_holds_the_documented_numbers():
    table = {e["name"]: e["value"] for e in tables()["win32"]}
    for name, value in WIN32.items():
        assert table.get(name) == value, name


def test_the_facility_tables_hold_the_documented_numbers():
    hresult = {e["value"]: e.get("name") for e in tables()["hresult_facilities"]}
    ntstatus = {e["value"]: e.get("name") for e in tables()["ntstatus_facilities"]}
    for value, name in HRESULT_FACILITIES.items():
        assert hresult[value] == name
    for value, name in NTSTATUS_FACILITIES.items():
        assert ntstatus[value] == name


def test_tables_have_no_value_twice():
    for table in ("codes", "win32", "hresult_facilities", "ntstatus_facilities", "bugchecks"):
        values = [e["value"] for e in tables()[table]]
        assert len(values) == len(set(values)), table
        for entry in tables()[table]:
            assert 0 <= entry["value"] <= 0xFFFFFFFF
            assert entry["en"] and entry["ja"], entry


def test_every_win32_code_is_found_inside_its_hresult_and_ntstatus():
    for entry in tables()["win32"]:
        if entry["value"] == 0:
            continue  # HRESULT_FROM_WIN32(0) is S_OK, not a failure
        d = decode(hresult_from_win32(entry["value"]))
        assert d["kind"] == "hresult" and d["severity"] == "failure"
        assert d["facility"]["name"] == "FACILITY_WIN32" and d["facility"]["value"] == 7
        assert d["win32"]["name"] == entry["name"] and d["code"] == entry["value"]
        # NTSTATUS_FROM_WIN32: severity error, FACILITY_NTWIN32, the code.
        n = decode(0xC0070000 | entry["value"])
        assert n["kind"] == "ntstatus" and n["severity"] == "error"
        assert n["facility"]["name"] == "FACILITY_NTWIN32" and n["win32"] == d["win32"]


def test_e_outofmemory_in_every_spelling():
    # E_OUTOFMEMORY = 0x8007000E = -2147024882 (Microsoft's VSConstants.E_OUTOFMEMORY).
    for text in ("0x8007000e", "0x8007000E", "8007000E", "-2147024882", "2147942414"):
        assert parse_number(text) == 0x8007000E, text
        found = lookup(text, "en")
        assert found is not None and found["exact"]
        assert found["decoded"]["facility"]["value"] == FACILITY_WIN32
        assert found["decoded"]["code"] == WIN32["ERROR_OUTOFMEMORY"]
        assert "E_OUTOFMEMORY" in found["name"] and "ERROR_OUTOFMEMORY" in found["name"]
    assert hresult_from_win32(WIN32["ERROR_OUTOFMEMORY"]) == 0x8007000E
    en, ja = explain("0x8007000E", "en"), explain("0x8007000E", "ja")
    assert en is not None and "Win32 error 14" in en["meaning"] and "FACILITY_WIN32" in en["detail"]
    assert ja is not None and "メモリ" in ja["meaning"] and "ファシリティ" in ja["detail"]


def test_bits_of_the_structure():
    # [MS-ERREF] 2.1: S (0x80000000) failure, C (0x20000000) customer, N (0x10000000) an
    # NTSTATUS mapped into an HRESULT; 2.3: NTSTATUS severity in the two top bits.
    vss = decode(0x8004230F)  # VSS_E_UNEXPECTED_PROVIDER_ERROR, FACILITY_ITF
    assert vss["kind"] == "hresult" and vss["facility"]["name"] == "FACILITY_ITF"
    assert vss["code"] == 0x230F and vss["signed"] == -2147212529
    hv = decode(0xC0370001)
    assert hv["kind"] == "ntstatus" and hv["severity"] == "error"
    assert hv["facility"]["name"] == "FACILITY_VIRTUALIZATION" and hv["code"] == 1
    assert decode(0x40000000)["severity"] == "informational"
    assert decode(0x80000005)["severity"] == "failure"
    mapped = decode(0xD0000022)  # HRESULT_FROM_NT(STATUS_ACCESS_DENIED)
    assert mapped["kind"] == "hresult-from-nt" and mapped["ntstatus"] == "0xC0000022"
    customer = decode(0xE0434352)
    assert customer["customer"] and customer["facility"] is None
    assert decode(0xA0001234)["customer"]
    success = decode(0x00042309)  # VSS_S_ASYNC_PENDING: success, FACILITY_ITF
    assert success["severity"] == "success" and success["facility"]["value"] == 4


def test_a_value_in_no_table_is_decoded_and_says_so():
    found = explain("0x80042399", "en")
    assert found is not None and not found["exact"] and found["name"] is None
    assert "FACILITY_ITF" in found["detail"] and "not in hvrescue's table" in found["meaning"]
    vendor = explain("0xA0001234", "ja")
    assert vendor is not None and "顧客" in vendor["detail"] and "ベンダー" in vendor["meaning"]
    unknown_facility = explain("0x87654321", "en")
    assert unknown_facility is not None and "1893" in unknown_facility["detail"]
    # A small number that is neither a known stop code nor a known Win32 error: unknown.
    assert lookup("0x9", "en") is None
    # Below 0x80000000 with the reserved N bit, or an unknown facility: no status value.
    assert lookup("0x12345678", "en") is None and lookup("0x07650001", "en") is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("0x8004230F", "VSS_E_UNEXPECTED_PROVIDER_ERROR"),
        ("-2147212538", "VSS_E_PROVIDER_VETO"),
        ("0xC0000022", "STATUS_ACCESS_DENIED"),
        ("0xD0000022", "HRESULT_FROM_NT(STATUS_ACCESS_DENIED)"),
        ("0x80070020", "HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION)"),
        ("0x80070569", "HRESULT_FROM_WIN32(ERROR_LOGON_TYPE_NOT_GRANTED)"),
        ("1455", "ERROR_COMMITMENT_LIMIT"),
        ("ERROR_FILE_CORRUPT", "ERROR_FILE_CORRUPT"),
        ("0xE0434352", "EXCEPTION_COMPLUS"),
    ],
)
def test_known_names(code: str, name: str):
    found = lookup(code, "en")
    assert found is not None and found["name"] == name


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_explain_through_the_cli(lang: str):
    r = run_cli("--lang", lang, "explain", "-2147024882", "--json")
    assert r.rc == 0, r.stderr
    data = r.json()
    assert data["status"] == "known" and data["code"] == "0x8007000E"
    assert data["decoded"]["facility"]["name"] == "FACILITY_WIN32"
    text = run_cli("--lang", lang, "explain", "0xC0370001")
    assert text.rc == 0 and "FACILITY_VIRTUALIZATION" in text.stdout
    assert ("Virtualization" in text.stdout or "virtualization" in text.stdout) == (lang == "en")
    nothing = run_cli("--lang", lang, "explain", "0x9")
    assert nothing.rc == 2


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_explain_of_every_rule_shows_labels_not_template_syntax(lang: str):
    from hvrescue.diagnose.rules import load_rules

    rules = load_rules()
    assert any("{" in r.title.en for r in rules)  # some titles do name their particulars
    for rule in rules:
        found = explain(rule.id, lang)
        assert found is not None and found["kind"] == "rule"
        text = found["meaning"] + (found.get("detail") or "")
        assert "{" not in text and "}" not in text, (rule.id, text)
