"""preserve / verify / case record, end to end through the CLI on files built from the corpus."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hvrescue.errors import InputError
from hvrescue.preserve import run as run_mod
from hvrescue.preserve.manifest import verify_entries
from hvrescue.preserve.run import Options, preserve
from tests.builders import make_chain
from tests.helpers import CORPUS, Evidence, run_cli
from tests.test_io import FaultyDisk

MiB = 1024 * 1024
VM_ID = "282874FC-59D6-4F30-BC04-5FDD909C82E0"


def sha(path: Path, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@pytest.fixture
def vm_folder(tmp_path: Path) -> Path:
    """A Hyper-V VM folder from public files: dfvfs's VHD chain, dissect's .vmcx and .VMRS."""
    vm = tmp_path / "evidence" / "Other Location"
    (vm / "Virtual Machines").mkdir(parents=True)
    (vm / "Virtual Hard Disks").mkdir()
    shutil.copyfile(CORPUS / "dissect-hypervisor/test.vmcx", vm / f"Virtual Machines/{VM_ID}.vmcx")
    shutil.copyfile(CORPUS / "dissect-hypervisor/test.VMRS", vm / f"Virtual Machines/{VM_ID}.VMRS")
    for name in ("image.vhd", "image-differential.vhd"):
        shutil.copyfile(CORPUS / "dfvfs" / name, vm / "Virtual Hard Disks" / name)
    return vm


def copies(dest: Path) -> list[Path]:
    """Everything in DEST but the case record, which later commands append to."""
    return [p for p in dest.iterdir() if p.name != "case.sqlite"]


def manifest_of(dest: Path) -> dict:
    return json.loads((dest / "manifest.json").read_text(encoding="utf-8"))


def test_vm_folder_is_preserved_whole_with_correct_hashes(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    r = run_cli("preserve", vm_folder, dest, "--allow-same-storage", "--json", evidence=[vm_folder])
    assert r.rc == 0, r.stdout + r.stderr
    out = r.json()
    assert out["status"] == "complete"
    m = manifest_of(dest)
    assert m == {k: v for k, v in out.items() if k in m}
    files = {f["path"]: f for f in m["files"]}
    expected = {
        f"Other Location/Virtual Machines/{VM_ID}.vmcx": "configuration",
        f"Other Location/Virtual Machines/{VM_ID}.VMRS": "runtime-state",
        "Other Location/Virtual Hard Disks/image.vhd": "base-disk",
        "Other Location/Virtual Hard Disks/image-differential.vhd": "differencing-disk",
    }
    assert {p: f["role"] for p, f in files.items()} == expected
    for rel, f in files.items():
        original = vm_folder.parent / rel
        assert f["source"] == str(original)
        assert f["sha256"] == sha(original)  # independent: hashlib over the original
        assert f["size"] == original.stat().st_size
        assert f["unreadable"] == []
        copy = dest / rel
        assert sha(copy) == f["sha256"]
        assert copy.stat().st_mtime_ns == original.stat().st_mtime_ns
    child = files["Other Location/Virtual Hard Disks/image-differential.vhd"]
    assert child["parent"] == "Other Location/Virtual Hard Disks/image.vhd"
    assert m["tool"]["name"] == "hvrescue" and m["host"] and m["created"]
    assert "preserve" in m["command"] and str(dest) in m["command"]
    assert m["warnings"] == ["same-storage"]
    # What the configuration names but the evidence lacks is listed, not silently skipped.
    assert sorted(u["reason"] for u in m["unreachable"]) == [
        "config-disk-missing",
        "config-file-missing",
    ]
    # The CSV says the same.
    with open(dest / "manifest.csv", encoding="utf-8-sig", newline="") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    assert {p: r["sha256"] for p, r in rows.items()} == {p: f["sha256"] for p, f in files.items()}
    # No work files are left behind.
    assert not (dest / run_mod.WORK_DIR).exists()


def test_verify_passes_then_names_the_changed_file(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    assert run_cli("preserve", vm_folder, dest, "--allow-same-storage").rc == 0
    r = run_cli("verify", dest, "--json", evidence=copies(dest))
    assert r.rc == 0 and r.json()["status"] == "ok"
    assert len(r.json()["files"]) == 4
    victim = dest / "Other Location/Virtual Hard Disks/image.vhd"
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x01
    victim.write_bytes(bytes(data))
    r = run_cli("verify", dest / "manifest.json", "--json", evidence=copies(dest))
    assert r.rc == 1
    assert r.json()["failed"] == ["Other Location/Virtual Hard Disks/image.vhd"]
    # Human output names it too, in both languages.
    r = run_cli("verify", dest, evidence=copies(dest))
    assert r.rc == 1 and "image.vhd" in r.stdout
    r = run_cli("--lang", "ja", "verify", dest, evidence=copies(dest))
    assert r.rc == 1 and "一致しません" in r.stdout
    victim.unlink()
    r = run_cli("verify", dest, "--json", evidence=copies(dest))
    assert r.rc == 1
    assert {f["path"]: f["status"] for f in r.json()["files"]}[
        "Other Location/Virtual Hard Disks/image.vhd"
    ] == "missing"


def test_leaf_alone_brings_its_parent_from_another_folder(tmp_path: Path):
    root = tmp_path / "E" / "VMs"
    base, leaf = make_chain(root / "new", depth=2)
    (root / "old").mkdir()
    moved = root / "old" / base.name  # only the absolute locator D:\VMs\old\base.vhdx names it
    base.rename(moved)
    dest = tmp_path / "copy"
    r = run_cli("preserve", leaf, dest, "--allow-same-storage", "--json", evidence=[root])
    assert r.rc == 0, r.stdout + r.stderr
    files = {f["path"]: f for f in r.json()["files"]}
    assert set(files) == {"new/c1.avhdx", "old/base.vhdx"}
    assert files["new/c1.avhdx"]["parent"] == "old/base.vhdx"
    assert files["old/base.vhdx"]["sha256"] == sha(moved)
    # The copy keeps the layout, so the copied chain resolves on its own, to the copied parent.
    r = run_cli("chain", dest / "new/c1.avhdx", "--json")
    assert r.rc == 0
    assert r.json()["layers"][-1]["path"] == str(dest / "old/base.vhdx")
    assert run_cli("hash", dest / "new/c1.avhdx").stdout == run_cli("hash", leaf).stdout


def test_missing_parent_is_listed_not_skipped(corpus_dir: Path, tmp_path: Path):
    src = tmp_path / "ev"
    src.mkdir()
    shutil.copyfile(corpus_dir / "dissect-hypervisor/differencing.avhdx", src / "d.avhdx")
    dest = tmp_path / "copy"
    r = run_cli("preserve", src / "d.avhdx", dest, "--allow-same-storage", "--json")
    assert r.rc == 1
    out = r.json()
    assert out["status"] == "incomplete" and out["complete"] is False
    assert [f["path"] for f in out["files"]] == ["d.avhdx"]
    [gap] = out["unreachable"]
    assert gap["reason"] == "parent-missing"
    assert gap["referenced_by"] == str(src / "d.avhdx")
    assert "Generation 1_49C4BAF3" in gap["detail"]
    r = run_cli("preserve", src / "d.avhdx", tmp_path / "c2", "--allow-same-storage")
    assert r.rc == 1 and "parent" in r.stdout.lower()


def test_refusals_leave_nothing_behind(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    # Same filesystem without the flag: refused, with the reason.
    r = run_cli("preserve", vm_folder, dest, evidence=[vm_folder])
    assert r.rc == 2 and "same storage" in r.stderr
    assert not dest.exists()
    r = run_cli("--lang", "ja", "preserve", vm_folder, dest, "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.preserve.same-storage"
    assert "同じストレージ" in r.json()["error"]["message"]
    # DEST inside the source.
    inner = vm_folder / "copy"
    r = run_cli("preserve", vm_folder, inner, "--allow-same-storage", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.preserve.dest-inside-source"
    assert not inner.exists()
    # A DEST that holds something else is never written into.
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    r = run_cli("preserve", vm_folder, dest, "--allow-same-storage", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.preserve.dest-not-empty"
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]
    # A finished preservation is not redone over itself.
    d2 = tmp_path / "c2"
    assert run_cli("preserve", vm_folder, d2, "--allow-same-storage").rc == 0
    before = Evidence([d2])
    r = run_cli("preserve", vm_folder, d2, "--allow-same-storage", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.preserve.dest-not-empty"
    before.assert_untouched()


def test_no_space_is_refused_before_copying(vm_folder: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(
        run_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10, 10)
    )
    dest = tmp_path / "copy"
    with pytest.raises(InputError) as err:
        preserve([str(vm_folder)], str(dest), Options(allow_same_storage=True), ["t"])
    assert err.value.key == "error.preserve.no-space"
    assert not dest.exists()


def test_read_errors_are_zero_filled_recorded_and_the_rest_copied(tmp_path: Path, monkeypatch):
    src = tmp_path / "ev"
    src.mkdir()
    data = os.urandom(12 * MiB)
    disk = src / "raw.bin"
    disk.write_bytes(data)
    (src / "other.txt").write_text("fine")
    bad_lo, bad_hi = 5 * MiB + 100, 5 * MiB + 70_000
    FaultyDisk(monkeypatch, disk, bad_lo, bad_hi)
    snap = Evidence([src])
    dest = tmp_path / "copy"
    outcome = preserve([str(src)], str(dest), Options(allow_same_storage=True), ["t"])
    snap.assert_untouched()
    assert outcome.complete is False
    entry = {f["path"]: f for f in outcome.manifest["files"]}["ev/raw.bin"]
    [[off, length]] = entry["unreadable"]
    # Exactly the sectors the fault touches are lost, not a byte of their neighbours.
    assert off == bad_lo // 512 * 512
    assert off + length == -(-bad_hi // 512) * 512
    expected = bytearray(data)
    expected[off : off + length] = bytes(length)
    copy = (dest / "ev/raw.bin").read_bytes()
    assert copy == bytes(expected)
    assert entry["sha256"] == hashlib.sha256(copy).hexdigest()
    assert (dest / "ev/other.txt").read_text() == "fine"
    assert manifest_of(dest)["files"] == outcome.manifest["files"]


def test_a_bad_range_across_chunks_is_recorded_whole_and_a_resume_fills_it(
    tmp_path: Path, monkeypatch
):
    src = tmp_path / "ev"
    src.mkdir()
    data = os.urandom(16 * MiB)
    disk = src / "raw.bin"
    disk.write_bytes(data)
    # 10 MiB from 3 MiB: the copy reads in 4 MiB chunks, so four reads each see a part of it.
    fault = FaultyDisk(monkeypatch, disk, 3 * MiB, 13 * MiB)
    snap = Evidence([src])
    dest = tmp_path / "copy"
    outcome = preserve([str(src)], str(dest), Options(allow_same_storage=True), ["t"])
    assert outcome.complete is False
    entry = {f["path"]: f for f in outcome.manifest["files"]}["ev/raw.bin"]
    assert entry["unreadable"] == [[3 * MiB, 10 * MiB]]
    gappy = data[: 3 * MiB] + bytes(10 * MiB) + data[13 * MiB :]
    assert (dest / "ev/raw.bin").read_bytes() == gappy
    # The copy is as recorded, and still not the evidence.
    [result] = verify_entries(str(dest), outcome.manifest["files"])
    assert result.status == "incomplete" and result.unreadable == [[3 * MiB, 10 * MiB]]

    opts = Options(allow_same_storage=True, resume=True)
    again = preserve([str(src)], str(dest), opts, ["t"])
    assert again.complete is False and again.recovered == 0 and again.retried == 10 * MiB
    assert again.manifest["files"][0]["unreadable"] == [[3 * MiB, 10 * MiB]]
    # Part of it reads now: only what still fails stays recorded (and zeros).
    fault.lo, fault.hi = 8 * MiB + 512, 8 * MiB + 1024
    part = preserve([str(src)], str(dest), opts, ["t"])
    assert part.complete is False and part.recovered == 10 * MiB - 512
    assert part.manifest["files"][0]["unreadable"] == [[8 * MiB + 512, 512]]
    fault.lo = fault.hi = 0
    healed = preserve([str(src)], str(dest), opts, ["t"])
    snap.assert_untouched()
    assert healed.complete is True and healed.recovered == 512
    entry = healed.manifest["files"][0]
    assert entry["unreadable"] == [] and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert (dest / "ev/raw.bin").read_bytes() == data
    assert (dest / "ev/raw.bin").stat().st_mtime_ns == disk.stat().st_mtime_ns
    assert manifest_of(dest) == healed.manifest
    assert [r.status for r in verify_entries(str(dest), healed.manifest["files"])] == ["ok"]


def test_a_copy_changed_since_it_was_recorded_is_not_refilled(tmp_path: Path, monkeypatch):
    src = tmp_path / "ev"
    src.mkdir()
    data = os.urandom(6 * MiB)
    disk = src / "raw.bin"
    disk.write_bytes(data)
    fault = FaultyDisk(monkeypatch, disk, MiB, MiB + 512)
    dest = tmp_path / "copy"
    preserve([str(src)], str(dest), Options(allow_same_storage=True), ["t"])
    fault.lo = fault.hi = 0
    with open(dest / "ev/raw.bin", "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"tampered")
    opts = Options(allow_same_storage=True, resume=True)
    with pytest.raises(InputError) as err:
        preserve([str(src)], str(dest), opts, ["t"])
    assert err.value.key == "error.preserve.done-but-changed"


def test_an_interrupted_retry_is_recognised_and_finished(tmp_path: Path, monkeypatch):
    """A retry killed after writing what it read, before the manifest: the next one goes on."""
    src = tmp_path / "ev"
    src.mkdir()
    data = os.urandom(6 * MiB)
    disk = src / "raw.bin"
    disk.write_bytes(data)
    fault = FaultyDisk(monkeypatch, disk, MiB, 2 * MiB)
    dest = tmp_path / "copy"
    preserve([str(src)], str(dest), Options(allow_same_storage=True), ["t"])
    fault.lo = fault.hi = 0
    # What the killed retry left: the range written into the copy, the manifest as it was.
    with open(dest / "ev/raw.bin", "r+b") as f:
        f.seek(MiB)
        f.write(data[MiB : MiB + 300_000])
    opts = Options(allow_same_storage=True, resume=True)
    healed = preserve([str(src)], str(dest), opts, ["t"])
    assert healed.complete is True and healed.recovered == MiB
    assert (dest / "ev/raw.bin").read_bytes() == data


def test_resume_of_an_interrupted_run_retries_the_finished_files_gaps(tmp_path: Path, monkeypatch):
    src = tmp_path / "ev"
    src.mkdir()
    data = os.urandom(8 * MiB)
    disk = src / "big.bin"
    disk.write_bytes(data)
    (src / "small.txt").write_text("small")
    fault = FaultyDisk(monkeypatch, disk, 4 * MiB - 512, 4 * MiB + 512)
    real = run_mod.copy_file

    def stop_at_small(source: str, *args, **kwargs):
        if source.endswith("small.txt"):
            raise run_mod.Cancelled()
        return real(source, *args, **kwargs)

    monkeypatch.setattr(run_mod, "copy_file", stop_at_small)
    dest = tmp_path / "copy"
    with pytest.raises(run_mod.Cancelled):
        preserve([str(src)], str(dest), Options(allow_same_storage=True, jobs=1), ["t"])
    assert not (dest / "manifest.json").exists()
    monkeypatch.setattr(run_mod, "copy_file", real)
    fault.lo = fault.hi = 0
    opts = Options(allow_same_storage=True, resume=True, jobs=1)
    healed = preserve([str(src)], str(dest), opts, ["t"])
    assert healed.complete is True and healed.recovered == 1024
    files = {f["path"]: f for f in healed.manifest["files"]}
    assert files["ev/big.bin"]["unreadable"] == []
    assert files["ev/big.bin"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (dest / "ev/big.bin").read_bytes() == data


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from hvrescue.preserve import copy
    copy.CHECKPOINT_EVERY = 4 * 1024 * 1024
    written = [0]
    real = copy._write_all
    def write_then_die(fd, data, offset):
        real(fd, data, offset)
        written[0] += len(data)
        if written[0] >= int(os.environ["KILL_AFTER"]):
            os.kill(os.getpid(), signal.SIGKILL)
    copy._write_all = write_then_die
    from hvrescue.cli.main import main
    sys.argv = ["hvrescue", *sys.argv[1:]]
    main()
    """
)


def test_interrupted_run_leaves_no_partial_file_and_resume_finishes(tmp_path: Path):
    src = tmp_path / "ev"
    src.mkdir()
    big = src / "big.vhdx.bin"
    big.write_bytes(os.urandom(40 * MiB))
    (src / "small.txt").write_text("small")
    snap = Evidence([src])
    dest = tmp_path / "copy"
    env = dict(os.environ, KILL_AFTER=str(22 * MiB))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, "preserve", str(src), str(dest), "--allow-same-storage"],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -9
    snap.assert_untouched()
    # Nothing incomplete carries a final name; the partial copy waits in the work folder.
    assert not (dest / "manifest.json").exists()
    assert not (dest / "ev/big.vhdx.bin").exists()
    if (dest / "ev/small.txt").exists():
        assert (dest / "ev/small.txt").read_text() == "small"
    part = dest / run_mod.WORK_DIR / "parts/ev/big.vhdx.bin"
    state = json.loads(Path(str(part) + ".state").read_text())
    assert 4 * MiB <= state["offset"] <= 22 * MiB
    # Without --resume the interrupted destination is not touched.
    r = run_cli("preserve", src, dest, "--allow-same-storage", "--json")
    assert r.rc == 2 and r.json()["error"]["key"] == "error.preserve.needs-resume"
    r = run_cli("preserve", src, dest, "--allow-same-storage", "--resume", "--json", evidence=[src])
    assert r.rc == 0, r.stdout + r.stderr
    files = {f["path"]: f for f in r.json()["files"]}
    assert files["ev/big.vhdx.bin"]["sha256"] == sha(big)
    assert sha(dest / "ev/big.vhdx.bin") == sha(big)
    assert run_cli("verify", dest, evidence=copies(dest)).rc == 0
    # Resuming a finished preservation only verifies it.
    r = run_cli("preserve", src, dest, "--allow-same-storage", "--resume", "--json")
    assert r.rc == 0 and r.json()["verified_from_previous_run"] == 2


@pytest.mark.skipif(
    not hasattr(os, "SEEK_DATA"), reason="no SEEK_DATA/SEEK_HOLE here (Windows): holes are not seen"
)
def test_holes_stay_holes(tmp_path: Path):
    src = tmp_path / "ev"
    src.mkdir()
    sparse = src / "disk.raw"
    with open(sparse, "wb") as f:
        f.truncate(256 * MiB)
        os.pwrite(f.fileno(), b"\xab" * MiB, 100 * MiB)
    if sparse.stat().st_blocks * 512 > 32 * MiB:
        pytest.skip("this filesystem does not keep holes")
    dest = tmp_path / "copy"
    r = run_cli("preserve", sparse, dest, "--allow-same-storage", "--json")
    assert r.rc == 0
    copy = dest / "disk.raw"
    assert copy.stat().st_size == 256 * MiB
    assert copy.stat().st_blocks * 512 <= 8 * MiB
    assert sha(copy) == sha(sparse)
    [entry] = r.json()["files"]
    assert entry["holes"] >= 250 * MiB


def test_more_hash_algorithms_are_recorded_and_verified(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    r = run_cli(
        "preserve", vm_folder, dest, "--allow-same-storage", "--hash", "md5", "--hash", "sha1"
    )
    assert r.rc == 0
    m = manifest_of(dest)
    assert m["algorithms"] == ["sha256", "md5", "sha1"]
    for f in m["files"]:
        original = vm_folder.parent / f["path"]
        assert f["md5"] == sha(original, "md5") and f["sha1"] == sha(original, "sha1")
    # A manifest whose md5 is wrong fails verification even though sha256 still matches.
    m["files"][0]["md5"] = "0" * 32
    (dest / "manifest.json").write_text(json.dumps(m))
    r = run_cli("verify", dest, "--json", evidence=copies(dest))
    assert r.rc == 1 and r.json()["failed"] == [m["files"][0]["path"]]


def test_case_record_collects_every_action(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    assert run_cli("preserve", vm_folder, dest, "--allow-same-storage").rc == 0
    assert run_cli("verify", dest, evidence=copies(dest)).rc == 0
    case = dest / "case.sqlite"
    leaf = dest / "Other Location/Virtual Hard Disks/image-differential.vhd"
    r = run_cli("--case", case, "check", leaf, evidence=[leaf])
    assert r.rc in (0, 1)
    db = sqlite3.connect(case)
    actions = db.execute("SELECT id, command, exit_code, argv FROM actions ORDER BY id").fetchall()
    assert [a[1] for a in actions] == ["preserve", "verify", "check"]
    assert all(a[2] is not None for a in actions)
    assert str(leaf) in json.loads(actions[2][3])
    inputs = db.execute(
        "SELECT path, sha256 FROM files WHERE action_id = ? AND direction = 'input'",
        (actions[0][0],),
    ).fetchall()
    assert {p: h for p, h in inputs} == {
        str(vm_folder.parent / f["path"]): f["sha256"] for f in manifest_of(dest)["files"]
    }
    # The check's input is the preserved copy, whose hash the case already knew.
    [(path, digest)] = db.execute(
        "SELECT path, sha256 FROM files WHERE action_id = ?", (actions[2][0],)
    ).fetchall()
    assert path == str(leaf) and digest == sha(leaf)


def test_configuration_brings_a_disk_kept_in_another_folder(tmp_path: Path, corpus_dir: Path):
    drive = tmp_path / "C"
    vm = drive / "Hyper-V" / "EasyToFind"
    (vm / "Virtual Machines").mkdir(parents=True)
    shutil.copyfile(CORPUS / "dissect-hypervisor/test.vmcx", vm / f"Virtual Machines/{VM_ID}.vmcx")
    elsewhere = drive / "Users/Public/Documents/Hyper-V/Virtual Hard Disks"
    elsewhere.mkdir(parents=True)
    shutil.copyfile(
        corpus_dir / "dissect-hypervisor/dynamic.vhdx", elsewhere / "Other Location.vhdx"
    )
    dest = tmp_path / "copy"
    r = run_cli("preserve", vm, dest, "--allow-same-storage", "--json", evidence=[drive])
    paths = {f["path"]: f["role"] for f in r.json()["files"]}
    assert (
        paths["Users/Public/Documents/Hyper-V/Virtual Hard Disks/Other Location.vhdx"]
        == "base-disk"
    )
    # The .vmgs the configuration names is absent in this evidence: listed, but every file that
    # exists was copied, so the preservation is complete.
    assert r.rc == 0
    assert [u["reason"] for u in r.json()["unreachable"]] == ["config-file-missing"]


_SLOW = textwrap.dedent(
    """
    import sys, time
    from hvrescue.preserve import copy
    copy.CHECKPOINT_EVERY = 4 * 1024 * 1024
    real = copy._write_all
    def slow(fd, data, offset):
        real(fd, data, offset)
        time.sleep(0.05)
    copy._write_all = slow
    from hvrescue.cli.main import main
    sys.argv = ["hvrescue", *sys.argv[1:]]
    main()
    """
)


def test_ctrl_c_stops_cleanly_and_a_lost_write_is_caught_on_resume(tmp_path: Path):
    import signal
    import time

    src = tmp_path / "ev"
    src.mkdir()
    big = src / "disk.vhdx.bin"
    big.write_bytes(os.urandom(48 * MiB))
    dest = tmp_path / "copy"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, "preserve", str(src), str(dest), "--allow-same-storage"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = dest / run_mod.WORK_DIR / "parts/ev/disk.vhdx.bin"
    state_file = Path(str(part) + ".state")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state_file.exists() and json.loads(state_file.read_text() or "{}").get("offset", 0):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert not (dest / "ev/disk.vhdx.bin").exists()
    offset = json.loads(state_file.read_text())["offset"]
    assert offset >= 4 * MiB
    # Simulate a write the power cut lost before the checkpoint: the resume must not trust it.
    with open(part, "r+b") as f:
        f.seek(offset // 2)
        f.write(b"\0" * 4096)
    r = run_cli("preserve", src, dest, "--allow-same-storage", "--resume", "--json", evidence=[src])
    assert r.rc == 0, r.stderr
    assert sha(dest / "ev/disk.vhdx.bin") == sha(big) == r.json()["files"][0]["sha256"]


def test_verify_refuses_paths_outside_dest(vm_folder: Path, tmp_path: Path):
    dest = tmp_path / "copy"
    assert run_cli("preserve", vm_folder, dest, "--allow-same-storage").rc == 0
    m = manifest_of(dest)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the copy")
    m["files"].append(
        {"path": "../outside.txt", "size": outside.stat().st_size, "sha256": sha(outside)}
    )
    m["files"].append({"path": "/etc/hostname", "size": 1, "sha256": "0" * 64})
    (dest / "manifest.json").write_text(json.dumps(m))
    r = run_cli("verify", dest, "--json", evidence=copies(dest))
    assert r.rc == 1
    status = {f["path"]: f["status"] for f in r.json()["files"]}
    assert status["../outside.txt"] == "invalid-path" and status["/etc/hostname"] == "invalid-path"
    (dest / "manifest.json").write_text("{not json")
    r = run_cli("verify", dest, "--json", evidence=copies(dest))
    assert r.rc == 2 and r.json()["error"]["key"] == "error.manifest.invalid"
    assert run_cli("verify", tmp_path, "--json").rc == 2  # no manifest there


def test_other_storage_needs_no_flag(vm_folder: Path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == vm_folder.stat().st_dev:
        pytest.skip("no second filesystem to preserve onto")
    dest = shm / f"hvrescue-test-{os.getpid()}"
    try:
        r = run_cli("preserve", vm_folder, dest, "--json", evidence=[vm_folder])
        assert r.rc == 0, r.stderr
        assert r.json()["warnings"] == []
        assert run_cli("verify", dest, evidence=copies(dest)).rc == 0
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_a_destination_under_a_missing_folder_is_refused_not_created(tmp_path: Path):
    """preserve makes DEST itself, never the folders above it: a mistyped path is refused."""
    src = tmp_path / "ev"
    src.mkdir()
    (src / "a.txt").write_bytes(b"evidence")
    dest = tmp_path / "typo" / "copy"
    r = run_cli("preserve", src, dest, "--allow-same-storage", "--json", evidence=[src])
    assert r.rc == 2
    assert r.json()["error"]["key"] == "error.output.folder-missing"
    assert not (tmp_path / "typo").exists()
