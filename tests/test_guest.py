"""`guest`: facts from inside a Windows guest built without Windows (public hives and BCD stores
in their real paths, a crafted kernel dump header, pending.xml, a public EVTX, ASP.NET folders)
in a GPT disk converted to VHDX and chained; and triage of that disk."""

from __future__ import annotations

import lzma
import shutil
import struct
from pathlib import Path

import pytest

from hvrescue.guest.collect import crash_dump_header
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
    from hvrescue.guest.collect import GuestResult, _open_hive, _Reader

    class FakeVolume:
        def __init__(self, files: dict[str, bytes]) -> None:
            self.files = files

    files = {
        "/SYSTEM": lzma.decompress((REG / "regipy/SYSTEM_B.xz").read_bytes()),
        "/SYSTEM.LOG1": lzma.decompress((REG / "regipy/SYSTEM_B.LOG1.xz").read_bytes()),
        "/SYSTEM.LOG2": lzma.decompress((REG / "regipy/SYSTEM_B.LOG2.xz").read_bytes()),
    }
    result = GuestResult("mem")
    reader = _Reader(FakeVolume(files), "mem", result)  # type: ignore[arg-type]
    reader.read = lambda path, limit: files.get(path)  # type: ignore[method-assign]
    hive = _open_hive(reader, "/SYSTEM", str(tmp_path))
    assert hive is not None
    assert hive.header.primary_sequence_num == hive.header.secondary_sequence_num
    [replay] = [f for f in result.facts if f.kind == "hive_replay"]
    assert replay.attributes["recovered_pages"] > 0


def test_a_damaged_hive_is_a_problem_not_a_crash(tmp_path: Path):
    from hvrescue.guest.collect import GuestResult, _open_hive, _Reader, _system_hive

    data = lzma.decompress((REG / "regipy/corrupted_system_hive.xz").read_bytes())
    result = GuestResult("mem")
    reader = _Reader(None, "mem", result)  # type: ignore[arg-type]
    reader.read = lambda path, limit: data if path == "/SYSTEM" else None  # type: ignore[method-assign]
    reader.stat = lambda path: None  # type: ignore[method-assign]
    hive = _open_hive(reader, "/SYSTEM", str(tmp_path))
    if hive is not None:
        _system_hive(reader, hive, "/SYSTEM")  # reads what it can
    assert (hive is None and result.problems) or hive is not None


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
    from hvrescue.guest.collect import GuestResult, _Reader, _software_hive

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
    reader = _Reader(None, "mem", result)  # type: ignore[arg-type]
    _software_hive(reader, _FakeHive(root), "/SOFTWARE")
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

    from hvrescue.guest.collect import _skip_reading_inline_values

    hive_path = tmp_path / "SYSTEM"
    hive_path.write_bytes(lzma.decompress((REG / "regipy/SYSTEM_WIN_10_1709.xz").read_bytes()))

    def dump() -> list:
        hive = registry.RegistryHive(str(hive_path))
        out = []
        for key in hive.get_key("\\ControlSet001\\Services").iter_subkeys():
            for sub in [key, *key.iter_subkeys()]:
                out += [(sub.name, v.name, v.value) for v in sub.iter_values(trim_values=False)]
        return out

    _skip_reading_inline_values()
    fast = registry.NKRecord.read_value
    try:
        registry.NKRecord.read_value = staticmethod(fast.original)
        slow_values = dump()
    finally:
        registry.NKRecord.read_value = staticmethod(fast)
    assert len(slow_values) > 1000
    assert dump() == slow_values
