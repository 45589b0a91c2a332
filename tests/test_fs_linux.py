"""ext2/3/4 and XFS guests through `ls`, `extract` and the library: built images round-trip every
file's bytes, times, modes and owners; links are recorded, never created or followed; a dirty
ext4 journal reads as after recovery; the public images read as their PROVENANCE.md says."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
from pathlib import Path

import pytest

from hvrescue.fs.names import display_name
from tests.fs_linux_builders import (
    debugfs_write,
    dirty_journal,
    have,
    loop_mount_works,
    make_ext4,
    make_xfs,
    populate,
    run,
    to_vhdx,
)
from tests.helpers import CORPUS, run_cli

FS_CORPUS = CORPUS / "fs"
EXPECTED = FS_CORPUS / "expected"


def _needs(*tools: str) -> None:
    if not have(*tools):
        pytest.skip(
            f"needs {', '.join(tools)} (Debian e2fsprogs, xfsprogs, btrfs-progs, qemu-utils)"
        )


@pytest.fixture(scope="module")
def ext4_guest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    _needs("mkfs.ext4", "qemu-img")
    folder = tmp_path_factory.mktemp("ext4")
    src = folder / "src"
    populate(src)
    raw = folder / "ext4.raw"
    make_ext4(raw, 64, src)
    vhdx = to_vhdx(raw, folder / "ext4.vhdx")  # partitionless, as WSL's ext4.vhdx
    return {"src": src, "vhdx": vhdx, "raw": raw}


@pytest.fixture(scope="module")
def xfs_guest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    _needs("mkfs.xfs", "qemu-img")
    folder = tmp_path_factory.mktemp("xfs")
    if not loop_mount_works(folder):
        pytest.skip("loop mounts are not allowed here: XFS cannot be filled with cp -a")
    src = folder / "src"
    populate(src, seed=9)
    raw = folder / "xfs.raw"
    make_xfs(raw, src, folder / "mnt")
    vhdx = to_vhdx(raw, folder / "xfs.vhdx")
    raw.unlink()
    return {"src": src, "vhdx": vhdx}


def debugfs_mtime_ns(raw: Path, path: str) -> int | None:
    """The modification time debugfs reads from an ext image (seconds:extra, as the inode
    holds them): the independent answer, since mkfs.ext4 -d keeps whole seconds only."""
    import re

    text = run("debugfs", "-R", f'stat "{path}"', raw, check=False).stdout
    m = re.search(r"^\s*mtime: 0x([0-9a-f]+):([0-9a-f]+)", text, re.M)
    if m is None:
        return None
    sec, extra = int(m.group(1), 16), int(m.group(2), 16)
    return (sec + ((extra & 3) << 32)) * 1_000_000_000 + (extra >> 2)


def _tree(src: Path) -> dict[str, tuple[Path, os.stat_result]]:
    """{path as hvrescue shows it (names through display_name): (real path, lstat)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            shown = "/".join(display_name(p) for p in full.relative_to(src).parts)
            out["/" + shown] = (full, full.lstat())
    return out


@pytest.mark.parametrize("which", ["ext4", "xfs"])
def test_a_partitionless_disk_is_volume_1_with_its_filesystem(which, request):
    guest = request.getfixturevalue(f"{which}_guest")
    r = run_cli("ls", guest["vhdx"], "--json")
    assert r.rc == 0, r.stderr
    [vol] = r.json()["volumes"]
    assert (vol["id"], vol["filesystem"], vol["readable"]) == ("1", which, True)
    assert r.json()["partitions"][0]["filesystem"] == which
    listing = run_cli("ls", guest["vhdx"], "1:/home/user", "--json")
    assert listing.rc == 0, listing.stderr
    rows = {e["name"]: e for e in listing.json()["entries"]}
    src = guest["src"] / "home/user"
    assert set(rows) == {display_name(n) for n in os.listdir(src)}
    assert rows["big.bin"]["size"] == 1_500_000
    assert (rows["big.bin"]["uid"], rows["big.bin"]["gid"]) == (1000, 1000)
    assert rows["fstab-link"]["type"] == "symlink"
    assert rows["fstab-link"]["target"] == os.readlink(src / "fstab-link")
    assert rows["ドキュメント"]["type"] == "directory"
    # The bare path works too: the disk holds one readable volume.
    assert run_cli("ls", guest["vhdx"], "/home/user", "--json").json()["volume"] == "1"


@pytest.mark.parametrize("which", ["ext4", "xfs"])
def test_extract_round_trips_bytes_times_modes_and_owners(which, request, tmp_path: Path):
    guest = request.getfixturevalue(f"{which}_guest")
    out = tmp_path / "out"
    r = run_cli("extract", guest["vhdx"], "1:/", "--to", out, "--json")
    assert r.rc == 0, r.stderr
    data = r.json()
    manifest = json.loads(Path(data["manifests"][0]).read_text())
    assert manifest["volume"] == "1" and manifest["filesystem"] == which
    files = {rec["source"][2:]: rec for rec in manifest["files"]}
    links = {rec["source"][2:]: rec for rec in manifest["links"]}
    tree = _tree(guest["src"])
    regular = {p: v for p, v in tree.items() if stat.S_ISREG(v[1].st_mode)}
    assert set(files) == set(regular)
    for path, (real, st) in regular.items():
        rec = files[path]
        written = out / rec["path"]
        assert written.read_bytes() == real.read_bytes(), path
        assert hashlib.sha256(written.read_bytes()).hexdigest() == rec["sha256"]
        expected = st.st_mtime_ns  # XFS: filled by the kernel's cp -a, nanoseconds kept
        if which == "ext4":
            expected = debugfs_mtime_ns(guest["raw"], real.relative_to(guest["src"]).as_posix())
            if expected is None:  # a name debugfs cannot be given on its command line
                assert "\\" in path, path
                continue
        assert written.stat().st_mtime_ns == expected, path
        assert rec["mode"] == f"{st.st_mode:o}", path
        assert (rec["uid"], rec["gid"]) == (st.st_uid, st.st_gid), path
    # Links and the FIFO are recorded with what they are, never created in the output.
    others = {
        p: v for p, v in tree.items() if stat.S_ISLNK(v[1].st_mode) or stat.S_ISFIFO(v[1].st_mode)
    }
    assert set(links) == set(others) and manifest["links_count"] == len(others)
    for path, (real, st) in others.items():
        assert not os.path.lexists(out / "p1" / path[1:])
        if stat.S_ISLNK(st.st_mode):
            assert links[path]["target"] == os.readlink(real)
        else:
            assert links[path]["type"] == "special"
    assert links["/home/user/escaping-link"]["leaves_volume"] is True
    assert links["/home/user/absolute-link"]["leaves_volume"] is True
    assert links["/home/user/fstab-link"]["leaves_volume"] is False
    # A name Windows refuses is made safe and the manifest keeps the original (as shown).
    odd = display_name("odd:name\\x")
    assert files["/home/user/" + odd]["original"] == odd
    assert files["/home/user/" + odd]["path"] != "p1/home/user/odd:name\\x"


def test_a_dirty_ext4_journal_reads_as_after_recovery(tmp_path: Path):
    _needs("mkfs.ext4", "debugfs", "e2fsck", "qemu-img")
    src = tmp_path / "src"
    populate(src, seed=3)
    before, after = tmp_path / "before.raw", tmp_path / "after.raw"
    make_ext4(before, 64, src)
    shutil.copyfile(before, after)
    debugfs_write(after, "/etc", "hosts", b"127.0.0.1 localhost\n")
    assert dirty_journal(before, after) > 0
    # The independent reading: e2fsck replaying the journal of a copy.
    replayed = tmp_path / "e2fsck.raw"
    shutil.copyfile(before, replayed)
    run("e2fsck", "-fy", "-E", "journal_only", replayed, check=False)
    oracle = run("debugfs", "-R", "cat /etc/hosts", replayed).stdout
    assert oracle == "127.0.0.1 localhost\n"
    disk = to_vhdx(before, tmp_path / "dirty.vhdx")
    r = run_cli("ls", disk, "1:/etc", "--json")
    assert r.rc == 0, r.stderr
    assert sorted(e["name"] for e in r.json()["entries"]) == ["fstab", "hosts", "shadow"]
    [note] = r.json()["notes"]
    assert note["key"] == "ui.fs.journal-replayed" and note["params"]["transactions"] == 1
    assert note["severity"] == "info"
    out = tmp_path / "out"
    x = run_cli("extract", disk, "1:/etc/hosts", "--to", out, "--json")
    assert x.rc == 0 and (out / "p1/etc/hosts").read_text() == oracle
    text = run_cli("ls", disk, "1:/etc")
    assert "replayed in memory" in text.stderr
    # Without the journal the file is not there: the replay is what shows it.
    import pyfsext

    raw = pyfsext.volume()
    raw.open(str(before))
    assert raw.get_file_entry_by_path("/etc/hosts") is None
    # A journal that cannot be read: the state before recovery, said, and not "all fine".
    jblock = int(run("debugfs", "-R", "bmap <8> 0", before).stdout.split()[0])
    with open(before, "r+b") as f:
        f.seek(jblock * 4096)
        f.write(b"\0\0\0\0")
    broken = to_vhdx(before, tmp_path / "broken.vhdx")
    r = run_cli("ls", broken, "1:/etc", "--json")
    assert r.rc == 1, r.stderr
    assert sorted(e["name"] for e in r.json()["entries"]) == ["fstab", "shadow"]
    assert [(n["key"], n["severity"]) for n in r.json()["notes"]] == [
        ("ui.fs.journal-unreadable", "warning")
    ]


def test_btrfs_is_recognised_and_refused_clearly(tmp_path: Path):
    _needs("mkfs.btrfs", "qemu-img")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs/a.txt").write_text("btrfs")
    raw = tmp_path / "btrfs.raw"
    with open(raw, "wb") as f:
        f.truncate(128 << 20)
    run("mkfs.btrfs", "-q", "--rootdir", src, raw)
    disk = to_vhdx(raw, tmp_path / "btrfs.vhdx")
    r = run_cli("ls", disk, "--json")
    [vol] = r.json()["volumes"]
    assert (vol["id"], vol["filesystem"], vol["readable"]) == ("1", "btrfs", False)
    assert vol["problem"]["key"] == "error.fs.btrfs-unsupported"
    refused = run_cli("ls", disk, "1:/docs")
    assert refused.rc == 2 and "btrfs restore" in refused.stderr
    ja = run_cli("ls", disk, "1:/docs", env={"HVRESCUE_LANG": "ja"})
    assert ja.rc == 2 and "btrfs" in ja.stderr and "読み取れません" in ja.stderr


# ---------------------------------------------------------------- the public images
def _unpack(name: str, tmp: Path) -> Path:
    src = FS_CORPUS / name
    if not src.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    raw = tmp / (src.name + ".raw")
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": __import__("bz2").open}[src.suffix]
    with opener(src, "rb") as fin, open(raw, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return to_vhdx(raw, tmp / (src.name + ".vhdx"))


def expected_listing(disk: Path, spec: str) -> list[str]:
    """The listing in PROVENANCE.md's form, read through the library."""
    from hvrescue.fs import open_path
    from hvrescue.vdisk.disk import Disk

    lines = []
    with Disk.open(str(disk)) as d:
        vol, inner = open_path(d, spec)
        for e in vol.walk(inner):
            if e.path == "/" or e.path.split("/")[1] == "lost+found":
                continue
            if e.is_dir:
                lines.append(f"{e.path}/ dir")
            elif e.kind == "symlink":
                lines.append(f"{e.path} symlink -> {e.link}")
            else:
                h = hashlib.sha256()
                for chunk in vol.read(e):
                    h.update(chunk)
                lines.append(f"{e.path} file size={e.size} sha256={h.hexdigest()}")
    return sorted(lines)


@pytest.mark.parametrize(
    ("image", "spec", "listing"),
    [
        ("ext/dfvfs-ext2.raw.gz", "1:/", "ext-dfvfs-ext2.txt"),
        ("ext/dissect-ext4.bin.gz", "1:/", "ext-dissect-ext4.txt"),
        (
            "ext/e2fsprogs-j_recover_csum3_64bit.image.bz2",
            "1:/",
            "ext-e2fsprogs-j_recover_csum3_64bit.after-replay.txt",
        ),
        ("ext/e2fsprogs-f_jnl_64bit.image.gz", "1:/", "ext-e2fsprogs-f_jnl_64bit.after-replay.txt"),
        ("xfs/dissect-xfs.bin.gz", "1:/", "xfs-dissect-xfs.txt"),
        ("xfs/dissect-xfs_bigtime.bin.gz", "1:/", "xfs-dissect-xfs_bigtime.txt"),
    ],
)
def test_public_images_read_as_provenance_says(image, spec, listing, tmp_path: Path):
    _needs("qemu-img")
    disk = _unpack(image, tmp_path)
    expected = sorted((EXPECTED / listing).read_text().splitlines())
    assert expected_listing(disk, spec) == expected
    assert run_cli("ls", disk, spec, "--json", evidence=[disk]).rc == 0


def test_fast_commit_journal_is_refused_with_its_reason(tmp_path: Path):
    _needs("qemu-img")
    disk = _unpack("ext/e2fsprogs-j_recover_fast_commit.image.gz", tmp_path)
    r = run_cli("ls", disk, "1:/", "--json")
    assert r.rc == 2
    assert r.json()["error"]["key"] == "error.fs.ext-fast-commit"


def test_needs_recovery_with_an_empty_journal_says_so(tmp_path: Path):
    _needs("qemu-img")
    disk = _unpack("ext/btrfsprogs-ext4-needs-recovery.raw.xz", tmp_path)
    r = run_cli("ls", disk, "1:/", "--json")
    assert r.rc == 0, r.stderr
    assert [n["key"] for n in r.json()["notes"]] == ["ui.fs.journal-empty"]
    assert [e["name"] for e in r.json()["entries"]] == ["lost+found"]


def test_a_torn_commit_block_ends_the_replay_as_in_the_kernel(tmp_path: Path):
    """journal_checksum_v3: a commit block whose checksum fails is not a commit."""
    import pyfsext

    from hvrescue.fs import jbd2

    src = FS_CORPUS / "ext/e2fsprogs-j_recover_csum3_64bit.image.bz2"
    if not src.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    raw = tmp_path / "csum3.img"
    with __import__("bz2").open(src, "rb") as fin, open(raw, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    fs = pyfsext.volume()
    fs.open(str(raw))
    jfile = fs.get_file_entry_by_inode(8)
    journal = jbd2.Journal(None, jfile.read_buffer_at_offset(1024, 0))
    bs = journal.bs
    commits: list[int] = []

    def read(n: int, torn: int | None = None) -> bytes:
        data = bytes(jfile.read_buffer_at_offset(bs, n * bs))
        if data[:8] == jbd2.struct.pack(">II", jbd2.MAGIC, jbd2.COMMIT):
            if n not in commits:
                commits.append(n)
            if n == torn:
                data = data[:60] + bytes([data[60] ^ 1]) + data[61:]
        return data

    journal.read_block = read
    assert journal._passes()[0] == 2
    last = commits[-1]
    journal.read_block = lambda n: read(n, torn=last)
    committed, _revoked, writes = journal._passes()
    assert committed == 1
    assert all(tid == journal.sequence for tid, _b, _t in writes)


def test_a_bare_ext2_in_a_legacy_vhd_is_volume_1(tmp_path: Path):
    """dfvfs's ext2.vhd: a VHD whose disk is an ext2 with no partition table."""
    vhd = CORPUS / "dfvfs" / "ext2.vhd"
    if not vhd.exists():
        pytest.skip("../shared/corpus is not present")
    r = run_cli("ls", vhd, "--json", evidence=[vhd])
    assert r.rc == 0, r.stderr
    assert [(v["id"], v["filesystem"]) for v in r.json()["volumes"]] == [("1", "ext2")]
    expected = sorted((EXPECTED / "ext-dfvfs-ext2.txt").read_text().splitlines())
    assert expected_listing(vhd, "1:/") == expected
    out = tmp_path / "out"
    x = run_cli("extract", vhd, "1:/a_directory", "--to", out, "--json", evidence=[vhd])
    assert x.rc == 0, x.stderr
    assert (out / "p1/a_directory/another_file").stat().st_size == 22


def test_a_name_that_is_not_utf8_is_read_from_the_folder_itself(tmp_path: Path):
    """Linux names are bytes: one that is not UTF-8 keeps its exact bytes (shown escaped) and
    does not hide its folder."""
    _needs("mkfs.ext4", "qemu-img")
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), b"caf\xe9.txt"), "wb") as f:  # Latin-1 name
        f.write(b"latin-1 name")
    (src / "plain.txt").write_bytes(b"plain")
    raw = tmp_path / "names.raw"
    make_ext4(raw, 16, src)
    disk = to_vhdx(raw, tmp_path / "names.vhdx")
    r = run_cli("ls", disk, "1:/", "--json")
    assert r.rc == 0, r.stderr
    names = sorted(e["name"] for e in r.json()["entries"])
    assert names == sorted([display_name("caf\udce9.txt"), "lost+found", "plain.txt"])
    out = tmp_path / "out"
    x = run_cli("extract", disk, "1:/", "--to", out, "--json")
    assert x.rc == 0, x.stderr
    [odd] = [f for f in x.json()["files"] if f.get("original")]
    assert (out / odd["path"]).read_bytes() == b"latin-1 name"
