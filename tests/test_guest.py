"""`guest`: facts from inside a Windows guest built without Windows (public hives and BCD stores
in their real paths, a crafted kernel dump header, pending.xml, a public EVTX, ASP.NET folders)
in a GPT disk converted to VHDX and chained; and triage of that disk."""

from __future__ import annotations

import json
import lzma
import shutil
import struct
from pathlib import Path

import pytest

from hvrescue.errors import InputError
from hvrescue.fs.volume import Entry
from hvrescue.guest.artefacts import ARTEFACTS, by_name, run_artefact
from hvrescue.guest.artefacts.crash_dumps import crash_dump_header
from hvrescue.guest.artefacts.registry_hives import SOFTWARE, SYSTEM
from hvrescue.guest.context import GuestContext
from hvrescue.guest.result import GuestResult
from tests.builders import make_guest_raw, ntfs_tools, raw_to_vhdx_chain, update_ntfs
from tests.helpers import CORPUS, run_cli
from tests.test_fs import _fuse_works

REG = CORPUS / "registry"
ASPNET = "Windows/Microsoft.NET/Framework64/v4.0.30319/Temporary ASP.NET Files"
PACKAGE = "Package_for_KB5034768~31bf3856ad364e35~amd64~~17763.5329.1.7"
DRIVER_TIME = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
WER = (
    "Version=1\r\nEventType=BlueScreen\r\nEventTime=133520000000000000\r\n"
    "FriendlyEventName=Shut down unexpectedly\r\nSig[0].Name=BCCode\r\nSig[0].Value=c000021a\r\n"
    "Sig[1].Name=BCP1\r\nSig[1].Value=FFFFC0063C1D1A40\r\n"
).encode("utf-16")


class _FakeDisk:
    def __init__(self) -> None:
        self.touched: list = []


class FakeVolume:
    """A volume in memory: ``files`` maps paths to contents; folders are implied by the paths."""

    def __init__(self, files: dict[str, bytes], gaps: dict[str, list] | None = None) -> None:
        self.files = files
        self.gaps = gaps or {}
        self.disk = _FakeDisk()

    def _dirs(self) -> set[str]:
        out = {"/"}
        for path in self.files:
            parts = path.split("/")[1:-1]
            out.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def _entry(self, path: str, is_dir: bool) -> Entry:
        size = 0 if is_dir else len(self.files[path])
        name = path.rsplit("/", 1)[-1]
        return Entry(
            path=path,
            name=name,
            is_dir=is_dir,
            size=size,
            inode=0,
            created=None,
            modified=None,
            accessed=None,
            changed=None,
            mtime_ns=None,
            atime_ns=None,
            streams=[],
        )

    def stat(self, path: str) -> Entry:
        if path in self.files:
            return self._entry(path, False)
        if path in self._dirs():
            return self._entry(path, True)
        raise InputError("error.fs.no-such-path", path=path)

    def listdir(self, path: str) -> list[Entry]:
        prefix = path.rstrip("/") + "/"
        children = {
            prefix + p[len(prefix) :].split("/")[0]
            for p in [*self.files, *self._dirs()]
            if p.startswith(prefix) and len(p) > len(prefix)
        }
        return [self.stat(c) for c in sorted(children)]

    def read(self, entry: Entry):
        yield self.files[entry.path]

    def file_gaps(self, entry: Entry, since: int = 0) -> list:
        return self.gaps.get(entry.path, [])


def kernel_dump(code: int, params: tuple[int, int, int, int]) -> bytes:
    head = bytearray(8192)
    head[0:8] = b"PAGEDU64"
    struct.pack_into("<I", head, 0x38, code)
    struct.pack_into("<4Q", head, 0x40, *params)
    struct.pack_into("<I", head, 0xF98, 1)  # full dump
    struct.pack_into("<Q", head, 0xFA8, 133_520_000_000_000_000)  # 2024-02-14
    return bytes(head)


@pytest.fixture(scope="module")
def guest_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ntfs_tools() or not shutil.which("qemu-img"):
        pytest.skip("needs Debian's ntfs-3g, dosfstools, mtools, fdisk and qemu-utils")
    folder = tmp_path_factory.mktemp("winguest")
    if not _fuse_works(folder):
        pytest.skip("ntfs-3g cannot mount here (no FUSE)")
    system = lzma.decompress((REG / "regipy/SYSTEM.xz").read_bytes())
    files = {
        "Windows/System32/config/SYSTEM": system,
        "Windows/WinSxS/pending.xml": b'<?xml version="1.0"?><PendingTransaction Version="3.1"/>',
        "Windows/MEMORY.DMP": kernel_dump(0xC000021A, (0xFFFFC0063C1D1A40, 0xC0000005, 1, 2)),
        "Windows/System32/winevt/Logs/System.evtx": (
            CORPUS / "evtx/omerbenamram-evtx/2-vss_7-System.evtx"
        ).read_bytes(),
        **{f"{ASPNET}/{i:04x}/": b"" for i in range(1001)},
        "Windows/System32/drivers/Ntfs.sys": b"MZ driver",
        f"Windows/servicing/Packages/{PACKAGE}.mum": b"<assembly/>",
        "ProgramData/Microsoft/Windows/WER/ReportArchive/Kernel_21a_1/Report.wer": WER,
    }
    esp = {"EFI/Microsoft/Boot/BCD": (REG / "windeploy-linux/BCD-efi").read_bytes()}
    times = {"Windows/System32/drivers/Ntfs.sys": DRIVER_TIME}
    raw1 = make_guest_raw(folder, "gpt", files, times, esp_files=esp, size=160 * 1024 * 1024)
    raw2 = folder / "v2.raw"
    update_ntfs(raw1, raw2, {"Windows/Temp/after.txt": b"after the checkpoint"}, folder / "m2")
    _base, child = raw_to_vhdx_chain(raw1, raw2, folder)
    raw1.unlink()
    raw2.unlink()
    return child


def test_guest_reports_every_planted_fact(guest_disk: Path):
    r = run_cli("guest", guest_disk, "--json", evidence=[guest_disk.parent])
    assert r.rc == 0, r.stdout + r.stderr
    data = r.json()
    roles = {v["index"]: v["roles"] for v in data["volumes"]}
    assert roles == {1: ["boot"], 2: ["windows"]}
    by_kind: dict[str, list] = {}
    for f in data["facts"]:
        by_kind.setdefault(f["kind"], []).append(f)
    services = {f["attributes"]["service_name"] for f in by_kind["service_config"]}
    drivers = {f["attributes"]["name"] for f in by_kind["driver"]}
    assert {"EventSystem", "CryptSvc"} <= services  # read from the public SYSTEM hive
    assert "Ntfs" in drivers or "ntfs" in {d.lower() for d in drivers}
    [dump] = by_kind["crash_dump"]
    assert dump["attributes"]["bugcheck_code"] == 0xC000021A
    assert dump["attributes"]["parameters"][1] == "0xc0000005"
    assert dump["provenance"]["path"].endswith("!p2:/Windows/MEMORY.DMP")
    counts = {f["attributes"]["path"]: f["attributes"]["count"] for f in by_kind["folder_count"]}
    assert counts["\\" + ASPNET.replace("/", "\\")] == 1001
    states = [f["attributes"] for f in by_kind["servicing_state"]]
    assert any(s.get("pending_xml") for s in states)
    bcd = [f["attributes"] for f in by_kind["bcd_entry"]]
    assert any(b["description"] == "Windows Boot Manager" for b in bcd)
    assert all(f["provenance"]["path"].startswith(str(guest_disk)) for f in data["facts"])
    events = [f for f in by_kind["event"] if "winevt/Logs/System.evtx" in f["provenance"]["path"]]
    assert len(events) > 10
    ntfs = next(f["attributes"] for f in by_kind["driver"] if f["attributes"]["name"] == "Ntfs")
    assert ntfs["file"].lower() == "/windows/system32/drivers/ntfs.sys"
    assert ntfs["file_modified"] == "2023-11-14T22:13:20Z"
    security = {
        f["attributes"]["service_name"]: f["attributes"] for f in by_kind["service_security"]
    }
    assert security["BITS"]["sddl"].startswith("D:(A;CI;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)")
    [winvol] = by_kind["windows_volume"]
    assert winvol["attributes"] == {"partition": 2, "scheme": "gpt", "winre_drive_guess": "C"}
    [wer] = by_kind["wer_report"]
    assert wer["attributes"]["event_type"] == "BlueScreen"
    assert wer["attributes"]["signature"]["BCCode"] == "c000021a"
    assert wer["attributes"]["event_time"].startswith("2024-02-")
    filters = {f["attributes"]["name"]: f["attributes"]["altitude"] for f in by_kind["minifilter"]}
    assert filters["FileInfo"] == "45000"  # from the public SYSTEM hive
    classes = {
        f["attributes"]["class"]: f["attributes"]["filters"] for f in by_kind["class_filter"]
    }
    assert classes["DiskDrive"] == ["PartMgr"]
    [manifest] = by_kind["package_manifest"]
    assert manifest["attributes"]["kb"] == "KB5034768"
    assert manifest["attributes"]["identity"] == PACKAGE
    assert by_kind["safeboot_msiserver"][0]["attributes"] == {
        "minimal_msiserver": False,
        "network_msiserver": False,
    }
    # One entry per reader and volume: the boot volume gets the BCD reader only.
    runs = {(a["partition"], a["name"]): a for a in data["artefacts"]}
    assert {name for part, name in runs if part == 1} == {"bcd"}
    assert {name for part, name in runs if part == 2} == {a.name for a in WINDOWS_READERS}
    assert all(a["status"] == "ok" and a["error"] is None for a in runs.values())
    assert all(isinstance(a["seconds"], float) and a["seconds"] >= 0 for a in runs.values())
    assert runs[(2, "crash-dumps")]["facts"] == 1
    assert runs[(1, "bcd")]["facts"] == sum(
        1 for f in by_kind["bcd_entry"] if "!p1:" in f["provenance"]["path"]
    )
    assert sum(a["facts"] for a in runs.values()) == len(data["facts"]) - 1  # windows_volume


def test_an_mbr_guest(tmp_path: Path):
    if not ntfs_tools() or not shutil.which("qemu-img") or not _fuse_works(tmp_path):
        pytest.skip("needs Debian's ntfs-3g, fdisk, qemu-utils and FUSE")
    system = lzma.decompress((REG / "regipy/SYSTEM_WIN_10_1709.xz").read_bytes())
    files = {
        "Windows/System32/config/SYSTEM": system,
        "Boot/BCD": (REG / "windeploy-linux/BCD").read_bytes(),
    }
    raw1 = make_guest_raw(tmp_path / "g", "mbr", files)
    raw2 = tmp_path / "g" / "v2.raw"
    update_ntfs(raw1, raw2, {"Windows/Temp/x.txt": b"x"}, tmp_path / "m2")
    _base, child = raw_to_vhdx_chain(raw1, raw2, tmp_path / "g")
    data = run_cli("guest", child, "--json").json()
    assert [(v["index"], v["scheme"], v["roles"]) for v in data["volumes"]] == [
        (1, "mbr", ["windows"])
    ]
    kinds = {f["kind"] for f in data["facts"]}
    assert {"service_config", "driver", "bcd_entry", "safeboot_msiserver"} <= kinds
    bcd = [f for f in data["facts"] if f["kind"] == "bcd_entry"]
    assert all(f["provenance"]["path"].endswith("!p1:/Boot/BCD") for f in bcd)


def test_triage_of_the_guest_disk(guest_disk: Path, tmp_path: Path):
    copy = tmp_path / "disks"
    shutil.copytree(guest_disk.parent, copy, ignore=shutil.ignore_patterns("mnt*", "*.img"))
    r = run_cli("triage", copy, "--out", tmp_path / "report", "--json", evidence=[copy])
    ids = [d["id"] for d in r.json()["diagnoses"]]
    assert "vss.system-writer-missing.dotnet-folders" in ids
    dotnet = next(
        d for d in r.json()["diagnoses"] if d["id"] == "vss.system-writer-missing.dotnet-folders"
    )
    assert "1001" in dotnet["title"]
    # The kernel dump (0xc000021a) and pending.xml give source 000's diagnosis, with WinRE steps.
    assert ids[0] == "guest.stop-0xc000021a.pending-update"
    top = r.json()["diagnoses"][0]
    # GPT: the ESP gets no letter in WinRE, so the Windows volume is C: there.
    assert "DISM /Image:C:\\ /Cleanup-Image /RevertPendingActions" in [
        s["command"] for s in top["steps"]
    ]
    cited = {e["kind"] for e in top["evidence"]}
    assert {"crash_dump", "servicing_state"} <= cited


def test_dirty_hive_is_replayed_from_its_logs(tmp_path: Path):
    """SYSTEM_B is dirty (sequence numbers differ); with its .LOG1/.LOG2 the replay happens."""
    files = {
        "/SYSTEM": lzma.decompress((REG / "regipy/SYSTEM_B.xz").read_bytes()),
        "/SYSTEM.LOG1": lzma.decompress((REG / "regipy/SYSTEM_B.LOG1.xz").read_bytes()),
        "/SYSTEM.LOG2": lzma.decompress((REG / "regipy/SYSTEM_B.LOG2.xz").read_bytes()),
    }
    ctx = GuestContext(FakeVolume(files), "mem", GuestResult("mem"), str(tmp_path))  # type: ignore[arg-type]
    hive = ctx.hive("/SYSTEM")
    assert hive is not None
    assert hive.regipy.header.primary_sequence_num == hive.regipy.header.secondary_sequence_num
    [replay] = [f for f in ctx.result.facts if f.kind == "hive_replay"]
    assert replay.attributes["recovered_pages"] > 0
    assert ctx.hive("/SYSTEM") is hive  # opened once per volume, shared by the readers


def test_a_damaged_hive_is_a_problem_not_a_crash(tmp_path: Path):
    data = lzma.decompress((REG / "regipy/corrupted_system_hive.xz").read_bytes())
    volume = FakeVolume({SYSTEM: data})
    result = GuestResult("mem")
    ctx = GuestContext(volume, "mem", result, str(tmp_path))  # type: ignore[arg-type]
    for name in ("registry-hives", "services-drivers", "servicing"):
        run = run_artefact(by_name(name), ctx)
        assert run.status == "ok", run  # damage is a problem of the hive, not of the reader
    hive = ctx.hive(SYSTEM)
    assert (hive is None and result.problems) or hive is not None
    json.dumps(result.as_dict())


def test_crash_dump_headers():
    info = crash_dump_header(kernel_dump(0x1E, (1, 2, 3, 4)))
    assert info is not None and info["bugcheck_code"] == 0x1E and info["dump_type"] == 1
    assert info["system_time"].startswith("2024-02-")
    assert crash_dump_header(b"MDMP" + bytes(100)) is None
    head = bytearray(64)
    head[0:8] = b"PAGEDUMP"
    struct.pack_into("<I", head, 0x20, 0xC000021A)
    assert crash_dump_header(bytes(head))["bugcheck_hex"] == "0xc000021a"


def _sid_bytes(text: str) -> bytes:
    parts = [int(p) for p in text.split("-")[1:]]
    revision, authority, subs = parts[0], parts[1], parts[2:]
    return (
        bytes([revision, len(subs)])
        + authority.to_bytes(6, "big")
        + b"".join(struct.pack("<I", s) for s in subs)
    )


def _acl_bytes(aces: list[tuple[int, int, int, str]]) -> bytes:
    body = b""
    for ace_type, flags, mask, sid in aces:
        sid_b = _sid_bytes(sid)
        body += struct.pack("<BBHI", ace_type, flags, 8 + len(sid_b), mask) + sid_b
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


def test_security_descriptor_as_sddl():
    """The default CryptSvc descriptor of source 004, built byte by byte, reads back as the SDDL
    `sc sdshow` prints for it."""
    from hvrescue.guest.sddl import to_sddl

    dacl = _acl_bytes(
        [
            (0, 0, 0x201FD, "S-1-5-18"),  # CCLCSWRPWPDTLOCRRC
            (0, 0, 0xF01FF, "S-1-5-32-544"),  # CCDCLCSWRPWPDTLOCRSDRCWDWO
            (0, 0, 0x2018D, "S-1-5-4"),  # CCLCSWLOCRRC
            (0, 0, 0x2018D, "S-1-5-6"),
        ]
    )
    sacl = _acl_bytes([(2, 0x80, 0xF01FF, "S-1-1-0")])
    owner = _sid_bytes("S-1-5-18")
    head = 20
    sacl_off = head
    dacl_off = sacl_off + len(sacl)
    owner_off = dacl_off + len(dacl)
    sd = struct.pack("<BBHIIII", 1, 0, 0x8014, owner_off, owner_off, sacl_off, dacl_off)
    described = to_sddl(sd + sacl + dacl + owner)
    assert described == {
        "sddl": "D:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)"
        "(A;;CCLCSWLOCRRC;;;IU)(A;;CCLCSWLOCRRC;;;SU)S:(AU;FA;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)",
        "owner": "SY",
        "group": "SY",
    }
    assert to_sddl(b"\x00\x00\x0e\x00\x01") is None  # the public hive's 5-byte CryptSvc value
    assert to_sddl(sd[:24]) is None


class _FakeValue:
    def __init__(self, name: str, value: object) -> None:
        self.name, self.value = name, value


class _FakeKey:
    def __init__(self, name: str, values: dict | None = None, subkeys: list | None = None):
        self.name = name
        self.values = values or {}
        self.subkeys = {k.name.lower(): k for k in subkeys or []}

    def iter_values(self, trim_values: bool = True):
        return iter([_FakeValue(k, v) for k, v in self.values.items()])

    def iter_subkeys(self):
        return iter(self.subkeys.values())

    def get_subkey(self, name: str):
        from regipy.exceptions import RegistryKeyNotFoundException

        try:
            return self.subkeys[name.lower()]
        except KeyError:
            raise RegistryKeyNotFoundException(name) from None


class _FakeHive:
    def __init__(self, root: _FakeKey) -> None:
        self.root = root

    def get_key(self, path: str):
        key = self.root
        for part in [p for p in path.split("\\") if p]:
            key = key.get_subkey(part)
        return key


def test_servicing_from_a_software_hive(tmp_path: Path):
    """No SOFTWARE hive is public: the CBS reading is checked on a hive-shaped stand-in with the
    values Windows stores (CurrentState, InstallTimeHigh/Low, RebootPending)."""
    from hvrescue.guest.artefacts.registry_hives import read_hives
    from hvrescue.guest.artefacts.servicing import cbs_packages
    from hvrescue.guest.hive import Hive

    ticks = 133_520_000_000_000_000  # 2024-02-14
    packages = _FakeKey(
        "Packages",
        subkeys=[
            _FakeKey(
                PACKAGE,
                {
                    "CurrentState": 0x60,
                    "InstallTimeHigh": ticks >> 32,
                    "InstallTimeLow": ticks & 0xFFFFFFFF,
                },
            ),
            _FakeKey(
                "Package_for_KB5030214~31bf3856ad364e35~amd64~~17763.4851.1.7",
                {"CurrentState": 0x70},
            ),
            _FakeKey(
                "Package_for_RollupFix~31bf3856ad364e35~amd64~~17763.4377.1.4",
                {"CurrentState": 0xFFFFFFE0},
            ),
        ],
    )
    cbs = _FakeKey("Component Based Servicing", subkeys=[packages, _FakeKey("RebootPending")])
    nt = _FakeKey(
        "CurrentVersion",
        {"ProductName": "Windows Server 2019 Standard", "CurrentBuild": "17763", "UBR": 5329},
    )
    root = _FakeKey(
        "",
        subkeys=[
            _FakeKey(
                "Microsoft",
                subkeys=[
                    _FakeKey("Windows", subkeys=[_FakeKey("CurrentVersion", subkeys=[cbs])]),
                    _FakeKey("Windows NT", subkeys=[nt]),
                ],
            )
        ],
    )
    result = GuestResult("mem")
    ctx = GuestContext(None, "mem", result)  # type: ignore[arg-type]
    ctx.set_hive(SOFTWARE, Hive(ctx, SOFTWARE, _FakeHive(root)))
    ctx.set_hive(SYSTEM, None)
    cbs_packages(ctx)
    read_hives(ctx)
    packages_out = {
        f.attributes["kb"] or f.attributes["identity"]: f.attributes
        for f in result.facts
        if f.kind == "package"
    }
    pending = packages_out["KB5034768"]
    assert pending["state_code"] == "install_pending" and pending["identity"] == PACKAGE
    assert pending["install_time_local"].startswith("2024-02-1")
    assert packages_out["KB5030214"]["state_code"] == "installed"
    rollup = next(v for k, v in packages_out.items() if "RollupFix" in k)
    assert rollup["state_code"] == "resolved"
    [state] = [f.attributes for f in result.facts if f.kind == "servicing_state"]
    assert state["reboot_pending"] is True and state["packages_pending"] is False
    [info] = [f.attributes for f in result.facts if f.kind == "system_info"]
    assert (info["current_build"], info["ubr"]) == ("17763", 5329)


def test_inline_value_shortcut_reads_the_same_values(tmp_path: Path):
    """Every value of every key of a public SYSTEM hive, read with regipy as shipped and with the
    shortcut for inline values, is the same."""
    from regipy import registry

    from hvrescue.guest.hive import skip_reading_inline_values

    hive_path = tmp_path / "SYSTEM"
    hive_path.write_bytes(lzma.decompress((REG / "regipy/SYSTEM_WIN_10_1709.xz").read_bytes()))

    def dump() -> list:
        hive = registry.RegistryHive(str(hive_path))
        out = []
        for key in hive.get_key("\\ControlSet001\\Services").iter_subkeys():
            for sub in [key, *key.iter_subkeys()]:
                out += [(sub.name, v.name, v.value) for v in sub.iter_values(trim_values=False)]
        return out

    skip_reading_inline_values()
    fast = registry.NKRecord.read_value
    try:
        registry.NKRecord.read_value = staticmethod(fast.original)
        slow_values = dump()
    finally:
        registry.NKRecord.read_value = staticmethod(fast)
    assert len(slow_values) > 1000
    assert dump() == slow_values


# ---------------------------------------------------------------------------- artefact registry
ARTEFACT_MODULES = {
    "registry-hives": "registry_hives",
    "services-drivers": "services",
    "servicing": "servicing",
    "servicing-logs": "servicing_logs",
    "bcd": "bcd",
    "crash-dumps": "crash_dumps",
    "event-logs": "event_logs",
    "dotnet-folders": "dotnet",
    "wer": "wer",
    "linux-os": "linux_os",
    "linux-boot": "linux_os",
    "linux-fstab": "linux_fstab",
    "linux-filesystem": "linux_fs",
    "linux-logs": "linux_logs",
}
GUEST_SRC = Path(__file__).resolve().parents[1] / "src/hvrescue/guest"
WINDOWS_READERS = tuple(a for a in ARTEFACTS if "windows" in a.roles)


def test_every_artefact_reader_is_found_by_its_name_in_its_own_module():
    from hvrescue.guest.artefacts import readers_for

    assert sorted(a.name for a in ARTEFACTS) == sorted(ARTEFACT_MODULES)
    for name, module in ARTEFACT_MODULES.items():
        reader = by_name(name)
        assert reader.name == name and reader.reads
        assert reader.run.__module__ == f"hvrescue.guest.artefacts.{module}"
        assert (GUEST_SRC / "artefacts" / f"{module}.py").is_file()
    with pytest.raises(KeyError):
        by_name("no-such-artefact")
    assert readers_for(["boot"]) == [by_name("bcd")]
    assert readers_for(["windows"]) == list(WINDOWS_READERS)
    assert readers_for(["linux"]) == [
        by_name("linux-os"),
        by_name("linux-fstab"),
        by_name("linux-logs"),
    ]
    for source in GUEST_SRC.rglob("*.py"):
        assert len(source.read_text().splitlines()) <= 400, source


def _windows_volume() -> FakeVolume:
    return FakeVolume(
        {
            SYSTEM: lzma.decompress((REG / "regipy/SYSTEM.xz").read_bytes()),
            "/Windows/MEMORY.DMP": kernel_dump(0x1E, (1, 2, 3, 4)),
            "/ProgramData/Microsoft/Windows/WER/ReportArchive/Kernel_1/Report.wer": WER,
            "/Windows/WinSxS/pending.xml": b"<PendingTransaction/>",
        }
    )


def test_a_failing_reader_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dataclasses

    import hvrescue.guest.artefacts as registry

    def boom(ctx: GuestContext) -> None:
        raise RuntimeError("boom in the reader")

    broken = tuple(
        dataclasses.replace(a, run=boom) if a.name == "services-drivers" else a
        for a in registry.ARTEFACTS
    )
    monkeypatch.setattr(registry, "ARTEFACTS", broken)
    result = GuestResult("mem")
    ctx = GuestContext(_windows_volume(), "mem!p2", result, str(tmp_path), 2)  # type: ignore[arg-type]
    assert registry.read_volume(ctx) == ["windows"]
    data = json.loads(json.dumps(result.as_dict()))
    runs = {a["name"]: a for a in data["artefacts"]}
    assert list(runs) == [a.name for a in WINDOWS_READERS]
    failed = runs.pop("services-drivers")
    assert failed["status"] == "failed" and failed["facts"] == 0
    assert "RuntimeError: boom in the reader" in failed["error"]["detail"]
    assert all(a["status"] == "ok" for a in runs.values()), runs
    kinds = {f["kind"] for f in data["facts"]}
    assert {"crash_dump", "wer_report", "servicing_state"} <= kinds
    assert not kinds & {"service_config", "driver", "minifilter"}
    [problem] = [p for p in data["problems"] if p["code"] == "guest.artefact-failed"]
    assert problem["params"]["artefact"] == "services-drivers"
    assert problem["path"] == "mem!p2:/"


def test_each_reader_is_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dataclasses
    import time

    import hvrescue.guest.artefacts as registry

    def slow(ctx: GuestContext) -> None:
        time.sleep(0.2)

    slowed = tuple(
        dataclasses.replace(a, run=slow) if a.name == "wer" else a for a in registry.ARTEFACTS
    )
    monkeypatch.setattr(registry, "ARTEFACTS", slowed)
    result = GuestResult("mem")
    ctx = GuestContext(_windows_volume(), "mem", result, str(tmp_path))  # type: ignore[arg-type]
    start = time.perf_counter()
    registry.read_volume(ctx)
    wall = time.perf_counter() - start
    seconds = {a.name: a.seconds for a in result.artefacts}
    assert seconds["wer"] >= 0.2
    assert 0 <= sum(seconds.values()) <= wall
    assert result.timings == pytest.approx(seconds)


def test_a_reader_whose_package_is_missing_is_skipped_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import hvrescue.guest.artefacts.base as base

    real = base.available
    monkeypatch.setattr(base, "available", lambda m: m != "evtx" and real(m))
    result = GuestResult("mem")
    ctx = GuestContext(_windows_volume(), "mem", result, str(tmp_path))  # type: ignore[arg-type]
    from hvrescue.guest.artefacts import read_volume

    read_volume(ctx)
    runs = {a.name: a for a in result.artefacts}
    assert runs["event-logs"].status == "missing-dependency"
    assert runs["event-logs"].error == {
        "key": "error.dependency.missing",
        "params": {"package": "evtx", "feature": "event-logs"},
    }
    assert all(r.status == "ok" for n, r in runs.items() if n != "event-logs")
    [problem] = [p for p in result.problems if p.code == "guest.artefact-needs-package"]
    assert problem.params == {"detail": "evtx", "artefact": "event-logs"}


def test_a_linux_reader_can_sit_beside_the_windows_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import hvrescue.guest.artefacts as registry
    from hvrescue.guest.artefacts.base import Artefact

    def os_release(ctx: GuestContext) -> None:
        data = ctx.read("/etc/os-release", 1 << 16) or b""
        ctx.fact("os_release", {"text": data.decode()}, "/etc/os-release")

    linux = Artefact("os-release", ("/etc/os-release",), os_release, frozenset({"linux"}))
    windows = tuple(a for a in registry.ARTEFACTS if "windows" in a.roles)
    monkeypatch.setattr(registry, "ARTEFACTS", (*windows, linux))
    monkeypatch.setattr(
        registry,
        "DETECTORS",
        (*registry.DETECTORS, ("linux", lambda ctx: ctx.exists("/etc/os-release"))),
    )
    result = GuestResult("mem")
    volume = FakeVolume({"/etc/os-release": b"ID=debian\n"})
    ctx = GuestContext(volume, "mem", result, str(tmp_path))  # type: ignore[arg-type]
    assert registry.read_volume(ctx) == ["linux"]
    assert [a.name for a in result.artefacts] == ["os-release"]
    assert [f.attributes for f in result.facts] == [{"text": "ID=debian\n"}]


def test_an_artefact_over_undefined_ranges_is_not_read(tmp_path: Path):
    """A file whose data lies in ranges of the disk with no defined content is skipped with a
    problem, never read as zeros; the same file without gaps is read."""
    from types import SimpleNamespace

    report = "/ProgramData/Microsoft/Windows/WER/ReportArchive/Kernel_1/Report.wer"
    for gaps, expected in (({}, 1), ({report: [SimpleNamespace(cause="missing-parent")]}, 0)):
        result = GuestResult("mem")
        volume = FakeVolume({report: WER}, gaps)
        ctx = GuestContext(volume, "mem", result, str(tmp_path))  # type: ignore[arg-type]
        assert run_artefact(by_name("wer"), ctx).status == "ok"
        assert len([f for f in result.facts if f.kind == "wer_report"]) == expected
        codes = [(p.code, p.params["detail"]) for p in result.problems]
        assert codes == ([] if expected else [("guest.undefined-content", "missing-parent")])


# ---------------------------------------------------------------------------- JSON-safe values
def test_json_safe_turns_every_value_into_json_types():
    import datetime as dt

    from hvrescue.guest.values import json_safe

    value = {
        1: b"\x00\xff",
        "when": dt.datetime(2024, 2, 14, 1, 2, 3),
        "nested": [bytearray(b"\x01"), ("a", 2), {"x": {3}}],
        "other": object,
        "plain": [None, True, 1.5, "text"],
    }
    safe = json_safe(value)
    assert json.loads(json.dumps(safe)) == safe
    assert safe["1"] == "00ff" and safe["when"] == "2024-02-14T01:02:03"
    assert safe["nested"] == ["01", ["a", 2], {"x": [3]}]
    assert safe["plain"] == [None, True, 1.5, "text"]
    deep: list = []
    for _ in range(100):
        deep = [deep]
    json.dumps(json_safe(deep))  # bounded depth, no recursion error


def _current_services(hive_bytes: bytes, tmp_path: Path) -> tuple[str, object]:
    from regipy.registry import RegistryHive

    path = tmp_path / "plain-SYSTEM"
    path.write_bytes(hive_bytes)
    hive = RegistryHive(str(path))
    current = hive.get_key("\\Select").get_value("Current")
    return f"\\ControlSet{current:03d}\\Services", hive


def _undecodable_display_name(hive_bytes: bytes, tmp_path: Path) -> tuple[bytes, str]:
    """The hive with one service's DisplayName (REG_SZ/REG_EXPAND_SZ) turned into 3 bytes that are
    neither UTF-16 nor UTF-8: regipy then gives the value as bytes. Found and patched by the
    hive's own offsets (cell = 0x1000 + offset, 4-byte size first; VK record layout of regf)."""
    services, hive = _current_services(hive_bytes, tmp_path)
    data = bytearray(hive_bytes)
    for key in hive.get_key(services).iter_subkeys():
        table = 0x1000 + key.header.values_list_offset + 4
        for i in range(key.values_count):
            vk = 0x1000 + struct.unpack_from("<I", data, table + 4 * i)[0] + 4
            assert data[vk : vk + 2] == b"vk"
            name_size, size, offset, kind = struct.unpack_from("<HIII", data, vk + 2)
            if data[vk + 20 : vk + 20 + name_size] != b"DisplayName" or kind not in (1, 2):
                continue
            if size >= 0x80000000 or size < 4:
                continue
            struct.pack_into("<I", data, vk + 4, 3)
            data[0x1000 + offset + 4 : 0x1000 + offset + 7] = b"\xff\xfe\xfd"
            return bytes(data), str(key.name)
    raise AssertionError("no DisplayName stored outside its record")


def test_a_hive_value_regipy_gives_as_bytes_is_json_safe(tmp_path: Path):
    import logging

    original = lzma.decompress((REG / "regipy/SYSTEM.xz").read_bytes())
    crafted, service = _undecodable_display_name(original, tmp_path)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger("hvrescue").addHandler(keep)
    try:
        result = GuestResult("mem")
        ctx = GuestContext(FakeVolume({SYSTEM: crafted}), "mem", result, str(tmp_path / "w"))  # type: ignore[arg-type]
        run = run_artefact(by_name("services-drivers"), ctx)
    finally:
        logging.getLogger("hvrescue").removeHandler(keep)
    assert run.status == "ok"
    text = json.dumps(result.as_dict())  # the crash of issue 12: bytes in a fact
    assert "Traceback" not in text
    [fact] = [
        f
        for f in result.facts
        if f.kind in ("service_config", "driver") and f.attributes["service_name"] == service
    ]
    assert fact.attributes["display_name"] == "fffefd"
    [note] = [p for p in result.problems if p.code == "guest.hive-value-binary"]
    assert note.params["detail"] == "DisplayName" and service in (note.locator or "")
    # regipy's warning about the value went to the hvrescue logger tree
    assert any(r.name.startswith("regipy") and r.levelno >= logging.WARNING for r in records)


def test_regipy_log_noise_does_not_reach_stderr():
    import subprocess
    import sys

    script = (
        "import logging\n"
        "{route}"
        "logging.getLogger('regipy.utils').warning('Could not parse data as string')\n"
    )
    route = "from hvrescue.guest.hive import route_library_logging\nroute_library_logging()\n"
    quiet = subprocess.run(
        [sys.executable, "-c", script.format(route=route)], capture_output=True, text=True
    )
    loud = subprocess.run(
        [sys.executable, "-c", script.format(route="")], capture_output=True, text=True
    )
    assert "Could not parse" in loud.stderr  # Python's last-resort handler, without the route
    assert quiet.returncode == 0 and quiet.stderr == ""


# ---------------------------------------------------------------------------- dependencies
@pytest.mark.parametrize("module", ["regipy", "pytsk3"])
@pytest.mark.parametrize("as_json", [True, False])
def test_guest_names_a_missing_package(tmp_path: Path, module: str, as_json: bool):
    """Without regipy or pytsk3 `guest` stops with exit 2 naming the package, instead of
    reporting a disk with no facts."""
    import gzip
    import os
    import subprocess
    import sys

    disk = tmp_path / "dynamic.vhdx"
    disk.write_bytes(gzip.decompress((CORPUS / "dissect-hypervisor/dynamic.vhdx.gz").read_bytes()))
    args = ["guest", str(disk)] + (["--json"] if as_json else [])
    script = (
        f"import sys\nsys.modules[{module!r}] = None\n"
        f"sys.argv = ['hvrescue', *{args!r}]\n"
        "from hvrescue.cli.main import main\nmain()\n"
    )
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "", "COLUMNS": "200"}
    env.pop("HVRESCUE_LANG", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if as_json:
        error = json.loads(proc.stdout)["error"]
        assert error["key"] == "error.dependency.missing"
        assert error["params"]["package"] == module
        assert f"pip install {module}" in error["message"]
    else:
        assert f"pip install {module}" in " ".join(proc.stderr.split())


def test_a_failing_reader_through_the_cli(guest_disk: Path, monkeypatch: pytest.MonkeyPatch):
    import dataclasses

    from click.testing import CliRunner

    import hvrescue.guest.artefacts as registry
    from hvrescue.cli.main import cli

    def boom(ctx: GuestContext) -> None:
        raise ValueError("a reader's bug")

    broken = tuple(
        dataclasses.replace(a, run=boom) if a.name == "bcd" else a for a in registry.ARTEFACTS
    )
    monkeypatch.setattr(registry, "ARTEFACTS", broken)
    out = CliRunner().invoke(cli, ["guest", str(guest_disk), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    failed = [(a["partition"], a["name"]) for a in data["artefacts"] if a["status"] != "ok"]
    assert failed == [(1, "bcd"), (2, "bcd")]
    kinds = {f["kind"] for f in data["facts"]}
    assert "bcd_entry" not in kinds
    assert {"crash_dump", "service_config", "event", "wer_report"} <= kinds
