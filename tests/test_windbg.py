"""Crash analyses pasted as text (task H6): WinDbg / kd ``!analyze -v`` in its old and new layouts,
WhoCrashed and BlueScreenView reports, read into ``crash_analysis`` facts by
hvrescue.logs.commands.windbg, turned into ``bugcheck`` facts by hvrescue.diagnose.derive, and
diagnosed by rules/field_bugcheck.yaml; end to end through `hvrescue triage` on the posts of
tests/fixtures/field_bugcheck (layouts and sources in its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvrescue.diagnose.derive import derived_facts
from hvrescue.diagnose.engine import evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.collect_text import facts_from_text
from hvrescue.logs.commands import windbg
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_bugcheck"
RULES = load_rules()


def analyses(text: str) -> list[dict[str, Any]]:
    """The crash analyses of ``text`` as the text reader gives them (reposts cleaned), with
    their line."""
    found = [f for f in facts_from_text(text, "/evidence/post.txt") if f.kind == "crash_analysis"]
    return [{**f.attributes, "line": f.provenance.locator} for f in found]


def post(case: str) -> str:
    return (FIXTURES / case / "post.txt").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> str:
    """The locator of the first line of ``text`` holding ``needle`` (an oracle independent of
    the parser: the file itself)."""
    for n, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return f"line:{n}"
    raise AssertionError(needle)


# ------------------------------------------------------------------ the fixtures, attributes
def test_new_layout_in_a_fence():
    text = post("windbg-new-storvsc-en")
    [a] = analyses(text)
    assert a["tool"] == "windbg"
    assert a["bugcheck_code"] == 0x7E and a["bugcheck_hex"] == "0x0000007e"
    assert a["stop_name"] == "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"
    assert a["parameters"] == [
        "0xffffffffc0000005",
        "0xfffff8066a2b1234",
        "0xffffb2017c6a7a58",
        "0xffffb2017c6a7290",
    ]
    assert (a["module"], a["image"]) == ("storvsc", "storvsc.sys")
    assert a["symbol"] == "storvsc!StorVscProcessCompletion+2f"
    assert a["failure_bucket"] == "AV_storvsc!StorVscProcessCompletion"
    assert a["process"] == "System"
    assert a["os_version"] == "10.0.20348.1"
    assert a["dump_file"] == r"C:\Windows\Minidump\031424-10921-01.dmp"
    assert a["line"] == line_of(text, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e)")


def test_old_layout_quoted_in_a_japanese_post():
    text = post("windbg-old-7b-ja")
    # The first banner (kd summary) and the verbose analysis are one crash.
    [a] = analyses(text)
    assert a["bugcheck_code"] == 0x7B and a["stop_name"] == "INACCESSIBLE_BOOT_DEVICE"
    assert a["parameters"] == ["0xfffff880009a9928", "0xffffffffc0000034", "0x0", "0x0"]
    assert (a["module"], a["image"]) == ("nt", "ntkrnlmp.exe")
    assert a["symbol"] == "nt!IopInitializeBootDrivers+4f1"
    assert a["failure_bucket"] == "X64_0x7B_nt!IopInitializeBootDrivers+4f1"
    assert a["dump_file"] == r"D:\dumps\MEMORY.DMP"
    assert a["os_version"] is None  # the old layout has no OS_VERSION: not guessed
    assert a["line"] == line_of(text, "BugCheck 7B, {")


def test_whocrashed_two_crashes():
    text = post("whocrashed-netvsc-en")
    first, second = analyses(text)
    assert first["tool"] == second["tool"] == "whocrashed"
    assert (first["bugcheck_code"], first["module"], first["image"]) == (
        0xD1,
        "netvsc",
        "netvsc.sys",
    )
    assert first["stop_name"] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL"
    assert first["parameters"] == ["0x10", "0x2", "0x0", "0xfffff80d2f4e1a6b"]
    assert first["dump_file"] == r"C:\Windows\Minidump\031224-8218-01.dmp"
    assert first["line"] == line_of(text, "Bugcheck code: 0xD1")
    assert (second["bugcheck_code"], second["module"]) == (0x133, "ntoskrnl")
    assert second["stop_name"] == "DPC_WATCHDOG_VIOLATION"
    assert second["dump_file"] == r"C:\Windows\Minidump\031024-7968-01.dmp"


def test_bluescreenview_export():
    text = post("bluescreenview-vmswitch-ja")
    found = analyses(text)
    assert len(found) == 2
    a = found[0]
    assert a["tool"] == "bluescreenview"
    assert (a["bugcheck_code"], a["bugcheck_hex"]) == (0xD1, "0x000000d1")
    assert a["stop_name"] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL"
    assert a["parameters"] == ["0x28", "0x2", "0x0", "0xfffff8073e2c41a2"]  # backticks gone
    assert (a["module"], a["image"], a["symbol"]) == (
        "vmswitch",
        "vmswitch.sys",
        "vmswitch.sys+441a2",
    )
    assert a["dump_file"] == r"C:\Windows\Minidump\040224-11250-01.dmp"  # the full path
    assert found[1]["dump_file"] == r"C:\Windows\Minidump\040124-10812-01.dmp"
    assert a["line"] == line_of(text, "Bug Check Code    : 0x000000d1")


def test_two_analyses_in_a_double_spaced_forum_post():
    text = post("windbg-dpc-watchdog-en")
    dpc, clock = analyses(text)
    assert (dpc["bugcheck_code"], dpc["stop_name"]) == (0x133, "DPC_WATCHDOG_VIOLATION")
    assert dpc["parameters"] == ["0x1", "0x1e00", "0xfffff8052c2fb320", "0x0"]
    assert dpc["failure_bucket"] == "0x133_ISR_nt!KeAccumulateTicks"
    # Line numbers are those of the double-spaced file, BBCode and all.
    assert dpc["line"] == line_of(text, "[h31]DPC_WATCHDOG_VIOLATION (133)[/h31]")
    assert (clock["bugcheck_code"], clock["stop_name"]) == (0x101, "CLOCK_WATCHDOG_TIMEOUT")
    assert clock["parameters"] == ["0x18", "0x0", "0xffffa3012a4c0180", "0x2"]
    # WinDbg's words for "no module found" are not a module.
    assert clock["module"] is None and clock["image"] is None
    assert clock["symbol"] == "ANALYSIS_INCONCLUSIVE"
    assert clock["line"] == line_of(text, "CLOCK_WATCHDOG_TIMEOUT (101)")


# ------------------------------------------------------------------ layouts and reposts
OLD_SUMMARY = """\
*******************************************************************************
*                                                                             *
*                        Bugcheck Analysis                                    *
*                                                                             *
*******************************************************************************

Use !analyze -v to get detailed debugging information.

BugCheck 7E, {ffffffffc0000005, fffff88001a2b3c4, fffff88003a1b6d8, fffff88003a1af30}

Probably caused by : storvsc.sys ( storvsc!VmbChannelPacketComplete+2f )

Followup: MachineOwner
---------
"""


def test_old_summary_alone():
    [a] = analyses(OLD_SUMMARY)
    assert a["bugcheck_code"] == 0x7E and a["stop_name"] is None  # the summary has no name
    assert a["parameters"] == [
        "0xffffffffc0000005",
        "0xfffff88001a2b3c4",
        "0xfffff88003a1b6d8",
        "0xfffff88003a1af30",
    ]
    assert (a["module"], a["image"]) == ("storvsc", "storvsc.sys")
    assert a["symbol"] == "storvsc!VmbChannelPacketComplete+2f"
    assert a["line"] == "line:9"


def test_wrapped_summary_and_culprit():
    text = (
        "my VM crashed, windbg says:\n"
        "BugCheck 7E, {ffffffffc0000005, fffff88001a2b3c4,\n"
        "fffff88003a1b6d8, fffff88003a1af30}\n"
        "Probably caused by : storvsc.sys (\n"
        "storvsc!VmbChannelPacketComplete+2f )\n"
    )
    [a] = analyses(text)
    assert len(a["parameters"]) == 4 and a["parameters"][3] == "0xfffff88003a1af30"
    assert a["symbol"] == "storvsc!VmbChannelPacketComplete+2f" and a["module"] == "storvsc"


def test_quoted_and_fenced_reposts_read_as_the_original():
    original = analyses(OLD_SUMMARY)
    quoted = "\n".join("> " + line if line else ">" for line in OLD_SUMMARY.split("\n"))
    fenced = "See below\n```\n" + OLD_SUMMARY + "```\nthanks"
    nbsp = OLD_SUMMARY.replace("Probably caused by : ", "Probably caused by\u00a0: ")
    for text in (quoted, fenced, nbsp):
        [a] = analyses(text)
        assert {k: v for k, v in a.items() if k != "line"} == {
            k: v for k, v in original[0].items() if k != "line"
        }
    assert analyses(fenced)[0]["line"] == "line:11"  # two lines above it: the line moved


def test_dot_bugcheck_and_fatal_system_error():
    dot = (
        "0: kd> .bugcheck\nBugcheck code 00000133\n"
        "Arguments 00000000`00000001 00000000`00001e00 fffff805`2c2fb320 00000000`00000000\n"
    )
    [a] = analyses(dot)
    assert a["bugcheck_code"] == 0x133 and a["parameters"] == [
        "0x1",
        "0x1e00",
        "0xfffff8052c2fb320",
        "0x0",
    ]
    live = (
        "*** Fatal System Error: 0x000000d1\n"
        "                       (0x0000000000000028,0x0000000000000002,"
        "0x0000000000000000,0xFFFFF8073E2C41A2)\n"
    )
    [b] = analyses(live)
    assert b["bugcheck_code"] == 0xD1 and b["parameters"][3] == "0xfffff8073e2c41a2"


def test_the_same_crash_analysed_twice_is_one_but_two_dumps_are_two():
    verbose = OLD_SUMMARY + (
        "\n0: kd> !analyze -v\n" + OLD_SUMMARY.split("Use !analyze")[0] + "\n"
        "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e)\nThis is a very common BugCheck.\nArguments:\n"
        "Arg1: ffffffffc0000005, The exception code that was not handled\n"
        "Arg2: fffff88001a2b3c4, The address that the exception occurred at\n"
        "Arg3: fffff88003a1b6d8, Exception Record Address\n"
        "Arg4: fffff88003a1af30, Context Record Address\n\n"
        "IMAGE_NAME:  storvsc.sys\n"
    )
    [a] = analyses(verbose)
    assert a["stop_name"] == "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED" and a["line"] == "line:9"
    other = verbose.replace("fffff88001a2b3c4", "fffff88001a2ffff")
    two = (
        "Loading Dump File [C:\\a.dmp]\n"
        + OLD_SUMMARY
        + "Loading Dump File [C:\\b.dmp]\n"
        + OLD_SUMMARY
    )
    assert [x["dump_file"] for x in analyses(two)] == ["C:\\a.dmp", "C:\\b.dmp"]
    assert len(analyses(OLD_SUMMARY + other.split("0: kd>")[1])) == 2  # other parameters


def test_a_truncated_paste_gives_what_it_has():
    text = post("windbg-new-storvsc-en")
    cut = text[: text.index("Arg3:")]
    [a] = analyses(cut)
    assert a["bugcheck_code"] == 0x7E
    assert a["parameters"] == ["0xffffffffc0000005", "0xfffff8066a2b1234"]
    assert a["module"] is None and a["failure_bucket"] is None
    # Cut before the code: the culprit alone, and no bugcheck made up from it.
    [b] = analyses("Probably caused by : storvsc.sys ( storvsc!Foo+2f )\n")
    assert b["bugcheck_code"] is None and b["bugcheck_hex"] is None and b["module"] == "storvsc"
    fact = Fact("crash_analysis", b, Provenance("/p", "line:1"))
    assert [f for f in derived_facts([fact]) if f.kind == "bugcheck"] == []
    # Cut in the middle of a line: no exception, nothing invented.
    for n in range(0, len(OLD_SUMMARY), 7):
        for found in analyses(OLD_SUMMARY[:n]):
            assert found["bugcheck_code"] in (None, 0x7E)


NEAR_MISSES = [
    "How do I run !analyze -v on a minidump? Where are the dumps kept?\n",
    "Run !analyze -v and look at 'Probably caused by : <driver>'.\n",
    "INACCESSIBLE_BOOT_DEVICE (7b)\nis what the screen said, no idea why.\n",
    "Probably caused by: a bad driver, I think\n",
    "The BugCheck event said something about 0x7B but I lost it.\n",
    "Bugcheck code: unknown, the dump was never written\n",
    # An application's analysis: fields like the kernel's, no bug check.
    "*******************************************************************************\n"
    "*                        Exception Analysis                                   *\n"
    "*******************************************************************************\n"
    "PROCESS_NAME:  vmms.exe\nMODULE_NAME: ntdll\nIMAGE_NAME:  ntdll.dll\n"
    "FAILURE_BUCKET_ID:  BREAKPOINT_80000003_ntdll.dll!DbgBreakPoint\nBUGCHECK_P1: 0\n",
    post("near-miss-mention"),
]


@pytest.mark.parametrize("text", NEAR_MISSES, ids=range(len(NEAR_MISSES)))
def test_near_misses_give_no_analysis(text):
    assert analyses(text) == []
    assert windbg.parse(Text.of(text, "/p")) == []


# ------------------------------------------------------------------ derived bugcheck, rules
def analysis(**attrs: Any) -> Fact:
    base = {
        "tool": "windbg",
        "bugcheck_code": None,
        "parameters": [],
        "module": None,
        "image": None,
    }
    return Fact("crash_analysis", {**base, **attrs}, Provenance("/evidence/post.txt", "line:7"))


def test_derived_bugcheck_carries_the_module():
    fact = analysis(
        bugcheck_code=0x7E,
        bugcheck_hex="0x0000007e",
        parameters=["0xffffffffc0000005"],
        module="storvsc",
        image="storvsc.sys",
        symbol="storvsc!Foo+2f",
        dump_file=r"C:\Windows\Minidump\031424-10921-01.dmp",
    )
    [bug] = [f for f in derived_facts([fact]) if f.kind == "bugcheck"]
    a = bug.attributes
    assert a["source"] == "WinDbg analysis" and a["stop_code"] == 0x7E
    assert a["stop_name"] == "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"
    assert (a["module"], a["image"], a["symbol"]) == ("storvsc", "storvsc.sys", "storvsc!Foo+2f")
    assert a["parameters"] == ["0xffffffffc0000005"]
    assert "031424-10921-01.dmp" in a["dump_copy_command"]
    assert bug.provenance.locator == "line:7"
    who = analysis(tool="whocrashed", bugcheck_code=0xD1)
    assert derived_facts([who])[0].attributes["source"] == "WhoCrashed"


def test_other_sources_keep_their_shape_with_no_module():
    dump = Fact(
        "crash_dump",
        {"bugcheck_code": 0x7E, "parameters": ["0x1"], "file": "/Windows/MEMORY.DMP"},
        Provenance("/d", "offset:0"),
    )
    [bug] = derived_facts([dump])
    assert bug.attributes["source"] == "kernel dump header" and bug.attributes["module"] is None


def top(*found: Fact) -> list[str]:
    return [d.rule.id for d in evaluate(RULES, list(found))]


def test_unknown_module_still_gets_the_generic_rule():
    ids = top(analysis(bugcheck_code=0x7E, module="contosoflt", image="contosoflt.sys"))
    assert ids[0] == "guest.bugcheck"
    assert "guest.bugcheck.hyperv-driver" not in ids


def test_rules_tell_the_causes_apart():
    assert top(analysis(bugcheck_code=0x7E, module="vmbus", image="vmbus.sys"))[0] == (
        "guest.bugcheck.hyperv-driver"
    )
    assert (
        top(analysis(bugcheck_code=0x1000007B, module="nt"))[0] == "guest.inaccessible-boot-device"
    )
    assert top(analysis(bugcheck_code=0x20001))[0] == "host.bugcheck.hyperv-stack"
    assert top(analysis(bugcheck_code=0x3B, module="vid", image="vid.sys"))[0] == (
        "host.bugcheck.hyperv-stack"
    )
    assert top(analysis(bugcheck_code=0x101))[0] == "guest.bugcheck.cpu-watchdog"
    # 0xc000021a from WinDbg reaches the rules of that stop code through the bugcheck fact.
    assert "guest.bugcheck" in top(analysis(bugcheck_code=0xC000021A))


# ------------------------------------------------------------------ end to end
CASES = [
    ("windbg-new-storvsc-en", "guest.bugcheck.hyperv-driver", "031424-10921-01.dmp", "en"),
    ("windbg-old-7b-ja", "guest.inaccessible-boot-device", "Get-VMHardDiskDrive", "ja"),
    ("whocrashed-netvsc-en", "guest.bugcheck.hyperv-driver", "netvsc.sys", "en"),
    ("bluescreenview-vmswitch-ja", "host.bugcheck.hyperv-stack", "040224-11250-01.dmp", "ja"),
    ("windbg-dpc-watchdog-en", "guest.bugcheck.cpu-watchdog", "Get-VMProcessor", "en"),
    # 0xc000021a from WinDbg beside DISM's Install Pending: the update rule, not the generic.
    (
        "windbg-c000021a-pending-en",
        "guest.stop-0xc000021a.pending-update",
        "/RevertPendingActions",
        "en",
    ),
]


@pytest.mark.parametrize(("case", "expected", "command", "lang"), CASES, ids=[c[0] for c in CASES])
def test_triage_of_each_post(tmp_path, case, expected, command, lang):
    data = triage_incident(FIXTURES / case, tmp_path, expected, command, lang)
    ids = [d["id"] for d in data["diagnoses"]]
    assert "guest.bugcheck" in ids  # the generic word on the crash stays, below the specific one


def test_triage_of_the_near_miss(tmp_path):
    data = triage_incident(FIXTURES / "near-miss-mention", tmp_path, None, None, "en")
    assert not [d for d in data["diagnoses"] if "bugcheck" in d["id"]]


def test_a_stop_line_with_its_arguments_alone():
    text = (
        "DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)\n"
        "An attempt was made to access a pageable (or completely invalid) address at an\n"
        "interrupt request level (IRQL) that is too high.\n"
        "Arguments:\n"
        "Arg1: 0000000000000028, memory referenced\n"
        "Arg2: 0000000000000002, IRQL\n"
    )
    [a] = analyses(text)
    assert (a["bugcheck_code"], a["stop_name"], a["parameters"]) == (
        0xD1,
        "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
        ["0x28", "0x2"],
    )
    assert a["line"] == "line:1"


def test_an_analysis_deep_in_a_large_log_is_found_whole():
    noise = [
        f"Information\t3/14/2024 1:{i % 60:02d}:00 AM\tService Control Manager\t7036"
        for i in range(5000)
    ]
    stack = [
        f"ffffb201`7c6a{i:04x} fffff806`4a4c5a15 : 00000000`00000000 : nt!Foo+0x{i:x}"
        for i in range(150)
    ]
    verbose = (
        OLD_SUMMARY.split("Use !analyze")[0]
        + "\nSYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e)\nArguments:\nArg1: ffffffffc0000005, x\n"
        + "BUGCHECK_CODE:  7e\n\nSTACK_TEXT:\n"
        + "\n".join(stack)
        + "\n\nMODULE_NAME: vmbus\n\nIMAGE_NAME:  vmbus.sys\n"
    )
    text = "\n".join(noise) + "\n" + verbose + "\n".join(noise)
    [a] = analyses(text)
    assert (a["bugcheck_code"], a["module"], a["image"]) == (0x7E, "vmbus", "vmbus.sys")
    assert a["line"] == line_of(text, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e)")


def test_windows_own_bugcheck_line_is_read_once_as_an_event():
    text = (
        "The computer has rebooted from a bugcheck.  The bugcheck was: 0x0000007b "
        "(0xfffff880009a9928, 0xffffffffc0000034, 0x0000000000000000, 0x0000000000000000). "
        "A dump was saved in: C:\\Windows\\MEMORY.DMP. Report Id: 031524-9843-01.\n"
    )
    found = facts_from_text(text, "/evidence/post.txt")
    assert [f for f in found if f.kind == "crash_analysis"] == []
    bugchecks = [f for f in derived_facts(found) if f.kind == "bugcheck"]
    assert [b.attributes["stop_code"] for b in bugchecks] == [0x7B]
    assert top(*found)[0] == "guest.inaccessible-boot-device"


def test_winlogon_fatal_error_reaches_the_rules_of_0xc000021a():
    text = (
        "0: kd> !analyze -v\n"
        "WINLOGON_FATAL_ERROR (c000021a)\n"
        "The Winlogon process terminated unexpectedly.\n"
        "Arguments:\n"
        "Arg1: ffffc80e1a2b3c40, String that identifies the problem.\n"
        "Arg2: ffffffffc0000139, Error Code.\n"
        "Arg3: 0000000000000000\n"
        "Arg4: 0000000000000000\n"
    )
    [a] = analyses(text)
    assert (a["bugcheck_code"], a["bugcheck_hex"]) == (0xC000021A, "0xc000021a")
    assert a["stop_name"] == "WINLOGON_FATAL_ERROR" and a["line"] == "line:2"
    found = facts_from_text(text, "/evidence/post.txt")
    assert top(*found)[0] == "guest.stop-0xc000021a.entry-point-not-found"


def test_notes_typed_after_the_lines_of_a_japanese_post_are_not_values():
    # Japanese posts mark what matters with "★" (or an arrow) after a line of the analysis.
    text = (
        "0: kd> !analyze -v\n"
        "DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)   ★「stop コード」です。\n"
        "Arguments:\n"
        "Arg1: 0000000000000020, memory referenced\n"
        "Arg2: 0000000000000002, IRQL\n"
        "Arg3: 0000000000000000, value 0 = read operation, 1 = write operation\n"
        "Arg4: fffff80245a61c3e, address which referenced memory\n"
        "\n"
        "MODULE_NAME: netvsc\n"
        "\n"
        "IMAGE_NAME:  netvsc.sys   ★ドライバー名\n"
        "\n"
        "SYMBOL_NAME:  netvsc!NvscProcessReceive+5e ←ここ\n"
    )
    [a] = analyses(text)
    assert a["stop_name"] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL" and a["line"] == "line:2"
    assert (a["image"], a["symbol"]) == ("netvsc.sys", "netvsc!NvscProcessReceive+5e")
    found = facts_from_text(text, "/evidence/post.txt")
    assert top(*found)[0] == "guest.bugcheck.hyperv-driver"


def test_a_dump_under_a_japanese_user_folder_keeps_its_path():
    text = (
        "Loading Dump File [C:\\Users\\佐藤\\Desktop\\ダンプ\\MEMORY.DMP]\n"
        "0: kd> !analyze -v\n"
        "SYSTEM_SERVICE_EXCEPTION (3b)\n"
        "Arguments:\n"
        "Arg1: 00000000c0000005, Exception code that caused the BugCheck\n"
        "\n"
        "IMAGE_NAME:  vid.sys\n"
    )
    [a] = analyses(text)
    assert a["dump_file"] == "C:\\Users\\佐藤\\Desktop\\ダンプ\\MEMORY.DMP"
    assert (a["bugcheck_code"], a["image"]) == (0x3B, "vid.sys")


BSV_JA = [
    ("ダンプ ファイル", "040224-11250-01.dmp"),
    ("クラッシュ時刻", "2024/04/02 3:18:44"),
    ("バグチェック文字列", "DRIVER_IRQL_NOT_LESS_OR_EQUAL"),
    ("バグチェック コード", "0x000000d1"),
    ("パラメーター 1", "00000000`00000028"),
    ("パラメーター 2", "00000000`00000002"),
    ("パラメーター 3", "00000000`00000000"),
    ("パラメーター 4", "fffff807`3e2c41a2"),
    ("原因ドライバー", "vmswitch.sys"),
    ("原因アドレス", "vmswitch.sys+441a2"),
    ("ファイルの説明", "Network Virtualization Service Provider"),
]


def _bsv(rows: list[tuple[str, str]]) -> str:
    sep = "=" * 50
    return "\n".join([sep, *(f"{k.ljust(12)}: {v}" for k, v in rows), sep]) + "\n"


def test_bluescreenview_with_translated_labels_is_read_by_position():
    text = _bsv(BSV_JA)
    [a] = analyses(text)
    assert (a["tool"], a["bugcheck_code"], a["stop_name"]) == (
        "bluescreenview",
        0xD1,
        "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
    )
    assert (a["image"], a["symbol"], a["dump_file"]) == (
        "vmswitch.sys",
        "vmswitch.sys+441a2",
        "040224-11250-01.dmp",
    )
    assert a["parameters"] == ["0x28", "0x2", "0x0", "0xfffff8073e2c41a2"]
    assert a["line"] == line_of(text, "0x000000d1")


def test_translated_labels_in_another_column_order_are_not_guessed():
    # The driver column moved before the code: the values no longer have the default shapes.
    rows = [BSV_JA[0], BSV_JA[8], *BSV_JA[1:8], *BSV_JA[9:]]
    assert analyses(_bsv(rows)) == []
    # Nor does a list of "name : value" lines that merely starts with a dump file.
    assert analyses(_bsv([("ファイル", "MEMORY.DMP"), *[("メモ", "なし")] * 12])) == []
