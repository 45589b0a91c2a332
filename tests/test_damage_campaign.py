"""Damage the real world makes, on disks qemu wrote (tools/damage_campaign.py builds the
variants): what the campaign found is fixed and stays fixed, and a sample of its variants keeps
every invariant (no traceback, documented exit codes, never clean when damaged, hash agreeing
with qemu-img/pyvhdi or reporting the damage, merge refusing undefined content, inputs untouched).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
QEMU = shutil.which("qemu-img") and shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(not QEMU, reason="qemu-img and qemu-io (qemu-utils) are needed")


def _campaign():
    spec = importlib.util.spec_from_file_location(
        "damage_campaign", ROOT / "tools" / "damage_campaign.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dc = _campaign()
VARIANTS = {v.name: v for v in dc.VARIANTS}


def build(name: str, tmp_path: Path) -> Path:
    return dc.make_variant(VARIANTS[name], tmp_path / name)


def qemu_sha256(path: Path, fmt: str, tmp_path: Path) -> str | None:
    return dc.oracle_qemu(path, fmt, tmp_path)


def findings(path: Path) -> tuple[int, dict]:
    result = run_cli("check", "--json", path)
    return result.rc, result.json()


def test_overlapping_essential_metadata_items_are_critical_and_not_read(tmp_path: Path) -> None:
    # The virtual size entry points at the file parameters' bytes: qemu reads a 1 MiB-ish
    # disk from them; which value is right cannot be known, so hvrescue refuses to read it.
    path = build("vhdx-meta-items-overlap", tmp_path)
    rc, data = findings(path)
    assert rc == 1 and data["status"] != "clean"
    hits = [f for f in data["findings"] if "overlap:" in str(f.get("message", ""))]
    assert hits and hits[0]["code"] == "vhdx.metadata.invalid"
    assert hits[0]["severity"] == "critical"
    hashed = run_cli("hash", "--json", path)
    assert hashed.rc == 2 and "sha256" not in hashed.stdout
    merged = run_cli("merge", path, tmp_path / "out.vhdx")
    assert merged.rc == 2 and not (tmp_path / "out.vhdx").exists()


def test_overlapping_optional_metadata_items_are_an_error_and_the_content_reads(
    tmp_path: Path,
) -> None:
    path = dc.build_base("vhdx", tmp_path / "d")
    expected = qemu_sha256(path, "vhdx", tmp_path)
    v = dc.Vhdx.open(path)
    page83 = dc.uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
    physical = dc.uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
    at = v.item(page83)[0]
    dc.wr(path, at + 16, struct.pack("<I", v.item(physical)[1] - v.meta))
    rc, data = findings(path)
    hits = [f for f in data["findings"] if "overlap:" in str(f.get("message", ""))]
    assert rc == 1 and hits and hits[0]["severity"] == "error"
    hashed = run_cli("hash", "--json", path)
    assert hashed.json()["sha256"] == expected  # the content does not depend on those items


def test_a_vhd_bat_declared_past_the_end_of_file_is_a_warning(tmp_path: Path) -> None:
    path = dc.build_base("vhd-dynamic", tmp_path / "d")
    expected = qemu_sha256(path, "vpc", tmp_path)
    dc._v_vhd_bat_count_huge(path)
    assert qemu_sha256(path, "vpc", tmp_path) is None  # qemu refuses the declared table
    rc, data = findings(path)
    hits = [f for f in data["findings"] if "max-table-entries-beyond-eof" in f["message"]]
    assert rc == 1 and data["status"] != "clean"
    assert hits and hits[0]["code"] == "vhd.header.invalid" and hits[0]["severity"] == "warning"
    # The entries the virtual size needs are in the file: the content is the intact one.
    assert run_cli("hash", "--json", path).json()["sha256"] == expected
    if importlib.util.find_spec("pyvhdi"):
        assert dc.oracle_pyvhdi(path) == expected


def test_a_sector_bitmap_block_on_a_disk_without_parent_is_a_warning(tmp_path: Path) -> None:
    path = build("vhdx-sbm-nondiff", tmp_path)
    rc, data = findings(path)
    hits = [f for f in data["findings"] if "sector-bitmap-without-parent" in f["message"]]
    assert rc == 1 and data["status"] != "clean"
    assert hits and hits[0]["code"] == "vhdx.bat.invalid-state"
    assert hits[0]["severity"] == "warning"


def test_a_disk_qemu_wrote_hashes_as_qemu_reads_it(tmp_path: Path) -> None:
    path = dc.build_base("vhdx", tmp_path / "d")
    ours = run_cli("hash", "--json", path).json()["sha256"]
    raw = bytearray(dc.VSIZE)
    raw[0 : dc.MiB] = b"\x5a" * dc.MiB
    raw[3 * dc.MiB : 3 * dc.MiB + 512 * 1024] = b"\x33" * 512 * 1024
    raw[6 * dc.MiB : 6 * dc.MiB + 4096] = b"\x7e" * 4096
    assert ours == hashlib.sha256(raw).hexdigest() == qemu_sha256(path, "vhdx", tmp_path)


# Each runs every command as a process (~4 s): the rest, round two's included, run with -m slow.
SAMPLE = [
    "vhdx-meta-items-overlap",
    "vhdx-bat-duplicate",
    "chain-parent-id-mismatch",
]


@pytest.mark.parametrize("name", SAMPLE)
def test_a_sample_of_the_campaign_keeps_every_invariant(name: str, tmp_path: Path) -> None:
    row, bad = dc.run_variant(VARIANTS[name], tmp_path)
    assert not bad, (row, bad)
    if VARIANTS[name].visible:
        assert not row["check"].startswith("rc=0")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(VARIANTS) - set(SAMPLE)))
def test_every_campaign_variant_keeps_every_invariant(name: str, tmp_path: Path) -> None:
    row, bad = dc.run_variant(VARIANTS[name], tmp_path)
    assert not bad, (row, bad)


def test_the_campaign_runs_as_a_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "damage_campaign.py"),
            "--work",
            str(tmp_path),
            "--only",
            "vhd-dyn-no-footer-copy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vhd-dyn-no-footer-copy" in proc.stdout and "Violations:" in proc.stdout


def _same_sequence(path: Path, change: slice | None) -> None:
    """Both headers valid with one sequence number; ``change`` names the bytes of copy 2 made
    to differ (None: identical twins, as Disk2VHD writes them)."""
    hs = dc.vhdx_headers(path)
    seq = max(struct.unpack_from("<Q", h, 8)[0] for h in hs)
    twin = bytearray(hs[0])
    struct.pack_into("<Q", twin, 8, seq)
    dc.vhdx_put_header(path, 0, bytearray(twin))
    if change is not None:
        twin[change] = dc.uuid.uuid4().bytes_le
    dc.vhdx_put_header(path, 1, twin)


@pytest.mark.parametrize(
    ("change", "severity"),
    [(None, None), (slice(32, 48), "warning"), (slice(48, 64), "error")],
    ids=["identical-twins", "data-write-guid-differs", "log-guid-differs"],
)
def test_two_valid_headers_with_one_sequence_number(
    tmp_path: Path, change: slice | None, severity: str | None
) -> None:
    path = dc.build_base("vhdx", tmp_path / "d")
    expected = qemu_sha256(path, "vhdx", tmp_path)
    _same_sequence(path, change)
    rc, data = findings(path)
    hits = [f for f in data["findings"] if "same-sequence-differs" in f["message"]]
    if severity is None:  # Disk2VHD's identical twins are not damage
        assert rc == 0 and not hits
    else:
        assert rc == 1 and hits and hits[0]["severity"] == severity
        assert hits[0]["code"] == "vhdx.header.invalid" and data["status"] != "clean"
    if change != slice(48, 64):  # a log GUID with an empty log: nothing to replay either way
        assert run_cli("hash", "--json", path).json()["sha256"] == expected


def test_what_a_child_leaves_to_a_smaller_parent_is_undefined(tmp_path: Path) -> None:
    # The parent was shrunk (or replaced by a smaller disk with the same identity): what the
    # child left to it past its end is lost. Before the campaign it read as zeros, hash and
    # merge called it complete and verified.
    child = build("chain-parent-wrong-size", tmp_path)
    hashed = run_cli("hash", "--json", child)
    data = hashed.json()
    assert hashed.rc == 1 and data["complete"] is False
    assert [(g["offset"], g["length"], g["cause"]) for g in data["undefined"]] == [
        (4 * dc.MiB, 4 * dc.MiB, "beyond-parent")
    ]
    merged = run_cli("merge", child, tmp_path / "out.vhdx")
    assert merged.rc == 2 and not (tmp_path / "out.vhdx").exists()
    assert "beyond-parent" in merged.stderr + merged.stdout or "parent" in merged.stderr

    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(child)) as disk:
        content, gaps = disk.read_checked(dc.MiB, 4 * dc.MiB)  # parent, child, parent, none
        assert [(g.offset, g.length, g.cause) for g in gaps] == [
            (4 * dc.MiB, dc.MiB, "beyond-parent")
        ]
        assert content[: dc.MiB] == bytes(dc.MiB)  # the parent's unwritten 1-2 MiB
        assert content[dc.MiB : 2 * dc.MiB] == b"\x22" * dc.MiB  # the child's block
        assert content[3 * dc.MiB :] == bytes(dc.MiB)


def test_a_child_over_a_parent_of_its_own_size_has_no_undefined_range(tmp_path: Path) -> None:
    child = build("chain-intact-relative-only", tmp_path)
    data = run_cli("hash", "--json", child).json()
    assert data["complete"] is True and data["undefined"] == []
    raw = bytearray(dc.VSIZE)
    raw[: dc.MiB] = b"\x11" * dc.MiB
    raw[2 * dc.MiB : 3 * dc.MiB] = b"\x22" * dc.MiB
    assert data["sha256"] == hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------- round two (damage_real.py)


def _check(path: Path):
    from hvrescue.vdisk.check import check_file

    return check_file(str(path))


def _codes(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.code, []).append(f)
    return out


def _raw(*writes: tuple[int, bytes], size: int = dc.VSIZE) -> str:
    raw = bytearray(size)
    for off, data in writes:
        raw[off : off + len(data)] = data
    return hashlib.sha256(raw).hexdigest()


QEMU_RAW = [(0, b"\x5a" * dc.MiB), (3 * dc.MiB, b"\x33" * 512 * 1024), (6 * dc.MiB, b"\x7e" * 4096)]


@pytest.mark.parametrize(
    "name",
    ["vhd-dyn-zero-footer-copy", pytest.param("vhd-dyn-copy-cookie-bad", marks=pytest.mark.slow)],
)
def test_a_dynamic_vhd_without_its_footer_copy_is_not_clean(name: str, tmp_path: Path) -> None:
    # Before round two a zeroed (or overwritten) copy at offset 0 checked clean: qemu cannot
    # open such a file at all, libvhdi reads it from the footer at the end.
    path = build(name, tmp_path)
    result = _check(path)
    hits = _codes(result).get("vhd.footer.copy-missing")
    assert hits and hits[0].severity.name == "WARNING" and hits[0].offset == 0
    assert result.status != "clean"
    hashed = run_cli("hash", "--json", path).json()
    assert hashed["sha256"] == _raw(*QEMU_RAW)  # the content is whole: the end footer stands
    if importlib.util.find_spec("pyvhdi"):
        assert dc.oracle_pyvhdi(path) == hashed["sha256"]


def test_the_footer_copy_of_intact_vhds_is_not_reported(tmp_path: Path) -> None:
    for kind in ("vhd-dynamic", "ext-ocaml-dynamic", "vhd-diff-hand"):
        path = dc.build_base(kind, tmp_path / kind)
        assert "vhd.footer.copy-missing" not in _codes(_check(path)), kind


def test_a_log_entry_is_replayed_as_qemu_replays_it(tmp_path: Path) -> None:
    # A valid entry (our writer's, per MS-VHDX 2.3) rewrites block 0's first 4 KiB.
    path = build("vhdx-log-replay-valid", tmp_path)
    expected = _raw(*QEMU_RAW, (0, b"\xee" * 4096))
    assert dc.oracle_qemu(path, "vhdx", tmp_path) == expected  # qemu replays a copy
    hashed = run_cli("hash", "--json", path).json()
    assert hashed["sha256"] == expected and hashed["complete"] is True
    codes = _codes(_check(path))
    assert "vhdx.log.replay-needed" in codes and "vhdx.log.corrupt" not in codes


# What qemu reads of DiscUtils' Windows log image once it has replayed a copy (the corpus table,
# ../shared/corpus/vhd-vhdx-expected.md): converting its 1 GiB here would take too long.
WIN_LOG_REPLAYED = "3ba3b309425b7ff5e8e0199edceed95226250f880c53b24e8eae93865f3fad5e"


@pytest.mark.parametrize(
    "name",
    [
        "vhdx-log-replay-beyond-file",
        pytest.param("ext-win-log-beyond-file", marks=pytest.mark.slow),
    ],
)
def test_a_log_write_past_the_entrys_last_file_offset_is_reported(
    name: str, tmp_path: Path
) -> None:
    path = build(name, tmp_path)
    hits = [
        f
        for f in _codes(_check(path)).get("vhdx.log.corrupt", [])
        if f.params.get("problem") == "write-beyond-last-file-offset"
    ]
    assert hits and hits[0].severity.name == "WARNING"
    # The write lands past every structure and block: the content is what qemu's replay reads,
    # and nothing allocates or writes the 1 TiB the entry names.
    theirs = WIN_LOG_REPLAYED if name.startswith("ext-") else dc.oracle_qemu(path, "vhdx", tmp_path)
    assert run_cli("hash", "--json", path).json()["sha256"] == theirs
    out = tmp_path / "replayed.vhdx"
    assert run_cli("replay-log", path, out).rc in (0, 1)
    assert out.stat().st_size < 64 * dc.MiB


def test_the_real_logs_are_not_called_corrupt(tmp_path: Path) -> None:
    path = build("ext-win-log-intact", tmp_path)  # Windows 10's own log, 2 entries active
    codes = _codes(_check(path))
    assert "vhdx.log.replay-needed" in codes and "vhdx.log.corrupt" not in codes


def test_data_left_by_a_zeroed_bat_page_is_reported_where_it_lies(tmp_path: Path) -> None:
    # Every reader (qemu included) reads the blocks as not present: the BAT is consistent.
    # What is left is the data in file space nothing refers to: reported with its offset.
    path = build("vhdx-zero-bat-page", tmp_path)
    hashed = run_cli("hash", "--json", path).json()
    assert hashed["sha256"] == _raw() == dc.oracle_qemu(path, "vhdx", tmp_path)
    v = dc.Vhdx.open(dc.build_base("vhdx", tmp_path / "intact"))
    blocks = sorted(v.entry(i)[1] for i in (0, 3, 6))
    hits = _codes(_check(path))["vhdx.bat.orphan-data"]
    assert [(h.offset, h.params["units"]) for h in hits] == [(blocks[0], 3)]
    assert hits[0].severity.name == "INFO"
    assert "vhdx.bat.orphan-data" not in _codes(_check(tmp_path / "intact" / "disk.vhdx"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vhdx-zero-data-page", [(0, b"\x5a" * 64 * 1024), (68 * 1024, b"\x5a" * 956 * 1024)]),
        pytest.param("vhdx-flip-bat-state-zero", [], marks=pytest.mark.slow),
    ],
)
def test_damage_no_structure_shows_is_read_as_every_reader_reads_it(
    name: str, expected: list, tmp_path: Path
) -> None:
    # Undetectable by design: a zeroed page inside a data block, a FULLY_PRESENT state flipped
    # to ZERO (a valid state). Nothing may claim the range is damaged: check stays clean, the
    # hash is complete, and it is the content qemu reads.
    path = build(name, tmp_path)
    result = _check(path)
    assert result.status == "clean"
    hashed = run_cli("hash", "--json", path).json()
    rest = [w for w in QEMU_RAW if w[0] != 0]
    assert hashed["sha256"] == _raw(*rest, *expected) == dc.oracle_qemu(path, "vhdx", tmp_path)
    assert hashed["complete"] is True and hashed["undefined"] == []


HAND = [(0, b"\x11" * 4 * dc.MiB), (2 * dc.MiB + 128 * 1024, b"\x22" * 64 * 1024)]


def test_a_hand_built_differencing_vhd_reads_through_its_bitmap(tmp_path: Path) -> None:
    child = build("vhd-hand-intact", tmp_path)
    data = run_cli("hash", "--json", child).json()
    assert data["sha256"] == _raw(*HAND) and data["complete"] is True
    assert _check(child).status == "clean"
    # A zeroed bitmap hands the child's sectors back to the parent: undetectable by design,
    # read as the parent's.
    zeroed = build("vhd-hand-bitmap-zeroed", tmp_path)
    assert run_cli("hash", "--json", zeroed).json()["sha256"] == _raw(HAND[0])


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("vhd-hand-loc-garbage", "vhd.locator.undecodable"),
        ("vhd-hand-parent-name-bad-utf16", "vhd.header.parent-name-undecodable"),
        pytest.param("vhd-hand-loc-length-huge", "vhd.locator.invalid", marks=pytest.mark.slow),
    ],
)
def test_garbled_parent_references_are_reported_and_not_followed(
    name: str, code: str, tmp_path: Path
) -> None:
    child = build(name, tmp_path)
    result = _check(child)
    assert result.status != "clean" and code in _codes(result)
    chain = run_cli("chain", "--json", child).json()
    assert [Path(x["path"]).name for x in chain["layers"]] == ["child.vhd", "parent.vhd"]
    for link in chain["links"]:
        assert all("\ufffd" not in str(loc.get("value", "")) for loc in link["locators"])
    assert run_cli("hash", "--json", child).json()["sha256"] == _raw(*HAND)
