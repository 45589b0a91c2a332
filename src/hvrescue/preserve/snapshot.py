"""`preserve --snapshot`: read the disks of running VMs through a volume shadow copy.

The worker process of a running VM holds its disks open without read sharing, so a plain copy
fails with a sharing violation. A shadow copy of the volume (VSS) is a frozen, readable image
of it: one is created per volume holding a source, every source is read from
``\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopyN\\<path on the volume>``, and the shadow
copies are deleted when the copies are done, also when the run fails or is interrupted.

Creation asks WMI first (``Win32_ShadowCopy.Create(volume, "ClientAccessible")`` through
Windows PowerShell, present on every Windows since 7), then ``vssadmin create shadow`` (Windows
Server only). The answer is read by its shape, not its labels (a GUID and a device path), so
an English or a Japanese Windows reads the same. Deletion is ``vssadmin delete shadows
/shadow={id} /quiet``. Every command runs through :func:`run_command`, the process boundary.
"""

from __future__ import annotations

import ntpath
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from hvrescue import platform
from hvrescue.errors import InputError
from hvrescue.preserve.manifest import iso_ns

SHADOW_DEVICE = re.compile(r"\\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy\d+", re.I)
SHADOW_ID = re.compile(r"\{[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\}")
CREATE_TIMEOUT = 600.0  # VSS gives writers 60 s to freeze; a busy host takes minutes in all
DELETE_TIMEOUT = 120.0
MAX_OUTPUT = 64 * 1024  # what is kept of a command's answer

_WMI_CREATE = (
    "$ErrorActionPreference = 'Stop'; "
    "$r = (Get-WmiObject -List Win32_ShadowCopy).Create('{volume}', 'ClientAccessible'); "
    "if ($r.ReturnValue -ne 0) {{ Write-Output ('ReturnValue ' + $r.ReturnValue); exit 1 }}; "
    "$s = Get-WmiObject Win32_ShadowCopy | Where-Object {{ $_.ID -eq $r.ShadowID }}; "
    "Write-Output ('ID ' + $s.ID); Write-Output ('DeviceObject ' + $s.DeviceObject)"
)


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a Windows command; (exit code, its output). A command that cannot start or does not
    end in time answers with code -1 and the reason."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)[:MAX_OUTPUT]
    out = (proc.stdout or b"") + (proc.stderr or b"")
    # The console code page (cp932 on a Japanese host): only the ASCII GUID and device path are
    # read, and they survive any decoding.
    return proc.returncode, out[:MAX_OUTPUT].decode("utf-8", errors="replace")


def volume_of(path: str) -> tuple[str, str]:
    """(volume root, path on the volume) of an absolute Windows path: ``C:\\``, ``VMs\\a.vhdx``.
    A share or a device path has no shadow copy of ours: refused."""
    drive, rest = ntpath.splitdrive(path)
    if len(drive) != 2 or drive[1] != ":":
        raise InputError("error.snapshot.not-local", path=path)
    return drive.upper() + "\\", rest.lstrip("\\/")


def reading_root(device: str) -> str:
    """Where the files of a shadow copy are read: the device itself, with a trailing
    separator (``\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy3\\``)."""
    return device.rstrip("\\") + "\\"


def supported() -> bool:
    return platform.on_windows()


@dataclass
class Shadow:
    volume: str
    id: str
    device: str
    created_ns: int
    method: str
    deleted_ns: int | None = None
    delete_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "volume": self.volume,
            "device": self.device,
            "method": self.method,
            "created": iso_ns(self.created_ns),
            "deleted": iso_ns(self.deleted_ns) if self.deleted_ns is not None else None,
            "delete_error": self.delete_error,
        }


def _parse(text: str) -> tuple[str, str] | None:
    ids, devices = SHADOW_ID.findall(text), SHADOW_DEVICE.findall(text)
    if len(ids) != 1 or len(devices) != 1:
        return None  # none, or an answer listing several: never guess which is ours
    return ids[0], devices[0]


def create(volume: str) -> Shadow:
    """A new shadow copy of ``volume`` (``C:\\``); InputError with both answers if neither way
    works (no administrator rights, VSS failing, a FAT volume)."""
    script = _WMI_CREATE.format(volume=volume.replace("'", "''"))
    ps = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script]
    code, text = run_command(ps, CREATE_TIMEOUT)
    found = _parse(text) if code == 0 else None
    if found is not None:
        return Shadow(volume, found[0], found[1], time.time_ns(), "wmi")
    code2, text2 = run_command(
        ["vssadmin", "create", "shadow", f"/for={volume.rstrip(chr(92))}"], CREATE_TIMEOUT
    )
    found = _parse(text2) if code2 == 0 else None
    if found is not None:
        return Shadow(volume, found[0], found[1], time.time_ns(), "vssadmin")
    reason = " / ".join(_gist(t) for t in (text, text2) if t.strip())
    raise InputError("error.snapshot.create", volume=volume, reason=reason[:400] or str(code2))


_FAILURE = re.compile(r"error|returnvalue|denied|エラー|拒否", re.I)


def _gist(text: str) -> str:
    """The line of a command's answer that says what went wrong (not its banner)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return next((line for line in lines if _FAILURE.search(line)), lines[-1] if lines else "")


def delete(shadow: Shadow) -> None:
    if shadow.deleted_ns is not None:
        return
    code, text = run_command(
        ["vssadmin", "delete", "shadows", f"/shadow={shadow.id}", "/quiet"], DELETE_TIMEOUT
    )
    if code == 0:
        shadow.deleted_ns = time.time_ns()
        shadow.delete_error = None
    else:
        shadow.delete_error = (_gist(text) or str(code))[:400]


class Snapshots:
    """The shadow copies of one run: created by :meth:`take`, deleted by :meth:`release`
    (idempotent; also on leaving the ``with`` block, whatever ended it)."""

    def __init__(self) -> None:
        if not supported():
            raise InputError("error.snapshot.windows-only")
        self.shadows: dict[str, Shadow] = {}

    def __enter__(self) -> Snapshots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def take(self, sources: list[str]) -> list[str]:
        """Create a shadow copy of each volume holding a source; the paths to read instead."""
        out = []
        for source in sources:
            volume, rest = volume_of(source)
            if volume not in self.shadows:
                self.shadows[volume] = create(volume)
            out.append(reading_root(self.shadows[volume].device) + rest)
        return out

    def original(self, read: str) -> str:
        """The path a user knows for a path read through a shadow copy."""
        for shadow in self.shadows.values():
            root = reading_root(shadow.device)
            if read.startswith(root):
                return shadow.volume + read[len(root) :]
        return read

    def restore_names(self, entry: dict[str, Any]) -> None:
        """A manifest entry names the original files; where they were read goes beside."""
        source = entry.get("source")
        if isinstance(source, str):
            entry["read_from"] = source
            entry["source"] = self.original(source)
        parent = entry.get("parent_source")
        if isinstance(parent, str):
            entry["parent_source"] = self.original(parent)

    def release(self) -> None:
        for shadow in self.shadows.values():
            delete(shadow)

    def records(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.shadows.values()]

    def undeleted(self) -> list[Shadow]:
        return [s for s in self.shadows.values() if s.deleted_ns is None]
