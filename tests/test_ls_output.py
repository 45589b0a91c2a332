"""`ls` as a person reads it at 80 columns, in English and Japanese: nothing a user has to type
or look up (a volume id, a BitLocker recovery-key id, a file name) is cut with an ellipsis; a
symbolic link shows its kind and target; an ext name of 255 bytes (the ext maximum, which
libfsext gives back empty) keeps its exact name through `ls` and `extract`."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from tests.fs_linux_builders import have, make_ext4, to_vhdx
from tests.helpers import CORPUS, run_cli

NARROW = {"COLUMNS": "80"}
JA = {**NARROW, "HVRESCUE_LANG": "ja"}
RECOVERY_ID = "3c116b76-c67b-484e-b439-ce2ed68b561e"  # as tests/test_fs_bitlocker.py checks it
LONG = "x" * 255  # the ext maximum, in bytes
LONG_JA = "長" * 85  # 255 bytes of UTF-8 too
NEAR = "y" * 254


def _columns(table: str) -> list[str]:
    """Each column of a drawn table as one string: its cells' lines, stripped, joined (a
    folded cell comes back whole)."""
    cols: list[list[str]] = []
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        parts = line.strip("│").split("│")
        cols += [[] for _ in range(len(parts) - len(cols))]
        for i, part in enumerate(parts):
            cols[i].append(part.strip())
    return ["".join(c) for c in cols]


def _tables(stdout: str) -> list[str]:
    """The drawn tables of an output, in order."""
    return [t for t in stdout.split("┏") if "│" in t]


def _unpacked(path: Path, tmp: Path) -> Path:
    if not path.exists():
        pytest.skip("../shared/corpus/public/fs is not present")
    if not have("qemu-img"):
        pytest.skip("needs qemu-img (Debian qemu-utils)")
    raw = tmp / path.name.removesuffix(".gz")
    with gzip.open(path, "rb") as fin, open(raw, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return to_vhdx(raw, tmp / (raw.name + ".vhdx"))


@pytest.mark.parametrize("env", [NARROW, JA], ids=["en", "ja"])
def test_volume_ids_of_a_thin_pool_are_never_cut(env, tmp_path: Path):
    disk = _unpacked(CORPUS / "fs" / "lvm" / "dissect-lvm-thin.bin.gz", tmp_path)
    ids = [v["id"] for v in run_cli("ls", disk, "--json").json()["volumes"]]
    assert "1/lvm-thin/data" in ids and "1/lvm-thin/lv-2" in ids
    r = run_cli("ls", disk, env=env)
    assert r.rc == 0, r.stderr
    assert "…" not in r.stdout
    _partitions, volumes = _tables(r.stdout)
    id_column, state_column = _columns(volumes)[0], _columns(volumes)[4]
    for vid in ids:
        assert vid in id_column
        if vid != "1":  # the state names the volume, whole
            assert vid in state_column
    if env is JA:  # the partition of a disk without a table, in words, not "whole-disk"
        assert "ディスク全体" in _columns(_partitions)[4]
        assert "whole-disk" not in r.stdout


@pytest.mark.parametrize("env", [NARROW, JA], ids=["en", "ja"])
def test_the_recovery_key_id_to_look_up_is_shown_whole(env, tmp_path: Path):
    disk = _unpacked(CORPUS / "fs" / "bitlocker" / "recovery_password.bin.gz", tmp_path)
    r = run_cli("ls", disk, env=env)
    assert r.rc == 0, r.stderr
    assert "…" not in r.stdout
    state = _columns(_tables(r.stdout)[1])[4]
    assert RECOVERY_ID in state
    assert "--recovery-password" in state


@pytest.fixture(scope="module")
def names_guest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not have("mkfs.ext4", "qemu-img"):
        pytest.skip("needs mkfs.ext4 and qemu-img (Debian e2fsprogs, qemu-utils)")
    folder = tmp_path_factory.mktemp("names")
    src = folder / "src"
    (src / "sub").mkdir(parents=True)
    files = {
        LONG: b"255 bytes of x",
        LONG_JA: "255 バイトの名前".encode(),
        NEAR: b"254 bytes",
        "plain.txt": b"plain",
        "sub/inner.txt": b"inside sub",
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    os.link(src / LONG, src / "hard")  # a second, short name of the same inode
    os.symlink("sub/inner.txt", src / "rel-link")
    os.symlink("/etc/" + LONG, src / "abs-link")
    raw = folder / "names.raw"
    make_ext4(raw, 16, src)
    return {"vhdx": to_vhdx(raw, folder / "names.vhdx"), "files": files}


def test_a_255_byte_name_is_listed_exactly(names_guest):
    disk = names_guest["vhdx"]
    r = run_cli("ls", disk, "1:/", "--json")
    assert r.rc == 0, r.stderr
    entries = {e["name"]: e for e in r.json()["entries"]}
    assert set(entries) == {
        LONG,
        LONG_JA,
        NEAR,
        "plain.txt",
        "sub",
        "hard",
        "rel-link",
        "abs-link",
        "lost+found",
    }
    assert entries[LONG]["path"] == "/" + LONG
    assert entries[LONG]["inode"] == entries["hard"]["inode"]
    assert entries[LONG_JA]["size"] == len("255 バイトの名前".encode())
    # Addressed by that name: libfsext cannot look it up (nor anything in its folder).
    one = run_cli("ls", disk, "1:/" + LONG_JA, "--json")
    assert one.rc == 0, one.stderr
    assert [e["name"] for e in one.json()["entries"]] == [LONG_JA]
    inner = run_cli("ls", disk, "1:/sub", "--json")
    assert inner.rc == 0, inner.stderr
    assert [e["name"] for e in inner.json()["entries"]] == ["inner.txt"]


def test_a_255_byte_name_round_trips_through_extract(names_guest, tmp_path: Path):
    disk, files = names_guest["vhdx"], names_guest["files"]
    out = tmp_path / "out"
    x = run_cli("extract", disk, "1:/", "--to", out, "--json")
    assert x.rc == 0, x.stderr
    got = {f["source"]: f for f in x.json()["files"]}
    for name, data in files.items():
        f = got["1:/" + name]
        assert (out / f["path"]).read_bytes() == data
        if f.get("renamed"):  # made to fit the host: the exact name is recorded
            assert f["original"] == name.rsplit("/", 1)[-1]
    assert (out / got["1:/hard"]["path"]).read_bytes() == files[LONG]
    one = tmp_path / "one"
    y = run_cli("extract", disk, "1:/" + LONG, "--to", one, "--json")
    assert y.rc == 0, y.stderr
    [f] = y.json()["files"]
    assert f["source"] == "1:/" + LONG and f["original"] == LONG
    assert (one / f["path"]).read_bytes() == files[LONG]


@pytest.mark.parametrize("env", [NARROW, JA], ids=["en", "ja"])
def test_the_folder_listing_shows_links_and_whole_names(env, names_guest):
    r = run_cli("ls", names_guest["vhdx"], "1:/", env=env)
    assert r.rc == 0, r.stderr
    assert "…" not in r.stdout
    [table] = _tables(r.stdout)
    rows: dict[str, tuple[str, str]] = {}
    kind = size = name = ""
    for line in table.splitlines():  # a row starts where its Modified cell does
        if not line.startswith("│"):
            continue
        cells = [p.strip() for p in line.strip("│").split("│")]
        if cells[2]:
            if name:
                rows[name.replace(" ", "")] = (kind, size)
            kind, size, name = cells[0], cells[1], cells[3]
        else:
            kind, size, name = kind + cells[0], size + cells[1], name + cells[3]
    rows[name.replace(" ", "")] = (kind, size)
    link = "リンク" if env is JA else "link"
    assert rows["rel-link->sub/inner.txt"] == (link, "")
    assert rows["abs-link->/etc/" + LONG] == (link, "")
    assert rows[LONG] == ("", str(len(b"255 bytes of x")))
    assert LONG_JA in rows and NEAR in rows
