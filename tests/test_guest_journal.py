"""The systemd journal of a Linux guest (hvrescue.logs.journal), against journalctl on files
systemd itself wrote (systemd-journal-remote from the export format): the compact layout of
systemd 252+, the regular one, zstd-compressed fields; damaged and cut files read as far as
they are whole; a guest whose only log is the journal (Debian 12, Fedora) gives the same
boot-failure events, and the same diagnosis, as one that also has rsyslog's text."""

from __future__ import annotations

import datetime as dt
import json
import lzma
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hvrescue.guest.artefacts.linux_logs import scan
from hvrescue.logs import journal as jr
from tests.fs_linux_builders import have, run, to_vhdx
from tests.helpers import run_cli

FIX = Path(__file__).parent / "fixtures" / "guest_linux"
REMOTE = "/lib/systemd/systemd-journal-remote"
MACHINE = "4a1f0e2c9b8d47f6a3c2b1d0e9f8a7b6"
BOOT = "0123456789abcdef0123456789abcdef"
MISSING = "c3d9e2f1-0a4b-4e7c-8d5f-6b1a2c3d4e5f"


def _needs_writer() -> None:
    if not (os.path.exists(REMOTE) and have("journalctl")):
        pytest.skip("needs Debian's systemd-journal-remote and journalctl")


def _field(name: str, value: str) -> bytes:
    data = value.encode()
    if b"\n" in data:  # the export format's binary form
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def _export(entries: list[dict[str, str]]) -> bytes:
    out = b""
    for n, fields in enumerate(entries):
        out += _field("__CURSOR", f"s=0;i={n}")
        for name, value in fields.items():
            out += _field(name, value)
        out += b"\n"
    return out


def _syslog_entries() -> list[dict[str, str]]:
    """The lines of the emergency-mode syslog fixture as journald records them."""
    entries = []
    year = 2026
    for line in (FIX / "syslog-emergency.txt").read_text().splitlines():
        stamp, host, rest = line[:15], line[16:].split(" ", 1)[0], line[16:].split(" ", 1)[1]
        ident, _, message = rest.partition(": ")
        pid = None
        if ident.endswith("]") and "[" in ident:
            ident, pid = ident[:-1].split("[", 1)
        when = dt.datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=dt.UTC)
        fields = {
            "__REALTIME_TIMESTAMP": str(int(when.timestamp() * 1_000_000) + len(entries)),
            "__MONOTONIC_TIMESTAMP": str(1_000 * (len(entries) + 1)),
            "_BOOT_ID": BOOT,
            "PRIORITY": "3" if "ailed" in message or "imed out" in message else "6",
            "_HOSTNAME": host,
            "SYSLOG_IDENTIFIER": ident,
            "MESSAGE": message,
        }
        if pid:
            fields["_PID"] = pid
        entries.append(fields)
    return entries


def _write(path: Path, entries: list[dict[str, str]], **env: str) -> Path:
    subprocess.run(
        [REMOTE, "-o", str(path), "-"],
        input=_export(entries),
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return path


def _oracle(path: Path) -> list[dict[str, Any]]:
    out = run("journalctl", "--file", path, "-o", "json", "--all", "--no-pager").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _value(v: Any) -> str:
    return bytes(v).decode() if isinstance(v, list) else str(v)


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _needs_writer()
    folder = tmp_path_factory.mktemp("journal")
    entries = _syslog_entries()
    long = {**entries[-1], "MESSAGE": "EXT4-fs error: " + "x" * 3000, "_PID": "1"}
    entries = [*entries, long, {**entries[0], "MESSAGE": "two\nlines"}]
    return {
        "compact": _write(folder / "compact.journal", entries),
        "regular": _write(folder / "regular.journal", entries, SYSTEMD_JOURNAL_COMPACT="0"),
    }


@pytest.mark.parametrize("layout", ["compact", "regular"])
def test_every_entry_as_journalctl_reads_it(journals, layout):
    path = journals[layout]
    read = jr.read_journal(path.read_bytes())
    assert read.compact is (layout == "compact")
    assert read.complete and read.reason is None
    oracle = _oracle(path)
    assert len(read.entries) == len(oracle) > 10
    for ours, theirs in zip(read.entries, oracle, strict=True):
        assert ours.realtime == int(theirs["__REALTIME_TIMESTAMP"])
        assert ours.boot_id == theirs["_BOOT_ID"]
        cursor = dict(part.split("=", 1) for part in theirs["__CURSOR"].split(";"))
        assert ours.seqnum == int(cursor["i"], 16)
        assert ours.fields["MESSAGE"] == _value(theirs["MESSAGE"])
        assert ours.fields["SYSLOG_IDENTIFIER"] == theirs["SYSLOG_IDENTIFIER"]
        assert ours.undecoded == []
    assert any(len(e.fields["MESSAGE"]) > 3000 for e in read.entries)  # the compressed one


def test_a_compressed_field_without_its_codec_is_said_undecoded(journals, monkeypatch):
    monkeypatch.setattr(jr, "_codec", lambda module: None)
    read = jr.read_journal(journals["compact"].read_bytes())
    undecoded = [e for e in read.entries if e.undecoded]
    assert len(undecoded) == 1 and "MESSAGE" not in undecoded[0].fields


def test_lz4_and_xz_payloads_decompress_as_their_encoders_made_them():
    import lz4.block

    text = b"MESSAGE=" + b"Timed out waiting for device " * 40
    framed = struct.pack("<Q", len(text)) + lz4.block.compress(text, store_size=False)
    assert jr._decompress(framed, jr.OBJ_LZ4) == text
    assert jr._decompress(lzma.compress(text), jr.OBJ_XZ) == text
    assert jr._decompress(b"garbage", jr.OBJ_XZ) is None
    assert jr._decompress(struct.pack("<Q", 1 << 40) + b"x", jr.OBJ_LZ4) is None


def test_a_cut_journal_gives_the_entries_that_are_whole(journals):
    data = journals["compact"].read_bytes()
    whole = jr.read_journal(data)
    tail = struct.unpack_from("<Q", data, 136)[0]
    cut = jr.read_journal(data[: tail - 8])
    assert not cut.complete and cut.reason
    assert [e.seqnum for e in cut.entries] == [e.seqnum for e in whole.entries][: len(cut.entries)]
    assert len(cut.entries) >= len(whole.entries) - 1
    with pytest.raises(jr.JournalError):
        jr.read_journal(b"LPKSHHRH" + bytes(100))
    with pytest.raises(jr.JournalError):
        jr.read_journal(b"not a journal" * 100)


def test_damaged_journals_never_crash(journals):
    data = journals["regular"].read_bytes()
    rnd = random.Random(7)
    header = struct.unpack_from("<Q", data, 88)[0]
    end = struct.unpack_from("<Q", data, 136)[0] + 4096
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rnd.randrange(1, 6)):
            at = rnd.randrange(0, min(len(data), end))
            damaged[at] = rnd.randrange(256)
        try:
            read = jr.read_journal(bytes(damaged))
        except jr.JournalError:
            assert damaged[:header] != data[:header]  # only a damaged header refuses
            continue
        assert len(read.entries) <= 64


def _guest_tree(root: Path, with_syslog: bool, journal: Path | None) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n')
    (root / "etc/fstab").write_text(
        "UUID=0a1b2c3d-1111-2222-3333-444455556666 / ext4 defaults 0 1\n"
        f"UUID={MISSING} /data xfs defaults 0 0\n"
    )
    if with_syslog:
        shutil.copy(FIX / "syslog-emergency.txt", root / "var/log/syslog")
    if journal is not None:
        folder = root / "var/log/journal" / MACHINE
        folder.mkdir(parents=True)
        shutil.copy(journal, folder / "system.journal")


def _disk(folder: Path, name: str, with_syslog: bool, journal: Path | None) -> Path:
    src = folder / f"{name}-src"
    _guest_tree(src, with_syslog, journal)
    raw = folder / f"{name}.raw"
    with open(raw, "wb") as f:
        f.truncate(64 << 20)
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, raw)
    return to_vhdx(raw, folder / f"{name}.vhdx")


def _kinds(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f["attributes"] for f in data["facts"] if f["kind"] == kind]


def test_a_guest_whose_only_log_is_the_journal(tmp_path: Path):
    _needs_writer()
    if not have("mkfs.ext4", "qemu-img"):
        pytest.skip("needs e2fsprogs and qemu-utils")
    system = _write(tmp_path / "system.journal", _syslog_entries())
    journal_only = _disk(tmp_path, "journal", False, system)
    text_only = _disk(tmp_path, "syslog", True, None)
    r = run_cli("guest", journal_only, "--json", evidence=[journal_only])
    assert r.rc == 0, r.stderr
    data = r.json()
    [journal] = _kinds(data, "linux_journal")
    assert journal["decoded"] is True and journal["files_read"] == 1
    assert journal["entries"] == len(_syslog_entries())
    events = _kinds(data, "linux_log_event")
    assert events and all(e["source"] == "journal" for e in events)
    # the same notable lines, in the same categories, as the text log gives
    expected, _ = scan((FIX / "syslog-emergency.txt").read_text())
    assert [e["category"] for e in events] == [e["category"] for e in expected]
    assert [e["message"] for e in events] == [e["message"] for e in expected]
    assert [e["host"] for e in events] == [e["host"] for e in expected]
    located = [f["provenance"]["locator"] for f in data["facts"] if f["kind"] == "linux_log_event"]
    assert all(loc.startswith("journal-seqnum:") for loc in located)
    # triage says the same of both disks
    ids = []
    for disk in (journal_only, text_only):
        t = run_cli("triage", disk, "--out", tmp_path / f"{disk.stem}-r", "--json", evidence=[disk])
        assert t.rc in (0, 1), t.stderr
        ids.append([d["id"] for d in t.json()["diagnoses"]][:1])
    assert ids[0] == ids[1] == [ids[1][0]] and ids[0][0].startswith("linux.")


def test_a_journal_file_given_as_evidence(tmp_path: Path):
    _needs_writer()
    folder = tmp_path / "evidence"
    folder.mkdir()
    system = _write(folder / "system.journal", _syslog_entries())
    t = run_cli("triage", folder, "--out", tmp_path / "report", "--json", evidence=[folder])
    assert t.rc in (0, 1), t.stderr
    data = t.json()
    [entry] = [i for i in data["inputs"] if i["path"].endswith("system.journal")]
    assert entry["recognised"] is True
    # the same diagnosis as the pasted text of these lines (tests/test_field_linux.py)
    assert data["diagnoses"][0]["id"] == "linux.emergency-mode-missing-device"
    f = run_cli("facts", folder, "--json", evidence=[folder])
    events = [x for x in f.json()["facts"] if x["kind"] == "linux_log_event"]
    expected, _ = scan((FIX / "syslog-emergency.txt").read_text())
    assert [e["attributes"]["message"] for e in events] == [e["message"] for e in expected]
    assert all(e["provenance"]["locator"].startswith("journal-seqnum:") for e in events)
    # a copy cut while journald wrote it: what is whole is read, and the cut is said
    data_bytes = system.read_bytes()
    tail = struct.unpack_from("<Q", data_bytes, 136)[0]
    (folder / "system.journal").unlink()
    (folder / "cut.journal").write_bytes(data_bytes[: tail - 8])
    f = run_cli("facts", folder, "--json", evidence=[folder])
    codes = [p["code"] for p in f.json()["problems"]]
    assert codes == ["journal.incomplete"]
    assert [x for x in f.json()["facts"] if x["kind"] == "linux_log_event"]
