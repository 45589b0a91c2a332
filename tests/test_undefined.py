"""Undefined content, computed from the damage: for real images and each damage kind, the engine
reports exactly the ranges the damage makes unknown, reads every other byte as the intact image
holds it, and `hash`/`merge` never exit 0 with content that differs from the intact image's.

The expected ranges are worked out here from the damage and the intact file's layout (BAT
entries, block and bitmap sizes, the cut), not by the engine's mapping code.
"""

from __future__ import annotations

import gzip
import random
import shutil
import struct
from pathlib import Path

import pytest

from hvrescue.vdisk.disk import Disk, gap_ranges, merge_ranges
from hvrescue.vdisk.vhdx.image import VhdxImage
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import make_chain, patch
from tests.helpers import SHARED, run_cli

MiB = 1024 * 1024
SEEDS = range(3)
EXTERNAL = SHARED / "corpus" / "external"


def _gunzip(src: Path, dest: Path) -> Path:
    with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 22)
    return dest


CORPUS_ROOT = SHARED / "corpus"


@pytest.fixture(
    scope="module",
    params=["external/nodevhd-dynamic/dynamic.vhd.gz", "public/dissect-hypervisor/dynamic.vhd.gz"],
)
def vhd_intact(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dynamic VHDs written by Windows and by others, with data in several blocks."""
    src = CORPUS_ROOT / request.param
    if not src.exists():
        pytest.skip("../shared/corpus is not present")
    return _gunzip(src, tmp_path_factory.mktemp("vhd") / "dynamic.vhd")


@pytest.fixture(scope="module", params=["written", "public/dissect-hypervisor/dynamic.vhdx.gz"])
def vhdx_intact(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dynamic VHDXs: one of ours with data in every other 2 MiB block, and one from the
    dissect.hypervisor test data."""
    folder = tmp_path_factory.mktemp("vhdx")
    if request.param != "written":
        src = CORPUS_ROOT / request.param
        if not src.exists():
            pytest.skip("../shared/corpus is not present")
        return _gunzip(src, folder / "dynamic.vhdx")
    path = folder / "d.vhdx"
    rnd = random.Random(11)
    data = {
        b * 2 * MiB + 4096 * rnd.randrange(4): rnd.randbytes(MiB + 512) for b in range(0, 24, 2)
    }
    write_vhdx(str(path), VhdxSpec(virtual_size=64 * MiB, block_size=2 * MiB), data)
    return path


def _copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest


_INTACT: dict[str, bytes] = {}


def _content(path: Path) -> bytes:
    """The whole content of an (intact) image, read once per module run."""
    key = str(path)
    if key not in _INTACT:
        with Disk.open(key) as d:
            _INTACT[key] = d.read(0, d.size)
    return _INTACT[key]


def _assert_sound(intact: bytes, damaged: Path, expected: list[tuple[int, int]]) -> None:
    """The engine's undefined ranges are exactly ``expected``; every other byte reads as in
    the intact image, and the undefined bytes read as zeros, each reported by the read."""
    with Disk.open(str(damaged)) as d:
        got = gap_ranges(d.undefined())
        assert got == list(merge_ranges(sorted(expected)))
        data, gaps = d.read_checked(0, d.size)
        assert gap_ranges(gaps) == got
    pos = 0
    for lo, n in got:
        assert data[pos:lo] == intact[pos:lo]
        assert data[lo : lo + n] == bytes(n)
        pos = lo + n
    assert data[pos:] == intact[pos:]


def _vhd_layout(path: Path) -> tuple[int, int, int, list[int]]:
    """(block size, bitmap size, virtual size, BAT) read straight from the file."""
    raw = path.read_bytes()
    footer = raw[:512]
    data_offset = struct.unpack(">Q", footer[16:24])[0]
    size = struct.unpack(">Q", footer[48:56])[0]
    hdr = raw[data_offset : data_offset + 1024]
    table = struct.unpack(">Q", hdr[16:24])[0]
    entries, block = struct.unpack(">II", hdr[28:36])
    entries = min(entries, -(-size // block))
    bat = list(struct.unpack(f">{entries}I", raw[table : table + 4 * entries]))
    bitmap = -(-(block // 512 // 8) // 512) * 512
    return block, bitmap, size, bat


# ---------------------------------------------------------------------------- VHD
@pytest.mark.parametrize("seed", SEEDS)
def test_vhd_truncated_at_random_offsets(vhd_intact: Path, tmp_path: Path, seed: int) -> None:
    block, bitmap, size, bat = _vhd_layout(vhd_intact)
    used = sorted(e * 512 for e in bat if e != 0xFFFFFFFF)
    rnd = random.Random(seed)
    cut = rnd.randrange(used[0] + 1, vhd_intact.stat().st_size - 512)
    damaged = _copy(vhd_intact, tmp_path / "d.vhd")
    with open(damaged, "r+b") as f:
        f.truncate(cut)
    expected = []
    for index, entry in enumerate(bat):
        if entry == 0xFFFFFFFF:
            continue
        start = entry * 512
        vlo, n = index * block, min(block, size - index * block)
        if start + bitmap > cut:
            expected.append((vlo, n))
        elif start + bitmap + n > cut:
            have = cut - start - bitmap
            expected.append((vlo + have, n - have))
    assert expected, "the cut must fall inside the data"
    _assert_sound(_content(vhd_intact), damaged, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_vhd_bat_entry_past_eof(vhd_intact: Path, tmp_path: Path, seed: int) -> None:
    block, _bitmap, size, bat = _vhd_layout(vhd_intact)
    raw = vhd_intact.read_bytes()
    table = struct.unpack(">Q", raw[struct.unpack(">Q", raw[16:24])[0] + 16 :][:8])[0]
    rnd = random.Random(seed)
    index = rnd.choice([i for i, e in enumerate(bat) if e != 0xFFFFFFFF])
    damaged = _copy(vhd_intact, tmp_path / "d.vhd")
    far = len(raw) // 512 + rnd.randrange(8, 100_000)
    patch(damaged, table + 4 * index, struct.pack(">I", far))
    _assert_sound(
        _content(vhd_intact), damaged, [(index * block, min(block, size - index * block))]
    )
    with Disk.open(str(damaged)) as d:
        assert {g.cause for g in d.undefined()} == {"beyond-eof"}


@pytest.mark.parametrize("seed", SEEDS)
def test_vhd_bitmap_contradicting_the_data(vhd_intact: Path, tmp_path: Path, seed: int) -> None:
    """Sectors the bitmap calls never written but that hold data are undefined (the spec reads
    zeros, other readers the data); those that hold zeros read the same either way."""
    block, bitmap, _size, bat = _vhd_layout(vhd_intact)
    rnd = random.Random(seed)
    index = rnd.choice([i for i, e in enumerate(bat) if e != 0xFFFFFFFF])
    intact = _content(vhd_intact)
    damaged = _copy(vhd_intact, tmp_path / "d.vhd")
    # Clear a random run of bits: those sectors are "never written" now.
    first = rnd.randrange(0, block // 512 - 64)
    count = rnd.randrange(1, 2048)
    bits = bytearray(Path(vhd_intact).read_bytes()[bat[index] * 512 : bat[index] * 512 + bitmap])
    for sector in range(first, min(first + count, block // 512)):
        bits[sector // 8] &= ~(0x80 >> (sector % 8))
    patch(damaged, bat[index] * 512, bytes(bits))
    expected = []
    for sector in range(first, min(first + count, block // 512)):
        at = index * block + sector * 512
        if intact[at : at + 512] != bytes(512):
            expected.append((at, 512))
    _assert_sound(intact, damaged, expected)
    result = run_cli("check", damaged, "--json")
    found = {f["code"] for f in result.json()["findings"]}
    if expected:
        assert {"vhd.bitmap.inconsistent", "disk.undefined"} <= found
        assert result.rc == 1
    else:
        assert "vhd.bitmap.inconsistent" not in found


# ---------------------------------------------------------------------------- VHDX
def _vhdx_blocks(path: Path) -> tuple[int, int, int, int, list[int]]:
    img = VhdxImage.open(str(path))
    try:
        assert img.bat is not None
        return (
            img.block_size,
            img.chunk_ratio,
            img.size,
            img.regions["bat"].file_offset,
            [int(x) for x in img.bat],
        )
    finally:
        img.close()


def _payload(bat: list[int], cr: int) -> list[tuple[int, int]]:
    """(block, entry) of every present payload block."""
    return [
        (i - i // (cr + 1), e) for i, e in enumerate(bat) if i % (cr + 1) != cr and e & 7 in (6, 7)
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_vhdx_truncated_at_random_offsets(vhdx_intact: Path, tmp_path: Path, seed: int) -> None:
    bs, cr, size, _bat_at, bat = _vhdx_blocks(vhdx_intact)
    blocks = _payload(bat, cr)
    first = min((e >> 20) << 20 for _b, e in blocks)
    rnd = random.Random(seed)
    cut = rnd.randrange(first + 1, vhdx_intact.stat().st_size)
    damaged = _copy(vhdx_intact, tmp_path / "d.vhdx")
    with open(damaged, "r+b") as f:
        f.truncate(cut)
    expected = []
    for block, entry in blocks:
        start = (entry >> 20) << 20
        vlo, n = block * bs, min(bs, size - block * bs)
        if start >= cut:
            expected.append((vlo, n))
        elif start + n > cut:
            expected.append((vlo + cut - start, n - (cut - start)))
    _assert_sound(_content(vhdx_intact), damaged, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_vhdx_invalid_states_and_entries_past_eof(
    vhdx_intact: Path, tmp_path: Path, seed: int
) -> None:
    bs, cr, size, bat_at, bat = _vhdx_blocks(vhdx_intact)
    rnd = random.Random(seed)
    present = _payload(bat, cr)
    chosen = rnd.sample(present, min(3, len(present)))
    damaged = _copy(vhdx_intact, tmp_path / "d.vhdx")
    expected = []
    causes = set()
    for k, (block, entry) in enumerate(chosen):
        index = block + block // cr
        if k == 0:  # past the end of the file
            new = ((damaged.stat().st_size >> 20) + rnd.randrange(2, 5000)) << 20 | 6
            causes.add("beyond-eof")
        else:  # a state the format does not define here (4, 5, or 7 without a parent)
            new = (entry & ~7) | rnd.choice((4, 5, 7))
            causes.add("invalid-state")
        patch(damaged, bat_at + 8 * index, struct.pack("<Q", new))
        expected.append((block * bs, min(bs, size - block * bs)))
    _assert_sound(_content(vhdx_intact), damaged, expected)
    with Disk.open(str(damaged)) as d:
        assert {g.cause for g in d.undefined()} == causes


def test_vhdx_differencing_block_whose_bitmap_is_lost(tmp_path: Path) -> None:
    """A partly present block whose sector bitmap block is absent or past the end of the file:
    which sectors are the child's cannot be known, so the whole block is undefined."""
    _base, child = make_chain(tmp_path / "vm", depth=2, seed=5)
    bs, cr, size, bat_at, bat = _vhdx_blocks(child)
    partial = [b for b, e in _payload(bat, cr) if e & 7 == 7 and b < cr]
    assert partial
    intact = _content(child)
    for variant, value in (
        ("absent", 0),
        ("past-eof", ((child.stat().st_size >> 20) + 9) << 20 | 6),
    ):
        damaged = _copy(child, child.with_name(f"{variant}.avhdx"))  # beside its parent
        patch(damaged, bat_at + 8 * cr, struct.pack("<Q", value))  # chunk 0's bitmap entry
        expected = [(b * bs, min(bs, size - b * bs)) for b in partial]
        _assert_sound(intact, damaged, expected)
        result = run_cli("check", damaged, "--json")
        assert "vhdx.bitmap.lost" in {f["code"] for f in result.json()["findings"]}


# ---------------------------------------------------------------------------- chains
def test_missing_middle_link_is_refused_or_reported(tmp_path: Path) -> None:
    _base, middle, leaf = make_chain(tmp_path / "vm", depth=3, seed=9)
    intact = _content(leaf)
    middle.unlink()
    hashed = run_cli("hash", leaf, "--json")
    assert hashed.rc == 1 and hashed.json()["complete"] is False
    refused = run_cli("merge", leaf, tmp_path / "m.vhdx", "--json")
    assert refused.rc == 2 and "salvage" in refused.json()["error"]["message"]
    assert refused.json()["error"]["params"]["parent"] == str(middle)
    assert not (tmp_path / "m.vhdx").exists()
    out, mapfile = tmp_path / "s.raw", tmp_path / "s.map"
    result = run_cli("salvage", leaf, out, "--map", mapfile, "--json")
    assert result.rc == 1
    data = result.json()
    assert {g["cause"] for g in data["undefined"]} == {"parent-missing"}
    assert hashed.json()["undefined"] == data["undefined"]  # hash lists what salvage does
    salvaged = out.read_bytes()
    bad = [(g["offset"], g["length"]) for g in data["undefined"]]
    pos = 0
    for lo, n in bad:
        assert salvaged[pos:lo] == intact[pos:lo]  # what the leaf holds is its own
        pos = lo + n
    assert salvaged[pos:] == intact[pos:]
    # Every sector the leaf does not hold is reported: where the intact chain has data from
    # the lost middle or the base, the range is in the map.
    covered = bytearray(len(intact))
    for lo, n in bad:
        covered[lo : lo + n] = b"\x01" * n
    for at in range(0, len(intact), 512):
        if salvaged[at : at + 512] != intact[at : at + 512]:
            assert covered[at], at


# ---------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("seed", range(3))
def test_hash_and_merge_never_claim_damaged_content(
    vhd_intact: Path, tmp_path: Path, seed: int
) -> None:
    """Through the CLI: damaged copies either refuse or say exactly what is undefined; an
    exit 0 always comes with the intact content."""
    intact_hash = run_cli("hash", vhd_intact, "--json").json()["sha256"]
    block, bitmap, _size, bat = _vhd_layout(vhd_intact)
    rnd = random.Random(seed)
    damaged = _copy(vhd_intact, tmp_path / "d.vhd")
    index = rnd.choice([i for i, e in enumerate(bat) if e != 0xFFFFFFFF])
    with open(damaged, "r+b") as f:
        f.truncate(bat[index] * 512 + bitmap + rnd.randrange(0, block))
    h = run_cli("hash", damaged, "--json")
    data = h.json()
    with Disk.open(str(damaged)) as d:
        expected = [g.as_dict() for g in d.undefined()]
    if h.rc == 0:
        assert data["sha256"] == intact_hash
    else:
        assert h.rc == 1 and data["complete"] is False
        assert data["undefined"] == expected
    m = run_cli("merge", damaged, tmp_path / "m.vhdx", "--json")
    if m.rc == 0:
        assert run_cli("hash", tmp_path / "m.vhdx", "--json").json()["sha256"] == intact_hash
    else:
        assert m.rc == 2 and not (tmp_path / "m.vhdx").exists()


# ---------------------------------------------------------------------------- read errors
def test_unreadable_first_bat_sector_makes_its_blocks_undefined(
    vhdx_intact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable BAT sector governs 64 entries: their blocks are undefined, never zeros."""
    from hvrescue.recover.merge import merge
    from hvrescue.vdisk.check import check_file
    from tests.test_io import FaultyDisk

    bs, cr, size, bat_at, _bat = _vhdx_blocks(vhdx_intact)
    damaged = _copy(vhdx_intact, tmp_path / "d.vhdx")
    intact = _content(vhdx_intact)
    FaultyDisk(monkeypatch, damaged, bat_at, bat_at + 512)
    expected = [
        (b * bs, min(bs, size - b * bs))
        for b in range(-(-size // bs))
        if b + b // cr < 64  # the first sector holds entries 0..63
    ]
    _assert_sound(intact, damaged, expected)
    with Disk.open(str(damaged)) as d:
        assert {g.cause for g in d.undefined()} == {"metadata-unreadable"}
    result = check_file(str(damaged))
    assert result.status == "findings"
    codes = {f.code for f in result.findings}
    assert {"io.read-error", "disk.undefined"} <= codes
    with pytest.raises(Exception) as refused:
        merge(str(damaged), str(tmp_path / "m.vhdx"))
    assert getattr(refused.value, "key", "") == "error.merge.undefined"
    assert not (tmp_path / "m.vhdx").exists()


def test_read_errors_are_exact_to_the_sector_across_chunks(
    vhdx_intact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One bad sector costs one sector; a bad range crossing a 4 MiB read boundary is reported
    whole, by every read that meets it."""
    from tests.test_io import FaultyDisk

    bs, cr, _size, _bat_at, bat = _vhdx_blocks(vhdx_intact)
    blocks = sorted(_payload(bat, cr), key=lambda be: be[1])
    block, entry = blocks[min(1, len(blocks) - 1)]
    start = (entry >> 20) << 20
    damaged = _copy(vhdx_intact, tmp_path / "d.vhdx")
    intact = _content(vhdx_intact)
    FaultyDisk(monkeypatch, damaged, start + 4096 + 7, start + 4096 + 9)  # inside one sector
    with Disk.open(str(damaged)) as d:
        data, gaps = d.read_checked(0, d.size)
    assert [(g.offset, g.length, g.cause) for g in gaps] == [(block * bs + 4096, 512, "read-error")]
    lo = block * bs + 4096
    assert data[:lo] == intact[:lo] and data[lo + 512 :] == intact[lo + 512 :]
    # In 4 MiB pieces, as hash, merge and salvage read: the same single sector, once.
    with Disk.open(str(damaged)) as d:
        found = []
        for pos in range(0, d.size, 4 * MiB):
            found += d.read_checked(pos, 4 * MiB)[1]
    assert [(g.offset, g.length) for g in found] == [(lo, 512)]


# ---------------------------------------------------------------------------- log and copies
@pytest.mark.slow  # a 14 s log replay over a grown file
def test_truncated_vhdx_whose_log_grows_the_file(tmp_path: Path) -> None:
    """The log says the file is longer than it is (LastFileOffset): only what the log itself
    writes past the end is content; the rest of a block there is undefined, for every
    command, and the file copies (replay-log, repair) refuse to pass it off as whole."""
    import gzip as gz

    src = SHARED / "corpus" / "public" / "discutils" / "vhdx-log-replay.vhdx.gz"
    if not src.exists():
        pytest.skip("../shared/corpus/public is not present")
    intact = tmp_path / "intact.vhdx"
    with gz.open(src, "rb") as fin, open(intact, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    whole = _content(intact)
    damaged = _copy(intact, tmp_path / "cut.vhdx")
    with open(damaged, "r+b") as f:
        f.truncate(20 * MiB)
    with Disk.open(str(damaged)) as d:
        gaps = d.undefined()
        data, met = d.read_checked(0, d.size)
    assert gaps and {g.cause for g in gaps} <= {"truncated", "beyond-eof"}
    assert gap_ranges(met) == gap_ranges(gaps)
    pos = 0
    for lo, n in gap_ranges(gaps):
        assert data[pos:lo] == whole[pos:lo]  # what the file and the log still hold is content
        pos = lo + n
    assert data[pos:] == whole[pos:]
    h = run_cli("hash", damaged, "--json")
    assert h.rc == 1 and h.json()["complete"] is False
    assert "disk.undefined" in {
        f["code"] for f in run_cli("check", damaged, "--json").json()["findings"]
    }
    for command in ("merge", "replay-log", "repair"):
        out = tmp_path / f"{command}.vhdx"
        refused = run_cli(command, damaged, out, "--json")
        assert refused.rc == 2, (command, refused.stdout)
        assert not out.exists()
    allowed = run_cli("replay-log", damaged, tmp_path / "rl.vhdx", "--allow-gaps", "--json")
    assert allowed.rc == 1 and allowed.json()["status"] == "written-with-gaps"
    assert (tmp_path / "rl.vhdx.map").exists()


def test_salvage_refuses_to_continue_from_another_disks_map(tmp_path: Path) -> None:
    first, second = tmp_path / "a.vhdx", tmp_path / "b.vhdx"
    write_vhdx(str(first), VhdxSpec(virtual_size=8 * MiB), {0: b"\x5a" * MiB})
    write_vhdx(str(second), VhdxSpec(virtual_size=8 * MiB), {0: b"\x11" * MiB})
    out, mapfile = tmp_path / "s.raw", tmp_path / "s.map"
    assert run_cli("salvage", first, out, "--map", mapfile).rc == 0
    before = out.read_bytes()
    other = run_cli("salvage", second, out, "--map", mapfile, "--json")
    assert other.rc == 2
    assert other.json()["error"]["key"] == "error.salvage.map-other-source"
    assert out.read_bytes() == before


def test_merge_stopped_during_its_read_back_leaves_no_output(
    vhdx_intact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output is named only after the read-back that justifies "verified"."""
    from hvrescue.recover import merge as merge_mod

    def interrupted(*_args: object) -> str:
        assert list(tmp_path.glob(".m.vhdx.hvrescue-*.part")), "read back before it is named"
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_mod, "digest_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge_mod.merge(str(vhdx_intact), str(tmp_path / "m.vhdx"))
    assert list(tmp_path.iterdir()) == []
