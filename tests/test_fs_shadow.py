"""Volume Shadow Copies inside NTFS volumes: listed as volumes ``<n>@vss<k>`` (oldest first)
with their creation times, and read like a volume by `ls`, `extract` and `mount`.

The image is dfvfs's public ``vsstest`` (an NTFS volume with no partition table and two
shadow copies); ``shared/corpus/public/fs/PROVENANCE.md`` and ``expected/vss-vsstest.txt``
give what pytsk3 on each store and ``vshadowmount`` + ``ntfsls`` showed: the oracle."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import pytest

from tests.fs_linux_builders import have, run, to_vhdx
from tests.helpers import CORPUS, run_cli

VSS = CORPUS / "fs" / "vss" / "vsstest.raw.gz"
EXPECTED = CORPUS / "fs" / "expected" / "vss-vsstest.txt"


def _expected() -> dict[str, dict[str, tuple[int, str]]]:
    """{"1": current volume, "1@vss1": store 1, ...} -> {path: (size, sha256)}."""
    out: dict[str, dict[str, tuple[int, str]]] = {}
    current: dict[str, tuple[int, str]] = {}
    for line in EXPECTED.read_text().splitlines():
        if line.startswith("== current"):
            current = out.setdefault("1", {})
        elif line.startswith("== store "):
            current = out.setdefault("1@vss" + line.split()[2], {})
        elif line.strip().startswith("/"):
            path, size, sha = line.split()
            current[path] = (int(size.split("=")[1]), sha.split("=")[1])
    return out


@pytest.fixture(scope="module")
def vss_disk(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not VSS.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    if not have("qemu-img"):
        pytest.skip("needs qemu-img (Debian qemu-utils)")
    folder = tmp_path_factory.mktemp("vss")
    raw = folder / "vsstest.raw"
    with gzip.open(VSS, "rb") as fin, open(raw, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    vhdx = to_vhdx(raw, folder / "vsstest.vhdx")
    return {"raw": raw, "vhdx": vhdx, "folder": folder}


def test_shadow_copies_are_listed_oldest_first_with_their_times(vss_disk):
    r = run_cli("ls", vss_disk["vhdx"], "--json")
    assert r.rc == 0, r.stderr
    vols = {v["id"]: v for v in r.json()["volumes"]}
    assert list(vols) == ["1", "1@vss1", "1@vss2"]
    one, two = vols["1@vss1"], vols["1@vss2"]
    assert one["filesystem"] == two["filesystem"] == "ntfs"
    assert one["shadow_of"] == two["shadow_of"] == "1"
    assert one["kind"] == "shadow" and one["readable"] is True
    # PROVENANCE.md: vshadowinfo's identifiers and times for store 1 and store 2.
    assert one["created"].startswith("2013-12-03T06:35:09.736")
    assert two["created"].startswith("2013-12-03T06:37:48.919")
    assert one["shadow_copy_id"] == "4e3c03c2-7bc6-4288-ad96-c1eac1a55f71"
    assert two["shadow_set_id"] == "8438a0ee-0f06-443b-ac0c-2905647ca5d6"
    assert one["size"] == 1073741824
    text = run_cli("ls", vss_disk["vhdx"])
    assert "1@vss1" in text.stdout and "shadow copy" in text.stdout


@pytest.mark.parametrize("vid", ["1", "1@vss1", "1@vss2"])
def test_each_store_holds_the_files_the_independent_readers_saw(vss_disk, vid, tmp_path: Path):
    want = _expected()[vid]
    r = run_cli("ls", vss_disk["vhdx"], f"{vid}:/", "--json")
    assert r.rc == 0, r.stderr
    names = {e["name"]: e for e in r.json()["entries"] if not e["name"].startswith("$")}
    assert {n for n in names if n != "System Volume Information"} == {p.lstrip("/") for p in want}
    out = tmp_path / "out"
    specs = [f"{vid}:{p}" for p in want]
    x = run_cli("extract", vss_disk["vhdx"], *specs, "--to", out, "--json")
    assert x.rc == 0, x.stderr
    folder = out / ("p" + vid)
    for path, (size, sha) in want.items():
        data = (folder / path.lstrip("/")).read_bytes()
        assert len(data) == size
        assert hashlib.sha256(data).hexdigest() == sha


def test_store_bytes_match_libvshadow_read_directly(vss_disk):
    """Our volume source over the disk engine gives the bytes pyvshadow gives over the raw
    file (the engine's VHDX reading and the store ordering both checked)."""
    pyvshadow = pytest.importorskip("pyvshadow")
    from hvrescue.fs import discover
    from hvrescue.vdisk.disk import Disk

    with open(vss_disk["raw"], "rb") as f:
        ref = pyvshadow.volume()
        ref.open_file_object(f)
        oldest = min(ref.stores, key=lambda s: s.get_creation_time_as_integer())
        want = [oldest.read_buffer_at_offset(1 << 20, at) for at in (0, 340 << 20, 827 << 20)]
    with Disk.open(str(vss_disk["vhdx"])) as d:
        [vol] = [v for v in discover(d) if v.id == "1@vss1"]
        got = [vol.source.read(at, 1 << 20) for at in (0, 340 << 20, 827 << 20)]
    assert got == want


def test_an_unknown_shadow_copy_is_a_clear_error(vss_disk):
    r = run_cli("ls", vss_disk["vhdx"], "1@vss7:/", "--json")
    assert r.rc == 2
    err = r.json()["error"]
    assert err["key"] == "error.fs.no-volume"
    assert "1@vss1" in err["params"]["choices"]


def test_undefined_ranges_under_a_shadow_copy_reach_its_files(vss_disk, tmp_path: Path):
    """A shadow copy's changed blocks were saved into the shadow storage: their bytes lie
    where the store's block list says, not where the live volume holds them. Make one 1 MiB
    block of store 2's saved data undefined (its BAT entry points past the end of the file):
    store 2's reads there must be reported with that disk range, its $LogFile (saved there)
    written as incomplete, while the live volume and store 1 (saved elsewhere) stay whole."""
    from hvrescue.fs import discover
    from hvrescue.vdisk.disk import Disk
    from hvrescue.vdisk.vhdx.image import VhdxImage
    from tests.builders import patch

    damaged = tmp_path / "damaged.vhdx"
    opts = "subformat=dynamic,block_size=1M"
    run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", opts, vss_disk["raw"], damaged)
    with Disk.open(str(damaged)) as d:
        vols = {v.id: v for v in discover(d)}
        newer = vols["1@vss2"].source
        saved = newer.shared.maps()[newer.index]
    # A block of saved data away from the store's own records (its first MiBs hold the
    # block list, whose loss would hide the whole store) and from its original place.
    mibs = sorted({at >> 20 for at in saved.values()})
    assert len(mibs) > 3
    mib = mibs[2]
    original, where = next((o, at) for o, at in sorted(saved.items()) if at >> 20 == mib)
    assert original >> 20 != mib
    img = VhdxImage.open(str(damaged))
    try:
        at = img.regions["bat"].file_offset + 8 * (mib + mib // img.chunk_ratio)
        far = ((damaged.stat().st_size >> 20) + 64) << 20 | 6
    finally:
        img.close()
    patch(damaged, at, struct.pack("<Q", far))
    with Disk.open(str(damaged)) as d:
        vols = {v.id: v for v in discover(d)}
        assert [v.problem for v in vols.values()] == [None, None, None]
        newer = vols["1@vss2"].source
        assert newer.to_disk(original, 0x4000) == [(where, 0x4000)]
        assert newer.read_checked(original, 0x4000)[1] == 0
        assert vols["1"].source.read_checked(original, 0x4000)[1] is None
        gaps = [g for g in d.touched if g.offset <= where < g.offset + g.length]
        assert gaps, d.touched
    out = tmp_path / "out"
    x = run_cli("extract", damaged, "1@vss2:/$LogFile", "--to", out, "--json", evidence=[damaged])
    assert x.rc == 1
    assert [i["source"] for i in x.json()["incomplete"]] == ["1@vss2:/$LogFile"]
    assert not (out / "p1@vss2/$LogFile").exists()
    live = tmp_path / "live"
    y = run_cli("extract", damaged, "1:/$LogFile", "--to", live, "--json", evidence=[damaged])
    assert y.rc == 0 and not y.json()["incomplete"]


def test_mount_view_holds_each_shadow_copy(vss_disk):
    from hvrescue.fs.mount import volume_views
    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(vss_disk["vhdx"])) as d:
        views = volume_views(d)
        assert {"disk.raw", "p1@vss1.raw", "p1@vss2.raw"} <= set(views)
        one = views["p1@vss1.raw"]
        data, first = one.read_checked(0, 1 << 20)
    assert first is None
    assert data[3:11] == b"NTFS    "


def test_a_volume_without_shadow_copies_lists_none(tmp_path: Path):
    from hvrescue.fs.shadow import VSS_HEADER, VSS_IDENTIFIER, has_shadows
    from hvrescue.fs.source import MappedSource, Run

    class Flat:
        size = 1 << 20

        def __init__(self, blob: bytes) -> None:
            self.blob = blob

        def read(self, offset: int, length: int) -> bytes:
            return self.blob[offset : offset + length]

    blob = bytearray(1 << 20)
    src = MappedSource(Flat(bytes(blob)), [Run(0, 1 << 20, 0)], 1 << 20)  # type: ignore[arg-type]
    assert not has_shadows(src)
    blob[VSS_HEADER : VSS_HEADER + 16] = VSS_IDENTIFIER
    src = MappedSource(Flat(bytes(blob)), [Run(0, 1 << 20, 0)], 1 << 20)  # type: ignore[arg-type]
    assert has_shadows(src)


def test_a_bare_path_still_means_the_live_volume(vss_disk):
    r = run_cli("ls", vss_disk["vhdx"], "/", "--json")
    assert r.rc == 0, r.stderr
    assert r.json()["volume"] == "1"
    assert "password.txt" in {e["name"] for e in r.json()["entries"]}


@pytest.mark.parametrize("seed", range(6))
def test_a_damaged_shadow_copy_catalogue_is_reported_not_raised(seed: int):
    import random

    from hvrescue.fs.addressing import VolumeInfo
    from hvrescue.fs.shadow import VSS_HEADER, VSS_IDENTIFIER, copies
    from hvrescue.fs.source import MappedSource, Run

    rnd = random.Random(seed)
    blob = bytearray(rnd.randbytes(4 << 20) if seed % 2 else bytes(4 << 20))
    blob[VSS_HEADER : VSS_HEADER + 16] = VSS_IDENTIFIER
    blob[VSS_HEADER + 16 : VSS_HEADER + 0x80] = rnd.randbytes(0x70)

    class Flat:
        size = len(blob)

        def read(self, offset: int, length: int) -> bytes:
            return bytes(blob[offset : offset + length])

    src = MappedSource(Flat(), [Run(0, len(blob), 0)], len(blob))  # type: ignore[arg-type]
    info = VolumeInfo("2", "partition", "ntfs", None, src)  # type: ignore[arg-type]
    found = copies(info)
    for each in found:  # none, or each listed with why it cannot be read
        assert each.id.startswith("2@vss")
        assert each.problem is None or each.problem[0].startswith("error.vss.")
    assert all(each.problem is not None for each in found)
