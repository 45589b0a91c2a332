"""Damage the fuzz campaign of issue 12 found in the parsers, each as the smallest case that shows
it, beside the saved crashers that tests/test_fuzz.py replays."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CORPUS

EVTX = CORPUS / "evtx" / "DeepBlueCLI"
CHUNK_AT = 4096


def _two_chunk_log() -> bytes:
    """Two single-chunk logs of the corpus made one: 13 records, then 32."""
    first = (EVTX / "disablestop-eventlog.evtx").read_bytes()
    name = "ID8-Servicing-Module-Virtualization-disabled.evtx"
    second = next(p.read_bytes() for p in sorted((CORPUS / "evtx").rglob(name)))
    data = bytearray(first + second[CHUNK_AT:])
    struct.pack_into("<H", data, 42, 2)  # the file header's chunk count
    return bytes(data)


def _link_in_a_circle(data: bytes, table_at: int, count: int) -> bytes:
    """The first chunk's first two nodes of a table (strings at 128, templates at 384) made to
    point at each other."""
    out = bytearray(data)
    offsets = [o for o in struct.unpack_from(f"<{count}I", out, CHUNK_AT + table_at) if o]
    a, b = offsets[:2]
    struct.pack_into("<I", out, CHUNK_AT + a, b)
    struct.pack_into("<I", out, CHUNK_AT + b, a)
    return bytes(out)


@pytest.fixture
def two_chunks() -> bytes:
    if not EVTX.is_dir():
        pytest.skip("../shared/corpus is not present beside the project")
    return _two_chunk_log()


def test_a_string_table_in_a_circle_costs_its_chunk_not_the_run(
    two_chunks: bytes, tmp_path: Path
) -> None:
    """The evtx package would walk such a table forever (in native code: no timeout can stop
    it); the chunk is reported and passed over, the other chunk is read."""
    from hvrescue.logs.evtx_reader import read_evtx

    damaged = _link_in_a_circle(two_chunks, 128, 64)
    facts, problems = read_evtx(io.BytesIO(damaged), "System.evtx")
    assert len(facts) == 32
    [problem] = problems
    assert problem.code == "evtx.chunk-damaged" and problem.locator == "records:1-13"
    assert "string table" in problem.params["reason"]
    path = tmp_path / "System.evtx"
    path.write_bytes(damaged)
    facts, problems = read_evtx(str(path), str(path))  # a path, opened by the reader
    assert len(facts) == 32 and len(problems) == 1


def test_a_template_table_in_a_circle_is_read_as_before(two_chunks: bytes) -> None:
    """The package guards that table itself: nothing is hidden, every record is read."""
    from hvrescue.logs.evtx_reader import read_evtx

    facts, problems = read_evtx(io.BytesIO(_link_in_a_circle(two_chunks, 384, 32)), "x.evtx")
    assert len(facts) == 45 and problems == []


def test_an_undamaged_log_reads_the_same_through_the_guard(two_chunks: bytes) -> None:
    from hvrescue.logs.evtx_reader import read_evtx

    facts, problems = read_evtx(io.BytesIO(two_chunks), "x.evtx")
    assert len(facts) == 45 and problems == []


def test_facts_of_a_looping_log_end_with_the_chunk_reported(
    two_chunks: bytes, tmp_path: Path
) -> None:
    """Through the command, in a process of its own that would otherwise never end."""
    log = tmp_path / "System.evtx"
    log.write_bytes(_link_in_a_circle(two_chunks, 128, 64))
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", "facts", str(log), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"evtx.chunk-damaged"' in proc.stdout


def test_an_xml_configuration_naming_an_unknown_encoding_is_damaged(tmp_path: Path) -> None:
    from hvrescue.vmconfig.read import ConfigUnavailable, read_config

    path = tmp_path / "vm.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="QTF-8"?><configuration/>')
    with pytest.raises(ConfigUnavailable) as caught:
        read_config(str(path))
    assert caught.value.reason == "damaged"
