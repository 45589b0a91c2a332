"""The BAT scan (issue 18 part 5): long runs of all-zero entries and of qemu's empty blocks are
compared at once, in place, and the result is what looking at every entry gives."""

from __future__ import annotations

import array
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hvrescue.vdisk.vhdx import bat as bat_mod
from hvrescue.vdisk.vhdx import structures as s

QEMU = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
MiB, GiB = 1 << 20, 1 << 30


def expected_chunks(entries: list[int], cr1: int, data_blocks: int, chunk: int, skip: bool):
    """Entry by entry, per chunk: skipped (all zero), counted (every payload entry ZERO and
    every sector bitmap entry 0, all inside the virtual size) or walked."""
    out = []
    for start in range(0, len(entries), chunk):
        part = entries[start : start + chunk]
        if not any(part):
            continue
        stop = start + len(part)
        zeroed = skip and all(
            e == (0 if (start + i) % cr1 == cr1 - 1 else s.PAYLOAD_ZERO) for i, e in enumerate(part)
        )
        last = stop - 1
        if zeroed and last - last // cr1 < data_blocks:
            out.append((start, stop, True))
        else:
            out.append((start, stop, False))
    return out


def scanned_chunks(view: memoryview, cr1: int, data_blocks: int, chunk: int, skip: bool):
    out = []
    for start, stop, zeroed in bat_mod.scan_bat(view, cr1, data_blocks, skip):
        assert start % chunk == 0
        out += [(a, min(a + chunk, stop), zeroed) for a in range(start, stop, chunk)]
    return _counting(out, cr1)


def _counting(chunks: list[tuple[int, int, bool]], cr1: int) -> list[tuple[int, int, bool]]:
    """The chunks but those that would count nothing: a chunk of a run of empty blocks that
    holds only sector bitmap entries (all zero, so also one to skip: either says the same)."""
    return [
        (a, b, z) for a, b, z in chunks if not (z and all(i % cr1 == cr1 - 1 for i in range(a, b)))
    ]


@st.composite
def bats(draw):
    cr1 = draw(st.sampled_from([2, 3, 5, 9, 17]))
    pieces: list[int] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["zero", "zeroed", "other"]))
        n = draw(st.integers(1, 80))
        if kind == "zero":
            pieces += [0] * n
        elif kind == "zeroed":
            at = len(pieces)
            pieces += [0 if (at + i) % cr1 == cr1 - 1 else s.PAYLOAD_ZERO for i in range(n)]
        else:
            pieces += draw(
                st.lists(
                    st.sampled_from([0, s.PAYLOAD_ZERO, 6 | (5 << 20), 1, 3, 7]),
                    min_size=n,
                    max_size=n,
                )
            )
    blocks_in_bat = len(pieces) - len(pieces) // cr1
    data_blocks = draw(st.integers(0, blocks_in_bat + 3))
    return pieces, cr1, data_blocks


@settings(max_examples=400, deadline=None)
@given(bats(), st.booleans(), st.sampled_from([(4, 16), (8, 8), (4, 4), (8, 64)]))
@example(  # a run of empty blocks ending in a chunk that holds one sector bitmap entry
    ([0] * 352 + [0 if i % 17 == 16 else s.PAYLOAD_ZERO for i in range(352, 425)], 17, 401),
    True,
    (4, 16),
)
def test_scan_finds_what_looking_at_every_entry_finds(case, skip, sizes):
    entries, cr1, data_blocks = case
    chunk, run = sizes
    saved = bat_mod.BAT_SCAN_CHUNK, bat_mod.BAT_SCAN_RUN
    bat_mod.BAT_SCAN_CHUNK, bat_mod.BAT_SCAN_RUN = chunk, run  # small, to cross every edge
    try:
        raw = b"".join(e.to_bytes(8, "little") for e in entries)
        want = _counting(expected_chunks(entries, cr1, data_blocks, chunk, skip), cr1)
        # the BAT as the image holds it (bytes: compared in place) ...
        assert scanned_chunks(memoryview(raw).cast("Q"), cr1, data_blocks, chunk, skip) == want
        # ... and as any other buffer (compared through copies)
        other = memoryview(array.array("Q", entries))
        assert scanned_chunks(other, cr1, data_blocks, chunk, skip) == want
    finally:
        bat_mod.BAT_SCAN_CHUNK, bat_mod.BAT_SCAN_RUN = saved


@pytest.mark.skipif(QEMU is None or QEMU_IO is None, reason="qemu-img/qemu-io not installed")
def test_small_blocks_sparse_disk_by_qemu_maps_as_qemu_maps_it(tmp_path: Path):
    """1 MiB blocks, 300 GiB: 300 K BAT entries, more than one comparison run, data in three
    places; what ``allocated`` says holds data is what was written, and the check is clean with
    every empty block counted as ZERO."""
    from hvrescue.vdisk.check import check_file
    from hvrescue.vdisk.detect import open_image

    disk = tmp_path / "q.vhdx"
    subprocess.run(
        [QEMU, "create", "-q", "-f", "vhdx", "-o", "block_size=1M", str(disk), "300G"], check=True
    )
    for cmd in ("write -P 0x11 0 4M", "write -P 0x22 100G 3M", "write -P 0x33 299G 1M"):
        subprocess.run([QEMU_IO, "-f", "vhdx", "-c", cmd, str(disk)], check=True, text=True)
    # 1 MiB blocks and aligned writes: the blocks written are exactly the data.
    theirs = [(0, 4 * MiB), (100 * GiB, 3 * MiB), (299 * GiB, 1 * MiB)]
    img = open_image(str(disk))
    ours: list[tuple[int, int]] = []
    for lo, n in img.allocated():
        if ours and ours[-1][0] + ours[-1][1] == lo:
            ours[-1] = (ours[-1][0], ours[-1][1] + n)
        else:
            ours.append((lo, n))
    assert ours == theirs
    result = check_file(str(disk))
    assert result.status == "clean", [f.code for f in result.findings]
    assert img.bat_counts["fully_present"] == 8
    assert img.bat_counts["zero"] == 300 * 1024 - 8
