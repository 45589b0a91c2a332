"""Bundles as `hvrescue collect` writes them (see the bundle contract in docs/fleet.md), built
from the recorded command outputs in fixtures/commands and fixtures/fleet: healthy hosts, hosts
with the VSS-writers incident (English, Japanese, reposted in a ticket), a hypervisor that did
not start, hosts named only by their systeminfo, unpacked bundle folders, and broken zips.
Shared by tests/test_fleet.py and bench/bench_fleet.py."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

FIX = Path(__file__).parent / "fixtures"
CMD = FIX / "commands"
FLEET = FIX / "fleet"

# EventSystem alone in its svchost: the near miss of the VSS incident (as in test_triage).
TASKLIST_ALONE = """
Image Name                     PID Services
========================= ======== ============================================
svchost.exe                   1024 EventSystem
svchost.exe                   1088 FontCache, netprofm, nsi
"""

# kind -> {member path: fixture file or text}
HEALTHY = {
    "commands/vssadmin-list-writers.txt": CMD / "vssadmin_writers_stable_en.txt",
    "commands/vssadmin-list-providers.txt": CMD / "vssadmin_providers_en.txt",
    "commands/tasklist-svc.txt": TASKLIST_ALONE,
}
CONTENT: dict[str, dict[str, Path | str]] = {
    "healthy": HEALTHY,
    "vss-en": {
        "commands/vssadmin-list-writers.txt": CMD / "vssadmin_writers_empty_en.txt",
        "commands/tasklist-svc.txt": CMD / "tasklist_svc_en.txt",
        "logs/Application.csv": CMD / "events_viewer_en.csv",
    },
    "vss-ja": {
        "commands/vssadmin-list-writers.txt": CMD / "vssadmin_writers_empty_ja.txt",
        "commands/tasklist-svc.txt": CMD / "tasklist_svc_ja.txt",
        "logs/Application.csv": CMD / "events_viewer_ja.csv",
    },
    "vss-repost": {
        "notes/ticket.txt": FLEET / "ticket_repost_en.txt",
        "logs/Application.csv": CMD / "events_viewer_en.csv",
    },
    "hypervisor": {
        "commands/events-system.txt": CMD / "events_text_en.txt",
        "commands/get-hotfix.txt": CMD / "get_hotfix_en.txt",
    },
    "sysinfo-en": {**HEALTHY, "commands/systeminfo.txt": FLEET / "systeminfo_en.txt"},
    "sysinfo-ja": {**HEALTHY, "commands/systeminfo.txt": CMD / "systeminfo_ja.txt"},
    "folder": {
        "commands/vssadmin-list-writers.txt": CMD / "vssadmin_writers_empty_en.txt",
        "commands/tasklist-svc.txt": CMD / "tasklist_svc_en.txt",
    },
}
# The host names the systeminfo fixtures carry, replaced per bundle.
SYSINFO_HOSTS = {"sysinfo-en": "HV-NODE07", "sysinfo-ja": "HV-HOST01"}
BROKEN = ("garbage", "truncated", "empty")
# One cycle of 20 bundles: how often each kind comes.
CYCLE = (
    ["healthy"] * 6
    + ["vss-en"] * 3
    + ["vss-ja"] * 2
    + ["vss-repost", "hypervisor", "hypervisor", "sysinfo-en", "sysinfo-ja", "folder"]
    + list(BROKEN)
)


def _bytes(source: Path | str) -> bytes:
    return source.read_bytes() if isinstance(source, Path) else source.encode("utf-8")


def manifest(host: str, files: dict[str, bytes]) -> bytes:
    """A manifest in the bundle contract's shape, with the members' real hashes."""
    template = json.loads((FLEET / "hvrescue-bundle.json").read_text(encoding="utf-8"))
    template["host"] = host
    template["files"] = [
        {"path": p, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b), "source": None}
        for p, b in files.items()
    ]
    return json.dumps(template, indent=2).encode("utf-8")


def bundle_files(kind: str, host: str) -> tuple[dict[str, bytes], bool]:
    """The members of a bundle of ``kind`` for ``host``, and whether it has a manifest."""
    files = {name: _bytes(src) for name, src in CONTENT[kind].items()}
    named_by_systeminfo = kind in SYSINFO_HOSTS
    if named_by_systeminfo:
        old = SYSINFO_HOSTS[kind].encode()
        files["commands/systeminfo.txt"] = files["commands/systeminfo.txt"].replace(
            old, host.encode()
        )
        return files, False
    return {**files, "hvrescue-bundle.json": manifest(host, files)}, True


def write_bundle(folder: Path, index: int, kind: str) -> tuple[Path, str]:
    """One bundle in ``folder``; returns its path and the host name it should be shown as."""
    folder.mkdir(parents=True, exist_ok=True)
    host = f"HV-{kind.upper()}-{index:03d}"
    stem = f"bundle-{index:03d}-{kind}"
    if kind in BROKEN:
        path = folder / f"{stem}.zip"
        if kind == "garbage":
            path.write_bytes(hashlib.sha256(stem.encode()).digest() * 64)
        elif kind == "truncated":
            files, _ = bundle_files("vss-en", host)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(name, data)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            path.write_bytes(b"")
        return path, stem
    files, _ = bundle_files(kind, host)
    if kind == "folder":
        path = folder / stem
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path, host
    path = folder / f"{stem}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path, host


def write_fleet(folder: Path, count: int) -> list[tuple[Path, str, str]]:
    """``count`` bundles in ``folder``: (path, kind, expected host name) each."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        kind = CYCLE[i % len(CYCLE)]
        path, host = write_bundle(folder, i, kind)
        out.append((path, kind, host))
    return out


def crashing_worker(bundle: str, lang: str, max_memory: int | None):
    """`fleet`'s worker, except that a bundle named ``*crash*`` ends its process abruptly, as
    the system's out-of-memory killer or a crash in a native library would."""
    import os

    from hvrescue.fleet import triage_bundle

    if "crash" in os.path.basename(bundle):
        os._exit(3)
    return triage_bundle(bundle, lang, max_memory)
