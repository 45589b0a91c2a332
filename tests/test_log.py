"""The log overlay equals applying every descriptor in order to a plain buffer; log scanning
finds the active sequence as MS-VHDX 2.3.3 describes."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from hvrescue.vdisk.vhdx.log import LogEntry, LogScan, Overlay, scan_log
from hvrescue.vdisk.vhdx.writer import _log_entry

SECTOR = 4096
SPAN = 16 * SECTOR

op = st.one_of(
    st.tuples(
        st.integers(0, 15).map(lambda i: i * SECTOR),
        st.just(SECTOR),
        st.integers(1, 255).map(lambda b: bytes([b]) * SECTOR),
    ),
    st.tuples(
        st.integers(0, 15).map(lambda i: i * SECTOR),
        st.integers(1, 6).map(lambda n: n * SECTOR),
        st.none(),
    ),
)


@given(
    entries=st.lists(st.lists(op, min_size=1, max_size=6), min_size=1, max_size=6),
    window=st.tuples(st.integers(0, SPAN - 1), st.integers(1, SPAN)),
)
def test_overlay_equals_in_order_application(entries, window):
    scan = LogScan()
    scan.active = [LogEntry(0, SimpleNamespace(last_file_offset=0), ops) for ops in entries]
    expected = bytearray(b"\xee" * (2 * SPAN + 6 * SECTOR))
    for ops in entries:
        for off, length, content in ops:
            expected[off : off + length] = bytes(length) if content is None else content
    start, length = window
    got = bytearray(expected.__class__(b"\xee" * length))
    Overlay.from_scan(scan).patch(start, got)
    assert got == expected[start : start + length]


def _log(entries: list[bytes], size: int = 64 * SECTOR) -> bytes:
    buf = bytearray(size)
    pos = 0
    for e in entries:
        buf[pos : pos + len(e)] = e
        pos += len(e)
    return bytes(buf)


def test_active_sequence_is_the_newest_chain():
    guid = uuid.uuid4()
    w = [(0, b"\x01" * SECTOR)]
    old = _log_entry(guid, 10, w, 0)
    new1 = _log_entry(guid, 11, [(SECTOR, b"\x02" * SECTOR)], 0)
    new2 = _log_entry(guid, 12, [(2 * SECTOR, b"\x03" * SECTOR)], 0)
    scan = scan_log(_log([old, new1, new2]), guid)
    assert [e.header.sequence_number for e in scan.active] == [10, 11, 12]
    # An entry of another log GUID is a leftover, not part of the sequence nor damage.
    scan = scan_log(_log([old, new1, new2]), uuid.uuid4())
    assert not scan.active and not scan.invalid_entries


def test_damaged_entry_breaks_the_sequence_and_is_reported():
    guid = uuid.uuid4()
    e1 = _log_entry(guid, 1, [(0, b"\x01" * SECTOR)], 0)
    e2 = bytearray(_log_entry(guid, 2, [(SECTOR, b"\x02" * SECTOR)], 0))
    e2[SECTOR + 50] ^= 1
    scan = scan_log(_log([e1, bytes(e2)]), guid)
    assert [e.header.sequence_number for e in scan.active] == [1]
    assert scan.invalid_entries and scan.invalid_entries[0][1] == "checksum"


def test_gap_in_sequence_numbers_starts_a_new_sequence():
    guid = uuid.uuid4()
    e1 = _log_entry(guid, 1, [(0, b"\x01" * SECTOR)], 0)
    e3 = _log_entry(guid, 3, [(SECTOR, b"\x02" * SECTOR)], 0)
    scan = scan_log(_log([e1, e3]), guid)
    assert [e.header.sequence_number for e in scan.active] == [3]
