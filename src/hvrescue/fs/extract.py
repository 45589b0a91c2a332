"""Copy files out of a guest filesystem into DIR, safely.

Every name from the image is made safe before it touches the host: separators, NUL and control
characters, characters Windows forbids, `.` and `..`, trailing dots and spaces, and reserved
device names (CON, NUL, COM1, ...) are replaced, and the final path is checked to lie inside DIR.
Files are written under a temporary name and linked into place (never over an existing file),
with the image's modification and access times; creation times go to the manifest. Named
streams (NTFS alternate data streams) are written beside their file on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import InputError
from hvrescue.fs.volume import Entry, Volume
from hvrescue.io.atomic import atomic_output
from hvrescue.preserve.manifest import base_record

RESERVED = (
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
    | {f"{p}{c}" for p in ("COM", "LPT") for c in "¹²³"}
)
_BAD = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
MAX_NAME_BYTES = 240


def safe_name(name: str) -> str:
    """A host-safe file name for ``name`` (unchanged when it already is one)."""
    out = _BAD.sub("_", name)
    if out in ("", ".", ".."):
        out = "_" + out
    stripped = out.rstrip(". ")
    if stripped != out:
        out = stripped + "_" * (len(out) - len(stripped))
    stem = out.split(".", 1)[0].upper().rstrip(" ")
    if stem in RESERVED:
        out = "_" + out
    raw = out.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        digest = hashlib.sha256(raw).hexdigest()[:12]
        out = raw[: MAX_NAME_BYTES - 13].decode("utf-8", errors="ignore") + "~" + digest
    return out


# The suffix of a file whose data touches undefined ranges of the disk (see the manifest).
INCOMPLETE_SUFFIX = ".incomplete"


@dataclass
class Extracted:
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


class Extractor:
    def __init__(self, volume: Volume, to_dir: str, label: str, streams: bool) -> None:
        self.volume = volume
        self.root = os.path.realpath(to_dir)
        self.label = safe_name(label)
        self.streams = streams
        self.result = Extracted()
        self._dirs: list[tuple[str, Entry]] = []
        # Undefined ranges met reading the filesystem's structures (for the manifest).
        self.undefined_met: list[Any] = []

    def target(self, entry: Entry) -> tuple[str, bool]:
        parts = [p for p in entry.path.split("/") if p]
        safe = [safe_name(p) for p in parts]
        path = os.path.join(self.root, self.label, *safe)
        real_parent = os.path.realpath(os.path.dirname(path))
        if not _inside(real_parent, self.root) or not _inside(os.path.abspath(path), self.root):
            raise InputError("error.extract.outside", path=entry.path)
        return path, safe != parts

    def extract(self, path: str) -> None:
        for entry in self.volume.walk(path):
            top = entry.path.split("/")[1] if entry.path.count("/") >= 1 else ""
            if entry.is_dir and top.startswith("$") and not _norm(path).startswith("/" + top):
                continue
            if entry.is_dir:
                target, _renamed = self.target(entry)
                os.makedirs(target, exist_ok=True)
                self._dirs.append((target, entry))
                continue
            top = entry.path.split("/")[1] if entry.path.count("/") >= 1 else ""
            if top.startswith("$") and not _norm(path).startswith("/" + top):
                continue  # NTFS metadata ($MFT, $Extend\...) only when asked for by name
            self._file(entry)
        # Directory times last, once their contents are written.
        for target, entry in reversed(self._dirs):
            _set_times(target, entry)

    def _file(self, entry: Entry) -> None:
        target, renamed = self.target(entry)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            self.result.skipped.append({"source": entry.path, "path": target, "reason": "exists"})
            return
        record: dict[str, Any] = {
            "path": os.path.relpath(target, self.root).replace(os.sep, "/"),
            "source": f"{self.volume.partition.index}:{entry.path}",
            "size": entry.size,
            "created": entry.created,
            "modified": entry.modified,
            "accessed": entry.accessed,
            "changed": entry.changed,
            "renamed": renamed,
        }
        mark = len(self.volume.disk.touched)
        try:
            record["sha256"] = self._write(target, self.volume.read(entry))
        except InputError as exc:
            self.result.skipped.append({"source": entry.path, "path": target, "reason": exc.key})
            return
        gaps = self.volume.file_gaps(entry, since=mark)
        if gaps:
            target = self._mark_incomplete(target, record, gaps)
        _set_times(target, entry)
        if self.streams:
            record["streams"] = []
            for stream in entry.streams:
                if not stream.name:
                    continue
                spath = target + ".stream-" + safe_name(stream.name)
                if os.path.lexists(spath):
                    continue
                mark = len(self.volume.disk.touched)
                digest = self._write(spath, self.volume.read(entry, stream))
                srecord: dict[str, Any] = {
                    "name": stream.name,
                    "size": stream.size,
                    "sha256": digest,
                }
                sgaps = self.volume.file_gaps(entry, stream, since=mark)
                if sgaps:
                    spath = self._mark_incomplete(spath, srecord, sgaps)
                srecord["path"] = os.path.relpath(spath, self.root).replace(os.sep, "/")
                _set_times(spath, entry)
                record["streams"].append(srecord)
        self.result.files.append(record)

    def _mark_incomplete(self, target: str, record: dict[str, Any], gaps: list[Any]) -> str:
        """A file whose data touches undefined ranges is never handed out as if whole: it is
        renamed ``NAME.incomplete`` and its manifest record says which disk ranges and why."""
        new = target + INCOMPLETE_SUFFIX
        n = 1
        while os.path.lexists(new):
            n += 1
            new = f"{target}{INCOMPLETE_SUFFIX}-{n}"
        os.rename(target, new)
        record["complete"] = False
        record["undefined"] = [g.as_dict() for g in gaps[:1000]]
        record["undefined_bytes"] = sum(g.length for g in gaps)
        record["path"] = os.path.relpath(new, self.root).replace(os.sep, "/")
        self.result.incomplete.append(
            {"source": record["source"], "path": record["path"], "undefined": len(gaps)}
        )
        return new

    @staticmethod
    def _write(target: str, chunks: Any) -> str:
        h = hashlib.sha256()
        with atomic_output(target) as fd:
            for chunk in chunks:
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        return h.hexdigest()

    def write_manifest(self, argv: list[str]) -> str:
        name = "extract-manifest.json"
        n = 1
        while os.path.lexists(os.path.join(self.root, name)):
            n += 1
            name = f"extract-manifest-{n}.json"
        data = {
            "files": self.result.files,
            "skipped": self.result.skipped,
            "incomplete": self.result.incomplete,
            "undefined_met": [g.as_dict() for g in self.undefined_met[:1000]],
            "partition": self.volume.partition.as_dict(),
            "filesystem": self.volume.type,
            **base_record(argv),
        }
        path = os.path.join(self.root, name)
        with atomic_output(path) as fd:
            os.write(fd, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8") + b"\n")
        return path


def _set_times(path: str, entry: Entry) -> None:
    if entry.mtime_ns is None:
        return
    atime = entry.atime_ns if entry.atime_ns is not None else entry.mtime_ns
    try:
        os.utime(path, ns=(atime, entry.mtime_ns), follow_symlinks=False)
    except NotImplementedError:
        # Windows has no utime without following links; ``path`` is a file or folder we
        # created ourselves, never a link, so following changes nothing.
        with contextlib.suppress(OSError):
            os.utime(path, ns=(atime, entry.mtime_ns))
    except OSError:
        pass


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)
