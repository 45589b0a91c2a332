"""Property-based damage: random mutations of headers, region tables, metadata, BAT and log of
real and written images. Whatever the bytes, no exception escapes, nothing hangs, memory stays
bounded, and the result is either a readable disk or findings."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvrescue.errors import HvrescueError
from hvrescue.vdisk.check import check_file
from hvrescue.vdisk.disk import Disk
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.writer import BAT_OFFSET, LOG_OFFSET, METADATA_OFFSET, VhdxSpec, write_vhdx

MiB = 1024 * 1024
# Regions of a written VHDX worth mutating: (start, length).
VHDX_ZONES = {
    "identifier": (0, 1024),
    "header1": (s.HEADER_OFFSETS[0], 128),
    "header2": (s.HEADER_OFFSETS[1], 128),
    "regions1": (s.REGION_TABLE_OFFSETS[0], 96),
    "regions2": (s.REGION_TABLE_OFFSETS[1], 96),
    "metadata-table": (METADATA_OFFSET, 256),
    "metadata-items": (METADATA_OFFSET + 64 * 1024, 8192),
    "bat": (BAT_OFFSET, 256),
    "log": (LOG_OFFSET, 8192),
}
# Real reads use 4 MiB chunks; a hostile size field must not make us allocate more than this.
MEMORY_LIMIT = 48 * MiB


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("seeds")
    rnd = __import__("random").Random(5)
    dirty = d / "dirty.vhdx"
    write_vhdx(
        str(dirty),
        VhdxSpec(virtual_size=64 * MiB, pending_log=True),
        {0: rnd.randbytes(MiB), 20 * MiB: rnd.randbytes(2 * MiB)},
    )
    clean = d / "clean.vhdx"
    write_vhdx(
        str(clean),
        VhdxSpec(virtual_size=64 * MiB, logical_sector_size=4096),
        {4096: rnd.randbytes(MiB)},
    )
    return {"dirty": dirty, "clean": clean}


def exercise(path: Path) -> None:
    tracemalloc.start()
    try:
        result = check_file(str(path))
        assert result.status in ("clean", "findings", "error")
        try:
            with Disk.open(str(path)) as disk:
                # Bounded read of whatever the damaged BAT claims is there.
                for lo, n in list(disk.extents())[:16]:
                    disk.read(lo, min(n, 4 * MiB))
                disk.read(max(0, disk.size - 4096), 4096)
        except HvrescueError:
            pass  # an unreadable disk is a clean refusal, not a crash
        _, peak = tracemalloc.get_traced_memory()
        assert peak < MEMORY_LIMIT, peak
    finally:
        tracemalloc.stop()


mutation = st.tuples(
    st.sampled_from(sorted(VHDX_ZONES)),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.sampled_from(["dirty", "clean"]), mut=mutation)
def test_mutated_vhdx_never_crashes(seeds, tmp_path_factory, seed, mut):
    mutate_and_exercise(seeds, tmp_path_factory, seed, mut)


def mutate_and_exercise(seeds, tmp_path_factory, seed, mut) -> None:
    zone, edits = mut
    start, length = VHDX_ZONES[zone]
    path = tmp_path_factory.mktemp("m") / "m.vhdx"
    shutil.copyfile(seeds[seed], path)
    with open(path, "r+b") as f:
        for pos, value in edits:
            f.seek(start + pos % length)
            f.write(bytes([value]))
    exercise(path)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=6),
    slots=st.lists(st.integers(0, 40), min_size=1, max_size=6),
)
def test_hostile_bat_entries_never_crash(seeds, tmp_path_factory, values, slots):
    path = tmp_path_factory.mktemp("b") / "b.vhdx"
    shutil.copyfile(seeds["clean"], path)
    with open(path, "r+b") as f:
        for slot, value in zip(slots, values, strict=False):
            f.seek(BAT_OFFSET + 8 * slot)
            f.write(value.to_bytes(8, "little"))
    exercise(path)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, 8 * MiB))
def test_truncation_anywhere_never_crashes(seeds, tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("t") / "t.vhdx"
    shutil.copyfile(seeds["dirty"], path)
    with open(path, "r+b") as f:
        f.truncate(cut)
    exercise(path)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.sampled_from(["footer", "copy", "header", "bat", "locator"]),
    edits=st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_vhd_never_crashes(corpus_dir, tmp_path_factory, where, edits):
    src = corpus_dir / "dfvfs" / "fat-differential.vhd"
    path = tmp_path_factory.mktemp("v") / "fat-differential.vhd"
    shutil.copyfile(src, path)
    size = path.stat().st_size
    base = {"footer": size - 512, "copy": 0, "header": 512, "bat": 1536, "locator": 2048}[where]
    with open(path, "r+b") as f:
        for pos, value in edits:
            f.seek(min(base + pos, size - 1))
            f.write(bytes([value]))
    exercise(path)


# Zones of the real Windows-written images (offsets from `hvrescue info`).
CORPUS_ZONES = {
    "discutils/vhdx-log-replay.vhdx": [
        (s.HEADER_OFFSETS[0], 128),
        (s.HEADER_OFFSETS[1], 128),
        (s.REGION_TABLE_OFFSETS[0], 96),
        (MiB + 20480, 16384),  # the active log entries
        (2 * MiB, 256),
        (2 * MiB + 64 * 1024, 4096),
        (3 * MiB, 64),
    ],
    "dissect-hypervisor/differencing.avhdx": [
        (2 * MiB, 256),
        (2 * MiB + 64 * 1024, 4096),
        (3 * MiB, 4096),
        (s.HEADER_OFFSETS[0], 128),
    ],
}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(CORPUS_ZONES)), data=st.data())
def test_mutated_corpus_vhdx_never_crashes(corpus_dir, tmp_path_factory, name, data):
    start, length = data.draw(st.sampled_from(CORPUS_ZONES[name]))
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, length - 1), st.integers(0, 255)), min_size=1, max_size=8)
    )
    path = tmp_path_factory.mktemp("c") / Path(name).name
    shutil.copyfile(corpus_dir / name, path)
    with open(path, "r+b") as f:
        for pos, value in edits:
            f.seek(start + pos)
            f.write(bytes([value]))
    exercise(path)


@pytest.mark.slow
@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.sampled_from(["dirty", "clean"]), mut=mutation)
def test_mutated_vhdx_never_crashes_long(seeds, tmp_path_factory, seed, mut):
    mutate_and_exercise(seeds, tmp_path_factory, seed, mut)
