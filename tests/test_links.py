"""Links where hvrescue writes, reopens or reads its own files: never followed (issue 12, 1).

Every test places a link (to a 'victim' file outside the output folder, to an original, or to
nothing) at a path a command creates, reopens or reads back, runs the real CLI with a timeout,
and proves that the evidence and everything outside the output folder are unchanged, that the
link is still the same link, and that the answer is a clear error (or a reported entry).
FIFOs, sockets and devices in walks and parent searches: tests/test_links_special.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hvrescue.preserve import run as run_mod
from hvrescue.preserve.run import Options, preserve
from tests.links_world import World, hv, make_world

MiB = 1024 * 1024


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def error_key(result) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(result.stdout)["error"]["key"])


# ------------------------------------------------------------------ outputs of writing commands
def _writers(w: World) -> dict[str, tuple[list[str | Path], str, set[str]]]:
    """command line, the output path a link is placed at, the error keys that may answer."""
    out = w.out
    exists = {"error.output.exists"}
    link = {"error.links.link"}
    return {
        "merge": (["merge", w.leaf, out / "m.vhdx"], "m.vhdx", exists),
        "merge-raw": (["merge", "--format", "raw", w.leaf, out / "m.raw"], "m.raw", exists),
        "replay-log": (["replay-log", w.base, out / "r.vhdx"], "r.vhdx", exists),
        "repair": (["repair", w.base, out / "f.vhdx"], "f.vhdx", exists),
        "reparent": (
            ["reparent", w.leaf, "--parent", w.base, out / "p.avhdx"],
            "p.avhdx",
            exists,
        ),
        "salvage-out": (
            ["salvage", w.leaf, out / "s.raw", "--map", out / "s.map"],
            "s.raw",
            exists,
        ),
        "salvage-partial": (
            ["salvage", w.leaf, out / "s.raw", "--map", out / "s.map"],
            "s.raw.hvrescue-partial",
            exists,
        ),
        "salvage-map": (["salvage", w.leaf, out / "s.raw", "--map", out / "s.map"], "s.map", link),
        # the ddrescue map beside an output written with gaps (w.cut: blocks past its end)
        "merge-map": (["merge", w.cut, out / "g.vhdx", "--allow-gaps"], "g.vhdx.map", exists),
        "repair-map": (["repair", w.cut, out / "g.vhdx", "--allow-gaps"], "g.vhdx.map", exists),
        "triage-report": (["triage", w.ev, "--out", out / "rep"], "rep/report.html", exists),
        "triage-json": (["triage", w.ev, "--out", out / "rep"], "rep/report.json", exists),
        # --case: what is no case record is refused (error.case.*) before the command runs
        "case": (["--case", out / "case.sqlite", "info", w.base], "case.sqlite", set()),
    }


WRITERS = [
    "merge",
    "merge-raw",
    "replay-log",
    "repair",
    "reparent",
    "salvage-out",
    "salvage-partial",
    "salvage-map",
    "merge-map",
    "repair-map",
    "triage-report",
    "triage-json",
    "case",
]


@pytest.mark.parametrize("dangling", [False, True], ids=["to-victim", "dangling"])
@pytest.mark.parametrize("kind", WRITERS)
def test_a_link_at_an_output_is_refused_never_written_through(
    world: World, kind: str, dangling: bool
) -> None:
    args, rel, keys = _writers(world)[kind]
    link = world.out / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    target = world.victim.parent / "new.bin" if dangling else world.victim
    link.symlink_to(target)
    r = hv(*args, "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    if keys:
        assert error_key(r) in keys, r.stdout
    else:
        assert error_key(r).startswith("error.case."), r.stdout
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert not (world.victim.parent / "new.bin").exists()  # a dangling link made nothing
    if kind.endswith("-map"):
        assert not (world.out / "g.vhdx").exists()  # no output stands without its map


@pytest.mark.parametrize("option", ["--log-file", "-o"])
def test_log_file_and_output_file_never_go_through_a_link(world: World, option: str) -> None:
    if option not in hv("--help", world=world).stdout + hv("info", "--help", world=world).stdout:
        pytest.skip(f"{option} is not part of the CLI yet")
    link = world.out / "o.txt"
    link.symlink_to(world.victim)
    args = (
        [option, link, "info", world.base]
        if option == "--log-file"
        else ["info", world.base, option, link]
    )
    r = hv(*args, world=world)
    assert r.rc == 2, r.stdout + r.stderr
    assert link.is_symlink()


# ------------------------------------------------------------------ salvage retries
@pytest.mark.parametrize("how", ["out-symlink", "out-hardlink", "map-symlink", "out-is-input"])
def test_a_salvage_retry_never_writes_through_a_link(world: World, how: str) -> None:
    out, mapfile = world.out / "s.raw", world.out / "s.map"
    assert hv("salvage", world.leaf, out, "--map", mapfile, world=world).rc == 0
    first = out.read_bytes()
    if how == "out-symlink":
        out.unlink()
        out.symlink_to(world.victim)
    elif how == "out-hardlink":  # OUT made another name of a file outside: never written
        out.unlink()
        os.link(world.victim, out)
    elif how == "map-symlink":
        saved = world.out / "saved.map"
        mapfile.rename(saved)
        mapfile.symlink_to(saved)
    else:  # OUT is an input of the chain itself (here: through a hard link to the leaf)
        out.unlink()
        os.link(world.leaf, out)
    r = hv("salvage", world.leaf, out, "--map", mapfile, "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    expected = {
        "out-symlink": "error.links.link",
        "out-hardlink": "error.links.hard-link",
        "map-symlink": "error.links.link",
        "out-is-input": "error.links.hard-link",
    }[how]
    assert error_key(r) == expected
    if how == "map-symlink":
        assert out.read_bytes() == first


# ------------------------------------------------------------------ preserve --resume
def _interrupted(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A preservation of ev/ stopped before c1.avhdx was copied, with a partial copy of it
    and its checkpoint as a killed run leaves them; returns (DEST, the work folder)."""
    real = run_mod.copy_file

    def stop(source: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if source.endswith("c1.avhdx"):
            raise run_mod.Cancelled()
        return real(source, *args, **kwargs)

    monkeypatch.setattr(run_mod, "copy_file", stop)
    dest = world.out / "dest"
    with pytest.raises(run_mod.Cancelled):
        preserve([str(world.ev)], str(dest), Options(allow_same_storage=True, jobs=1), ["t"])
    monkeypatch.setattr(run_mod, "copy_file", real)
    work = dest / run_mod.WORK_DIR
    part = work / "parts" / "ev" / "c1.avhdx"
    data = world.leaf.read_bytes()
    part.write_bytes(data[: 2 * MiB])
    st = world.leaf.stat()
    state = {"source": str(world.leaf), "size": len(data), "mtime_ns": st.st_mtime_ns}
    state.update({"offset": 2 * MiB, "unreadable": []})
    (work / "parts" / "ev" / "c1.avhdx.state").write_text(json.dumps(state))
    return dest, work


RESUME_LINKS = {
    # where, what it is replaced by ("evidence": the original c1.avhdx or ev/, else the victim)
    "work-folder": (".hvrescue-partial", "victim-dir"),
    "journal": (".hvrescue-partial/done.jsonl", "victim"),
    "parts-folder": (".hvrescue-partial/parts/ev", "evidence-dir"),
    "partial-copy": (".hvrescue-partial/parts/ev/c1.avhdx", "evidence"),
    "checkpoint": (".hvrescue-partial/parts/ev/c1.avhdx.state", "victim"),
    "finished-copy": ("ev/base.vhdx", "evidence"),
    # another name of the original itself (same storage): passes a hash check, never trusted
    "finished-copy-hard-link": ("ev/base.vhdx", "hard-link"),
}


@pytest.mark.parametrize("where", sorted(RESUME_LINKS))
def test_preserve_resume_refuses_a_link_in_its_work_and_state(
    world: World, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    dest, _work = _interrupted(world, monkeypatch)
    rel, what = RESUME_LINKS[where]
    link = dest / rel
    if what == "hard-link":
        link.unlink()
        os.link(world.base, link)
    else:
        target = {
            "victim": world.victim,
            "victim-dir": world.victim.parent,
            "evidence": world.leaf if "c1" in rel else world.base,
            "evidence-dir": world.ev,
        }[what]
        world.replace_with_link(link, target)
    world.snapshot()  # the state as left, link included: nothing of it may change
    r = hv("preserve", world.ev, dest, "--resume", "--allow-same-storage", "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    if what == "hard-link":
        assert error_key(r) == "error.links.hard-link"
        return
    assert error_key(r) == "error.links.link"
    assert link.is_symlink() and Path(os.readlink(link)) == target
    assert not (dest / "manifest.json").exists()


@pytest.mark.parametrize("where", ["manifest", "copy", "copy-folder"])
def test_resume_of_a_finished_preservation_refuses_links(world: World, where: str) -> None:
    dest = world.out / "dest"
    assert hv("preserve", world.ev, dest, "--allow-same-storage", world=world).rc == 0
    link, target = {
        "manifest": (dest / "manifest.json", world.victim),
        "copy": (dest / "ev" / "base.vhdx", world.base),
        "copy-folder": (dest / "ev", world.ev),
    }[where]
    world.replace_with_link(link, target)
    world.snapshot()
    r = hv("preserve", world.ev, dest, "--resume", "--allow-same-storage", "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    key = "error.links.manifest-link" if where == "manifest" else "error.preserve.done-but-changed"
    assert error_key(r) == key


# ------------------------------------------------------------------ verify
@pytest.mark.parametrize("where", ["copy", "copy-folder"])
def test_verify_reports_a_link_in_dest_and_never_hashes_through_it(
    world: World, where: str
) -> None:
    dest = world.out / "dest"
    assert hv("preserve", world.ev, dest, "--allow-same-storage", world=world).rc == 0
    link, target = {
        "copy": (dest / "ev" / "base.vhdx", world.victim),  # as DEST/x -> /etc/shadow
        "copy-folder": (dest / "ev", world.ev),
    }[where]
    world.replace_with_link(link, target)
    world.snapshot()
    r = hv("verify", dest, "--json", world=world)
    assert r.rc == 1, r.stdout + r.stderr
    files = {f["path"]: f for f in json.loads(r.stdout)["files"]}
    linked = ["ev/base.vhdx"] if where == "copy" else ["ev/base.vhdx", "ev/c1.avhdx"]
    for path in linked:
        assert files[path]["status"] == "link"
        assert files[path]["found"] == {}  # nothing was hashed through it
    if where == "copy":
        assert files["ev/c1.avhdx"]["status"] == "ok"


@pytest.mark.parametrize("where", ["manifest", "case", "case-journal"])
def test_verify_refuses_a_linked_manifest_or_case_record(world: World, where: str) -> None:
    dest = world.out / "dest"
    assert hv("preserve", world.ev, dest, "--allow-same-storage", world=world).rc == 0
    name = {
        "manifest": "manifest.json",
        "case": "case.sqlite",
        "case-journal": "case.sqlite-journal",
    }
    link = dest / name[where]
    world.replace_with_link(link, world.victim)
    world.snapshot()
    r = hv("verify", dest, "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    assert error_key(r) == (
        "error.links.manifest-link" if where == "manifest" else "error.links.link"
    )
    # Named as the file itself: refused the same way.
    if where == "manifest":
        again = hv("verify", link, "--json", world=world)
        assert again.rc == 2 and error_key(again) == "error.links.manifest-link"


# ------------------------------------------------------------------ extract
@pytest.fixture(scope="module")
def fat_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VHDX with one small FAT16 partition holding DATA/F.BIN and DATA/G.TXT."""
    import shutil
    import subprocess

    from tests.builders import make_fat

    for tool in ("sfdisk", "mkfs.fat", "mcopy", "qemu-img"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (Debian fdisk, dosfstools, mtools, qemu-utils)")
    folder = tmp_path_factory.mktemp("fat")
    raw, part, size = folder / "disk.raw", folder / "part.img", 40 * MiB
    with open(raw, "wb") as f:
        f.truncate(size)
    table = b"label: dos\nstart=2048, type=e\n"
    subprocess.run(["sfdisk", "-q", str(raw)], input=table, check=True, capture_output=True)
    make_fat(part, size - MiB, {"DATA/F.BIN": b"data" * 1000, "DATA/G.TXT": b"text"})
    with open(part, "rb") as src, open(raw, "r+b") as dst:
        dst.seek(MiB)
        shutil.copyfileobj(src, dst)
    disk = folder / "disk.vhdx"
    convert = ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(raw), str(disk)]
    subprocess.run(convert, check=True, capture_output=True)
    return disk


@pytest.mark.parametrize("where", ["p1", "p1/DATA", "p1/DATA/F.BIN", "extract-manifest.json"])
def test_extract_never_writes_through_a_link_in_its_folder(
    world: World, fat_disk: Path, where: str
) -> None:
    to = world.out / "to"
    link = to / where
    link.parent.mkdir(parents=True)
    target = world.victim if "." in where else world.victim.parent
    link.symlink_to(target, target_is_directory=target.is_dir())
    r = hv("extract", fat_disk, "1:/DATA", "--to", to, "--json", world=world)
    assert link.is_symlink() and Path(os.readlink(link)) == target
    data = json.loads(r.stdout)
    assert str(link) not in data.get("manifests", [])
    if where == "extract-manifest.json":
        assert r.rc == 0, r.stdout + r.stderr
        assert sorted(f["path"] for f in data["files"]) == ["p1/DATA/F.BIN", "p1/DATA/G.TXT"]
    else:  # the files the link stands in the way of are listed as not written
        assert r.rc == 1, r.stdout + r.stderr
        assert "1:/DATA/F.BIN" in {s["source"] for s in data["skipped"]}
