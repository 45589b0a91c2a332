"""Each VM's configuration files copied (read-only, hashed) and every file of its folders and
every disk listed with size and times; disks are never copied.

Folders are walked with bounds (depth, entries) and without following links; files are opened
only through ``hvrescue.io.files`` (read-only). A file Hyper-V holds open (the configuration
of a running VM) may refuse to be read: that is recorded per file and the rest goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.io.files import open_evidence_file
from hvrescue.io.nofollow import open_new

CONFIG_SUFFIXES = (".vmcx", ".vmrs", ".vmgs")
DISK_SUFFIXES = (".vhdx", ".avhdx", ".vhd", ".avhd")
MAX_DEPTH = 6
MAX_ENTRIES = 50_000
CHUNK = 1024 * 1024
_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f]')


@dataclass
class Copied:
    member: str  # the name in the bundle
    temp: str  # where the copy is in the temporary folder
    source: str
    size: int
    sha256: str


@dataclass
class VmFiles:
    copied: list[Copied] = field(default_factory=list)
    listing: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def member_path(vm: str, source: str) -> str:
    """``vms/<VM name>/<the source path without its drive colon>``: unique and traceable."""
    parts = [p for p in re.split(r"[\\/]+", source.replace(":", "")) if p not in ("", ".", "..")]
    safe = [_UNSAFE.sub("_", p) for p in [vm or "unnamed", *parts]]
    return "vms/" + "/".join(safe)


def role(name: str, folder_parts: tuple[str, ...]) -> str:
    lower = name.lower()
    if lower.endswith(DISK_SUFFIXES):
        return "disk"
    if lower.endswith(CONFIG_SUFFIXES):
        return "configuration"
    # Before 2016 a VM's configuration was XML, in "Virtual Machines" or "Snapshots".
    if lower.endswith(".xml") and {"virtual machines", "snapshots"} & set(folder_parts):
        return "configuration"
    return "other"


def _stat_entry(path: str, st: os.stat_result, kind: str) -> dict[str, Any]:
    return {
        "path": path,
        "role": kind,
        "size": st.st_size,
        "modified": _iso(st.st_mtime),
        "created_or_changed": _iso(st.st_ctime),
        "accessed": _iso(st.st_atime),
        "member": None,
        "error": None,
    }


def _copy(source: str, temp: str, limit: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open_evidence_file(source) as src:
        fd = open_new(temp, os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as dst:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ValueError(f"larger than {limit} bytes")
                digest.update(chunk)
                dst.write(chunk)
    return size, digest.hexdigest()


def collect_vm_files(
    vm_folders: dict[str, list[str]], disks: list[str], tempdir: str, max_file: int
) -> VmFiles:
    """Copy the configuration files under each VM's folders into ``tempdir``, list everything."""
    out = VmFiles()
    seen: set[str] = set()
    count = 0
    for vm, folders in vm_folders.items():
        for folder in folders:
            stack: list[tuple[str, int]] = [(folder, 0)]
            while stack:
                current, depth = stack.pop()
                try:
                    with os.scandir(current) as it:
                        entries = sorted(it, key=lambda e: e.name)
                except OSError as exc:
                    out.listing.append({"path": current, "role": "folder", "error": str(exc)})
                    continue
                for entry in entries:
                    count += 1
                    if count > MAX_ENTRIES:
                        out.truncated = True
                        return out
                    path = entry.path
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        out.listing.append({"path": path, "role": "other", "error": str(exc)})
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if depth + 1 < MAX_DEPTH:
                            stack.append((path, depth + 1))
                        continue
                    if not entry.is_file(follow_symlinks=False) or path in seen:
                        continue
                    seen.add(path)
                    parts = tuple(p.lower() for p in re.split(r"[\\/]+", current))
                    kind = role(entry.name, parts)
                    row = _stat_entry(path, st, kind)
                    out.listing.append(row)
                    if kind == "configuration":
                        _copy_one(out, row, vm, path, st.st_size, tempdir, max_file, len(seen))
    for disk in disks:
        if disk in seen:
            continue
        seen.add(disk)
        try:
            st = os.stat(disk)
        except OSError as exc:
            out.listing.append({"path": disk, "role": "disk", "error": str(exc)})
            continue
        out.listing.append(_stat_entry(disk, st, "disk"))
    return out


def _copy_one(
    out: VmFiles,
    row: dict[str, Any],
    vm: str,
    path: str,
    size: int,
    tempdir: str,
    max_file: int,
    n: int,
) -> None:
    if size > max_file:
        row["error"] = f"too-large: {size} bytes, copied at most {max_file}"
        return
    temp = os.path.join(tempdir, f"vmfile-{n}")
    try:
        copied, digest = _copy(path, temp, max_file)
    except (OSError, HvrescueError, ValueError) as exc:
        detail = (
            getattr(exc, "params", {}).get("reason") if isinstance(exc, HvrescueError) else None
        )
        row["error"] = str(detail or exc)
        if os.path.exists(temp):
            os.unlink(temp)
        return
    member = member_path(vm, path)
    row["member"] = member
    out.copied.append(Copied(member, temp, path, copied, digest))
