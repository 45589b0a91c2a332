"""Every public EVTX sample yields all its records, dirty ones included; a damaged chunk is
reported and the rest still read. The independent count comes from the chunk headers (each
chunk names its first and last record id), read here without the evtx package."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from hvrescue.logs.collect import collect
from tests.helpers import CORPUS, run_cli

EVTX_DIR = CORPUS / "evtx"
SAMPLES = sorted(EVTX_DIR.rglob("*.evtx")) if EVTX_DIR.is_dir() else []
CHUNK = 65536


def chunk_ranges(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    out = []
    for off in range(4096, len(data) - CHUNK + 1, CHUNK):
        if data[off : off + 8] == b"ElfChnk\0":
            first_id, last_id = struct.unpack_from("<QQ", data, off + 24)
            if last_id >= first_id:
                out.append((first_id, last_id))
    return out


def test_samples_present():
    if not EVTX_DIR.is_dir():
        pytest.skip("../shared/corpus is not present")
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_record_is_read(path: Path):
    result = collect([str(path)])
    assert not result.problems and not result.unrecognised
    ids = sorted(f.attributes["record_id"] for f in result.facts)
    expected = sorted(i for a, b in chunk_ranges(path) for i in range(a, b + 1))
    assert ids == expected
    assert all(f.kind == "event" and f.attributes["format"] == "evtx" for f in result.facts)


def test_dirty_header_files_are_read_past_the_header_count():
    # python-evtx stops at the header's chunk count: 326 and 457 records (python-evtx#85).
    for name, total in (("system.evtx", 1881), ("2-vss_7-System.evtx", 1160)):
        result = collect([str(EVTX_DIR / "omerbenamram-evtx" / name)])
        assert len(result.facts) == total


def test_kernel_power_41_and_eventlog_6008_fields():
    facts = collect([str(EVTX_DIR / "python-evtx" / "system.evtx")]).facts
    kp = [
        f.attributes
        for f in facts
        if f.attributes["event_id"] == 41
        and f.attributes["provider"] == "Microsoft-Windows-Kernel-Power"
    ]
    assert kp and kp[0]["level_name"] == "critical" and "BugcheckCode" in kp[0]["data"]
    el = [f.attributes for f in facts if f.attributes["event_id"] == 6008]
    assert el and el[0]["source_name"] == "EventLog" and isinstance(el[0]["data"], list)
    assert len(el[0]["data"]) >= 4 and el[0]["binary"]  # positional data and the binary both


def test_exported_log_keeps_both_record_numbers():
    facts = collect([str(EVTX_DIR / "DeepBlueCLI" / "disablestop-eventlog.evtx")]).facts
    first = facts[0].attributes
    assert first["record_id"] == 1 and first["system_record_id"] == 9252
    assert facts[0].provenance.locator == "record:1"


def test_damaged_chunk_is_reported_and_the_rest_read(tmp_path: Path):
    src = EVTX_DIR / "omerbenamram-evtx" / "system.evtx"
    path = tmp_path / "damaged.evtx"
    shutil.copyfile(src, path)
    ranges = chunk_ranges(src)
    with open(path, "r+b") as fh:
        fh.seek(4096 + 3 * CHUNK + 600)
        fh.write(b"\xaa" * 4400)
    result = run_cli("facts", "--json", path)
    assert result.rc == 0
    data = result.json()
    lost = ranges[3][1] - ranges[3][0] + 1
    assert len(data["facts"]) == 1881 - lost
    problem = data["problems"][0]
    assert problem["code"] == "evtx.chunk-damaged"
    assert problem["locator"] == f"records:{ranges[3][0]}-{ranges[3][1]}"


def test_truncated_and_garbage_evtx_never_crash(tmp_path: Path):
    src = (EVTX_DIR / "DeepBlueCLI" / "many-events-application.evtx").read_bytes()
    for cut in (8, 4096, 4096 + 70000, len(src) - 1000):
        path = tmp_path / f"cut{cut}.evtx"
        path.write_bytes(src[:cut])
        result = run_cli("facts", "--json", path)
        assert result.rc == 0
        result.json()
