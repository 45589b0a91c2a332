"""FIFOs, sockets and devices where a walk or a parent search looks, links in walks, and
manifests built to hurt: nothing blocks, nothing is followed, one bad item fails alone
(issue 12, items 1 and 4). The helpers of io.nofollow are tested here directly too, also as on
Windows (no O_NOFOLLOW: lstat before, identity after)."""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import sys
from pathlib import Path

import pytest

from hvrescue.errors import InputError
from hvrescue.io import nofollow
from hvrescue.io.files import NotRegularFileError
from hvrescue.io.nofollow import Confined, LinkError, open_existing, open_new, read_own
from tests.links_world import World, hv, make_world

KINDS = ["fifo", "socket", "char-device"]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def make_special(path: Path, kind: str) -> None:
    """A FIFO, a socket or a character device (/dev/zero's: endless if ever read) at ``path``."""
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(path)
    elif kind == "socket":
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no Unix sockets on this platform")
        here = os.getcwd()
        os.chdir(path.parent)  # a socket's path is limited to ~100 bytes: bind a short name
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(path.name)
        finally:
            os.chdir(here)
    else:
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        except (PermissionError, AttributeError):
            pytest.skip("creating a device node needs root")


def errkey(stdout: str) -> str:
    return str(json.loads(stdout)["error"]["key"])


# ------------------------------------------------------------------ parent search
@pytest.mark.parametrize("kind", KINDS)
def test_parent_search_skips_special_files_unopened_and_says_so(world: World, kind: str) -> None:
    search = world.root / "search"
    (search / "deep").mkdir(parents=True)
    (search / "loop").symlink_to(search, target_is_directory=True)  # a link loop
    moved = world.root / "elsewhere.vhdx"
    world.base.rename(moved)
    make_special(world.base, kind)  # where the locator points
    make_special(search / "other.vhdx", kind)
    world.snapshot()
    r = hv("chain", world.leaf, "--search", search, "--json", world=world)
    assert r.rc == 1, r.stdout + r.stderr
    data = json.loads(r.stdout)
    found = {
        (f["code"], f["params"].get("kind") or f["params"].get("reason")) for f in data["findings"]
    }
    assert ("chain.parent.unusable", f"not-a-file ({kind})") in found
    assert ("chain.search.skipped", kind) in found
    assert data["complete"] is False
    # The real parent among the special files is still found by identity.
    moved.rename(search / "deep" / "moved.vhdx")
    world.snapshot()
    r = hv("chain", world.leaf, "--search", search, "--json", world=world)
    assert r.rc == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["complete"] is True
    assert [layer["path"] for layer in data["layers"]][-1].endswith("moved.vhdx")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["info", "check", "chain", "hash"])
def test_a_special_file_given_as_a_disk_is_refused_at_once(
    world: World, kind: str, command: str
) -> None:
    special = world.ev / "given.vhdx"
    make_special(special, kind)
    world.snapshot()
    r = hv(command, special, "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    data = json.loads(r.stdout)
    error = data["files"][0]["error"] if command == "check" else data["error"]
    assert error["key"] == "error.input.not-regular"
    assert kind in error["message"]


# ------------------------------------------------------------------ walks
def _populate(world: World) -> list[str]:
    """Special files of every kind this machine can make, and links, beside the evidence."""
    made = []
    for kind in KINDS:
        try:
            make_special(world.ev / f"{kind}.vhdx", kind)
            made.append(kind)
        except pytest.skip.Exception:
            continue
    make_special(world.ev / "events.evtx", "fifo")
    (world.ev / "outside.bin").symlink_to(world.victim)
    (world.ev / "victims").symlink_to(world.victim.parent, target_is_directory=True)
    (world.ev / "loop").symlink_to(world.ev, target_is_directory=True)
    world.snapshot()
    return made


def test_preserve_skips_special_files_and_records_links_without_following(world: World) -> None:
    made = _populate(world)
    dest = world.out / "dest"
    r = hv("preserve", world.ev, dest, "--allow-same-storage", "--json", world=world)
    # A link whose target is not in the copy leaves it incomplete (and a device, when made).
    assert r.rc == 1, r.stdout + r.stderr
    m = json.loads(r.stdout)
    assert sorted(f["path"] for f in m["files"]) == ["ev/base.vhdx", "ev/c1.avhdx"]
    skipped = {(Path(u["source"]).name, u["reason"], u["detail"]) for u in m["unreachable"]}
    for kind in made:
        reason = "device" if kind == "char-device" else "special-file"
        assert (f"{kind}.vhdx", reason, kind) in skipped
    assert ("events.evtx", "special-file", "fifo") in skipped
    assert ("outside.bin", "link", str(world.victim)) in skipped
    assert ("victims", "link", str(world.victim.parent)) in skipped
    assert ("loop", "link-copied", str(world.ev)) in skipped
    copied = {p.name for p in dest.rglob("*")}
    assert not {"victim.bin", "outside.bin", "victims"} & copied
    assert hv("verify", dest, "--json", world=world).rc == 1  # recorded as incomplete


@pytest.mark.parametrize("command", ["inventory", "facts", "triage"])
def test_walks_finish_beside_special_files_and_links(world: World, command: str) -> None:
    _populate(world)
    args: list[str | Path] = [command, world.ev, "--json"]
    if command == "triage":
        args += ["--out", world.out / "report"]
    r = hv(*args, world=world)
    assert r.rc in (0, 1), r.stdout + r.stderr
    data = json.loads(r.stdout)
    if command == "inventory":  # only the two regular disks are read as files
        assert sorted(f["path"] for f in data["files"]) == ["base.vhdx", "c1.avhdx"]
    elif command == "facts":  # nothing read from a FIFO, a device or the victim
        assert data["facts"] == []
        assert {Path(u["path"]).name for u in data["unrecognised"]} <= {"base.vhdx", "c1.avhdx"}
    else:
        assert (world.out / "report" / "report.json").is_file()


# ------------------------------------------------------------------ manifests built to hurt
def _preserved(world: World) -> Path:
    dest = world.out / "dest"
    assert hv("preserve", world.ev, dest, "--allow-same-storage", world=world).rc == 0
    return dest


def test_a_manifest_nested_200000_deep_is_a_clear_error(world: World) -> None:
    dest = _preserved(world)
    (dest / "manifest.json").write_text('{"files": ' + "[" * 200_000 + "]" * 200_000 + "}")
    r = hv("verify", dest, "--json", world=world)
    assert r.rc == 2, r.stdout + r.stderr
    assert errkey(r.stdout) == "error.manifest.invalid"
    assert "nested deeper" in json.loads(r.stdout)["error"]["message"]


@pytest.mark.skipif(sys.platform == "win32", reason="address-space limit is POSIX")
def test_a_2gb_manifest_is_refused_without_reading_it(world: World) -> None:
    dest = _preserved(world)
    with open(dest / "manifest.json", "r+b") as f:
        f.truncate(2 * 1024**3)  # sparse: costs no space
    limit = 1024**3  # 1 GiB of address space: reading the file would fail
    script = (
        "import resource, runpy, sys;"
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}));"
        "sys.argv = ['hvrescue', 'verify', sys.argv[1], '--json'];"
        "runpy.run_module('hvrescue', run_name='__main__')"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", script, str(dest)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert errkey(proc.stdout) == "error.manifest.invalid"
    assert "larger than" in json.loads(proc.stdout)["error"]["message"]
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != limit  # only the child was limited
    world.check()


def test_a_malformed_manifest_entry_fails_alone(world: World) -> None:
    dest = _preserved(world)
    manifest = json.loads((dest / "manifest.json").read_text())
    good = manifest["files"][0]
    manifest["files"] = [good, 42, {"path": 7}, {"path": "ev/x", "sha256": {"deep": [[]]}}]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    r = hv("verify", dest, "--json", world=world)
    assert r.rc == 1, r.stdout + r.stderr
    statuses = [(f["path"], f["status"]) for f in json.loads(r.stdout)["files"]]
    assert statuses == [
        (good["path"], "ok"),
        ("files[1]", "invalid-entry"),
        ("files[2]", "invalid-entry"),
        ("ev/x", "missing"),
    ]


# ------------------------------------------------------------------ io.nofollow directly
@pytest.fixture(params=["posix", "windows"])
def platform_flags(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each helper as on POSIX (O_NOFOLLOW) and as on Windows (no O_NOFOLLOW)."""
    if request.param == "windows":
        monkeypatch.delattr(os, "O_NOFOLLOW", raising=False)
        assert nofollow.nofollow_flag() == 0
    return str(request.param)


def test_open_new_never_opens_or_creates_through_a_link(tmp_path: Path, platform_flags: str):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    for target in (victim, tmp_path / "nothing-yet"):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        with pytest.raises(FileExistsError):
            open_new(link)
        assert victim.read_bytes() == b"keep"
        assert not (tmp_path / "nothing-yet").exists()
    fd = open_new(tmp_path / "fresh")
    os.close(fd)
    assert (tmp_path / "fresh").is_file()


def test_open_existing_refuses_links_special_files_and_hard_links_for_writing(
    tmp_path: Path, platform_flags: str
) -> None:
    own = tmp_path / "own"
    own.write_bytes(b"ours")
    link = tmp_path / "link"
    link.symlink_to(own)
    with pytest.raises(LinkError):
        open_existing(link)
    fifo = tmp_path / "fifo"
    make_special(fifo, "fifo")
    with pytest.raises(NotRegularFileError):
        open_existing(fifo, os.O_RDWR)  # refused before any open: nothing can block
    os.link(own, tmp_path / "other-name")
    os.close(open_existing(own))  # reading a hard-linked file is harmless
    with pytest.raises(LinkError) as err:
        open_existing(own, os.O_WRONLY)
    assert err.value.key == "error.links.hard-link"


def test_a_file_swapped_for_a_link_during_the_open_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform_flags: str
) -> None:
    own, victim = tmp_path / "own", tmp_path / "victim"
    own.write_bytes(b"ours")
    victim.write_bytes(b"keep")
    real_open = os.open

    def racing_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path) == str(own):
            own.unlink()
            own.symlink_to(victim)  # as an attacker between the check and the open
            if not flags & getattr(os, "O_NOFOLLOW", 0):
                path = victim  # Windows: the open follows it
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)
    with pytest.raises(LinkError):
        open_existing(own, os.O_RDWR)
    assert victim.read_bytes() == b"keep"


def test_confined_refuses_a_link_anywhere_below_its_root(tmp_path: Path, platform_flags: str):
    root, outside = tmp_path / "dest", tmp_path / "evidence"
    root.mkdir()
    outside.mkdir()
    (outside / "disk.vhdx").write_bytes(b"original")
    (root / "work").symlink_to(outside, target_is_directory=True)
    confined = Confined(root)
    with pytest.raises(LinkError):
        confined.open_existing(str(root / "work" / "disk.vhdx"), os.O_RDWR)
    with pytest.raises(LinkError):
        confined.makedirs(str(root / "work" / "sub"))
    with pytest.raises(LinkError):
        confined.unlink(str(root / "work" / "disk.vhdx"))
    with pytest.raises(LinkError):
        confined.check(str(tmp_path / "elsewhere"))  # outside the root altogether
    assert (outside / "disk.vhdx").read_bytes() == b"original"
    assert not (outside / "sub").exists()
    confined.makedirs(str(root / "a" / "b"))
    assert (root / "a" / "b").is_dir()


def test_read_own_refuses_a_file_larger_than_its_limit_unread(tmp_path: Path) -> None:
    big = tmp_path / "state"
    with open(big, "wb") as f:
        f.truncate(1024**3)
    with pytest.raises(InputError) as err:
        read_own(big, 1024)
    assert err.value.key == "error.links.state-too-large"
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1024)
    assert read_own(small, 1024) == b"x" * 1024


def test_copy_times_are_set_through_the_descriptor_or_the_checked_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvrescue.preserve.partial import set_times

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.write_bytes(b"o")
    os.utime(original, ns=(1_000_000_000, 2_000_000_000))
    copy.write_bytes(b"o")
    st = original.stat()
    for by_fd in (True, False):  # Windows' os.utime takes no descriptor
        if not by_fd:
            monkeypatch.setattr(os, "supports_fd", os.supports_fd - {os.utime})
        os.utime(copy, ns=(0, 0))
        fd = os.open(copy, os.O_RDONLY)
        try:
            set_times(fd, str(copy), Confined(tmp_path), st)
        finally:
            os.close(fd)
        assert copy.stat().st_mtime_ns == 2_000_000_000
    copy.unlink()
    copy.symlink_to(original)  # by path, a link there is refused, never followed
    with pytest.raises(LinkError):
        set_times(-1, str(copy), Confined(tmp_path), st)
