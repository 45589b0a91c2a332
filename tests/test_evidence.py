"""The one evidence walker: each item classified once, only regular files opened, links not
followed, atimes kept, zips and text under one memory budget, every bad item failing alone."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.evidence import Budget, Folder, Item, Walk, parse_size
from hvrescue.evidence import classify as cls
from hvrescue.evidence import text as txt
from hvrescue.logs.collect import collect, facts_from_bytes
from tests.builders import make_chain
from tests.helpers import SHARED, run_cli

FIX = Path(__file__).parent / "fixtures" / "commands"
EVTX = SHARED / "corpus/public/evtx/EVTX-to-MITRE-Attack/ID7009-service-timeout.evtx"
MiB = 1024 * 1024
GOOD = FIX / "vssadmin_writers_stable_en.txt"  # every writer stable


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI with a deadline: a walk that opened a FIFO would block here, not pass."""
    env = {**os.environ, "LANG": "C.UTF-8", "COLUMNS": "200"}
    env.pop("HVRESCUE_LANG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def skipped(data: dict) -> dict[str, tuple[str, str | None]]:
    return {Path(s["path"]).name: (s["reason"], s["detail"]) for s in data["skipped"]}


# ---------------------------------------------------------------- zips crafted byte by byte
def member(name: str | bytes, data: bytes, method: int = 0, **kw: int | bytes) -> dict:
    return {
        "name": name.encode() if isinstance(name, str) else name,
        "raw": kw.get("raw", data),
        "method": method,
        "crc": kw.get("crc", zlib.crc32(data)),
        "usize": kw.get("usize", len(data)),
        "version": kw.get("version", 20),
        "flags": kw.get("flags", 0),
    }


def raw_zip(members: list[dict], cd_offset_delta: int = 0) -> bytes:
    """A zip written field by field, so that each can hold what zipfile would never write."""
    out = cd = b""
    for m in members:
        offset = len(out)
        fixed = (m["flags"], m["method"], 0, 0x21, m["crc"], len(m["raw"]), m["usize"])
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", m["version"], *fixed, len(m["name"]), 0)
        out += m["name"] + m["raw"]
        cd += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, m["version"], *fixed,
                          len(m["name"]), 0, 0, 0, 0, 0, offset) + m["name"]  # fmt: skip
    n = len(members)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(cd), len(out) + cd_offset_delta, 0)
    return out + cd + end


def deflate_repeated(chunk: bytes, times: int) -> bytes:
    """``chunk`` * ``times`` deflated in the time of two chunks: after a full flush the
    compressor starts afresh, so every further chunk compresses to the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return first + again * (times - 1) + c.flush()


def bomb(name: str, chunk: bytes, times: int, claimed: int | None = None) -> dict:
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    size = len(chunk) * times
    return member(name, b"", 8, raw=deflate_repeated(chunk, times), crc=crc, usize=claimed or size)


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


LOG_LINES = b"2024-02-14 03:04:05, Info  CBS  Exec: Processing package KB5034768\n" * 16000


# ---------------------------------------------------------------- classification and walk
def test_each_item_is_classified_once_in_the_order_os_walk_gives(tmp_path: Path):
    root = tmp_path / "evidence"
    make_chain(root / "Virtual Hard Disks", size=16 * MiB, block=MiB, depth=1)
    vms = root / "Virtual Machines"
    vms.mkdir()
    (vms / "vm.xml").write_bytes('<?xml version="1.0"?><configuration/>'.encode("utf-16"))
    (vms / "vm.vmcx").write_bytes(b"\x00\x01binary store")
    (vms / "vm.vmrs").write_bytes(b"\x00" * 100)
    shutil.copyfile(EVTX, root / "System.evtx")
    shutil.copyfile(FIX / "events_viewer_en.csv", root / "events.csv")
    shutil.copyfile(GOOD, root / "writers.txt")
    (root / "empty.log").write_bytes(b"")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (root / "bundle.zip").write_bytes(zipped({"host/writers.txt": GOOD.read_bytes()}))
    entries = list(Walk([str(root)]))
    kinds = {Path(e.path).name: e.kind for e in entries if isinstance(e, Item)}
    assert kinds == {
        "base.vhdx": cls.DISK,
        "vm.xml": cls.VM_CONFIG,
        "vm.vmcx": cls.VM_CONFIG,
        "vm.vmrs": cls.VM_RUNTIME,
        "System.evtx": cls.EVENT_LOG,
        "events.csv": cls.TEXT,
        "writers.txt": cls.TEXT,
        "empty.log": cls.EMPTY,
        "photo.jpg": cls.BINARY,
        "bundle.zip": cls.ARCHIVE,
    }
    members = [e.path for e in entries if isinstance(e, Item) and e.member]
    assert members == [f"{root}/bundle.zip!/host/writers.txt"]
    # The files in the order of os.walk (names sorted, a folder's files before its folders).
    expected = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        expected += [os.path.join(folder, n) for n in sorted(names)]
    assert [e.path for e in entries if isinstance(e, Item) and not e.member] == expected
    assert entries[-1] == Folder(str(root), cls.VM_FOLDER, len(expected))


def test_folder_kinds_a_plain_folder_and_a_collected_bundle(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(GOOD, plain / "writers.txt")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "hvrescue-bundle.json").write_text("{}")
    zipped_bundle = tmp_path / "bundle.zip"
    zipped_bundle.write_bytes(zipped({"hvrescue-bundle.json": b"{}", "a.txt": GOOD.read_bytes()}))
    folders = [e for e in Walk([str(plain), str(bundle)]) if isinstance(e, Folder)]
    assert [(Path(f.path).name, f.kind) for f in folders] == [
        ("plain", cls.FOLDER),
        ("bundle", cls.BUNDLE),
    ]
    [archive] = [e for e in Walk([str(zipped_bundle)]) if isinstance(e, Item) and not e.member]
    assert archive.kind == cls.BUNDLE


def test_runtime_suffixes_are_those_preserve_knows():
    from hvrescue.preserve.plan import RUNTIME_SUFFIXES

    assert cls.RUNTIME_SUFFIXES == RUNTIME_SUFFIXES


# ---------------------------------------------------------------- special files and links
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and Unix sockets are POSIX")
def test_fifos_sockets_and_devices_are_skipped_unopened_walked_or_given(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    shutil.copyfile(GOOD, root / "writers.txt")
    os.mkfifo(root / "disk.vhdx")
    os.mkfifo(root / "System.evtx")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "notes.txt"))
    given = tmp_path / "given.txt"
    os.mkfifo(given)
    try:
        for command in (
            ("facts", "--json", root, given, os.devnull),
            ("triage", "--json", root, given, "--out", tmp_path / "report"),
            ("inventory", "--json", root),
        ):
            start = time.monotonic()
            proc = cli(*command, timeout=90)
            assert time.monotonic() - start < 90
            data = json.loads(proc.stdout)
            reasons = skipped(data)
            assert reasons["disk.vhdx"] == ("not-regular", "fifo")
            assert reasons["System.evtx"] == ("not-regular", "fifo")
            assert reasons["notes.txt"] == ("not-regular", "socket")
            if command[0] != "inventory":
                assert reasons["given.txt"] == ("not-regular", "fifo")
            if command[0] == "facts":
                assert reasons["null"] == ("not-regular", "char-device")
                assert {f["kind"] for f in data["facts"]} == {"vss_writer", "vss_writer_list"}
            if command[0] == "triage":
                # A FIFO holds no evidence: the writers read make the verdict, not the FIFO.
                assert proc.returncode == 0 and data["verdict"]["state"] == "healthy"
    finally:
        sock.close()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_links_are_not_followed_out_of_the_tree_and_loops_end(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(FIX / "tasklist_svc_en.txt", outside / "tasklist.txt")
    root = tmp_path / "evidence"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(GOOD, root / "sub" / "writers.txt")
    os.symlink(outside / "tasklist.txt", root / "tasklist.txt")
    os.symlink(outside, root / "elsewhere")
    os.symlink(root / "sub" / "writers.txt", root / "same.txt")
    os.symlink(root, root / "sub" / "up")  # a loop back to the top
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink(tmp_path / "missing", root / "dangling.txt")
    proc = cli("facts", "--json", root, timeout=60)
    data = json.loads(proc.stdout)
    reasons = skipped(data)
    assert reasons["tasklist.txt"] == ("link-outside", str(outside / "tasklist.txt"))
    assert reasons["elsewhere"] == ("link-outside", str(outside))
    assert reasons["same.txt"] == ("link-inside", str(root / "sub" / "writers.txt"))
    assert reasons["up"] == ("link-inside", str(root))
    assert {reasons[n][0] for n in ("loop-a", "loop-b", "dangling.txt")} == {"link-broken"}
    # Nothing from outside was read; the file inside was read once, under its own name.
    assert {f["kind"] for f in data["facts"]} == {"vss_writer", "vss_writer_list"}
    assert {f["provenance"]["path"] for f in data["facts"]} == {str(root / "sub/writers.txt")}


def _atime_changes_on_read(path: Path) -> bool:
    past = time.time() - 10 * 86400
    os.utime(path, (past, past + 86400))  # atime older than mtime: relatime updates it
    with open(path, "rb") as f:
        f.read()
    changed = os.stat(path).st_atime_ns != int(past * 1e9)
    os.utime(path, (past, past + 86400))
    return changed


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="no O_NOATIME on this platform")
def test_evidence_is_read_without_changing_its_access_times(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    shutil.copyfile(GOOD, root / "writers.txt")
    shutil.copyfile(EVTX, root / "System.evtx")
    (root / "bundle.zip").write_bytes(
        zipped({"tasklist.txt": (FIX / "tasklist_svc_en.txt").read_bytes()})
    )
    files = sorted(root.iterdir())
    if not _atime_changes_on_read(files[0]):
        pytest.skip("this mount never updates access times: nothing to prove")
    for f in files:
        _atime_changes_on_read(f)  # every file: atime set in the past again
    before = {f: os.stat(f).st_atime_ns for f in files}
    assert cli("facts", "--json", root).returncode == 0
    assert cli("triage", "--json", root, "--out", tmp_path / "report").returncode in (0, 1)
    assert {f: os.stat(f).st_atime_ns for f in files} == before


# ---------------------------------------------------------------- zip bombs
def _peak_rss_of(code: str, timeout: float = 300) -> int:
    """Peak resident memory (bytes) of a fresh interpreter running ``code``."""
    wrapper = (
        "import resource, sys\n"
        + code
        + "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout
    return int(out.split()[-1]) * 1024


def test_a_1_mb_zip_of_zeros_is_refused_by_its_ratio_without_expanding_it(tmp_path: Path):
    path = tmp_path / "zeros.zip"
    path.write_bytes(raw_zip([bomb("memory.dmp", b"\0" * MiB, 1024)]))  # 1 GiB of zeros
    assert path.stat().st_size < 1.2 * MiB
    start = time.monotonic()
    found = collect([str(path)])
    assert time.monotonic() - start < 20
    [(where, reason, detail)] = [(s.path, s.reason, s.detail) for s in found.skipped]
    assert (where, reason) == (f"{path}!/memory.dmp", "zip-ratio")
    assert str(1024 * MiB) in str(detail)
    assert [(u.path, u.reason) for u in found.unrecognised] == [(where, "too-large")]


def test_text_bombs_are_refused_and_the_rest_is_read_in_bounded_memory(tmp_path: Path):
    line = b"2024-02-14 03:04:05, Info  CBS  Exec: Processing package KB5034768\n"
    chunk = line * (MiB // len(line))
    path = tmp_path / "bundle.zip"
    path.write_bytes(
        raw_zip(
            [
                bomb("huge.log", chunk, 2048),  # 2 GiB of text from 2 MB
                bomb("dense.log", chunk, 200),  # 200 MiB from 200 KB: no log compresses so
                bomb("liar.log", chunk, 2048, claimed=1000),  # says 1000 bytes
                member("writers.txt", GOOD.read_bytes()),
            ]
        )
    )
    code = (
        "from hvrescue.logs.collect import collect\n"
        f"found = collect([{str(path)!r}])\n"
        "print(sorted((s.path.rsplit('/', 1)[-1], s.reason) for s in found.skipped))\n"
        "print(sorted({f.kind for f in found.facts}))\n"
    )
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert time.monotonic() - start < 60
    assert out[0] == str(
        [
            ("dense.log", "zip-ratio"),
            ("huge.log", "zip-ratio"),
            ("liar.log", "zip-member-unreadable"),  # zipfile stops at the size claimed: CRC
        ]
    )
    assert out[1] == "['vss_writer', 'vss_writer_list']"
    if sys.platform != "win32":
        # The contract is the default --max-memory budget (512M). Alone this reads in ~120 MB;
        # one CI run under full load measured 443 MB, not reproduced since (see the note).
        peak = _peak_rss_of(code)
        assert peak < 512 * MiB, peak


def test_a_member_over_the_text_cap_is_skipped_by_its_size(tmp_path: Path):
    import random

    rnd = random.Random(7)
    text = "".join(f"{rnd.getrandbits(64):016x} line {i}\n" for i in range(80_000)).encode()
    path = tmp_path / "bundle.zip"
    path.write_bytes(zipped({"big.log": text, "writers.txt": GOOD.read_bytes()}))
    found = collect([str(path)], Budget(max_text_bytes=MiB))
    assert [(s.path, s.reason) for s in found.skipped] == [(f"{path}!/big.log", "too-large")]
    assert {f.provenance.path for f in found.facts} == {f"{path}!/writers.txt"}


def test_nested_zips_are_read_to_their_depth_and_nested_bombs_refused(tmp_path: Path):
    inner = zipped({"writers.txt": GOOD.read_bytes()})
    two = zipped({"level2.zip": inner})  # zip in zip in zip: the third level is too deep
    line = b"x" * 99 + b"\n"
    nested_bomb = raw_zip([bomb("big.log", line * (MiB // 100), 300)])
    path = tmp_path / "outer.zip"
    # Stored, not deflated again: deflating a bomb's repeated blocks makes a bomb of the outer
    # member itself (refused as such one level up).
    path.write_bytes(
        zipped({"inner.zip": inner, "two.zip": two, "bomb.zip": nested_bomb}, zipfile.ZIP_STORED)
    )
    found = collect([str(path)])
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons == {
        f"{path}!/two.zip!/level2.zip": "zip-too-deep",
        f"{path}!/bomb.zip!/big.log": "zip-ratio",
    }
    paths = {f.provenance.path for f in found.facts}
    assert paths == {f"{path}!/inner.zip!/writers.txt"}
    # The old names for the same: unrecognised "zip-too-deep" and "too-large".
    assert {(u.path, u.reason) for u in found.unrecognised} == {
        (f"{path}!/two.zip!/level2.zip", "zip-too-deep"),
        (f"{path}!/bomb.zip!/big.log", "too-large"),
    }


def test_a_nested_zip_larger_than_the_memory_left_is_skipped(tmp_path: Path):
    big_inner = zipped({f"log{i}.txt": os.urandom(512 * 1024) for i in range(48)})  # 24 MiB
    path = tmp_path / "outer.zip"
    path.write_bytes(zipped({"inner.zip": big_inner, "writers.txt": GOOD.read_bytes()}))
    found = collect([str(path)], Budget.of(16 * MiB))
    assert [(s.path, s.reason) for s in found.skipped] == [(f"{path}!/inner.zip", "memory-budget")]
    assert {f.provenance.path for f in found.facts} == {f"{path}!/writers.txt"}


def test_too_many_members_and_a_central_directory_over_the_budget(tmp_path: Path):
    many = tmp_path / "many.zip"
    many.write_bytes(zipped({f"f{i}.txt": b"x" for i in range(60)}))
    found = collect([str(many)], Budget(max_members=50))
    assert [(s.path, s.reason) for s in found.skipped] == [(str(many), "zip-too-many-members")]
    # 40,000 entries: about 2.4 MB of directory, far more once zipfile has made its objects.
    wide = tmp_path / "wide.zip"
    wide.write_bytes(zipped({f"dir/file-{i:06d}.txt": b"" for i in range(40_000)}))
    proc = cli("facts", "--json", "--max-memory", "16M", wide, GOOD)
    data = json.loads(proc.stdout)
    assert skipped(data) == {"wide.zip": ("memory-budget", skipped(data)["wide.zip"][1])}
    assert "central directory" in data["skipped"][0]["detail"]
    assert {f["kind"] for f in data["facts"]} == {"vss_writer", "vss_writer_list"}


# ---------------------------------------------------------------- damaged zips
TEXT = GOOD.read_bytes()
DAMAGED = {
    "zlib": (raw_zip([member("a.txt", TEXT, 8, raw=b"\xff" * 64)]), "zip-member-unreadable"),
    "method": (raw_zip([member("a.txt", TEXT, 99)]), "zip-member-unreadable"),
    "version": (raw_zip([member("a.txt", TEXT, version=99)]), "damaged-zip"),
    "crc": (raw_zip([member("a.txt", TEXT, crc=1234)]), "zip-member-unreadable"),
    "encrypted": (raw_zip([member("a.txt", TEXT, flags=1)]), "zip-member-unreadable"),
    "bzip2": (raw_zip([member("a.txt", TEXT, 12, raw=b"garbage!!")]), "zip-member-unreadable"),
    "lzma": (
        raw_zip([member("a.txt", TEXT, 14, raw=b"garbage!garbage!")]),
        "zip-member-unreadable",
    ),
    "name": (raw_zip([member(b"\xff\xfe.txt", TEXT, flags=0x800)]), "damaged-zip"),
    "truncated": (zipped({"a.txt": os.urandom(4000)})[:900], "damaged-zip"),
    "header-offset": (
        raw_zip([member("a.txt", TEXT)], cd_offset_delta=-5),
        "zip-member-unreadable",
    ),
    "negative-seek": (raw_zip([member("a.txt", TEXT)], cd_offset_delta=7), "zip-member-unreadable"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_zip_fails_alone(tmp_path: Path, case: str):
    data, reason = DAMAGED[case]
    root = tmp_path / "evidence"
    root.mkdir()
    (root / "bundle.zip").write_bytes(data)
    # The same archive nested in another (read from memory: a negative seek is a ValueError).
    (root / "outer.zip").write_bytes(zipped({"inner.zip": data, "writers.txt": TEXT}))
    shutil.copyfile(GOOD, root / "writers.txt")
    found = collect([str(root)])
    reasons = {s.path.split(str(root) + "/", 1)[1]: s.reason for s in found.skipped}
    assert set(reasons.values()) == {reason}
    assert {k.split("!/")[0] for k in reasons} == {"bundle.zip", "outer.zip"}
    # Both copies of the good text were read, beside the damage.
    assert {f.provenance.path for f in found.facts} == {
        str(root / "writers.txt"),
        f"{root / 'outer.zip'}!/writers.txt",
    }


def test_triage_of_every_damaged_zip_together_writes_its_report(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    for case, (data, _reason) in DAMAGED.items():
        (root / f"{case}.zip").write_bytes(data)
    shutil.copyfile(FIX / "vssadmin_writers_empty_en.txt", root / "writers.txt")
    shutil.copyfile(FIX / "tasklist_svc_en.txt", root / "tasklist.txt")
    shutil.copyfile(FIX / "events_viewer_en.csv", root / "events.csv")
    out = tmp_path / "report"
    r = run_cli("triage", root, "--out", out, "--json", evidence=[root])
    assert r.rc == 1
    data = r.json()
    assert {Path(s["path"].split("!/")[0]).stem for s in data["skipped"]} == set(DAMAGED)
    ids = [d["id"] for d in data["diagnoses"]]
    assert "vss.writers-missing.eventsystem-shared-host" in ids  # the rest was triaged
    unread = [d for d in data["diagnoses"] if d["id"] == "generic.evidence-unreadable"]
    assert {Path(e["path"].split("!/")[0]).stem for d in unread for e in d["evidence"]} == set(
        DAMAGED
    )
    assert (out / "report.html").is_file() and (out / "report.json").is_file()


# ---------------------------------------------------------------- text under the budget
ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8-bom-crlf": lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode("utf-8"),
    "utf-16-le": lambda t: t.replace("\n", "\r\n").encode("utf-16-le"),
    "utf-16-be-bom": lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    "cp932-wmic": lambda t: t.replace("\n", "\r\r\n").encode("cp932"),
}


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab:\n\r 日本語テスト\u3000"), max_size=400),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    chunk=st.integers(1, 64),
)
def test_a_text_decoded_in_chunks_is_the_text_decoded_whole(text: str, encoding: str, chunk: int):
    data = ENCODINGS[encoding](text)
    whole, used = txt.decode_text(data)
    for decoding in txt.decodings(data[: txt.SNIFF_BYTES]):
        try:
            streamed = "".join(txt.TextStream(io.BytesIO(data), decoding, chunk))
        except txt.WrongEncoding:
            continue
        assert (streamed, decoding.encoding) == (whole, used)
        return
    pytest.fail("no decoding accepted the text")


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab C:\\>x", max_size=30), max_size=60),
    size=st.integers(4, 50),
    cuts=st.lists(st.integers(1, 40), max_size=10),
)
def test_pieces_cover_the_text_with_its_line_numbers(lines: list[str], size: int, cuts: list[int]):
    text = "\n".join(lines)
    chunks, at = [], 0
    for n in cuts:
        chunks.append(text[at : at + n])
        at += n
    chunks.append(text[at:])
    rebuilt = ""
    for piece in txt.pieces(chunks, size, re.compile(r"^C:\\>", re.M)):
        assert piece.first_line == rebuilt.count("\n")
        assert len(piece.text) <= size
        rebuilt += piece.text + ("\n" if piece.ends_line else "")
    assert rebuilt == text


def _repeated(name: str, size: int) -> str:
    """A fixture repeated (blank lines between copies) to ``size`` characters or more."""
    src = (FIX / name).read_text(encoding="utf-8")
    reps = size // len(src) + 1
    if name.endswith(".csv"):
        head, body = src.split("\n", 1)
        return head + "\n" + body * reps
    if name == "events_saved.xml":
        i, j = src.index("<Event "), src.rindex("</Events>")
        return src[:i] + src[i:j] * reps + src[j:]
    if name.endswith(".xml"):
        return src * reps
    return (src.rstrip("\n") + "\n\n") * reps


PIECEWISE = [
    "transcript_en.txt",
    "dism_packages_ja.txt",
    "events_text_with_xml_en.txt",
    "events_viewer_en.csv",
    "events_getwinevent.csv",
    "events_saved.xml",
    "events_wevtutil.xml",
    "vssadmin_writers_ja.txt",
    "tasklist_svc_ja.txt",
]


@pytest.mark.parametrize("name", PIECEWISE)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "cp932-wmic"])
def test_a_text_larger_than_a_piece_gives_the_facts_of_the_whole(
    tmp_path: Path, name: str, encoding: str
):
    small = Budget.of(16 * MiB)  # pieces of 256 Ki characters
    text = _repeated(name, 3 * small.piece_chars())
    path = tmp_path / name
    path.write_bytes(ENCODINGS[encoding](text))
    pieces = collect([str(path)], small)
    whole = collect([str(path)], Budget.of(4096 * MiB))  # one piece: the oracle
    assert len(whole.facts) > 100
    assert [(f.kind, f.attributes, f.provenance) for f in pieces.facts] == [
        (f.kind, f.attributes, f.provenance) for f in whole.facts
    ]
    assert pieces.problems == whole.problems and not pieces.skipped


@pytest.mark.slow  # large texts in several subprocesses
def test_text_memory_stays_bounded_whatever_the_size(tmp_path: Path):
    if sys.platform == "win32":
        pytest.skip("resource (peak memory of a process) is POSIX")
    line = "これは日本語のログの行です。サービスが開始されました。エラーはありません。\n"
    big = tmp_path / "big.log"
    with open(big, "w", encoding="utf-8") as f:
        for _ in range(48):
            f.write(line * (MiB // len(line.encode())))  # 48 MiB
    tiny = tmp_path / "tiny.log"
    tiny.write_text(line, encoding="utf-8")
    code = (
        "from hvrescue.evidence import Budget\n"
        "from hvrescue.logs.collect import collect\n"
        "found = collect([{!r}], Budget.of(16 * 1024 * 1024))\n"
        "assert [u.reason for u in found.unrecognised] == ['no-known-content']\n"
    )
    base = _peak_rss_of(code.format(str(tiny)))
    peak = _peak_rss_of(code.format(str(big)))
    # Parsed whole, 48 MiB of Japanese text costs several times its size (the decoded text,
    # its lines); in pieces, a few MiB whatever the size.
    assert peak - base < 24 * MiB, (base, peak)


def test_a_text_over_the_size_cap_is_skipped_fast_and_the_rest_is_triaged(tmp_path: Path):
    root = tmp_path / "evidence"
    root.mkdir()
    big = root / "huge.log"
    with open(big, "wb") as f:  # 2 GiB: a text start, the rest a hole
        f.write(LOG_LINES[: 64 * 1024])
        f.truncate(2 * 1024 * MiB)
    shutil.copyfile(FIX / "vssadmin_writers_empty_en.txt", root / "writers.txt")
    shutil.copyfile(FIX / "tasklist_svc_en.txt", root / "tasklist.txt")
    start = time.monotonic()
    proc = cli("triage", "--json", root, "--out", tmp_path / "report", timeout=120)
    assert time.monotonic() - start < 60
    data = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert skipped(data)["huge.log"] == ("too-large", f"{2 * 1024 * MiB} bytes > {256 * MiB}")
    ids = [d["id"] for d in data["diagnoses"]]
    assert "vss.writers-missing.eventsystem-shared-host" in ids
    unread = [d for d in data["diagnoses"] if d["id"] == "generic.evidence-unreadable"]
    assert [e["path"] for d in unread for e in d["evidence"]] == [str(big)]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_2_gib_text_read_in_full_costs_bounded_memory(tmp_path: Path):
    # About five minutes: every parser passes over 2 GiB of lines.
    if sys.platform == "win32":
        pytest.skip("resource (peak memory of a process) is POSIX")
    big = tmp_path / "huge.log"
    block = b"".join(b"%08d " % i + b"x" * 90 + b"\n" for i in range(10_000))
    with open(big, "wb") as f:
        while f.tell() < 2 * 1024 * MiB:
            f.write(block)
    code = (
        "from hvrescue.evidence import Budget\n"
        "from hvrescue.logs.collect import collect\n"
        f"budget = Budget.of(64 * 1024 * 1024, max_text_bytes=3 * 1024 ** 3)\n"
        f"found = collect([{str(big)!r}], budget)\n"
        "assert [u.reason for u in found.unrecognised] == ['no-known-content'], found\n"
    )
    assert _peak_rss_of(code, timeout=1500) < 256 * MiB


def test_a_text_with_more_facts_than_the_budget_holds_is_read_in_part(tmp_path: Path):
    event = (
        "Log Name: System\nSource: Service Control Manager\nDate: 2024-01-01T00:00:00\n"
        "Event ID: 7009\nLevel: Error\nDescription:\nA timeout was reached.\n\n\n"
    )
    path = tmp_path / "events.txt"
    path.write_text(event * 12_000, encoding="utf-8")
    budget = Budget.of(16 * MiB)
    found = collect([str(path)], budget)
    events = [f for f in found.facts if f.kind == "event"]
    # The cap counts facts as read; signals of one file are then kept once per value.
    assert 9_900 <= len(events) < len(found.facts) + 1 <= budget.max_facts() + 1 == 10_001
    [(reason, detail)] = [(s.reason, s.detail) for s in found.skipped]
    assert reason == "memory-budget" and "line:" in str(detail)
    # With room for them all, all are read.
    found = collect([str(path)], Budget.of(1024 * MiB))
    assert len([f for f in found.facts if f.kind == "event"]) == 12_000


CSV_HEAD = "Level,Date and Time,Source,Event ID,Task Category\n"
CSV_ROW = 'Error,10/1/2018 9:00:19 PM,VSS,{n},None,"message {n}"\n'


@pytest.mark.parametrize("breaks", [False, True])
def test_a_csv_field_over_128_kib_is_a_problem_and_the_other_rows_are_read(
    tmp_path: Path, breaks: bool
):
    filler = ("x" * 1000 + "\n") * 200 if breaks else "x" * 200_000
    text = CSV_HEAD + CSV_ROW.format(n=1) + f'Error,10/1/2018,VSS,2,None,"{filler}"\n'
    text += "".join(CSV_ROW.format(n=n) for n in range(3, 6))
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    proc = cli("facts", "--json", path)
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert [f["attributes"]["event_id"] for f in data["facts"]] == [1, 3, 4, 5]
    assert {p["code"] for p in data["problems"]} == {"csv.row-unreadable"}


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\x82\xff\xfe\x00abc\n" * 100,  # neither UTF-8 nor CP932: CP1252 with replacements
        b"\xff\xfe" + b"a\x00b\x00c",  # UTF-16 with an odd byte at the end
        b"[" * 100_000 + b"]" * 100_000,  # JSON nested deeper than Python recurses
        b"\xef\xbb\xbf" + "日本語\r".encode() * 50_000,  # old Mac line ends
    ],
)
def test_text_that_does_not_decode_or_parse_cleanly_never_crashes(data: bytes):
    found = facts_from_bytes(data, "odd.txt")
    assert not found.skipped


# ---------------------------------------------------------------- the option
def test_max_memory_sizes():
    assert parse_size("256M") == 256 * MiB
    assert parse_size("1G") == parse_size("1GiB") == parse_size("1024m") == 1024 * MiB
    assert parse_size("1048576") == MiB and parse_size("1.5k") == 1536
    for bad in ("", "lots", "-1M", "1Q", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert Budget.of(1).max_memory == 16 * MiB  # below the floor: the floor


@pytest.mark.parametrize("command", ["facts", "triage", "inventory"])
def test_max_memory_option_takes_sizes_and_refuses_the_rest(tmp_path: Path, command: str):
    root = tmp_path / "evidence"
    root.mkdir()
    shutil.copyfile(GOOD, root / "writers.txt")
    extra = ["--out", str(tmp_path / "report")] if command == "triage" else []
    ok = cli(command, "--json", "--max-memory", "1G", root, *extra)
    assert ok.returncode in (0, 1) and "skipped" in json.loads(ok.stdout)
    for lang, word in (("en", "Not a size: lots"), ("ja", "サイズではありません: lots")):
        bad = cli("--lang", lang, command, "--max-memory", "lots", root, *extra)
        assert bad.returncode == 2 and word in bad.stderr + bad.stdout


def test_every_skipped_reason_has_its_words_in_both_languages():
    from hvrescue.evidence import NOT_EVIDENCE, UNREAD
    from hvrescue.report.i18n import catalogue

    for lang in ("en", "ja"):
        words = catalogue(lang)
        assert {f"skipped.reason.{r}" for r in UNREAD + NOT_EVIDENCE} <= set(words)
        # What triage makes of unread evidence: an evidence problem with its own message.
        assert {f"evidence.{r}" for r in UNREAD} <= set(words)


def test_a_walk_stops_at_its_file_limit_and_says_so(tmp_path: Path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(10):
        shutil.copyfile(GOOD, root / f"writers{i}.txt")
    found = collect([str(root)], Budget(max_files=5))
    assert [(s.path, s.reason, s.detail) for s in found.skipped] == [
        (str(root), "too-many-files", "5")
    ]
    assert [(p.code, p.params) for p in found.problems] == [("walk.too-many-files", {"limit": 5})]
    assert len({f.provenance.path for f in found.facts}) == 5
