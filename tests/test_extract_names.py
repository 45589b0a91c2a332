"""`extract` and `ls` over crafted NTFS names and trees: every name comes out safe, any depth is
walked, a folder is read once through its address (cost follows the files), and every file is
either written with its bytes or listed as skipped with why.

The images are built without Windows: mkntfs + ntfs-3g (FUSE) write the files (the bytes written
are the oracle), and what ntfs-3g cannot create (``/``, NUL, lone surrogates, real ``.``/``..``
entries, a folder that lists its ancestor) is patched into the image (tests/ntfs_craft.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvrescue.fs.names import (
    MAX_NAME_BYTES,
    NameTable,
    collision_key,
    display_name,
    safe_name,
    undisplay,
)
from tests.helpers import run_cli
from tests.ntfs_craft import patch_names, repoint_entry

MiB = 1024 * 1024
LONG_DIR = "y" * 240  # 17 levels of these make a path over 4,096 bytes
DEEP = 300

# Placeholders (rare characters, same UTF-16 length) patched into names ntfs-3g cannot write.
CRAFTED = {
    "slash": ("names", "aꙮb", "a/b"),
    "nul": ("names", "nꙭx", "n\0x"),
    "surrogate": ("names", "aꙬb", "a\ud800b"),
    "dot": ("names", "ꙫ", "."),
    "dotdot-file": ("names", "ꙩꙩ", ".."),
}


def _fuse_ok() -> bool:
    return all(shutil.which(t) for t in ("mkntfs", "ntfs-3g", "qemu-img")) and os.path.exists(
        "/dev/fuse"
    )


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


class _Ntfs:
    """A raw NTFS image, populated through ntfs-3g (skips the test where FUSE is refused)."""

    def __init__(self, folder: Path, size: int) -> None:
        self.raw = folder / "ntfs.raw"
        self.mnt = folder / "mnt"
        with open(self.raw, "wb") as f:
            f.truncate(size)
        _run("mkntfs", "-F", "-Q", "-q", "-s", "512", str(self.raw))
        self.mnt.mkdir()

    def __enter__(self) -> Path:
        try:
            _run("ntfs-3g", str(self.raw), str(self.mnt))
        except subprocess.CalledProcessError:
            pytest.skip("ntfs-3g cannot mount here (no FUSE)")
        return self.mnt

    def __exit__(self, *exc: object) -> None:
        _run("umount", str(self.mnt))

    def vhdx(self) -> Path:
        out = self.raw.with_suffix(".vhdx")
        subprocess.run(
            [
                "qemu-img",
                *("convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic"),
                str(self.raw),
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        self.raw.unlink()
        return out


def _write(root: Path, rel: tuple[str, ...], data: bytes, files: dict) -> None:
    folder = root.joinpath(*rel[:-1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / rel[-1]).write_bytes(data)
    files[rel] = data


def _write_long_tree(root: Path, files: dict) -> None:
    """/long/yyy.../yyy.../...: 20 levels of 240-byte names (a path of 4,800+ bytes; made
    through folder descriptors, as no single path may pass 4,096 bytes here)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    rel: tuple[str, ...] = ()
    try:
        for level in range(20):
            name = "long" if level == 0 else LONG_DIR
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            rel += (name,)
            data = f"level {level}\n".encode()
            out = os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)
            files[(*rel, "f.txt")] = data
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not _fuse_ok():
        pytest.skip("needs mkntfs, ntfs-3g, qemu-img and /dev/fuse")
    folder = tmp_path_factory.mktemp("crafted")
    image = _Ntfs(folder, 64 * MiB)
    files: dict[tuple[str, ...], bytes] = {}
    nfc, nfd = unicodedata.normalize("NFC", "é.txt"), unicodedata.normalize("NFD", "é.txt")
    plain = [
        "x" * 255,  # 255 characters: over our 240-byte budget
        "日" * 100,  # 300 bytes of UTF-8
        "漢" * 255,  # the longest NTFS name: 765 bytes of UTF-8
        "a|b",
        "a_b",
        "CON",
        "aux.txt",
        "trail.",
        "space ",
        "x:y",
        "q?",
        "lt<gt>",
        "back\\slash",
        "esc\x1b[31m",
        "A.txt",
        "a.txt",
        nfc,
        nfd,
        "ok.txt",
    ]
    with image as root:
        for i, name in enumerate(plain):
            _write(root, ("names", name), f"{i}:{name}".encode("utf-8", "surrogatepass"), files)
        for _key, (where, placeholder, _final) in CRAFTED.items():
            (root / where / placeholder).write_bytes(placeholder.encode())
        # A folder named ".." (and its file), a real ".." beside the implicit one.
        _write(root, ("dots", "ꙧꙧ", "inner.txt"), b"inside the folder named ..", files)
        deep = ("deep",) + ("d",) * DEEP
        _write(root, (*deep, "bottom.txt"), b"300 levels down", files)
        _write(root, (*deep[:150], "middle.txt"), b"150 levels down", files)
        _write_long_tree(root, files)
        # The index entry of /loop/sub/backꙥ will point at /loop itself (the folder's own
        # record still names /loop/sub as its parent: The Sleuth Kit lists it too).
        _write(root, ("loop", "sub", "backꙥ", "f.txt"), b"shadowed by the loop", files)
        _write(root, ("loop", "top.txt"), b"top of the loop", files)
        loop_inode = os.stat(root / "loop").st_ino
    renames = {placeholder: final for where, placeholder, final in CRAFTED.values()}
    renames["ꙧꙧ"] = ".."
    counts = patch_names(image.raw, renames)
    assert all(n >= 2 for n in counts.values()), counts
    for where, placeholder, final in CRAFTED.values():
        files[(where, final)] = placeholder.encode()
    files[("dots", "..", "inner.txt")] = files.pop(("dots", "ꙧꙧ", "inner.txt"))
    import pytsk3

    seq = int(
        pytsk3.FS_Info(pytsk3.Img_Info(str(image.raw))).open_meta(inode=loop_inode).info.meta.seq
    )
    assert repoint_entry(image.raw, "backꙥ", loop_inode, seq) == 1
    return {"disk": image.vhdx(), "files": files}


def _source(rel: tuple[str, ...]) -> str:
    return "1:/" + "/".join(display_name(p) for p in rel)


def _extract(crafted: dict[str, Any], out: Path, *paths: str) -> tuple[Any, dict]:
    r = run_cli(
        "extract", crafted["disk"], *paths, "--to", out, "--json", evidence=[crafted["disk"]]
    )
    manifest = json.loads((out / "extract-manifest.json").read_text(encoding="utf-8"))
    return r, manifest


def test_every_crafted_name_is_extracted_safe_or_skipped_with_why(crafted, tmp_path: Path):
    from hvrescue.report.i18n import catalogue

    out = tmp_path / "out"
    r, manifest = _extract(crafted, out, "/")
    assert r.rc == 1, r.stdout + r.stderr  # the loop and the too-long paths are skipped
    written = {f["source"]: f for f in manifest["files"]}
    skipped = {s["source"]: s for s in manifest["skipped"]}
    keys = set(catalogue("en")) & set(catalogue("ja"))
    for s in manifest["skipped"]:
        assert s["reason"] in keys, s
    too_long = 0
    for rel, data in crafted["files"].items():
        source = _source(rel)
        if source in written:
            record = written[source]
            assert record["sha256"] == hashlib.sha256(data).hexdigest(), rel
            assert (out / record["path"]).read_bytes() == data, rel
            assert len(os.fsencode(out / record["path"])) < 4096
        else:
            assert skipped[source]["reason"] == "error.extract.path-too-long", (rel, skipped)
            too_long += 1
    assert too_long and too_long < 20  # the deepest of /long only
    # Nothing but these files was written.
    assert set(written) == {_source(rel) for rel in crafted["files"]} - set(skipped)
    assert written["1:/long/f.txt"]["renamed"] is False
    # Nothing else was written: every output file is one of the manifest's.
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith("extract-manifest")
    }
    assert on_disk == {f["path"] for f in manifest["files"]}
    # The loop is said, not walked (and not written twice).
    assert skipped["1:/loop/sub/backꙥ"]["reason"] == "error.extract.loop"
    assert (out / "p1/loop/top.txt").read_bytes() == b"top of the loop"


def test_output_names_are_safe_distinct_and_keep_the_original(crafted, tmp_path: Path):
    out = tmp_path / "out"
    _r, manifest = _extract(crafted, out, "/names", "/dots")
    names_dir = out / "p1/names"
    outputs = [p.name for p in names_dir.iterdir()]
    for name in outputs:
        assert safe_name(name) == name, name  # nothing left to make safe
        assert len(name.encode()) <= 255
    keys = [collision_key(n) for n in outputs]
    assert len(keys) == len(set(keys)), sorted(outputs)  # distinct on Windows and macOS too
    expected = {rel[-1] for rel in crafted["files"] if rel[0] == "names"}
    assert len(outputs) == len(expected)
    records = {undisplay(f["original"]): f for f in manifest["files"] if "original" in f}
    by_source = {f["source"]: f for f in manifest["files"]}
    for original in expected:
        record = by_source[_source(("names", original))]
        assert record["renamed"] is (os.path.basename(record["path"]) != original), record
    # Exact originals, read back from their printable form.
    for original in ("a/b", "n\0x", "a\ud800b", ".", "..", "esc\x1b[31m", "x" * 255):
        assert records[original]["renamed"] is True
        assert records[original]["source"] == _source(("names", original))

    def out_name(original: str) -> str:
        return os.path.basename(by_source[_source(("names", original))]["path"])

    assert out_name("a_b") == "a_b"  # a name that is safe keeps it; the others are numbered
    assert {out_name(n) for n in ("a/b", "a|b", "a\ud800b")} == {"a_b~2", "a_b~3", "a_b~4"}
    assert {out_name("A.txt"), out_name("a.txt")} == {"A.txt", "a~2.txt"}
    assert out_name("n\0x") == "n_x"
    assert out_name("CON") == "_CON"
    assert out_name("aux.txt") == "_aux.txt"
    assert out_name("trail.") == "trail_"
    assert out_name("space ") == "space_"
    assert out_name("esc\x1b[31m") == "esc_[31m"
    cjk = by_source["1:/names/" + "漢" * 255]
    assert len(os.path.basename(cjk["path"]).encode()) <= MAX_NAME_BYTES
    # Real "." and ".." entries come out under safe names, the implicit links do not.
    assert out_name(".") == "__"
    assert out_name("..") == "___"
    assert (out / "p1/dots/___/inner.txt").read_bytes() == b"inside the folder named .."
    assert sorted(p.name for p in (out / "p1/dots").iterdir()) == ["___"]
    assert manifest["renamed_folders"][0]["original"] == ".."
    # The manifest is valid UTF-8 JSON with printable names only.
    text = (out / "extract-manifest.json").read_text(encoding="utf-8")
    assert "\x1b" not in text and "\\u0000" not in text


def test_a_tree_300_levels_deep_is_walked_to_the_bottom(crafted, tmp_path: Path):
    out = tmp_path / "out"
    r, manifest = _extract(crafted, out, "/deep")
    assert r.rc == 0, r.stdout
    bottom = out / "p1" / "deep" / Path(*(["d"] * DEEP)) / "bottom.txt"
    assert bottom.read_bytes() == b"300 levels down"
    assert len(manifest["files"]) == 2 and not manifest["skipped"]
    listing = run_cli("ls", crafted["disk"], "/deep/" + "/".join(["d"] * 149), "--json")
    names = {e["name"] for e in listing.json()["entries"]}
    assert names == {"d", "middle.txt"}


def test_ls_shows_crafted_names_printably(crafted):
    r = run_cli("ls", crafted["disk"], "/names", "--json", evidence=[crafted["disk"]])
    assert r.rc == 0, r.stderr
    names = {e["name"] for e in r.json()["entries"]}
    assert {"a\\x2fb", "n\\x00x", "a\\ud800b", ".", "..", "esc\\x1b[31m", "a|b", "a_b"} <= names
    assert {undisplay(n) for n in names} >= {"a/b", "n\0x", "a\ud800b"}
    text = run_cli("ls", crafted["disk"], "/names")
    assert text.rc == 0 and "\x1b" not in text.stdout


def test_a_link_where_an_output_folder_goes_is_not_followed(crafted, tmp_path: Path):
    out = tmp_path / "out"
    (out / "p1").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "p1" / "names").symlink_to(elsewhere, target_is_directory=True)
    r, manifest = _extract(crafted, out, "/names")
    assert r.rc == 1
    assert list(elsewhere.iterdir()) == []
    names = [rel for rel in crafted["files"] if rel[0] == "names"]
    assert sorted(s["source"] for s in manifest["skipped"]) == sorted(map(_source, names))
    assert {s["reason"] for s in manifest["skipped"]} == {"error.extract.not-a-folder"}
    assert manifest["files"] == []


def test_the_walk_says_where_it_stopped(crafted):
    from hvrescue.fs import open_path
    from hvrescue.fs.walk import LOOP, TOO_DEEP, Walk
    from hvrescue.vdisk.disk import Disk

    with Disk.open(str(crafted["disk"])) as d:
        volume, _inner = open_path(d, "/")
        shallow = Walk(volume, max_depth=100)
        seen = [c for _f, children in shallow.folders(volume.stat("/deep")) for c in children]
        assert max(c.depth for c in seen) == 101
        [stopped] = [c for c in seen if c.status == TOO_DEEP]
        assert stopped.depth == 101 and stopped.is_dir
        assert not any(c.name == "bottom.txt" for c in seen)
        budget = Walk(volume, limit=10)
        listed = [c for _f, children in budget.folders(volume.stat("/names")) for c in children]
        assert len(listed) == 10
        assert [i.reason for i in budget.issues] == ["error.fs.walk-limit"]
        loop = Walk(volume)
        statuses = {
            c.status for _f, children in loop.folders(volume.stat("/loop")) for c in children
        }
        assert LOOP in statuses


# ------------------------------------------------------------------ cost follows the files
def _big_image(folder: Path, counts: dict[str, int]) -> Path:
    image = _Ntfs(folder, max(64, sum(counts.values()) // 200) * MiB)
    with image as root:
        for name, n in counts.items():
            (root / name).mkdir()
            for i in range(n):
                with open(root / name / f"f{i:06d}.txt", "wb") as f:
                    f.write(b"%d" % i)
    return image.vhdx()


class _Counting:
    """The volume's pytsk3 FS_Info with its lookups counted."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.calls = {"open": 0, "open_dir": 0, "open_meta": 0}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fs, name)
        if name in self.calls:

            def counted(*a: Any, **k: Any) -> Any:
                self.calls[name] += 1
                return attr(*a, **k)

            return counted
        return attr


def _measure(disk: Path, folder: str, out: Path, monkeypatch) -> tuple[dict[str, int], int, int]:
    """(pytsk3 calls, disk reads, files written) for ls + extract of ``folder``."""
    from hvrescue.fs import open_path
    from hvrescue.fs.extract import Extractor
    from hvrescue.vdisk.disk import Disk

    # Durability is not what is measured here: one fsync per file is left out.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    with Disk.open(str(disk)) as d:
        volume, inner = open_path(d, folder)
        counting = _Counting(volume.fs)
        volume.fs = counting
        reads = 0
        real_read = d.read

        def read(offset: int, length: int) -> bytes:
            nonlocal reads
            reads += 1
            return real_read(offset, length)

        monkeypatch.setattr(d, "read", read)
        listed = volume.listdir(inner)
        out.mkdir()
        ex = Extractor(volume, str(out), "p1", False)
        ex.extract(inner)
        assert not ex.result.skipped
        assert len(ex.result.files) == len(listed)
        return counting.calls, reads, len(ex.result.files)


@pytest.mark.slow  # 1,000 and 10,000 files extracted
def test_extract_and_ls_cost_follows_the_files(tmp_path: Path, monkeypatch):
    if not _fuse_ok():
        pytest.skip("needs mkntfs, ntfs-3g, qemu-img and /dev/fuse")
    disk = _big_image(tmp_path, {"small": 1_000, "big": 10_000})
    small, small_reads, n_small = _measure(disk, "/small", tmp_path / "s", monkeypatch)
    big, big_reads, n_big = _measure(disk, "/big", tmp_path / "b", monkeypatch)
    assert (n_small, n_big) == (1_000, 10_000)
    # A path is looked up once per command, never per file...
    assert small["open"] == big["open"] <= 3
    # ... a folder is read once per listing and per extraction, a file opened by its address
    # a bounded number of times.
    assert small["open_dir"] == big["open_dir"] == 2
    assert big["open_meta"] <= 3 * n_big
    assert big["open_meta"] / small["open_meta"] < 11
    # The image is read in proportion to the files (10 times the files, not 100 times).
    assert big_reads / small_reads < 15, (small_reads, big_reads)


@pytest.mark.slow
def test_a_folder_of_100000_files(tmp_path: Path, monkeypatch):
    if not _fuse_ok():
        pytest.skip("needs mkntfs, ntfs-3g, qemu-img and /dev/fuse")
    disk = _big_image(tmp_path, {"big": 100_000})
    listing = run_cli("ls", disk, "/big", "--json", evidence=[disk])
    assert listing.rc == 0
    assert len(listing.json()["entries"]) == 100_000
    calls, _reads, files = _measure(disk, "/big", tmp_path / "out", monkeypatch)
    assert files == 100_000 and calls["open"] <= 3
    for i in (0, 4_242, 99_999):
        assert (tmp_path / "out/p1/big" / f"f{i:06d}.txt").read_bytes() == b"%d" % i


# ------------------------------------------------------------------ names and walks, in memory
@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=12))
def test_any_names_get_distinct_safe_names(names: list[str]):
    outs = NameTable().assign(names)
    assert len({collision_key(o) for o in outs}) == len(outs)
    for name, out in zip(names, outs, strict=True):
        assert safe_name(out) == out
        assert 0 < len(out.encode("utf-8")) <= MAX_NAME_BYTES
        shown = display_name(name)
        assert undisplay(shown) == name
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
        assert "/" not in shown
        shown.encode("utf-8")  # no lone surrogates either (they would not encode)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("COM1.tar.gz", "_COM1.tar.gz"),
        ("conin$", "_conin$"),
        ("a\x9bb", "a_b"),  # a C1 control (CSI) too
        ("n\0", "n_"),
        ("x\ud800", "x_"),
    ],
)
def test_more_safe_names(name: str, expected: str):
    assert safe_name(name) == expected


def test_numbered_names_fit_and_keep_the_extension():
    table = NameTable()
    long = "長" * 100 + ".txt"
    first, second = table.assign([long, long])
    assert first != second and second.endswith("~2.txt")
    assert all(len(n.encode()) <= MAX_NAME_BYTES for n in (first, second))
