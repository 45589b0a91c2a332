"""What to preserve: every file that belongs to the VMs and chains named, and where it goes.

A folder brings all of its files; a disk brings its whole chain (parents found by the engine,
wherever they live); a configuration brings the disks it names (and their chains). What cannot
be reached (a missing parent, a disk the configuration names but the evidence lacks, a folder
that cannot be listed) is listed, never silently skipped. The copies keep their layout relative
to the common folder of everything preserved, so that relative parent locators still work in
the copy.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from hvrescue.errors import HvrescueError
from hvrescue.io.files import (
    DIRECTORY,
    FIFO,
    MISSING,
    OTHER,
    REGULAR,
    SOCKET,
    SYMLINK,
    mode_kind,
)
from hvrescue.io.nofollow import is_link
from hvrescue.vdisk.chain import candidate_paths, resolve_chain
from hvrescue.vdisk.detect import DISK_SUFFIXES, probe_identity
from hvrescue.vmconfig import ConfigUnavailable, looks_like_config, read_config

MAX_FILES = 1_000_000
RUNTIME_SUFFIXES = (".vmrs", ".vmgs", ".bin", ".vsv", ".vmrs.tmp")
CONFIG_ROLE_SUFFIXES = (".vmcx", ".vmc", ".xml")

ROLE_BASE = "base-disk"
ROLE_DIFF = "differencing-disk"
ROLE_CONFIG = "configuration"
ROLE_RUNTIME = "runtime-state"
ROLE_OTHER = "other"
ROLE_VHD_SET = "vhd-set"  # a .vhds, beside the .avhdx files that hold its data


@dataclass
class PlannedFile:
    source: str  # absolute path of the original
    role: str
    size: int
    mtime_ns: int
    allocated: int
    device: int
    parent: str | None = None  # absolute path of the chain parent
    rel: str = ""  # path inside DEST, "/" separated


@dataclass
class Unreachable:
    source: str | None
    reason: str  # "parent-missing", "config-disk-missing", "unlistable", "unreadable", ...
    referenced_by: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "source": self.source,
            "reason": self.reason,
            "referenced_by": self.referenced_by,
            "detail": self.detail,
        }


@dataclass
class Plan:
    files: list[PlannedFile] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)  # {"key", "path"}
    root: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _role_by_name(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".avhdx", ".avhd")):
        return ROLE_DIFF
    if lower.endswith(DISK_SUFFIXES):
        return ROLE_BASE
    if lower.endswith(RUNTIME_SUFFIXES):
        return ROLE_RUNTIME
    if lower.endswith(".vhds"):
        return ROLE_VHD_SET
    if lower.endswith(CONFIG_ROLE_SUFFIXES):
        return ROLE_CONFIG
    return ROLE_OTHER


# Reasons of ``unreachable`` entries that are no gap in the copy: a FIFO or socket has no
# content; a link met in a walk whose target was copied anyway, or that names nothing.
NOT_A_GAP = frozenset({"special-file", "link-copied", "link-dangling"})
# What a walk meets that is not read: ``special-file`` with its kind in ``detail``, except
# devices, which may hold data nobody copied (so they leave the copy incomplete).
_NO_CONTENT = (FIFO, SOCKET)


class _Collector:
    def __init__(self, search: list[str]) -> None:
        self.search = search
        self.plan = Plan()
        self.by_real: dict[str, PlannedFile] = {}
        self.chained: set[str] = set()
        self.links: list[str] = []  # links met while walking a folder (never followed)
        self.walked: list[str] = []  # real paths of the folders walked

    def add(self, path: str, role: str | None = None) -> PlannedFile | None:
        path = os.path.abspath(path)
        real = os.path.realpath(path)
        if real in self.by_real:
            found = self.by_real[real]
            if role is not None and found.role == ROLE_OTHER:
                found.role = role
            return found
        if len(self.by_real) >= MAX_FILES:
            self.plan.unreachable.append(Unreachable(path, "too-many-files"))
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            self.plan.unreachable.append(Unreachable(path, "unreadable", detail=str(exc.strerror)))
            return None
        if not stat.S_ISREG(st.st_mode):
            kind = mode_kind(st.st_mode)
            if kind == DIRECTORY:
                self.plan.unreachable.append(Unreachable(path, "not-a-file"))
            else:
                reason = "special-file" if kind in _NO_CONTENT else "device"
                self.plan.unreachable.append(Unreachable(path, reason, detail=kind))
            return None
        if not os.access(path, os.R_OK):
            self.plan.unreachable.append(Unreachable(path, "unreadable", detail="permission"))
            return None
        allocated = getattr(st, "st_blocks", 0) * 512 or st.st_size
        entry = PlannedFile(
            path,
            role or _role_by_name(path),
            st.st_size,
            st.st_mtime_ns,
            min(allocated, st.st_size),
            st.st_dev,
        )
        self.by_real[real] = entry
        self.plan.files.append(entry)
        return entry

    def add_any(self, path: str) -> None:
        """A file of a folder or given directly: disks bring chains, configs bring disks."""
        lower = path.lower()
        if lower.endswith(DISK_SUFFIXES) or probe_identity(path) is not None:
            self.add_chain(path, referenced_by=None)
        elif lower.endswith(RUNTIME_SUFFIXES):
            self.add(path, ROLE_RUNTIME)
        elif looks_like_config(path):
            self.add(path, ROLE_CONFIG)
            self.add_config_disks(path)
        else:
            self.add(path)

    def add_chain(self, path: str, referenced_by: str | None) -> None:
        real = os.path.realpath(path)
        if real in self.chained:
            return
        self.chained.add(real)
        try:
            chain = resolve_chain(path, self.search)
        except HvrescueError:
            # Not openable as a disk at all: still preserved, as what its name says.
            self.add(path)
            return
        try:
            previous: PlannedFile | None = None
            for layer in chain.layers:
                role = ROLE_DIFF if layer.is_differencing else ROLE_BASE
                if not layer.readable:
                    role = _role_by_name(layer.path)
                entry = self.add(layer.path, role)
                if entry is None:
                    previous = None
                    continue
                if entry.role == ROLE_OTHER:
                    entry.role = role
                if previous is not None:
                    previous.parent = entry.source
                previous = entry
                self.chained.add(os.path.realpath(layer.path))
            last = chain.layers[-1]
            if last.readable and last.is_differencing:
                ref = last.parent_ref
                locators = "; ".join(v for _, v in ref.paths) if ref else ""
                self.plan.unreachable.append(
                    Unreachable(None, "parent-missing", referenced_by=last.path, detail=locators)
                )
        finally:
            chain.close()

    def add_config_disks(self, path: str) -> None:
        try:
            config = read_config(path)
        except ConfigUnavailable as exc:
            self.plan.notes.append({"key": f"preserve.config.{exc.reason}", "path": path})
            return
        except HvrescueError:
            return
        for name in [d.path for d in config.disks] + config.state_files:
            found = next(
                (
                    c
                    for c in candidate_paths(path, "absolute_win32_path", name)
                    if os.path.isfile(c)
                ),
                None,
            )
            if found is None:
                reason = (
                    "config-disk-missing"
                    if name.lower().endswith(DISK_SUFFIXES)
                    else ("config-file-missing")
                )
                self.plan.unreachable.append(Unreachable(None, reason, path, name))
            elif found.lower().endswith(DISK_SUFFIXES):
                self.add_chain(found, referenced_by=path)
            else:
                self.add(found)

    def add_folder(self, folder: str) -> None:
        def onerror(exc: OSError) -> None:
            self.plan.unreachable.append(
                Unreachable(exc.filename, "unlistable", detail=str(exc.strerror))
            )

        self.walked.append(os.path.realpath(folder))
        for root, dirs, names in os.walk(folder, onerror=onerror):
            # A link to a folder is not descended (nor, on Windows, a junction, which
            # os.walk of Python 3.11 would descend): it is recorded like a link to a file.
            for name in list(dirs):
                if _walk_kind(os.path.join(root, name)) != DIRECTORY:
                    dirs.remove(name)
                    names.append(name)
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(root, name)
                kind = _walk_kind(path)
                if kind == SYMLINK:
                    self.links.append(path)
                elif kind in (REGULAR, MISSING, OTHER):
                    self.add_any(path)
                else:  # never opened: a FIFO would block, a device is not a file of the VM
                    reason = "special-file" if kind in _NO_CONTENT else "device"
                    self.plan.unreachable.append(Unreachable(path, reason, detail=kind))

    def resolve_links(self) -> None:
        """Links met in walks, once everything else is planned: a link whose target was
        copied anyway (it lies in the tree, or a chain or configuration named it) is noted;
        one whose target was not copied leaves the copy incomplete, and says where it points."""
        for path in self.links:
            try:
                target = os.readlink(path)
            except OSError:
                target = "-"
            real = os.path.realpath(path)
            if real in self.by_real or (os.path.isdir(real) and self._in_walked(real)):
                reason = "link-copied"
            elif not os.path.exists(path):
                reason = "link-dangling"
            else:
                reason = "link"
            self.plan.unreachable.append(Unreachable(path, reason, detail=target))

    def _in_walked(self, real: str) -> bool:
        return any(real == w or real.startswith(w.rstrip(os.sep) + os.sep) for w in self.walked)


def _walk_kind(path: str) -> str:
    """What a walk met at ``path``, without following it; a Windows junction is a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return OTHER
    return SYMLINK if is_link(st) else mode_kind(st.st_mode)


def build_plan(sources: list[str], search: list[str] | None = None) -> Plan:
    """Every file to preserve for ``sources`` (folders and files), with roles and parents."""
    sources = [os.path.abspath(s) for s in sources]
    search_dirs = list(search or [])
    for s in sources:
        folder = s if os.path.isdir(s) else os.path.dirname(s)
        if folder not in search_dirs:
            search_dirs.append(folder)
    collector = _Collector(search_dirs)
    for s in sources:
        if os.path.isdir(s):
            collector.add_folder(s)
        elif os.path.lexists(s):
            # Named by the user: a link is followed (to a regular file only, see add).
            collector.add_any(s)
        else:
            collector.plan.unreachable.append(Unreachable(s, "missing"))
    collector.resolve_links()
    plan = collector.plan
    anchors = [os.path.dirname(os.path.normpath(s)) for s in sources]
    anchors += [os.path.dirname(f.source) for f in plan.files]
    plan.root = _common_root(anchors)
    for f in plan.files:
        f.rel = _relative(f.source, plan.root)
    plan.files.sort(key=lambda f: f.rel)
    return plan


def _common_root(paths: list[str]) -> str:
    try:
        return os.path.commonpath(paths) if paths else os.sep
    except ValueError:  # different drives (Windows)
        return ""


def _relative(path: str, root: str) -> str:
    if root:
        rel = os.path.relpath(path, root)
    else:
        drive, rest = os.path.splitdrive(path)
        rel = os.path.join(drive.rstrip(":\\/") or "root", rest.lstrip("\\/"))
    return rel.replace(os.sep, "/")
