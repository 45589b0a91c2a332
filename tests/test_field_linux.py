"""Pasted logs of a Linux VM on Hyper-V that does not boot (issue H5): ``journalctl -xb``,
/var/log/messages in a Japanese post, the console typed out, a panic in dmesg. The lines are
read by ``hvrescue.logs.linux_lines.parse`` into ``linux_log_event`` facts, and the rules of
``diagnose/rules/field_linux.yaml`` name the failure. Fixtures and where each layout was seen:
tests/fixtures/field_linux/README.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import SEVERITY_ORDER, evaluate
from hvrescue.diagnose.rules import load_rules
from hvrescue.facts.model import Fact, Provenance
from hvrescue.guest.artefacts import linux_logs
from hvrescue.logs import linux_lines
from hvrescue.logs.collect_text import facts_from_text
from hvrescue.logs.linux_lines import log_line, mount_unit, parse, unit_path
from hvrescue.logs.textutil import Text
from tests.helpers import run_cli

FIX = Path(__file__).parent / "fixtures" / "field_linux"
GUEST_FIX = Path(__file__).parent / "fixtures" / "guest_linux"
JAPANESE = re.compile("[ぁ-んァ-ン一-龯]")
CATEGORIES = {name for name, _ in linux_lines.PATTERNS}
EMERGENCY = "linux.emergency-mode-missing-device"
ROOT = "linux.root-fs-not-found"


def only_file(case: str) -> Path:
    [path] = [p for p in (FIX / case).iterdir() if p.is_file()]
    return path


def linux_facts(path: Path) -> list[Fact]:
    text = path.read_text(encoding="utf-8")
    return [f for f in facts_from_text(text, str(path)) if f.kind == "linux_log_event"]


def line_of(path: Path, needle: str, nth: int = 0) -> int:
    """The 1-based line number of the ``nth`` line holding ``needle`` (an oracle that does not
    use the parser)."""
    numbers = [
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1)
        if needle in line
    ]
    return numbers[nth]


def lines_of(facts: list[Fact]) -> list[int]:
    return [int(str(f.provenance.locator).split(":")[1]) for f in facts]


# ---------------------------------------------------------------- the parser, per fixture
def test_journalctl_xb_paste_gives_the_failure_lines_and_not_the_catalog_text():
    path = only_file("journalctl-xb-emergency")
    facts = linux_facts(path)
    text_lines = path.read_text(encoding="utf-8").split("\n")
    # every fact is a stamped systemd line of the fenced block; none of the "░░" catalog lines
    for f, n in zip(facts, lines_of(facts), strict=True):
        assert text_lines[n - 1].startswith("Nov 28 06:1"), text_lines[n - 1]
        assert f.attributes["host"] == "app01"
        assert f.attributes["time_text"] == text_lines[n - 1][:15]
        assert f.attributes["file"] == str(path)
        assert f.attributes["category"] == "mount-failure"
    timeout = line_of(path, "Timed out waiting for device")
    mount = line_of(path, "Dependency failed for /srv/app-data")
    shell = line_of(path, "Reached target Emergency Mode")
    assert {timeout, mount, shell} <= set(lines_of(facts))
    assert line_of(path, "Reached target Local File Systems (Pre)") not in lines_of(facts)
    by_line = dict(zip(lines_of(facts), facts, strict=True))
    assert by_line[timeout].attributes["device"] == (
        "/dev/disk/by-uuid/5f0c1e7a-93b2-4d61-a8e4-2c7b9d0e1f36"
    )
    assert by_line[mount].attributes["mount_point"] == "/srv/app-data"
    assert by_line[mount].attributes["unit"] == "srv-app\\x2ddata.mount"  # as the log names it
    assert (
        by_line[mount].attributes["message"] == "systemd[1]: Dependency failed for /srv/app-data."
    )


def test_japanese_post_with_quoted_messages_nbsp_and_a_japanese_locale_journal():
    path = only_file("syslog-ja-post")
    facts = linux_facts(path)
    got = {(n, f.attributes["category"]) for n, f in zip(lines_of(facts), facts, strict=True)}
    assert (line_of(path, "Linux version"), "boot") in got
    assert (line_of(path, "hv_storvsc"), "io-error") in got
    # the quoted line with non-breaking spaces, and the same line in the ja_JP journal
    assert (line_of(path, "Dependency failed for /backup", 0), "mount-failure") in got
    assert (line_of(path, "Dependency failed for /backup", 1), "mount-failure") in got
    ja = [f for f in facts if str(f.attributes["time_text"]).startswith("11月")]
    assert len(ja) == 2 and all(f.attributes["host"] == "db02" for f in ja)
    # the Japanese prose around them is not read as log lines
    prose = [n for n, line in enumerate(path.read_text("utf-8").split("\n"), 1) if "緊急" in line]
    assert prose and not set(prose) & set(lines_of(facts))


def test_console_typed_out_with_status_markers_and_the_wrapped_prompt():
    path = only_file("console-emergency")
    facts = linux_facts(path)
    by_line = dict(zip(lines_of(facts), facts, strict=True))
    timeout = by_line[line_of(path, "[ TIME ]")]
    assert timeout.attributes["device"] == "/dev/disk/by-label/pgdata"
    assert timeout.attributes["time_text"] is None and timeout.attributes["host"] is None
    mount = by_line[line_of(path, "Dependency failed for /var/lib/postgresql")]
    assert mount.attributes["unit"] == "var-lib-postgresql.mount"
    assert line_of(path, "Give root password for maintenance") in by_line
    assert line_of(path, "You are in emergency mode") in by_line
    # the wrapped second half of the prompt and the admin's own sentences are not log lines
    assert line_of(path, "(or press Control-D") not in by_line
    assert line_of(path, "After ctrl-D") not in by_line
    assert line_of(path, "[  OK  ] Reached target Timer Units") not in by_line


def test_dracut_serial_console():
    path = only_file("console-dracut")
    facts = linux_facts(path)
    by_line = dict(zip(lines_of(facts), facts, strict=True))
    root = by_line[line_of(path, "Warning: /dev/mapper/rhel-root does not exist")]
    assert root.attributes["category"] == "mount-failure"
    could_not = by_line[line_of(path, "Could not boot")]
    assert could_not.attributes["uptime_seconds"] == 202.690451
    assert could_not.attributes["message"] == "dracut-initqueue[455]: Warning: Could not boot."
    assert line_of(path, "Entering emergency mode") in by_line
    assert line_of(path, 'Generating "/run/initramfs') not in by_line
    assert line_of(path, "dracut:/#") not in by_line


def test_kernel_panic_in_a_fenced_dmesg_paste():
    path = only_file("dmesg-panic-ja")
    facts = linux_facts(path)
    by_line = dict(zip(lines_of(facts), facts, strict=True))
    panic = by_line[line_of(path, "Kernel panic - not syncing")]
    assert panic.attributes["category"] == "panic"
    assert panic.attributes["uptime_seconds"] == 2.401402
    assert panic.attributes["message"].startswith("Kernel panic - not syncing: VFS: Unable")
    assert line_of(path, "VFS: Cannot open root device") in by_line
    assert line_of(path, "dump_stack_lvl") not in by_line


def test_clean_boot_gives_boot_lines_only():
    facts = linux_facts(only_file("near-clean-boot"))
    assert [f.attributes["category"] for f in facts] == ["boot", "boot", "boot"]
    assert facts[0].attributes["time_text"] == "2026-11-28T06:14:02+0900"


WINDOWS_LINES = [
    "The request could not be performed because of an I/O device error.",
    "An I/O error occurred while reading the disk. The volume is Read-only file system.",
    "2026-11-28 06:15:35 ERROR I/O error occurred on \\\\nas01\\vms",
    "2026-11-28 06:15:35, Error                 CSI    00000001 I/O error in store",
    "11/28/2026 6:15:35 AM  Error  disk  7  The device, \\Device\\Harddisk2\\DR2, has a bad block.",
    "  Read-only  : Yes",
    "Log Name: System  Source: Ntfs  Description: {Delayed Write Failed} I/O error",
    "仮想ディスクで I/O エラーが発生しました (Read-only file system)。",
]


@pytest.mark.parametrize("line", WINDOWS_LINES)
def test_a_windows_sentence_is_not_a_linux_log_line(line: str):
    assert log_line(line) is None
    assert parse(Text.of(line, "x.txt")) == []


def test_the_windows_near_miss_gives_no_linux_fact():
    assert linux_facts(only_file("near-windows-io")) == []


@pytest.mark.parametrize(
    ("line", "category", "time_text", "host"),
    [
        (
            "Nov 28 06:15:35.123456 web01 systemd[1]: Dependency failed for /data.",
            "mount-failure",
            "Nov 28 06:15:35.123456",
            "web01",
        ),
        (
            "Sat 2026-11-28 06:15:35 JST web01 kernel: EXT4-fs error (device sdb1): x",
            "fs-error",
            "Sat 2026-11-28 06:15:35 JST",
            "web01",
        ),
        (
            "Mär 04 21:01:10 natalia systemd[1]: Timed out waiting for device x.device.",
            "mount-failure",
            "Mär 04 21:01:10",
            "natalia",
        ),
        (
            "2026-11-28T06:15:35.123456+09:00 db02 kernel: Out of memory: Killed process 4242",
            "oom",
            "2026-11-28T06:15:35.123456+09:00",
            "db02",
        ),
        (
            "<0>[    0.562562] Kernel panic - not syncing: VFS: Unable to mount root fs",
            "panic",
            None,
            None,
        ),
        (
            "[Sat Nov 28 06:15:35 2026] blk_update_request: I/O error, dev sdb, sector 2048",
            "io-error",
            "Sat Nov 28 06:15:35 2026",
            None,
        ),
        (
            "kernel: XFS (dm-2): Metadata corruption detected at xfs_buf_ioend",
            "fs-error",
            None,
            None,
        ),
        ("systemd[1]: Failed to mount /boot/efi.", "mount-failure", None, None),
        ("[FAILED] Failed to mount /opt/data.", "mount-failure", None, None),
        (
            "ALERT!  UUID=143c811b-9b9c-48f3 does not exist.  Dropping to a shell!",
            "mount-failure",
            None,
            None,
        ),
        (
            "- Jul 30 12:29:11 peterrouter systemd[1]: Dependency failed for /boot.",
            "mount-failure",
            "Jul 30 12:29:11",
            "peterrouter",
        ),
    ],
)
def test_each_stamp_and_prefix(line: str, category: str, time_text: str | None, host: str | None):
    attrs = log_line(line)
    assert attrs is not None
    assert (attrs["category"], attrs["time_text"], attrs["host"]) == (category, time_text, host)


def test_only_the_newest_lines_are_kept():
    text = "\n".join(
        f"Nov 28 06:15:{i % 60:02d} web01 kernel: blk_update_request: I/O error, sector {i}"
        for i in range(1000)
    )
    facts = parse(Text.of(text, "big.log"))
    assert len(facts) == linux_lines.MAX_EVENTS
    assert facts[0].provenance.locator == f"line:{1000 - linux_lines.MAX_EVENTS + 1}"
    assert facts[-1].provenance.locator == "line:1000"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=200),
            st.sampled_from(
                [
                    "Nov 28 06:15:35 web01 systemd[1]: Timed out waiting for device ",
                    "[    1.5] Kernel panic - not syncing: ",
                    "[ TIME ] Timed out waiting for device dev-",
                    "> \u00a0Mär 04 21:01:10 h dracut-initqueue[1]: Warning: /dev/",
                    "Dependency failed for /\\x",
                    "11月 28 09:42:45 db02 systemd[1]: Dependency failed for /",
                ]
            ),
        ),
        max_size=40,
    )
)
def test_any_text_parses_without_error(parts: list[str]):
    text = "".join(parts)
    lines = text.split("\n")
    facts = parse(Text.of(text, "random.txt"))
    assert len(facts) <= min(len(lines), linux_lines.MAX_EVENTS)
    for f in facts:
        assert f.attributes["category"] in CATEGORIES
        assert 1 <= int(str(f.provenance.locator)[5:]) <= len(lines)
        assert len(str(f.attributes["message"])) <= 400


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape not here")
@pytest.mark.parametrize(
    "path", ["/data", "/srv/app-data", "/var/lib/postgresql", "/", "/mnt/.x", "/.snap", "/mnt/ü b"]
)
def test_unit_names_agree_with_systemd_escape(path: str):
    oracle = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert mount_unit(path) == oracle
    device = subprocess.run(
        ["systemd-escape", "--path", "--suffix=device", "/dev/disk/by-uuid/5f0c-93b2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert unit_path(device) == "/dev/disk/by-uuid/5f0c-93b2"


def test_the_guest_reader_uses_the_same_classifier():
    assert linux_logs.scan is linux_lines.scan
    assert linux_logs.classify is linux_lines.classify
    assert linux_logs.PATTERNS is linux_lines.PATTERNS
    # the guest's syslog, read as a paste, gives the same lines with the same categories
    text = (GUEST_FIX / "syslog-emergency.txt").read_text()
    events, _ = linux_logs.scan(text)
    pasted = parse(Text.of(text, "syslog"))
    assert [(e["tail_line"], e["category"], e["message"]) for e in events] == [
        (int(str(f.provenance.locator)[5:]), f.attributes["category"], f.attributes["message"])
        for f in pasted
    ]


# ---------------------------------------------------------------- rules, ranking
def test_the_disk_reading_rule_ranks_above_the_log_rule():
    rules = load_rules()
    logs = linux_facts(only_file("journalctl-xb-emergency"))
    entry = Fact(
        "fstab_entry",
        {
            "line": 4,
            "spec": "UUID=5f0c1e7a-93b2-4d61-a8e4-2c7b9d0e1f36",
            "mount_point": "/srv/app-data",
            "fstype": "xfs",
            "spec_kind": "uuid",
            "resolved": False,
            "nofail": False,
            "blocks_boot": True,
        },
        Provenance("app01.vhdx", "/etc/fstab:4"),
    )
    ids = [d.rule.id for d in evaluate(rules, [*logs, entry])]
    assert EMERGENCY in ids and "linux.fstab-missing-uuid" in ids
    assert ids.index("linux.fstab-missing-uuid") < ids.index(EMERGENCY)
    alone = [d.rule.id for d in evaluate(rules, logs)]
    assert alone[0] == EMERGENCY


# ---------------------------------------------------------------- end to end
def triage(tmp_path: Path, folder: Path, lang: str) -> dict:
    out = tmp_path / f"report-{lang}-{uuid.uuid4().hex[:8]}"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    data = r.json()
    data["rc"] = r.rc
    return data


@pytest.mark.parametrize(
    ("case", "rule", "cited"),
    [
        ("journalctl-xb-emergency", EMERGENCY, "Timed out waiting for device"),
        ("syslog-ja-post", EMERGENCY, "Dependency failed for /backup"),
        ("console-emergency", EMERGENCY, "[ TIME ]"),
        ("console-dracut", ROOT, "Warning: /dev/mapper/rhel-root does not exist"),
        ("dmesg-panic-ja", ROOT, "VFS: Cannot open root device"),
    ],
)
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_triage_names_the_failure(tmp_path: Path, case: str, rule: str, cited: str, lang: str):
    folder = FIX / case
    data = triage(tmp_path, folder, lang)
    assert data["rc"] == 1
    assert data["verdict"]["state"] == "problems"
    top = data["diagnoses"][0]
    assert top["id"] == rule == data["verdict"]["id"]
    assert bool(JAPANESE.search(top["title"])) == (lang == "ja")
    assert "{" not in top["title"] + top["summary"]
    path = only_file(case)
    locators = {e["locator"] for e in top["evidence"] if e["kind"] == "linux_log_event"}
    assert f"line:{line_of(path, cited)}" in locators
    commands = " ".join(s["command"] for s in top["steps"])
    if rule == EMERGENCY:
        assert "Get-VMHardDiskDrive" in commands and "blkid" in commands
        assert not re.search(r"\bmkfs\b", commands)  # never offered, only warned against
        assert any("mkfs" in a for a in top["avoid"])
    else:
        assert "hv_storvsc" in commands and "update-initramfs" in commands
        assert "dracut -f --add-drivers" in commands
        assert ("<installation ISO>" in commands) == (lang == "en")  # placeholders translated
    [item] = data["inputs"]
    assert "linux-log" in item["formats"]


def test_triage_of_the_syslog_the_issue_names(tmp_path: Path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copy(GUEST_FIX / "syslog-emergency.txt", folder)
    data = triage(tmp_path, folder, "en")
    assert data["diagnoses"][0]["id"] == EMERGENCY
    steps = " ".join(s["command"] for s in data["diagnoses"][0]["steps"])
    assert "systemctl status data.mount" in steps


@pytest.mark.parametrize(
    ("case", "state"), [("near-clean-boot", "healthy"), ("near-windows-io", "nothing-recognised")]
)
def test_near_misses_give_no_warning(tmp_path: Path, case: str, state: str):
    data = triage(tmp_path, FIX / case, "en")
    assert data["rc"] == 0
    assert data["verdict"]["state"] == state
    assert not [
        d for d in data["diagnoses"] if SEVERITY_ORDER[d["severity"]] >= SEVERITY_ORDER["warning"]
    ]


def test_crlf_and_double_spaced_pastes_give_the_same_lines():
    path = only_file("journalctl-xb-emergency")
    text = path.read_text(encoding="utf-8")
    plain = [(n, f.attributes["message"]) for n, f in zip(*_located(text), strict=True)]
    crlf = [
        (n, f.attributes["message"])
        for n, f in zip(*_located(text.replace("\n", "\r\n")), strict=True)
    ]
    doubled = _located(text.replace("\n", "\n\n"))
    assert plain and crlf == plain
    # every line got an empty one after it: the facts point at the lines of the doubled file
    assert [(n, f.attributes["message"]) for n, f in zip(*doubled, strict=True)] == [
        (2 * n - 1, m) for n, m in plain
    ]


def _located(text: str) -> tuple[list[int], list[Fact]]:
    facts = [f for f in facts_from_text(text, "paste.txt") if f.kind == "linux_log_event"]
    return lines_of(facts), facts
