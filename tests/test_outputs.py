"""Our own outputs under interruption and failure: Ctrl-C and kill -9 mid-way, a full or
read-only destination, a missing folder, a mistyped --case, a name that contradicts the format.

The promise tested: a clear message and a stable exit code (130 interrupted, 2 not done), never
a traceback; nothing under a final output name that is not complete; no temporary file left
behind except by a killed process; inputs byte-identical with unchanged mtimes.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hvrescue.errors import InputError, OutputError
from hvrescue.io import atomic
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import MiB, make_chain, make_fat
from tests.helpers import Evidence, run_cli

LINUX = sys.platform.startswith("linux")


# ---------------------------------------------------------------------------- helpers
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HVRESCUE_LANG", None)
    env.update({"LANG": "C.UTF-8", "LC_ALL": "", "COLUMNS": "200"})
    return env


def _bytes_read(pid: int) -> int:
    """Bytes the process has read so far (Linux: /proc/PID/io rchar)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Stopped:
    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


def stop_midway(
    args: list[str | Path], sig: int, ready: Callable[[int], bool], inputs: list[Path]
) -> Stopped:
    """Run the CLI, wait until ``ready(pid)`` says it is in the middle of its work, send
    ``sig``; the inputs must be untouched afterwards whatever happened."""
    if not LINUX:
        pytest.skip("watches the process through /proc")
    snap = Evidence(inputs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + 120
    while not ready(proc.pid):
        assert proc.poll() is None, "the command finished before it could be interrupted"
        assert time.monotonic() < deadline, "the command never got under way"
        time.sleep(0.005)
    assert proc.poll() is None, "the command finished before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    snap.assert_untouched()
    assert "Traceback" not in err, err
    return Stopped(proc.returncode, out, err)


def read_more_than(n: int) -> Callable[[int], bool]:
    return lambda pid: _bytes_read(pid) > n


def has_temp_in(folder: Path, after_read: int = 0) -> Callable[[int], bool]:
    def ready(pid: int) -> bool:
        temps = [p for p in folder.glob(".*.part")] if folder.is_dir() else []
        return bool(temps) and _bytes_read(pid) > after_read

    return ready


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def temps(folder: Path) -> list[str]:
    return sorted(glob.glob(str(folder / "**" / ".*.part"), recursive=True, include_hidden=True))


@contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (root only; the test is skipped where mounting is denied)."""
    if not LINUX:
        pytest.skip("mounts a tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, leave: int = 64 * 1024) -> None:
    """Take all but ``leave`` bytes of the free space of ``folder``'s filesystem."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\xaa" * max(0, free - leave))


def error_json(result) -> dict:
    data = result.json()
    assert data["status"] == "error", data
    return data["error"]


# ---------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def big_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VHDX holding 1 GiB of non-zero data: hashing or merging it takes a second or more."""
    folder = tmp_path_factory.mktemp("big")
    path = folder / "big.vhdx"
    block = __import__("random").Random(7).randbytes(MiB) * 32  # one object, shared
    data = {i * 32 * MiB: block for i in range(32)}
    write_vhdx(str(path), VhdxSpec(virtual_size=1024 * MiB, block_size=32 * MiB), data)
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A VHDX with 8 MiB of data: more than the small filesystems below can take."""
    path = tmp_path / "in" / "small.vhdx"
    path.parent.mkdir()
    rnd = __import__("random").Random(3)
    write_vhdx(str(path), VhdxSpec(virtual_size=32 * MiB), {0: rnd.randbytes(8 * MiB)})
    return path


@pytest.fixture(scope="module")
def fat_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A VHDX with one FAT16 partition holding four 48 MiB files (extract takes seconds)."""
    import shutil

    for tool in ("sfdisk", "mkfs.fat", "mcopy", "qemu-img"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (Debian fdisk, dosfstools, mtools, qemu-utils)")
    folder = tmp_path_factory.mktemp("fat")
    rnd = __import__("random").Random(5)
    files = {f"DATA/F{i}.BIN": rnd.randbytes(48 * MiB) for i in range(4)}
    raw = folder / "disk.raw"
    size = 256 * MiB
    with open(raw, "wb") as f:
        f.truncate(size)
    subprocess.run(
        ["sfdisk", "-q", str(raw)],
        input=b"label: dos\nstart=2048, type=e\n",
        check=True,
        capture_output=True,
    )
    part = folder / "part.img"
    make_fat(part, size - MiB, files)
    with open(part, "rb") as src, open(raw, "r+b") as dst:
        dst.seek(MiB)
        shutil.copyfileobj(src, dst, 4 * MiB)
    part.unlink()
    disk = folder / "fat.vhdx"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(raw), str(disk)],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return disk, files


# ---------------------------------------------------------------------------- Ctrl-C, kill -9
def test_sigint_during_hash_says_interrupted_and_exits_130(big_disk: Path):
    r = stop_midway(["hash", big_disk], signal.SIGINT, read_more_than(96 * MiB), [big_disk])
    assert r.rc == 130
    assert "Interrupted: hash stopped before it finished" in r.stderr
    assert "SHA-256" not in r.stdout


def test_sigint_during_hash_json_reports_interrupted(big_disk: Path):
    r = stop_midway(
        ["hash", "--json", big_disk], signal.SIGINT, read_more_than(96 * MiB), [big_disk]
    )
    assert r.rc == 130
    data = json.loads(r.stdout)
    assert data["status"] == "interrupted"
    assert data["error"]["key"] == "ui.interrupted.read-only"
    assert "sha256" not in data


def test_sigint_during_merge_leaves_nothing(big_disk: Path, tmp_path: Path):
    out = tmp_path / "merged.vhdx"
    r = stop_midway(
        ["merge", big_disk, out], signal.SIGINT, has_temp_in(tmp_path, 96 * MiB), [big_disk]
    )
    assert r.rc == 130
    assert "Interrupted: merge stopped before it finished" in r.stderr
    assert "temporary files were removed" in r.stderr
    assert not out.exists()
    assert visible(tmp_path) == []  # the temporary file is gone too


@pytest.mark.slow  # a large merge killed
def test_sigkill_during_merge_leaves_nothing_under_the_final_name(big_disk: Path, tmp_path: Path):
    out = tmp_path / "merged.raw"
    r = stop_midway(
        ["merge", "--format", "raw", big_disk, out],
        signal.SIGKILL,
        has_temp_in(tmp_path, 96 * MiB),
        [big_disk],
    )
    assert r.rc == -signal.SIGKILL
    assert not out.exists()
    # Only the hidden temporary file of the killed process remains; a rerun is not blocked.
    assert all(name.startswith(".") and name.endswith(".part") for name in visible(tmp_path))
    rerun = run_cli("merge", "--format", "raw", big_disk, out, "--json", evidence=[big_disk])
    assert rerun.rc == 0 and rerun.json()["verified"]


def test_sigint_during_extract_keeps_only_complete_files(fat_disk, tmp_path: Path):
    disk, files = fat_disk
    to = tmp_path / "out"
    second = to / "p1" / "DATA" / "F1.BIN"
    r = stop_midway(
        ["extract", disk, "1:/DATA", "--to", to],
        signal.SIGINT,
        lambda pid: second.exists() or any(to.rglob(".F1.BIN.*.part")),
        [disk],
    )
    assert r.rc == 130
    assert "Interrupted: the files finished so far are in" in r.stderr
    assert temps(to) == []
    assert not (to / "extract-manifest.json").exists()
    written = sorted((to / "p1" / "DATA").iterdir())
    assert 1 <= len(written) < len(files)
    for path in written:
        assert path.read_bytes() == files[f"DATA/{path.name}"], f"{path} is not complete"


def test_sigkill_during_extract_leaves_no_partial_file_under_a_final_name(fat_disk, tmp_path):
    disk, files = fat_disk
    to = tmp_path / "out"
    r = stop_midway(
        ["extract", disk, "1:/DATA", "--to", to],
        signal.SIGKILL,
        lambda pid: any(to.rglob(".F1.BIN.*.part")),
        [disk],
    )
    assert r.rc == -signal.SIGKILL
    assert not (to / "extract-manifest.json").exists()
    for path in (to / "p1" / "DATA").iterdir():
        if path.name.startswith("."):
            assert path.name.endswith(".part")
            continue
        assert path.read_bytes() == files[f"DATA/{path.name}"], f"{path} is not complete"


def test_sigint_during_salvage_says_how_to_continue(big_disk: Path, tmp_path: Path):
    out, mapfile = tmp_path / "img.raw", tmp_path / "img.map"
    r = stop_midway(
        ["salvage", big_disk, out, "--map", mapfile],
        signal.SIGINT,
        read_more_than(200 * MiB),
        [big_disk],
    )
    assert r.rc == 130
    assert "Run the same command again to continue" in r.stderr.replace("\n", " ")
    assert not out.exists()  # the first pass did not finish: no image under the final name


def test_interrupted_action_is_recorded_with_130(big_disk: Path, tmp_path: Path):
    from hvrescue.preserve.case import CaseRecord

    case = tmp_path / "case.sqlite"
    CaseRecord(str(case)).close()
    r = stop_midway(
        ["--case", case, "hash", big_disk], signal.SIGINT, read_more_than(96 * MiB), [big_disk]
    )
    assert r.rc == 130
    db = sqlite3.connect(case)
    try:
        rows = db.execute("SELECT command, exit_code FROM actions").fetchall()
    finally:
        db.close()
    assert rows == [("hash", 130)]


# ---------------------------------------------------------------------------- full disk
WRITERS = ["merge", "merge-raw", "replay-log", "repair"]


def _write_args(kind: str, disk: Path, dest: Path) -> list[str | Path]:
    return {
        "merge": ["merge", disk, dest / "out.vhdx"],
        "merge-raw": ["merge", "--format", "raw", disk, dest / "out.raw"],
        "replay-log": ["replay-log", disk, dest / "out.vhdx"],
        "repair": ["repair", disk, dest / "out.vhdx"],
        "salvage": ["salvage", disk, dest / "out.raw", "--map", dest / "out.map"],
        "triage": ["triage", disk, "--out", dest / "report"],
    }[kind]


@pytest.mark.parametrize("kind", WRITERS)
def test_full_destination_is_a_clear_error_without_orphans(kind, small_disk, tmp_path):
    with mounted_tmpfs(tmp_path / "full", "size=2m") as dest:
        fill(dest)
        r = run_cli(*_write_args(kind, small_disk, dest), "--json", evidence=[small_disk])
        assert r.rc == 2
        err = error_json(r)
        assert err["key"] == "error.output.no-space"
        assert err["params"]["errno"] == "ENOSPC"
        assert str(dest / "out") in err["message"]
        assert "Internal error" not in r.stderr
        assert visible(dest) == ["filler"]  # no output, no temporary file
        text = run_cli(*_write_args(kind, small_disk, dest), evidence=[small_disk])
        assert text.rc == 2 and "the destination is full" in text.stderr


def test_extract_into_a_full_destination_stops_with_a_clear_error(fat_disk, tmp_path):
    disk, _files = fat_disk
    with mounted_tmpfs(tmp_path / "full", "size=4m") as dest:
        fill(dest, leave=1 * MiB)
        to = dest / "x"
        r = run_cli("extract", disk, "1:/DATA", "--to", to, "--json", evidence=[disk])
        assert r.rc == 2
        assert error_json(r)["key"] == "error.output.no-space"
        assert temps(dest) == []
        assert not (to / "extract-manifest.json").exists()
        assert [p for p in to.rglob("*") if p.is_file()] == []  # 48 MiB files cannot fit


def test_triage_into_a_full_destination_leaves_no_partial_report(small_disk, tmp_path):
    with mounted_tmpfs(tmp_path / "full", "size=2m") as dest:
        fill(dest, leave=8 * 1024)  # room for the small reports, not for all three
        r = run_cli("triage", small_disk, "--out", dest / "report", evidence=[small_disk])
        assert r.rc == 2, r.stderr
        assert "Internal error" not in r.stderr
        assert "the destination is full" in r.stderr
        assert visible(dest) == ["filler"]  # neither a report file nor its folder


# ---------------------------------------------------------------------------- read-only
@pytest.mark.parametrize(
    "kind", ["merge", "merge-raw", "replay-log", "repair", "salvage", "triage"]
)
def test_read_only_destination_is_refused_clearly(kind, small_disk, tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64m") as dest:
        r = run_cli(*_write_args(kind, small_disk, dest), "--json", evidence=[small_disk])
        assert r.rc == 2, r.stderr
        err = error_json(r)
        assert err["key"] == "error.output.read-only", err
        assert "Internal error" not in r.stderr
        assert visible(dest) == []


def test_reparent_and_extract_to_a_read_only_destination(fat_disk, tmp_path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    disk, _files = fat_disk
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64m") as dest:
        r = run_cli(
            "reparent", child, "--parent", base, dest / "c.avhdx", "--json", evidence=[base, child]
        )
        assert r.rc == 2 and error_json(r)["key"] == "error.output.read-only"
        r = run_cli("extract", disk, "1:/DATA", "--to", dest / "x", "--json", evidence=[disk])
        assert r.rc == 2 and error_json(r)["key"] == "error.output.read-only"
        assert visible(dest) == []


# ---------------------------------------------------------------------------- missing folder
@pytest.mark.parametrize(
    "kind", ["merge", "merge-raw", "replay-log", "repair", "salvage", "triage"]
)
def test_missing_output_folder_is_refused_not_created(kind, small_disk, tmp_path):
    missing = tmp_path / "no" / "such"
    r = run_cli(*_write_args(kind, small_disk, missing), "--json", evidence=[small_disk])
    assert r.rc == 2
    err = error_json(r)
    assert err["key"] == "error.output.folder-missing"
    assert not (tmp_path / "no").exists()


def test_reparent_into_a_missing_folder_is_refused(tmp_path: Path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    out = tmp_path / "typo" / "c.avhdx"
    r = run_cli("reparent", child, "--parent", base, out, "--json", evidence=[base, child])
    assert r.rc == 2 and error_json(r)["key"] == "error.output.folder-missing"
    assert not (tmp_path / "typo").exists()


def test_salvage_with_a_map_in_a_missing_folder_writes_no_image(small_disk, tmp_path):
    out = tmp_path / "out.raw"
    r = run_cli(
        "salvage", small_disk, out, "--map", tmp_path / "typo" / "out.map", evidence=[small_disk]
    )
    assert r.rc == 2 and "does not exist" in " ".join(r.stderr.split())
    assert visible(tmp_path) == ["in"]  # no image that would block the rerun


def test_extract_makes_only_the_last_level_of_its_folder(fat_disk, tmp_path):
    disk, _files = fat_disk
    r = run_cli("extract", disk, "1:/DATA", "--to", tmp_path / "a" / "b", evidence=[disk])
    assert r.rc == 2 and "does not exist" in " ".join(r.stderr.split())
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_bytes(b"x")
    r = run_cli("extract", disk, "1:/DATA", "--to", tmp_path / "file", evidence=[disk])
    assert r.rc == 2 and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- --case
def test_case_in_a_mistyped_folder_is_refused_before_the_command(small_disk, tmp_path):
    r = run_cli("--case", tmp_path / "typo" / "case.sqlite", "hash", small_disk, "--json")
    assert r.rc == 2
    assert error_json(r)["key"] == "error.case.folder-missing"
    assert "sha256" not in r.stdout
    assert not (tmp_path / "typo").exists()


def test_case_that_does_not_exist_is_refused_outside_preserve(small_disk, tmp_path):
    case = tmp_path / "case.sqlite"
    r = run_cli("--case", case, "hash", small_disk)
    assert r.rc == 2
    assert "created by 'hvrescue preserve'" in r.stderr
    assert not case.exists()


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 100, "sqlite"])
def test_case_that_is_not_a_case_database_is_refused_and_left_alone(content, small_disk, tmp_path):
    case = tmp_path / "notes.sqlite"
    if content == "sqlite":
        db = sqlite3.connect(case)
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
    else:
        case.write_bytes(content)
    r = run_cli("--case", case, "hash", small_disk, "--json", evidence=[case, small_disk])
    assert r.rc == 2
    assert error_json(r)["key"] == "error.case.not-a-case"


def test_existing_case_is_appended_to_and_preserve_may_start_one(small_disk, tmp_path):
    case = tmp_path / "new-case.sqlite"
    dest = tmp_path / "dest"
    r = run_cli(
        "--case", case, "preserve", "--allow-same-storage", small_disk, dest, evidence=[small_disk]
    )
    assert r.rc == 0, r.stderr
    assert case.is_file()
    r = run_cli("--case", case, "hash", small_disk, evidence=[small_disk])
    assert r.rc == 0
    db = sqlite3.connect(case)
    try:
        commands = [row[0] for row in db.execute("SELECT command FROM actions ORDER BY id")]
    finally:
        db.close()
    assert commands[-1] == "hash"


# ---------------------------------------------------------------------------- extensions
def test_output_extension_contradicting_the_format_is_refused(small_disk, tmp_path):
    base, child = make_chain(tmp_path / "vm", depth=2)
    cases = [
        (["merge", small_disk, tmp_path / "out.vhd"], "error.output.extension.merge", "out.vhdx"),
        (["merge", small_disk, tmp_path / "out.raw"], "error.output.extension.merge", "out.vhdx"),
        (
            ["merge", "--format", "raw", small_disk, tmp_path / "out.vhdx"],
            "error.output.extension.raw",
            "out.raw",
        ),
        (["replay-log", small_disk, tmp_path / "o.vhd"], "error.output.extension.vhdx", "o.vhdx"),
        (["repair", small_disk, tmp_path / "o.img"], "error.output.extension.vhdx", "o.vhdx"),
        (
            ["reparent", child, "--parent", base, tmp_path / "o.avhd"],
            "error.output.extension.vhdx",
            "o.avhdx",
        ),
        (
            ["salvage", small_disk, tmp_path / "o.avhdx", "--map", tmp_path / "o.map"],
            "error.output.extension.raw",
            "o.raw",
        ),
    ]
    for args, key, suggestion in cases:
        r = run_cli(*args, "--json", evidence=[small_disk, base, child])
        assert r.rc == 2, args
        err = error_json(r)
        assert err["key"] == key, args
        assert err["params"]["suggestion"].endswith(suggestion), args
        text = run_cli(*args, evidence=[small_disk, base, child])
        assert text.rc == 2 and suggestion in text.stderr.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "vm"]


def test_vhd_repair_output_must_keep_a_vhd_extension(tmp_path):
    import shutil

    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img")
    disk = tmp_path / "d.vhd"
    subprocess.run(
        ["qemu-img", "create", "-f", "vpc", str(disk), "16M"], check=True, capture_output=True
    )
    r = run_cli("repair", disk, tmp_path / "fixed.vhdx", "--json", evidence=[disk])
    assert r.rc == 2 and error_json(r)["key"] == "error.output.extension.vhd"
    assert not (tmp_path / "fixed.vhdx").exists()
    r = run_cli("repair", disk, tmp_path / "fixed.vhd", "--json", evidence=[disk])
    assert r.rc in (0, 1) and (tmp_path / "fixed.vhd").is_file()


def test_fitting_or_neutral_names_are_accepted(small_disk, tmp_path):
    r = run_cli(
        "merge", "--format", "raw", small_disk, tmp_path / "flat.img", evidence=[small_disk]
    )
    assert r.rc == 0, r.stderr
    r = run_cli("merge", small_disk, tmp_path / "flat-no-extension", evidence=[small_disk])
    assert r.rc == 0, r.stderr


# ---------------------------------------------------------------------------- atomic outputs
def test_atomic_output_removes_its_temporary_file_on_keyboard_interrupt(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt), atomic.atomic_output(target) as fd:
        os.write(fd, b"partial")
        raise KeyboardInterrupt
    assert visible(tmp_path) == []


def test_atomic_output_turns_a_full_disk_into_an_output_error(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(OutputError) as caught, atomic.atomic_output(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.key == "error.output.no-space"
    assert caught.value.params["path"] == str(target)
    assert visible(tmp_path) == []


def test_atomic_output_lets_other_errors_through_and_cleans_up(tmp_path: Path):
    with pytest.raises(ValueError), atomic.atomic_output(tmp_path / "x") as fd:
        os.write(fd, b"abc")
        raise ValueError("boom")
    assert visible(tmp_path) == []


def test_atomic_output_refuses_missing_folder_and_existing_target(tmp_path: Path):
    with pytest.raises(OutputError) as caught, atomic.atomic_output(tmp_path / "no" / "x"):
        pass
    assert caught.value.key == "error.output.folder-missing"
    (tmp_path / "x").write_bytes(b"keep")
    with pytest.raises(InputError), atomic.atomic_output(tmp_path / "x"):
        pass
    assert (tmp_path / "x").read_bytes() == b"keep"


def test_temporary_name_of_a_long_file_name_fits_the_filesystem(tmp_path: Path):
    name = "é" * 120  # 240 bytes in UTF-8, the longest name extract writes
    tmp = atomic.temp_path(str(tmp_path / name))
    assert len(os.fsencode(os.path.basename(tmp))) <= 255
    with atomic.atomic_output(tmp_path / name) as fd:
        os.write(fd, b"ok")
    assert (tmp_path / name).read_bytes() == b"ok"


def test_stale_temporary_file_of_a_dead_process_with_our_id_is_replaced(tmp_path: Path):
    target = tmp_path / "out.bin"
    stale = Path(atomic.temp_path(str(target)))
    stale.write_bytes(b"left by a killed run")
    with atomic.atomic_output(target) as fd:
        os.write(fd, b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists()
