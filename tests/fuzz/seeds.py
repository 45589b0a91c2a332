"""Seeds for the fuzz families: small, built here where a real file would be large (a disk image,
a SYSTEM hive), so that one run costs milliseconds and a mutation lands in a structure, not in
megabytes of zeros. Real files of the corpus join them where they are small."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import shutil
import struct
import subprocess
import tempfile
import uuid
import zipfile
from pathlib import Path

from tests.fuzz import hivegen as hg
from tests.helpers import CORPUS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MiB = 1 << 20
MAX_SEED = 8 * MiB
# The hive family's input: the hive, then its .LOG1 and .LOG2 when there are any.
LOG_SEPARATOR = b"\n--hvrescue-fuzz-log--\n"


def _corpus_file(path: Path, limit: int = MAX_SEED) -> bytes | None:
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix)
    with (opener or open)(path, "rb") as f:  # type: ignore[operator]
        data: bytes = f.read(limit + 1)
    return data if len(data) <= limit else None


def _corpus(folder: str, *suffixes: str, limit: int = MAX_SEED) -> list[bytes]:
    base = CORPUS.parent / folder
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.rglob("*")):
        name = path.name.lower()
        for packed in (".gz", ".bz2", ".xz"):
            name = name.removesuffix(packed)
        if path.is_file() and name.endswith(suffixes):
            data = _corpus_file(path, limit)
            if data:
                out.append(data)
    return out


# ---------------------------------------------------------------------------- disks
def _some_sectors(size: int, every: int) -> dict[int, bytes]:
    """A few sectors of data spread over a disk of ``size`` bytes."""
    return {
        off: ((off.to_bytes(8, "little") + b"hvrescue fuzz seed ") * 19)[:512]
        for off in range(0, size, every)
    }


def vhdx_seeds() -> list[bytes]:
    """Dynamic, 4 KiB-sector, differencing (parent absent) and dirty-log VHDX built by hvrescue's
    own writer at 4 MiB virtual size, 1 MiB blocks; one from qemu-img (another layout) when it
    is installed."""
    from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

    out = []
    work = Path(tempfile.mkdtemp(prefix="hvrescue-seeds-"))
    try:
        specs = [
            (VhdxSpec(4 * MiB, block_size=MiB), _some_sectors(4 * MiB, 3 * MiB // 2)),
            (
                VhdxSpec(4 * MiB, block_size=MiB, logical_sector_size=4096),
                {0: bytes(range(256)) * 16, 2 * MiB: b"\x01" * 4096},
            ),
            (
                VhdxSpec(
                    4 * MiB,
                    block_size=MiB,
                    parent=ParentSpec(
                        uuid.UUID(int=7),
                        relative_path=".\\parent.vhdx",
                        absolute_win32_path="C:\\VMs\\parent.vhdx",
                    ),
                ),
                {512: b"\x02" * 1024, 3 * MiB: b"\x03" * 512},
            ),
            (VhdxSpec(4 * MiB, block_size=MiB, pending_log=True), {MiB: b"\x04" * 4096}),
        ]
        for i, (spec, data) in enumerate(specs):
            path = work / f"{i}.vhdx"
            write_vhdx(str(path), spec, data)
            out.append(path.read_bytes())
        out += _qemu(work, "vhdx", "subformat=dynamic,block_size=1M")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def vhd_seeds() -> list[bytes]:
    """Dynamic and fixed VHDs from qemu-img at 4 MiB, and the corpus VHDs (dynamic, fixed,
    differencing, Hyper-V's and Virtual PC's) that are small."""
    work = Path(tempfile.mkdtemp(prefix="hvrescue-seeds-"))
    try:
        out = _qemu(work, "vpc", "subformat=dynamic") + _qemu(work, "vpc", "subformat=fixed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out += [_shrink_vhd(d) for d in _corpus("public/qemu-iotests", ".vhd")]
    out += _corpus("public/dfvfs", ".vhd")
    out += _corpus("external", ".vhd", limit=3 * MiB)
    return out


def _shrink_vhd(data: bytes, blocks: int = 64) -> bytes:
    """A dynamic VHD made by Hyper-V or Virtual PC (127 GiB virtual: 65,024 table entries, a
    third of a second a run) cut down to ``blocks`` entries and as many cylinders as hold them,
    checksums made good: the same structures, a 300th of the work."""
    from hvrescue.vdisk.vhd.structures import checksum

    footer = bytearray(data[-512:])
    if footer[:8] != b"conectix" or struct.unpack_from(">I", footer, 60)[0] != 3:
        return data
    offset = struct.unpack_from(">Q", footer, 16)[0]
    header = bytearray(data[offset : offset + 1024])
    entries, block = struct.unpack_from(">II", header, 28)
    cyl, heads, spt = struct.unpack_from(">HBB", footer, 56)
    if header[:8] != b"cxsparse" or entries <= blocks or not heads * spt:
        return data
    cyl = blocks * block // (heads * spt * 512)
    size = cyl * heads * spt * 512
    struct.pack_into(">I", header, 28, -(-size // block))
    struct.pack_into(">I", header, 36, checksum(bytes(header), 36))
    struct.pack_into(">QQH", footer, 40, size, size, cyl)
    struct.pack_into(">I", footer, 64, checksum(bytes(footer), 64))
    out = bytearray(data)
    out[offset : offset + 1024] = header
    out[-512:] = footer
    if out[:8] == b"conectix":
        out[:512] = footer
    return bytes(out)


def _qemu(work: Path, fmt: str, options: str) -> list[bytes]:
    if not shutil.which("qemu-img"):
        return []
    raw = work / "d.raw"
    with open(raw, "wb") as f:
        f.truncate(2 * MiB)
        for offset, data in _some_sectors(2 * MiB, 3 * MiB // 2).items():
            f.seek(offset)
            f.write(data)
    out = work / f"q.{fmt}"
    out.unlink(missing_ok=True)
    cmd = ["qemu-img", "convert", "-f", "raw", "-O", fmt, "-o", options, str(raw), str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return [out.read_bytes()]


# ---------------------------------------------------------------------------- hives
def guest_tree() -> hg.Key:
    """One hive holding what every reader of `guest` looks for, whichever hive it opens
    (SYSTEM's services and control set, SOFTWARE's version and CBS packages, a BCD store's
    objects): the fuzz target opens it once and hands it to them all."""
    sd = hg.security_descriptor()
    services = hg.Key(
        "Services",
        subkeys=[
            hg.Key(
                "Spooler",
                [
                    hg.dword("Type", 0x10),
                    hg.dword("Start", 2),
                    hg.sz("ImagePath", "%SystemRoot%\\System32\\spoolsv.exe", hg.REG_EXPAND_SZ),
                    hg.sz("DisplayName", "Print Spooler"),
                    hg.sz("ObjectName", "LocalSystem"),
                    hg.multi("DependOnService", ["RPCSS", "http"]),
                ],
                [hg.Key("Security", [hg.binary("Security", sd)])],
            ),
            hg.Key(
                "disk",
                [
                    hg.dword("Type", 1),
                    hg.dword("Start", 0),
                    hg.sz("ImagePath", "System32\\drivers\\disk.sys", hg.REG_EXPAND_SZ),
                    hg.sz("Group", "SCSI Class"),
                ],
            ),
            hg.Key(
                "FltMgrTest",
                [hg.dword("Type", 2), hg.dword("Start", 3), hg.sz("ImagePath", "\\??\\C:\\f.sys")],
                [hg.Key("Instances", subkeys=[hg.Key("Inst", [hg.sz("Altitude", "385100")])])],
            ),
            hg.Key("NoType", [hg.sz("DisplayName", "x" * 40)]),
            # a name in UTF-16, and text regipy cannot decode (3 bytes: neither UTF-16 nor UTF-8)
            hg.Key(
                "Dienst-Ü",
                [
                    hg.dword("Type", 0x20),
                    hg.dword("Start", 4),
                    hg.Value("DisplayName", hg.REG_SZ, b"\xff\xfe\xfd"),
                    hg.sz("Beschreibung-Ä", "ja: サービス"),
                ],
            ),
        ],
        list_kind="ri",
    )
    control = hg.Key(
        "Control",
        subkeys=[
            hg.Key(
                "Class",
                subkeys=[
                    hg.Key(
                        "{4d36e967-e325-11ce-bfc1-08002be10318}",
                        [hg.sz("Class", "DiskDrive"), hg.multi("UpperFilters", ["partmgr"])],
                    ),
                    hg.Key(
                        "{71a27cdd-812a-11d0-bec7-08002be2092f}",
                        [hg.sz("Class", "Volume"), hg.sz("LowerFilters", "volsnap")],
                    ),
                ],
                list_kind="lf",
            ),
            hg.Key(
                "SafeBoot",
                subkeys=[hg.Key("Minimal", subkeys=[hg.Key("MSIServer", [hg.sz("", "Service")])])],
            ),
            hg.Key(
                "Session Manager",
                [hg.multi("PendingFileRenameOperations", ["\\??\\C:\\a.tmp", ""])],
            ),
        ],
    )
    cbs = hg.Key(
        "Component Based Servicing",
        subkeys=[
            hg.Key(
                "Packages",
                subkeys=[
                    hg.Key(
                        "Package_for_KB5034768~31bf3856ad364e35~amd64~~17763.5329.1.7",
                        [
                            hg.dword("CurrentState", 0x70),
                            hg.dword("InstallTimeHigh", 0x01DA5F00),
                            hg.dword("InstallTimeLow", 0x12345678),
                        ],
                    ),
                    hg.Key("Package_for_RollupFix", [hg.dword("CurrentState", 0xFFFFFFE0)]),
                ],
                list_kind="li",
            ),
            hg.Key("RebootPending"),
        ],
    )
    objects = hg.Key(
        "Objects",
        subkeys=[
            hg.Key(
                "{9dea862c-5cdd-4e70-acc1-f32b344d4795}",
                subkeys=[
                    hg.Key(
                        "Elements",
                        subkeys=[
                            hg.Key("12000004", [hg.sz("Element", "Windows Boot Manager")]),
                            hg.Key("250000f0", [hg.binary("Element", (1).to_bytes(8, "little"))]),
                            hg.Key("25000080", [hg.binary("Element", bytes(8))]),
                            hg.Key("16000049", [hg.binary("Element", b"\x01")]),
                            hg.Key("250000e0", [hg.qword("Element", 1)]),
                        ],
                    )
                ],
            )
        ],
    )
    return hg.Key(
        "ROOT",
        [hg.binary("Big", bytes(range(256)) * 70)],  # > 16344 bytes: a big-data (db) value
        [
            hg.Key("Select", [hg.dword("Current", 1), hg.dword("Default", 1)]),
            hg.Key("ControlSet001", subkeys=[services, control]),
            hg.Key(
                "Microsoft",
                subkeys=[
                    hg.Key(
                        "Windows NT",
                        subkeys=[
                            hg.Key(
                                "CurrentVersion",
                                [
                                    hg.sz("ProductName", "Windows Server 2019 Datacenter"),
                                    hg.sz("CurrentBuild", "17763"),
                                    hg.dword("UBR", 5329),
                                    hg.sz("EditionID", "ServerDatacenter"),
                                ],
                            )
                        ],
                    ),
                    hg.Key("Windows", subkeys=[hg.Key("CurrentVersion", subkeys=[cbs])]),
                ],
            ),
            objects,
        ],
    )


def hive_seeds() -> list[bytes]:
    """The built hive clean; dirty with a new-format log that rewrites its first bin (and the
    same log again as .LOG2); the small BCD stores of the corpus."""
    clean = hg.build_hive(guest_tree())
    dirty = bytearray(hg.build_hive(guest_tree(), sequence=(9, 8)))
    page = bytearray(dirty[hg.BASE : hg.BASE + hg.BIN])
    page[-16:] = b"replayed by log!"
    log = hg.hvle_log(bytes(dirty), [(0, bytes(page))], 8)
    out = [clean, bytes(dirty) + LOG_SEPARATOR + log + LOG_SEPARATOR + log]
    for folder in ("windeploy-linux", "regipy"):
        base = CORPUS / "registry" / folder
        for path in sorted(base.glob("BCD*")) if base.is_dir() else []:
            data = _corpus_file(path, 64 * 1024)
            if data:
                out.append(data)
    return out


# ---------------------------------------------------------------------------- the rest
def fixtures(*suffixes: str) -> list[bytes]:
    return [
        p.read_bytes()
        for p in sorted(FIXTURES.rglob("*"))
        if p.is_file() and p.suffix.lower() in suffixes and p.stat().st_size < MiB
    ]


def text_seeds() -> list[bytes]:
    """The command outputs and pasted events of the fixtures as saved (UTF-8), some as Windows
    writes a redirected output (UTF-16 with its mark) and the Japanese ones in Shift_JIS (cp932);
    the JSON of Get-VM/Get-VHD."""
    plain = fixtures(".txt", ".json")
    out = list(plain)
    for path in sorted((FIXTURES / "commands").glob("*.txt")):
        text = path.read_text("utf-8")
        if path.stem.endswith("_ja"):
            out.append(text.encode("cp932", errors="replace"))
        elif path.stem in ("vssadmin_writers_en", "sc_qc_en", "systeminfo_en", "tasklist_svc_en"):
            out.append(text.encode("utf-16"))
    return out


def evtx_seeds() -> list[bytes]:
    found = sorted((CORPUS / "evtx").rglob("*.evtx")) if CORPUS.is_dir() else []
    return [p.read_bytes() for p in found if p.stat().st_size <= 256 * 1024][:6]


def zip_seeds() -> list[bytes]:
    members = fixtures(".txt", ".csv", ".xml")[:6]
    flat = io.BytesIO()
    with zipfile.ZipFile(flat, "w", zipfile.ZIP_DEFLATED) as z:
        for i, m in enumerate(members):
            z.writestr(f"Host/evidence-{i}.txt", m)
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_STORED) as z:
        z.writestr("inner/bundle.zip", flat.getvalue())
        z.writestr("notes.txt", b"collected 2026-11-30")
    return [flat.getvalue(), nested.getvalue()]


def vmcx_seeds() -> list[bytes]:
    seeds = []
    for name in ("test.vmcx", "test.VMRS"):
        path = CORPUS / "dissect-hypervisor" / name
        if path.is_file():
            seeds.append(path.read_bytes())
    return seeds


def vmconfig_xml_seeds() -> list[bytes]:
    """Hyper-V 2012 R2 XML configurations (UTF-16 and UTF-8): IDE and SCSI disks, a DVD, state
    files, snapshots, a merge pending."""
    ide = "83f8638b-8dca-4152-9eda-2ca8b33039b4"
    scsi = "d422512d-2bf2-4752-809d-7b82b5fcb1b4"
    text = (
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>\n'
        "<configuration>"
        f"<_{ide}_><controller0>"
        '<drive0><pathname type="string">D:\\VMs\\web01\\base.vhdx</pathname>'
        '<type type="string">VHD</type></drive0>'
        '<drive1><pathname type="string">D:\\iso\\setup.iso</pathname>'
        '<type type="string">ISO</type></drive1>'
        f"</controller0></_{ide}_>"
        f"<_{scsi}_><controller0>"
        '<drive3><pathname type="string">D:\\VMs\\web01\\data_1A2B.avhdx</pathname>'
        '<type type="string">VHD</type></drive3>'
        f"</controller0></_{scsi}_>"
        "<global_settings>"
        '<disk_merge_pending type="bool">True</disk_merge_pending>'
        '<snapshots><list><size type="integer">2</size></list></snapshots>'
        "</global_settings>"
        '<properties><name type="string">web01</name>'
        '<global_id type="string">4A5C1A0E-1D2B-4C3D-8E9F-0A1B2C3D4E5F</global_id>'
        '<type_id type="string">Virtual Machines</type_id>'
        '<creation_time type="bytes">AAAAAAAAAAA=</creation_time>'
        '<version type="integer">1280</version></properties>'
        '<savedstate><memlocation type="string">D:\\VMs\\web01\\x.bin</memlocation></savedstate>'
        "</configuration>"
    )
    return [text.encode("utf-16"), text.replace("UTF-16", "UTF-8").encode()]


def manifest_seeds() -> list[bytes]:
    """Manifests of a DEST holding ``a.bin`` (what the target writes beside them): complete,
    with zero-filled ranges, with an entry for a missing copy, with unreachable files."""
    import hashlib

    body = MANIFEST_COPY
    good = {"path": "a.bin", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    gappy = {**good, "unreadable": [[0, 512], [2048, 512]]}
    missing = {"path": "Virtual Hard Disks/gone.vhdx", "size": 4096, "sha256": "0" * 64}
    head = {"format": "hvrescue-manifest", "version": 1}
    return [
        json.dumps({**head, "complete": True, "files": [good]}).encode(),
        json.dumps({**head, "complete": False, "files": [gappy, missing]}).encode(),
        json.dumps(
            {**head, "complete": False, "files": [good], "unreachable": [{"path": "x"}]}
        ).encode(),
        b'{"files": []}',
    ]


MANIFEST_COPY = bytes(range(256)) * 16
