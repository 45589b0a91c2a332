"""The fuzz families: for each, seeds (inputs of that kind, :mod:`tests.fuzz.seeds`) and a target
that hands one input to hvrescue as a user's file would reach it, through the same functions the
commands use, and renders what comes back as the JSON output would. A target returns when
hvrescue handled the input (a result, findings, problems, skipped entries, or one of its own
errors, ``HvrescueError``); anything else propagates and is a crash."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.platform import pwrite_all
from tests.fuzz import seeds as s

_scratch: Path | None = None
_PAGE = 4096
_RUN = 64 * 1024
_ZERO_RUN = bytes(_RUN)


@dataclass(frozen=True)
class Family:
    seeds: Callable[[], list[bytes]]
    target: Callable[[bytes], None]


def scratch() -> Path:
    """One private folder per process, in memory where the system has one: the one the
    supervisor gives (it removes it, also after killing the worker), else a new one removed
    when the process ends."""
    global _scratch
    if _scratch is None:
        given = os.environ.get("HVRESCUE_FUZZ_SCRATCH")
        if given:
            _scratch = Path(given)
            _scratch.mkdir(parents=True, exist_ok=True)
        else:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            _scratch = Path(tempfile.mkdtemp(prefix="hvrescue-fuzz-", dir=base))
            atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def as_file(data: bytes, name: str) -> str:
    """``data`` as the file ``name`` in the scratch folder, written sparse: runs of zeros are
    holes (a disk image is mostly zeros; writing them cost more than the parsing did)."""
    path = scratch() / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        for at in range(0, len(data), _RUN):
            if data[at : at + _RUN] == _ZERO_RUN:
                continue
            for page in range(at, min(at + _RUN, len(data)), _PAGE):
                if data[page : page + _PAGE] != _ZERO_RUN[:_PAGE]:
                    pwrite_all(fd, view[page : page + _PAGE], page)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return str(path)


def _json(value: Any) -> None:
    """What ``--json`` would print: it must serialise (no bytes, no stray objects)."""
    json.dumps(value)


# ---------------------------------------------------------------------------- targets
def disk_target(suffix: str) -> Callable[[bytes], None]:
    """``check --json`` and ``info --json`` of the file, then what every reader does first:
    open it (incomplete allowed), list undefined ranges, read its first and last sectors."""

    def target(data: bytes) -> None:
        from hvrescue.vdisk.disk import Disk
        from hvrescue.vdisk.reports import check_files, info_report

        path = as_file(data, "input" + suffix)
        report = check_files([path])
        _json(
            {
                "status": report.status,
                "findings": [_finding(f) for f in report.findings],
                "files": [[r.status, r.chain, r.unreadable, r.undefined] for r in report.files],
            }
        )
        try:
            info = info_report(path)
            _json({"structures": info.structures, "findings": [_finding(f) for f in info.findings]})
            with Disk.open(path, allow_incomplete=True) as disk:
                disk.undefined()
                disk.read_checked(0, 65536)
                if disk.size > 4096:
                    disk.read_checked(disk.size - 4096, 4096)
        except HvrescueError:
            pass

    return target


def _finding(f: Any) -> dict[str, Any]:
    from hvrescue.report.i18n import Messages

    out: dict[str, Any] = f.as_dict()
    out["message"] = Messages("en")(f.message_key, **f.message_params)
    return out


def facts_target(suffix: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from hvrescue.logs.collect import collect

        found = collect([as_file(data, "evidence" + suffix)])
        _json(
            {
                "facts": [f.as_dict() for f in found.facts],
                "unrecognised": [u.as_dict() for u in found.unrecognised],
                "problems": [p.as_dict() for p in found.problems],
                "skipped": [k.as_dict() for k in found.skipped],
            }
        )

    return target


def vmconfig_target(suffix: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        from hvrescue.vmconfig.read import ConfigUnavailable, looks_like_config, read_config

        path = as_file(data, "vm" + suffix)
        looks_like_config(path)
        with contextlib.suppress(ConfigUnavailable, HvrescueError):
            _json(read_config(path).as_dict())

    return target


def manifest_target(data: bytes) -> None:
    """``verify DEST``: the manifest beside one copy (``a.bin``), as the command reads it."""
    from hvrescue.preserve.api import verify_copy

    folder = scratch() / "dest"
    if not folder.is_dir():
        folder.mkdir()
        (folder / "a.bin").write_bytes(s.MANIFEST_COPY)
    (folder / "manifest.json").write_bytes(data)
    try:
        report = verify_copy(str(folder), jobs=1)
    except HvrescueError:
        return
    _json(report.as_dict())
    _json([report.status, report.unreached_count, report.zero_filled_bytes])


class _MemoryDisk:
    def __init__(self) -> None:
        self.touched: list[Any] = []


class MemoryVolume:
    """A guest volume in memory: ``files`` maps paths to contents, folders are implied."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.disk = _MemoryDisk()

    def stat(self, path: str) -> Any:
        from hvrescue.errors import InputError
        from hvrescue.fs.volume import Entry

        if path not in self.files:
            raise InputError("error.fs.no-such-path", path=path)
        name = path.rsplit("/", 1)[-1]
        none = None
        return Entry(path, name, False, len(self.files[path]), 0, none, none, none, none, none,
                     none, [])  # fmt: skip

    def read(self, entry: Any) -> Any:
        yield self.files[entry.path]

    def listdir(self, path: str) -> list[Any]:
        return []

    def file_gaps(self, entry: Any, since: int = 0) -> list[Any]:
        return []


def hive_target(data: bytes) -> None:
    """The hive as SYSTEM (with the .LOG1/.LOG2 after it in the input, when there are any),
    opened as `guest` opens it (a private copy, logs replayed) and read by every registry
    reader: registry-hives, services-drivers, servicing, bcd. The readers are called directly,
    not through ``run_artefact`` (which turns any exception into a failed reader): a reader that
    fails on a damaged hive loses all it would have read, and counts here as a crash."""
    from hvrescue.guest.artefacts import bcd, registry_hives, services, servicing
    from hvrescue.guest.context import GuestContext
    from hvrescue.guest.result import GuestResult

    hive, *logs = data.split(s.LOG_SEPARATOR, 2)
    system = registry_hives.SYSTEM
    files = {system: hive}
    for suffix, log in zip((".LOG1", ".LOG2"), logs, strict=False):
        files[system + suffix] = log
    tmp = tempfile.mkdtemp(dir=scratch())
    try:
        result = GuestResult("fuzz")
        ctx = GuestContext(MemoryVolume(files), "fuzz", result, tmp)  # type: ignore[arg-type]
        opened = ctx.hive(system)
        # One parse serves every reader, whichever hive it asks for.
        for path in (registry_hives.SOFTWARE, *bcd.STORES):
            ctx.set_hive(path, opened)
        registry_hives.read_hives(ctx)
        services.read_services(ctx)
        servicing.cbs_packages(ctx)
        servicing.pending_renames(ctx)
        if opened is not None:
            bcd.read_store(ctx, opened, bcd.STORES[1])
        _json(result.as_dict())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


FAMILIES: dict[str, Family] = {
    "disk-vhdx": Family(s.vhdx_seeds, disk_target(".vhdx")),
    "disk-vhd": Family(s.vhd_seeds, disk_target(".vhd")),
    "facts-text": Family(s.text_seeds, facts_target(".txt")),
    "facts-xml": Family(lambda: s.fixtures(".xml"), facts_target(".xml")),
    "facts-csv": Family(lambda: s.fixtures(".csv"), facts_target(".csv")),
    "facts-evtx": Family(s.evtx_seeds, facts_target(".evtx")),
    "zip": Family(s.zip_seeds, facts_target(".zip")),
    "hive": Family(s.hive_seeds, hive_target),
    "vmconfig": Family(s.vmcx_seeds, vmconfig_target(".vmcx")),
    "vmconfig-xml": Family(s.vmconfig_xml_seeds, vmconfig_target(".xml")),
    "manifest": Family(s.manifest_seeds, manifest_target),
}


# ---------------------------------------------------------------------------- harness checks
def _selftest(trigger: bytes, action: Callable[[], None]) -> Family:
    """A family whose target does ``action`` on its one seed and nothing on anything else:
    tests/test_fuzz.py checks that the supervisor reports what Python cannot catch."""

    def target(data: bytes) -> None:
        if bytes(data) == trigger:
            action()

    return Family(lambda: [trigger], target)


def _hold_memory() -> None:
    block = b"x" * (400 << 20)  # written, so resident
    time.sleep(30)
    del block


SELFTEST: dict[str, Family] = {
    "selftest-abort": _selftest(b"abort!", os.abort),
    "selftest-hang": _selftest(b"hang!", lambda: time.sleep(3600)),
    "selftest-memory": _selftest(b"memory!", _hold_memory),
}
EVERY_FAMILY = {**FAMILIES, **SELFTEST}
