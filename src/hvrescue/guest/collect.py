"""Facts from inside a Windows guest's virtual disk."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.fs import probe
from hvrescue.fs.volume import Entry, Volume
from hvrescue.guest.sddl import to_sddl
from hvrescue.vdisk.disk import Disk

try:
    from regipy.exceptions import (
        NoRegistrySubkeysException,
        NoRegistryValuesException,
        RegistryKeyNotFoundException,
    )

    _NOT_FOUND: tuple[type[Exception], ...] = (
        RegistryKeyNotFoundException,
        NoRegistrySubkeysException,
        NoRegistryValuesException,
    )
except ImportError:  # pragma: no cover - regipy is a declared dependency
    _NOT_FOUND = (KeyError,)

MAX_HIVE = 512 * 1024 * 1024
MAX_EVTX = 256 * 1024 * 1024
MAX_SMALL = 16 * 1024 * 1024
MAX_FOLDER_SCAN = 200_000
EVENT_LOGS = (
    "System.evtx",
    "Application.evtx",
    "Setup.evtx",
    "Microsoft-Windows-Hyper-V-Worker-Admin.evtx",
)
# CBS CurrentState values (Microsoft's servicing chart).
CBS_STATES = {
    0x00: "absent",
    0x05: "uninstall_pending",
    0x10: "resolving",
    0x20: "resolved",
    0x30: "staging",
    0x40: "staged",
    0x50: "superseded",
    0x60: "install_pending",
    0x65: "partially_installed",
    0x70: "installed",
    0x80: "permanent",
    -0x20: "resolved",  # some tools print 0xFFFFFFE0
}
START_NAMES = {
    0: "BOOT_START",
    1: "SYSTEM_START",
    2: "AUTO_START",
    3: "DEMAND_START",
    4: "DISABLED",
}
BCD_HYPERVISOR_LAUNCH = "250000f0"
BCD_SAFEBOOT = "25000080"
BCD_DESCRIPTION = "12000004"
BCD_BOOTSTATUSPOLICY = "250000e0"
BCD_TESTSIGNING = "16000049"
LAUNCH_TYPES = {0: "Off", 1: "Auto"}
SAFEBOOT_TYPES = {0: "Minimal", 1: "Network", 2: "DsRepair"}
FILETIME_EPOCH = dt.datetime(1601, 1, 1)


@dataclass
class GuestResult:
    disk: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per artefact


class _Reader:
    def __init__(self, volume: Volume, label: str, result: GuestResult) -> None:
        self.volume = volume
        self.label = label
        self.result = result

    def where(self, path: str) -> str:
        return f"{self.label}:{path}"

    def fact(self, kind: str, attrs: dict[str, Any], path: str, locator: str | None = None) -> None:
        self.result.facts.append(Fact(kind, attrs, Provenance(self.where(path), locator)))

    def problem(self, path: str, code: str, detail: str = "") -> None:
        self.result.problems.append(Problem(self.where(path), code, None, {"detail": detail[:300]}))

    def stat(self, path: str) -> Entry | None:
        try:
            return self.volume.stat(path)
        except HvrescueError:
            return None

    def read(self, path: str, limit: int) -> bytes | None:
        entry = self.stat(path)
        if entry is None or entry.is_dir:
            return None
        if entry.size > limit:
            self.problem(path, "guest.too-large", str(entry.size))
            return None
        mark = len(self.volume.disk.touched)
        try:
            data = b"".join(self.volume.read(entry))
        except HvrescueError as exc:
            self.problem(path, "guest.unreadable", exc.key)
            return None
        gaps = self.volume.file_gaps(entry, since=mark)
        if gaps:
            # Zeros standing for unknown bytes are not evidence: the artefact is not read.
            causes = ", ".join(sorted({g.cause for g in gaps}))
            self.problem(path, "guest.undefined-content", causes)
            return None
        return data

    def listdir(self, path: str) -> list[Entry]:
        try:
            return self.volume.listdir(path)
        except HvrescueError:
            return []


# ---------------------------------------------------------------------------- registry
def _skip_reading_inline_values() -> None:
    """regipy reads ``data_size`` bytes for every value before looking at the "stored inline"
    bit (0x80000000) of that size, so each inline value copies the rest of the hive, and then
    does not use what it read (the data is in the record). Reading nothing for those values gives
    the same results ~20x faster; tests compare every value of a public hive both ways."""
    from regipy import registry

    original = registry.NKRecord.read_value
    if getattr(original, "hvrescue_inline", False):
        return

    def read_value(vk: Any, stream: Any) -> Any:
        if vk.data_size >= 0x80000000:
            return registry.VKRecord(
                value_type=vk.data_type,
                value_type_str=str(vk.data_type),
                value=b"",
                size=vk.data_size,
            )
        return original(vk, stream)  # type: ignore[no-untyped-call]

    read_value.hvrescue_inline = True  # type: ignore[attr-defined]
    read_value.original = original  # type: ignore[attr-defined]
    registry.NKRecord.read_value = staticmethod(read_value)  # type: ignore[method-assign]


def _open_hive(reader: _Reader, path: str, tmp: str) -> Any:
    """The hive with its transaction logs applied (in a private temporary copy)."""
    from regipy.recovery import apply_transaction_logs
    from regipy.registry import RegistryHive

    _skip_reading_inline_values()

    data = reader.read(path, MAX_HIVE)
    if data is None:
        return None
    name = os.path.basename(path)
    hive_path = os.path.join(tmp, name)
    with open(hive_path, "wb") as f:
        f.write(data)
    logs = []
    for suffix in (".LOG1", ".LOG2"):
        log = reader.read(path + suffix, MAX_HIVE)
        if log:
            log_path = hive_path + suffix
            with open(log_path, "wb") as f:
                f.write(log)
            logs.append(log_path)
    try:
        hive = RegistryHive(hive_path)  # type: ignore[no-untyped-call]
    except Exception as exc:  # a damaged hive raises many kinds
        reader.problem(path, "guest.hive-damaged", f"{type(exc).__name__}: {exc}")
        return None
    dirty = hive.header.primary_sequence_num != hive.header.secondary_sequence_num
    if dirty and logs:
        try:
            restored, pages = apply_transaction_logs(  # type: ignore[no-untyped-call]
                hive_path,
                logs[0],
                logs[1] if len(logs) > 1 else None,
                restored_hive_path=hive_path + ".restored",
            )
            hive = RegistryHive(restored)  # type: ignore[no-untyped-call]
            reader.fact(
                "hive_replay",
                {"hive": name, "dirty": True, "logs": len(logs), "recovered_pages": pages},
                path,
            )
        except Exception as exc:  # regipy raises its own and plain errors alike
            reader.problem(path, "guest.hive-log-replay-failed", f"{type(exc).__name__}: {exc}")
    elif dirty:
        reader.problem(path, "guest.hive-dirty-no-logs", name)
    return hive


# Registry reads: a key that is not there is normal (None / nothing); anything else a damaged
# hive raises is recorded as a problem of that hive and the reading goes on.
_damage: list[tuple[_Reader, str]] = []


def _note_damage(exc: Exception) -> None:
    if _damage:
        reader, path = _damage[-1]
        reader.problem(path, "guest.hive-damaged", f"{type(exc).__name__}: {exc}")


def _values(key: Any, whole: bool = False) -> dict[str, Any]:
    """Values of ``key``; regipy trims long values unless ``whole`` (binary descriptors)."""
    out: dict[str, Any] = {}
    if key is None:
        return out
    try:
        for v in key.iter_values(trim_values=not whole):
            out[str(v.name)] = v.value
    except _NOT_FOUND:
        return out
    except Exception as exc:  # damaged value list: keep what was read, say so
        _note_damage(exc)
    return out


def _key(hive: Any, path: str) -> Any:
    try:
        return hive.get_key(path)
    except _NOT_FOUND:
        return None
    except Exception as exc:  # damaged key path
        _note_damage(exc)
        return None


def _subkeys(key: Any) -> Iterator[Any]:
    if key is None:
        return
    try:
        yield from key.iter_subkeys()
    except _NOT_FOUND:
        return
    except Exception as exc:  # damaged subkey list
        _note_damage(exc)
        return


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def _system_hive(reader: _Reader, hive: Any, path: str) -> None:
    current = _int(_values(_key(hive, "\\Select")).get("Current")) or 1
    cs = f"\\ControlSet{current:03d}"
    services = _key(hive, cs + "\\Services")
    for sk in _subkeys(services):
        vals = _values(sk)
        stype = _int(vals.get("Type"))
        if stype is None:
            continue
        start = _int(vals.get("Start"))
        common = {
            "service_name": str(sk.name),
            "start_type": {"code": start, "name": START_NAMES.get(start or -1)},
            "type": {"code": stype},
            "load_order_group": vals.get("Group"),
            "display_name": vals.get("DisplayName"),
            "source": "registry",
            "control_set": current,
        }
        locator = f"key:{cs}\\Services\\{sk.name}"
        if stype & 0x0B and not stype & 0x30:  # kernel / file-system drivers
            image = vals.get("ImagePath")
            entry = _driver_file(reader, image if isinstance(image, str) else None, str(sk.name))
            reader.fact(
                "driver",
                {
                    **common,
                    "name": str(sk.name),
                    "image_path": image,
                    "file": entry.path if entry else None,
                    "file_size": entry.size if entry else None,
                    "file_created": entry.created if entry else None,
                    "file_modified": entry.modified if entry else None,
                },
                path,
                locator,
            )
        else:
            reader.fact(
                "service_config",
                {
                    **common,
                    "binary_path_name": vals.get("ImagePath"),
                    "service_start_name": vals.get("ObjectName"),
                },
                path,
                locator,
            )
        raw = _binary(_values(_subkey(sk, "Security"), whole=True).get("Security"))
        described = to_sddl(raw) if raw else None
        if described is not None:
            reader.fact(
                "service_security",
                {"service_name": str(sk.name), "service_name_from": "registry", **described},
                path,
                locator + "\\Security",
            )
        altitudes = []
        for inst in _subkeys(_subkey(sk, "Instances")):
            altitude = _values(inst).get("Altitude")
            if altitude:
                altitudes.append({"instance": str(inst.name), "altitude": str(altitude)})
        if altitudes:
            reader.fact(
                "minifilter",
                {
                    "name": str(sk.name),
                    "image_path": vals.get("ImagePath"),
                    "start": start,
                    "instances": altitudes,
                    "altitude": altitudes[0]["altitude"],
                },
                path,
                locator + "\\Instances",
            )
    for cls in _subkeys(_key(hive, cs + "\\Control\\Class")):
        cvals = _values(cls)
        for kind in ("UpperFilters", "LowerFilters"):
            names = cvals.get(kind)
            if isinstance(names, str):
                names = [names]
            if isinstance(names, list) and names:
                reader.fact(
                    "class_filter",
                    {
                        "class_guid": str(cls.name),
                        "class": cvals.get("Class"),
                        "position": kind[:5].lower(),
                        "filters": [str(n) for n in names],
                    },
                    path,
                    f"key:{cs}\\Control\\Class\\{cls.name}",
                )
    safeboot = {}
    for mode in ("Minimal", "Network"):
        safeboot[f"{mode.lower()}_msiserver"] = (
            _key(hive, f"{cs}\\Control\\SafeBoot\\{mode}\\MSIServer") is not None
        )
    reader.fact("safeboot_msiserver", safeboot, path, f"key:{cs}\\Control\\SafeBoot")
    session = _values(_key(hive, cs + "\\Control\\Session Manager"))
    renames = session.get("PendingFileRenameOperations")
    count = len(renames) if isinstance(renames, list) else (1 if renames else 0)
    reader.fact(
        "servicing_state",
        {"pending_file_renames": count, "source": "SYSTEM"},
        path,
        f"key:{cs}\\Control\\Session Manager",
    )


def _binary(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        return bytes.fromhex(value)
    return None


def _driver_file(reader: _Reader, image: str | None, name: str) -> Entry | None:
    """The driver's file on this volume (ImagePath forms: \\SystemRoot\\..., System32\\...,
    \\??\\C:\\..., or none: System32\\drivers\\<name>.sys)."""
    text = (image or f"System32\\drivers\\{name}.sys").strip().strip('"')
    lower = text.lower()
    for prefix in ("\\??\\", "\\\\?\\"):
        if lower.startswith(prefix):
            text, lower = text[len(prefix) :], lower[len(prefix) :]
    if len(text) > 2 and text[1] == ":":
        text = text[2:]
    elif lower.startswith("\\systemroot\\"):
        text = "\\Windows\\" + text[len("\\systemroot\\") :]
    elif lower.startswith("%systemroot%\\"):
        text = "\\Windows\\" + text[len("%systemroot%\\") :]
    elif not text.startswith("\\"):
        text = "\\Windows\\" + text
    return reader.stat(text.replace("\\", "/"))


def _filetime(high: Any, low: Any) -> str | None:
    h, lo = _int(high), _int(low)
    if h is None or lo is None:
        return None
    ticks = (h << 32) | (lo & 0xFFFFFFFF)
    if ticks <= 0:
        return None
    try:
        return (FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)).isoformat()
    except OverflowError:
        return None


_KB = re.compile(r"KB\d{6,8}", re.IGNORECASE)


def _software_hive(reader: _Reader, hive: Any, path: str) -> None:
    cbs = "\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
    for sk in _subkeys(_key(hive, cbs + "\\Packages")):
        vals = _values(sk)
        state = _int(vals.get("CurrentState"))
        if state is None:
            continue
        if state > 0x7FFFFFFF:
            state -= 0x100000000
        identity = str(sk.name)
        kb = _KB.search(identity)
        reader.fact(
            "package",
            {
                "identity": identity,
                "kb": kb.group(0).upper() if kb else None,
                "state_code": CBS_STATES.get(state, f"0x{state & 0xFFFFFFFF:x}"),
                "current_state": state,
                "install_time_local": _filetime(
                    vals.get("InstallTimeHigh"), vals.get("InstallTimeLow")
                ),
                "image": "offline",
            },
            path,
            f"key:{cbs}\\Packages\\{identity}",
        )
    reader.fact(
        "servicing_state",
        {
            "reboot_pending": _key(hive, cbs + "\\RebootPending") is not None,
            "packages_pending": _key(hive, cbs + "\\PackagesPending") is not None,
            "source": "SOFTWARE",
        },
        path,
        f"key:{cbs}",
    )
    nt = _values(_key(hive, "\\Microsoft\\Windows NT\\CurrentVersion"))
    reader.fact(
        "system_info",
        {
            "os_name": nt.get("ProductName"),
            "current_build": nt.get("CurrentBuild"),
            "ubr": nt.get("UBR"),
            "edition": nt.get("EditionID"),
            "source": "registry",
        },
        path,
        "key:\\Microsoft\\Windows NT\\CurrentVersion",
    )


def _bcd(reader: _Reader, hive: Any, path: str) -> None:
    for obj in _subkeys(_key(hive, "\\Objects")):
        elements: dict[str, Any] = {}
        for el in _subkeys(_subkey(obj, "Elements")):
            value = _values(el).get("Element")
            elements[str(el.name).lower()] = value

        def number(code: str, elements: dict[str, Any] = elements) -> int | None:
            raw = elements.get(code)
            if isinstance(raw, str) and re.fullmatch(r"[0-9a-fA-F]{2,16}", raw):
                return int.from_bytes(bytes.fromhex(raw)[:8], "little")
            if isinstance(raw, (bytes, bytearray)):
                return int.from_bytes(bytes(raw)[:8], "little")
            return _int(raw)

        launch = number(BCD_HYPERVISOR_LAUNCH)
        safeboot = number(BCD_SAFEBOOT)
        testsigning = number(BCD_TESTSIGNING)
        reader.fact(
            "bcd_entry",
            {
                "identifier": str(obj.name),
                "description": elements.get(BCD_DESCRIPTION),
                "hypervisorlaunchtype": LAUNCH_TYPES.get(launch, launch)
                if launch is not None
                else None,
                "safeboot": SAFEBOOT_TYPES.get(safeboot, safeboot)
                if safeboot is not None
                else None,
                "bootstatuspolicy": number(BCD_BOOTSTATUSPOLICY),
                "testsigning": bool(testsigning) if testsigning is not None else None,
                "source": "bcd-store",
            },
            path,
            f"key:\\Objects\\{obj.name}",
        )


def _subkey(key: Any, name: str) -> Any:
    try:
        return key.get_subkey(name)
    except _NOT_FOUND:
        return None
    except Exception as exc:  # damaged key
        _note_damage(exc)
        return None


# ---------------------------------------------------------------------------- files
def crash_dump_header(data: bytes) -> dict[str, Any] | None:
    """Bugcheck code and parameters from a kernel dump header (PAGEDU64 / PAGEDUMP)."""
    if data[:8] == b"PAGEDU64" and len(data) >= 0x60:
        code = struct.unpack_from("<I", data, 0x38)[0]
        params = struct.unpack_from("<4Q", data, 0x40)
        out: dict[str, Any] = {"bits": 64}
        if len(data) >= 0xFB0:
            out["dump_type"] = struct.unpack_from("<I", data, 0xF98)[0]
            ticks = struct.unpack_from("<Q", data, 0xFA8)[0]
            if ticks:
                with contextlib.suppress(OverflowError):
                    out["system_time"] = (
                        FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
                    ).isoformat()
    elif data[:8] == b"PAGEDUMP" and len(data) >= 0x34:
        code = struct.unpack_from("<I", data, 0x20)[0]
        params = struct.unpack_from("<4I", data, 0x24)
        out = {"bits": 32}
    else:
        return None
    out.update(
        {
            "bugcheck_code": code,
            "bugcheck_hex": f"0x{code:08x}",
            "parameters": [f"0x{p:x}" for p in params],
        }
    )
    return out


def _dumps(reader: _Reader) -> None:
    candidates = ["/Windows/MEMORY.DMP"]
    candidates += [e.path for e in reader.listdir("/Windows/Minidump") if not e.is_dir]
    for path in candidates:
        entry = reader.stat(path)
        if entry is None or entry.is_dir:
            continue
        head = b""
        for chunk in reader.volume.read(entry):
            head = chunk[:8192]
            break
        info = crash_dump_header(head)
        if info is None:
            reader.problem(path, "guest.dump-unknown-format")
            continue
        info["file_modified"] = entry.modified
        info["file"] = path
        reader.fact("crash_dump", info, path, "offset:0")


def _events(reader: _Reader) -> None:
    from hvrescue.logs.collect import facts_from_bytes

    for name in EVENT_LOGS:
        path = "/Windows/System32/winevt/Logs/" + name
        data = reader.read(path, MAX_EVTX)
        if not data:
            continue
        found = facts_from_bytes(data, reader.where(path))
        reader.result.facts.extend(found.facts)
        reader.result.problems.extend(found.problems)


def _dotnet(reader: _Reader) -> None:
    for fw in reader.listdir("/Windows/Microsoft.NET"):
        if not fw.is_dir or not fw.name.lower().startswith("framework"):
            continue
        for version in reader.listdir(fw.path):
            if not version.is_dir:
                continue
            temp = version.path + "/Temporary ASP.NET Files"
            entries = reader.listdir(temp)
            if entries:
                count = sum(1 for e in entries if e.is_dir)
                reader.fact("folder_count", {"path": temp.replace("/", "\\"), "count": count}, temp)
            subfolders = sum(1 for e in reader.listdir(version.path) if e.is_dir)
            reader.fact(
                "folder_count",
                {"path": version.path.replace("/", "\\"), "count": subfolders},
                version.path,
            )


def _pending_xml(reader: _Reader) -> None:
    entry = reader.stat("/Windows/WinSxS/pending.xml")
    reader.fact(
        "servicing_state",
        {
            "pending_xml": entry is not None and not entry.is_dir,
            "pending_xml_size": entry.size if entry else None,
            "pending_xml_modified": entry.modified if entry else None,
            "source": "WinSxS",
        },
        "/Windows/WinSxS/pending.xml",
    )


def _timed(reader: _Reader, name: str, fn: Any, *args: Any) -> None:
    start = time.perf_counter()
    fn(*args)
    timings = reader.result.timings
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _hive_step(reader: _Reader, path: str, tmp: str, parse: Any) -> None:
    hive = _open_hive(reader, path, tmp)
    if hive is not None:
        _damage.append((reader, path))
        try:
            parse(reader, hive, path)
        finally:
            _damage.pop()


def _package_manifests(reader: _Reader) -> None:
    """KB numbers of the packages whose manifests are on disk (Windows\\servicing\\Packages)."""
    seen: set[str] = set()
    for entry in reader.listdir("/Windows/servicing/Packages"):
        if entry.is_dir or not entry.name.lower().endswith(".mum"):
            continue
        kb = _KB.search(entry.name)
        if kb is None or kb.group(0).upper() in seen:
            continue
        seen.add(kb.group(0).upper())
        reader.fact(
            "package_manifest",
            {"identity": entry.name[:-4], "kb": kb.group(0).upper(), "modified": entry.modified},
            entry.path,
        )


WER_FOLDERS = (
    "/ProgramData/Microsoft/Windows/WER/ReportArchive",
    "/ProgramData/Microsoft/Windows/WER/ReportQueue",
)
MAX_WER_REPORTS = 2000


def _wer(reader: _Reader) -> None:
    """Windows Error Reporting archives: each Report.wer (UTF-16 key=value lines)."""
    count = 0
    for folder in WER_FOLDERS:
        for report in reader.listdir(folder):
            if not report.is_dir or count >= MAX_WER_REPORTS:
                continue
            path = report.path + "/Report.wer"
            data = reader.read(path, MAX_SMALL)
            if not data:
                continue
            count += 1
            text = (
                data.decode("utf-16", errors="replace")
                if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                else data.decode("utf-8", errors="replace")
            )
            fields: dict[str, str] = {}
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip():
                    fields[key.strip()] = value.strip()
            sigs = {
                fields.get(f"Sig[{i}].Name", f"sig{i}"): fields.get(f"Sig[{i}].Value", "")
                for i in range(10)
                if f"Sig[{i}].Value" in fields
            }
            reader.fact(
                "wer_report",
                {
                    "folder": report.name,
                    "event_type": fields.get("EventType"),
                    "friendly_name": fields.get("FriendlyEventName"),
                    "app": fields.get("AppName") or fields.get("AppPath"),
                    "event_time": _filetime_value(fields.get("EventTime")),
                    "signature": sigs,
                },
                path,
            )


def _filetime_value(text: str | None) -> str | None:
    ticks = _int(text) if text else None
    if not ticks:
        return None
    return _filetime(ticks >> 32, ticks & 0xFFFFFFFF)


def _windows(reader: _Reader, tmp: str) -> None:
    os.makedirs(tmp, exist_ok=True)
    config = "/Windows/System32/config/"
    _timed(reader, "registry SYSTEM", _hive_step, reader, config + "SYSTEM", tmp, _system_hive)
    _timed(
        reader, "registry SOFTWARE", _hive_step, reader, config + "SOFTWARE", tmp, _software_hive
    )
    if reader.stat("/Boot/BCD") is not None:
        _timed(reader, "BCD", _hive_step, reader, "/Boot/BCD", tmp, _bcd)
    _timed(reader, "pending.xml", _pending_xml, reader)
    _timed(reader, "package manifests", _package_manifests, reader)
    _timed(reader, "crash dumps", _dumps, reader)
    _timed(reader, "event logs", _events, reader)
    _timed(reader, ".NET folders", _dotnet, reader)
    _timed(reader, "WER reports", _wer, reader)


def _gets_letter(part: Any, fstype: str | None) -> bool:
    """WinRE letters partitions with a filesystem it mounts, except EFI system, MSR and
    recovery partitions (GPT) and hidden types (MBR 0x27)."""
    if fstype is None:
        return False
    return part.type not in ("efi-system", "microsoft-reserved", "windows-recovery", "recovery")


def _winre_letter(before: int) -> str:
    # WinRE itself is X:; volumes are lettered from C: in partition order.
    return chr(ord("C") + min(before, 20))


def guest_facts(path: str, search: list[str] | None = None) -> GuestResult:
    result = GuestResult(path)
    with (
        Disk.open(path, search) as disk,
        tempfile.TemporaryDirectory(prefix="hvrescue-guest-") as tmp,
    ):
        lettered = 0  # partitions before this one that WinRE gives a drive letter
        for part, fstype in probe(disk):
            if fstype is None:
                continue
            try:
                volume = Volume(disk, part)
            except HvrescueError:
                continue
            reader = _Reader(volume, f"{path}!p{part.index}", result)
            roles = []
            if reader.stat("/Windows/System32/config/SYSTEM") is not None:
                roles.append("windows")
                _windows(reader, os.path.join(tmp, f"p{part.index}-w"))
            for bcd in ("/EFI/Microsoft/Boot/BCD", "/Boot/BCD"):
                if "windows" in roles and bcd == "/Boot/BCD":
                    continue
                if reader.stat(bcd) is not None:
                    roles.append("boot")
                    sub = os.path.join(tmp, f"p{part.index}-b")
                    os.makedirs(sub, exist_ok=True)
                    _timed(reader, "BCD", _hive_step, reader, bcd, sub, _bcd)
            result.volumes.append({**part.as_dict(), "filesystem": fstype, "roles": roles})
            if "windows" in roles:
                reader.fact(
                    "windows_volume",
                    {
                        "partition": part.index,
                        "scheme": part.scheme,
                        "winre_drive_guess": _winre_letter(lettered),
                    },
                    "/Windows",
                )
            if _gets_letter(part, fstype):
                lettered += 1
    return result
