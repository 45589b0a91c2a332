"""Outputs people can use: -o files, JSON Lines and CSV, -v/-q/--log-file, UTF-8 JSON whatever
the console's code page, human sizes; and the library functions the thin commands call."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvrescue.cli.output import human_size
from hvrescue.facts.model import Fact, Provenance
from hvrescue.report.records import COLUMNS, NOT_A_TIME, fact_record, write_csv
from tests.helpers import CORPUS, Evidence, run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "incident"
EVTX = CORPUS / "evtx" / "EVTX-to-MITRE-Attack" / "ID7009-service-timeout.evtx"
TIMESKETCH = ("message", "datetime", "timestamp_desc")


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A private copy of the example incident (host outputs, a disk and its child)."""
    dest = tmp_path / "evidence"
    shutil.copytree(EXAMPLE, dest)
    return dest


def base_disk(evidence: Path) -> Path:
    return evidence / "Virtual Hard Disks" / "web01-restored.vhdx"


def run_raw(*args: str | Path, evidence: list[Path], env: dict[str, str] | None = None):
    """The CLI's stdout as bytes (no decoding in between), inputs proved untouched."""
    snap = Evidence(evidence)
    full_env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "", "COLUMNS": "200"}
    full_env.pop("HVRESCUE_LANG", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        capture_output=True,
        env=full_env,
        timeout=600,
    )
    snap.assert_untouched()
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


# ---------------------------------------------------------------- -o / --output
def test_output_file_holds_the_bytes_stdout_would_have(evidence, tmp_path):
    disk = base_disk(evidence)
    printed = run_raw("info", disk, evidence=[evidence])
    out = tmp_path / "info.txt"
    written = run_raw("info", disk, "-o", out, evidence=[evidence])
    assert printed.returncode == written.returncode == 0
    assert written.stdout == b""
    assert out.read_bytes() == printed.stdout
    assert b"virtual_size" in printed.stdout

    as_json = run_raw("check", disk, "--json", evidence=[evidence])
    out_json = tmp_path / "check.json"
    again = run_raw("check", disk, "--json", "-o", out_json, evidence=[evidence])
    assert again.returncode == as_json.returncode
    assert again.stdout == b""
    body = json.loads(out_json.read_bytes())
    expected = json.loads(as_json.stdout)
    assert body == expected and body["status"] == "clean"
    # Nothing but the output itself appeared beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.json", "evidence", "info.txt"]


def test_output_works_for_commands_of_every_module(evidence, tmp_path):
    """-o is carried out once for all commands: one from preserve_cmds, one from diagnose_cmds."""
    printed = run_cli("inventory", evidence, "--json", evidence=[evidence])
    out = tmp_path / "inventory.json"
    r = run_cli("inventory", evidence, "--json", "-o", out, evidence=[evidence])
    assert r.rc == printed.rc and r.stdout == ""
    written = json.loads(out.read_text(encoding="utf-8"))
    expected = printed.json()
    written.pop("as_of"), expected.pop("as_of")  # the time of each run
    assert written == expected and written["files"]
    out2 = tmp_path / "explain.txt"
    r = run_cli("explain", "VSS/8193", "-o", out2)
    assert r.rc == 0 and r.stdout == ""
    assert "VSS/8193" in out2.read_text(encoding="utf-8")


def test_output_refuses_an_existing_file_and_every_input_path(evidence, tmp_path):
    disk = base_disk(evidence)
    existing = tmp_path / "keep.txt"
    existing.write_bytes(b"not mine")
    r = run_cli("info", disk, "-o", existing, evidence=[evidence, existing])
    assert r.rc == 2 and "keep.txt" in r.stderr
    assert existing.read_bytes() == b"not mine"
    # The input itself (evidence is checked byte-identical by run_cli).
    r = run_cli("info", disk, "-o", disk, evidence=[evidence])
    assert r.rc == 2 and str(disk) in r.stderr
    # A new file beside the input, or inside a folder the command reads: refused, not created.
    beside = disk.parent / "info.txt"
    r = run_cli("info", disk, "-o", beside, evidence=[evidence])
    assert r.rc == 2 and not beside.exists()
    inside = evidence / "Host" / "facts.json"
    r = run_cli("facts", evidence, "--json", "-o", inside, evidence=[evidence])
    assert r.rc == 2 and not inside.exists()
    assert "facts.json" in r.stderr


def test_output_of_a_failed_text_command_leaves_no_file(tmp_path):
    not_a_disk = tmp_path / "in" / "notes.vhdx"
    not_a_disk.parent.mkdir()
    not_a_disk.write_bytes(b"hello" * 100)
    out = tmp_path / "info.txt"
    r = run_cli("info", not_a_disk, "-o", out, evidence=[not_a_disk])
    assert r.rc == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ---------------------------------------------------------------- JSON Lines and CSV
def test_facts_jsonl_has_timesketch_fields_and_the_facts_own_times(evidence):
    host = evidence / "Host"
    facts = run_cli("facts", host, "--json", evidence=[evidence]).json()["facts"]
    r = run_cli("facts", host, "--format", "jsonl", evidence=[evidence])
    lines = r.stdout.splitlines()
    assert len(lines) == len(facts) > 0
    for line, fact in zip(lines, facts, strict=True):
        record = json.loads(line)
        assert all(isinstance(record[k], str) and record[k] for k in TIMESKETCH)
        dt.datetime.fromisoformat(record["datetime"])
        assert record["kind"] == fact["kind"]
        assert record["path"] == fact["provenance"]["path"]
        assert json.loads(record["attributes"]) == fact["attributes"]
        local = fact["attributes"].get("time_local")
        if fact["kind"] == "event" and local:
            # Event Viewer's CSV gives local time without a zone: kept as it is, said so.
            assert record["datetime"] == local and record["time_zone"] == "local"
            assert record["event_id"] == fact["attributes"]["event_id"]
        elif fact["kind"] != "event":
            assert record["timestamp_desc"] == NOT_A_TIME and record["timestamp"] == 0


@pytest.mark.skipif(not EVTX.is_file(), reason="../shared/corpus is not present")
def test_facts_jsonl_of_evtx_is_utc_with_the_events_text(tmp_path):
    src = tmp_path / "in" / EVTX.name
    src.parent.mkdir()
    shutil.copyfile(EVTX, src)
    facts = run_cli("facts", src, "--json", evidence=[src]).json()["facts"]
    records = [
        json.loads(x) for x in run_cli("facts", src, "--format", "jsonl").stdout.splitlines()
    ]
    assert len(records) == len(facts) > 0
    for record, fact in zip(records, facts, strict=True):
        when = dt.datetime.fromisoformat(fact["attributes"]["time"].replace("Z", "+00:00")[:26])
        assert record["datetime"].endswith("+00:00") and record["time_zone"] == "UTC"
        assert dt.datetime.fromisoformat(record["datetime"]) == when.replace(tzinfo=dt.UTC)
        assert record["timestamp"] // 1_000_000 == calendar.timegm(when.utctimetuple())
        assert record["source"] == fact["attributes"]["provider"]
        # An event without rendered text still says what it holds (its data), not just "7009:".
        data = fact["attributes"]["data"]
        values = data.values() if isinstance(data, dict) else data
        for value in values:
            if value not in (None, ""):
                assert str(value).split()[0] in record["message"]


def test_facts_csv_parses_with_a_header_for_excel(evidence):
    host = evidence / "Host"
    formula = host / "Security events.csv"
    formula.write_text(
        "Level,Date and Time,Source,Event ID,Task Category\n"
        'Error,11/21/2026 3:04:05 AM,VSS,8193,None,"=HYPERLINK(""http://x"")"\n',
        encoding="utf-8",
    )
    facts = run_cli("facts", host, "--json", evidence=[evidence]).json()["facts"]
    proc = run_raw("facts", host, "--format", "csv", evidence=[evidence])
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with a BOM
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode("utf-8-sig"), newline="")))
    assert list(rows[0].keys()) == list(COLUMNS)
    assert len(rows) == len(facts)
    assert [r["kind"] for r in rows] == [f["kind"] for f in facts]
    cells = [r["message"] for r in rows if "HYPERLINK" in r["message"]]
    assert cells and all(c.startswith("'=") for c in cells)  # never run as a formula


def test_triage_timeline_jsonl_holds_every_timed_event_oldest_first(evidence, tmp_path):
    facts = run_cli("facts", evidence, "--json", evidence=[evidence]).json()["facts"]
    timed = [f for f in facts if f["attributes"].get("time") or f["attributes"].get("time_local")]
    r = run_cli(
        "triage",
        evidence,
        "--out",
        tmp_path / "report",
        "--timeline-format",
        "jsonl",
        evidence=[evidence],
    )
    assert r.rc in (0, 1)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == len(timed) > 0
    assert all(x["timestamp_desc"] != NOT_A_TIME for x in records)
    moments = [dt.datetime.fromisoformat(x["datetime"]).replace(tzinfo=None) for x in records]
    assert moments == sorted(moments)
    assert (tmp_path / "report" / "report.json").is_file()


def test_records_keep_times_as_recorded():
    def fact(**attributes):
        return Fact("event", attributes, Provenance("/x.evtx", "record:1"))

    utc = fact_record(fact(time="2016-08-15T12:00:00.1234567Z", provider="P", event_id=1))
    assert utc["datetime"] == "2016-08-15T12:00:00.123456+00:00"
    expected = calendar.timegm((2016, 8, 15, 12, 0, 0)) * 1_000_000 + 123456
    assert utc["timestamp"] == expected and utc["time_zone"] == "UTC"
    local = fact_record(fact(time_local="2026-11-20T02:00:19", message="a\nb"))
    assert local["datetime"] == "2026-11-20T02:00:19" and local["time_zone"] == "local"
    assert local["message"] == "a b"
    none = fact_record(Fact("service", {"name": "VSS"}, Provenance("/sc.txt")))
    assert none["timestamp_desc"] == NOT_A_TIME and none["datetime"].startswith("1970-01-01")
    out = io.BytesIO()
    assert write_csv([none, utc], out) == 2
    assert out.getvalue().count(b"\r\n") == 3


# ---------------------------------------------------------------- -v / -q / --log-file
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_quiet_shows_no_progress_bar(evidence):
    disk = base_disk(evidence)

    def stderr_on_a_terminal(*args: str) -> bytes:
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
        proc = subprocess.run(
            [sys.executable, "-m", "hvrescue", *args, "hash", str(disk)],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            timeout=600,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        assert proc.returncode == 0 and len(proc.stdout.strip().split()[-1]) == 64
        return seen

    assert b"MiB" in stderr_on_a_terminal()  # the bar is drawn without -q
    assert stderr_on_a_terminal("-q") == b""


def test_library_warnings_go_to_the_log_file_not_stderr(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import hvrescue.report.explain as explain_module
    from hvrescue.cli.main import cli

    real = explain_module.explain

    def noisy(code: str, lang: str):
        logging.getLogger("regipy.registry").warning("hive bin at 0x1000 has a bad signature")
        return real(code, lang)

    monkeypatch.setattr(explain_module, "explain", noisy)
    runner = CliRunner()
    log = tmp_path / "run.log"
    quiet = runner.invoke(cli, ["--log-file", str(log), "explain", "VSS/8193"])
    assert quiet.exit_code == 0, quiet.output
    assert "bad signature" not in quiet.stderr
    assert "VSS/8193" in quiet.stdout
    text = log.read_text(encoding="utf-8")
    assert "WARNING regipy.registry: hive bin at 0x1000 has a bad signature" in text
    loud = runner.invoke(cli, ["-v", "explain", "VSS/8193"])
    assert "bad signature" in loud.stderr  # -v shows it: the test above could fail
    again = runner.invoke(cli, ["--log-file", str(log), "explain", "VSS/8193"])
    assert again.exit_code != 0 and log.read_text(encoding="utf-8") == text


# ---------------------------------------------------------------- encodings and sizes
@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_json_is_utf8_whatever_the_console_code_page(evidence, encoding):
    name = evidence / "Host" / "ボリューム シャドウ.txt"
    shutil.copyfile(evidence / "Host" / "vssadmin list writers.txt", name)
    env = {"PYTHONIOENCODING": encoding}
    proc = run_raw("--lang", "ja", "explain", "VSS/8193", "--json", evidence=[], env=env)
    assert proc.returncode == 0
    data = json.loads(proc.stdout.decode("utf-8"))
    assert data["layer_text"] == "ホスト"
    proc = run_raw("--lang", "ja", "facts", name, "--json", evidence=[evidence], env=env)
    assert proc.returncode == 0
    facts = json.loads(proc.stdout.decode("utf-8"))["facts"]
    assert facts and facts[0]["provenance"]["path"] == str(name)
    # Text a code page cannot show is replaced, never a crash.
    proc = run_raw("--lang", "ja", "explain", "VSS/8193", evidence=[], env=env)
    assert proc.returncode == 0 and proc.stdout.strip()


def test_info_shows_human_sizes_beside_the_exact_count(evidence):
    disk = base_disk(evidence)
    data = run_cli("info", disk, "--json", evidence=[evidence]).json()
    size = data["virtual_size"]
    text = run_cli("info", disk, evidence=[evidence]).stdout
    assert f"{size / 2**20:.1f} MiB ({size} bytes)" in text
    assert f"({disk.stat().st_size} bytes)" in text


def test_human_size_uses_binary_units():
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(2**20 - 1) == "1.0 MiB"  # never "1024.0 KiB"
    assert human_size(64 * 2**30) == "64.0 GiB"
    assert human_size(3 * 2**60) == "3.0 EiB"


# ---------------------------------------------------------------- the library under the commands
def test_hash_disk_matches_an_independent_reader(evidence, tmp_path):
    from hvrescue.vdisk.reports import chain_report, check_files, hash_disk

    leaf = next((evidence / "Virtual Hard Disks").glob("*.avhdx"))
    search = [str(leaf.parent)]
    report = chain_report(str(leaf), search)
    assert report.complete and [r.link_state for r in report.rows()] == ["ok", "base"]
    checked = check_files([str(leaf)], search)
    assert checked.status == "findings"  # the parent was found elsewhere: a warning
    steps: list[tuple[int, int]] = []
    hashed = hash_disk(str(base_disk(evidence)), progress=lambda d, t: steps.append((d, t)))
    assert hashed.complete and steps[-1] == (hashed.size, hashed.size)
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img (Debian qemu-utils) is the independent reader")
    raw = tmp_path / "base.raw"
    subprocess.run(
        [qemu, "convert", "-O", "raw", str(base_disk(evidence)), str(raw)],
        check=True,
        capture_output=True,
    )
    assert hashed.sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()


def test_explain_never_shows_template_syntax():
    from hvrescue.report.explain import explain

    for lang in ("en", "ja"):
        found = explain("vhdx.log.replay-needed", lang)
        assert found is not None and found["kind"] == "finding"
        assert "{" not in found["meaning"] and found["layer"] == "virtual-disk"
    assert explain("no.such.code.anywhere", "en") is None


def test_triage_timeline_holds_the_events_no_rule_needs(tmp_path):
    """triage keeps in full only the events the rules and the report's window use; the printed
    timeline is every timed event all the same (a real System log of thousands of records)."""
    log = CORPUS / "evtx" / "omerbenamram-evtx" / "system.evtx"
    if not log.is_file():
        pytest.skip("shared corpus absent")
    folder = tmp_path / "logs"
    folder.mkdir()
    shutil.copyfile(log, folder / "System.evtx")
    facts = run_cli("facts", folder, "--format", "jsonl", evidence=[folder]).stdout.splitlines()
    timed = [json.loads(line) for line in facts]
    timed = [x for x in timed if x["timestamp_desc"] != NOT_A_TIME]
    r = run_cli(
        "triage", folder, "--out", tmp_path / "r", "--timeline-format", "jsonl", evidence=[folder]
    )
    assert r.rc in (0, 1), r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == len(timed) > 1000
