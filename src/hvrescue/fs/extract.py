"""Copy files out of a guest filesystem into DIR, safely.

Every name from the image is made safe before it touches the host (see fs.names): separators,
NUL and control characters, characters Windows forbids, `.` and `..`, trailing dots and
spaces, reserved device names, overlong names; two names of one folder that would become one
output name (also when only their case differs) are numbered. A renamed file says so in the
manifest, with its exact original name. Folders are walked once (fs.walk), at any depth;
only folders created here are entered, so nothing lands outside DIR.

Files are written under a temporary name and linked into place (never over an existing file),
with the image's modification and access times; creation times go to the manifest. Named
streams (NTFS alternate data streams) are written beside their file on request. Each file
fails alone: what could not be written is a ``skipped`` entry with its reason, and the walk
goes on; the manifest lists every file either written or skipped. Only a destination that is
full or read-only stops the extraction (with that error, and no manifest).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.linuxfs import LinuxVolume, link_leaves
from hvrescue.fs.names import HOST_NAME_MAX, NameTable, display_name, fit, safe_name
from hvrescue.fs.volume import Entry, Stream, Volume
from hvrescue.fs.walk import LOOP, SKIP, TOO_DEEP, Walk
from hvrescue.io.atomic import atomic_output, link_into_place, output_error
from hvrescue.io.nofollow import is_link
from hvrescue.platform import long_path, on_windows, path_limit, set_times
from hvrescue.preserve.manifest import base_record

# The suffix of a file whose data touches undefined ranges of the disk (see the manifest).
INCOMPLETE_SUFFIX = ".incomplete"
_MAX_LISTED = 10_000  # metadata entries and renamed folders named in the manifest

__all__ = ["INCOMPLETE_SUFFIX", "Extracted", "Extractor", "safe_name"]


@dataclass
class Extracted:
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Out:
    """Where a folder's entries go: its output folder, or why they cannot be written."""

    path: str | None
    renamed: bool
    blocked: str | None = None


# Failures of the whole destination, not of one file: the extraction stops with them (every
# further file would fail the same way), leaving complete files and no manifest.
_DESTINATION_FULL = frozenset(
    {"error.output.no-space", "error.output.quota", "error.output.read-only"}
)


def _stop_if_destination(exc: OSError, path: str) -> None:
    if exc.errno in (errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)):
        raise output_error(exc, path) from exc


def _cost(path: str) -> int:
    if on_windows():
        return len(path.encode("utf-16-le", errors="surrogatepass")) // 2
    return len(os.fsencode(path))


class Extractor:
    def __init__(
        self, volume: Volume | LinuxVolume, to_dir: str, label: str, streams: bool
    ) -> None:
        self.volume = volume
        self.root = long_path(os.path.realpath(to_dir))
        self.label = safe_name(label)
        self.streams = streams
        self.result = Extracted()
        self._dirs: list[tuple[str, Entry]] = []
        self._limit = path_limit(self.root)
        # Undefined ranges met reading the filesystem's structures (for the manifest).
        self.undefined_met: list[Any] = []
        self.deleted = 0  # names of deleted entries met in the folders walked
        self.metadata: list[str] = []  # NTFS metadata at the root, left out unless asked for
        self.renamed_folders: list[dict[str, str]] = []
        # Symbolic links and special files (ext, XFS) are recorded, never created or followed.
        self.links: list[dict[str, Any]] = []
        self.links_count = 0  # all of them; at most _MAX_LISTED are listed

    def _source(self, entry: Entry) -> str:
        return f"{self.volume.id}:{entry.path}"

    def _rel(self, path: str) -> str:
        prefix = os.path.join(self.root, "")
        rel = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, self.root)
        return rel.replace(os.sep, "/")

    def _skip(self, entry: Entry, reason: str, target: str | None, **extra: Any) -> None:
        record: dict[str, Any] = {"source": self._source(entry), "path": target, "reason": reason}
        record.update(extra)
        self.result.skipped.append(record)

    # ------------------------------------------------------------------ folders
    def _fits(self, folder: str) -> bool:
        """Any name (up to the host's 255 bytes) can be created in ``folder``."""
        return _cost(folder) + 1 + HOST_NAME_MAX < self._limit

    def _make_dir(self, path: str) -> str | None:
        """Create the output folder ``path`` (or take the one there): None when done, else
        the reason its entries cannot be written."""
        if not self._fits(path):
            return "error.extract.path-too-long"
        try:
            os.mkdir(path)
        except FileExistsError:
            try:
                st = os.lstat(path)
            except OSError:
                return "error.extract.folder"
            if is_link(st) or not stat.S_ISDIR(st.st_mode):  # a file, a link, a junction
                return "error.extract.not-a-folder"
        except OSError as exc:
            _stop_if_destination(exc, path)
            return "error.extract.folder"
        return None

    def _start(self, spec: str, top: Entry) -> _Out:
        """The output place of the entry a path names: DIR/LABEL/its path, made safe."""
        parts = [p for p in spec.split("/") if p]
        safe = [safe_name(p) for p in parts]
        path = os.path.join(self.root, self.label)
        blocked = self._make_dir(path)
        for name in safe[:-1] if not top.is_dir else safe:
            if blocked is None:
                path = os.path.join(path, name)
                blocked = self._make_dir(path)
        if not top.is_dir and safe:
            path = os.path.join(path, safe[-1])
        return _Out(None if blocked else path, safe != parts, blocked)

    def extract(self, path: str) -> None:
        spec = _norm(path)
        top = self.volume.stat(spec)
        out = self._start(spec, top)
        if not top.is_dir:
            self._file(top, out)
            return
        if out.path is not None:
            self._dirs.append((out.path, top))
        top.tag = out
        walk = Walk(self.volume)
        for folder, children in walk.folders(top):
            self._folder(folder, children)
        self.deleted += walk.deleted
        for issue in walk.issues:
            self.result.skipped.append(
                {
                    "source": f"{self.volume.id}:{issue.path}",
                    "path": None,
                    "reason": issue.reason,
                }
            )
        # Folder times last, once their contents are written.
        for target, entry in reversed(self._dirs):
            _set_times(target, entry)
        self._dirs.clear()

    def _folder(self, folder: Entry, children: list[Entry]) -> None:
        out: _Out = folder.tag
        folder.tag = None
        if folder.inode == self.volume.root_inode and self.volume.type == "ntfs":
            kept = []
            for child in children:
                if child.original.startswith("$"):
                    # NTFS metadata ($MFT, $Extend\...) only when asked for by name.
                    child.status = SKIP
                    if len(self.metadata) < _MAX_LISTED:
                        self.metadata.append(self._source(child))
                else:
                    kept.append(child)
            children = kept
        names = NameTable().assign(child.original for child in children)
        for child, name in zip(children, names, strict=True):
            renamed = out.renamed or name != child.original
            target = os.path.join(out.path, name) if out.path is not None else None
            place = _Out(target, renamed, out.blocked)
            if not child.is_dir:
                self._file(child, place, name != child.original)
                continue
            if child.status in (LOOP, TOO_DEEP):
                reason = "error.extract.loop" if child.status == LOOP else "error.extract.too-deep"
                self._skip(child, reason, target)
                continue
            if target is not None:
                place.blocked = self._make_dir(target)
                if place.blocked is None:
                    self._dirs.append((target, child))
                else:
                    place.path = None
            if name != child.original and len(self.renamed_folders) < _MAX_LISTED:
                self.renamed_folders.append(
                    {
                        "source": self._source(child),
                        "path": self._rel(target) if target else "",
                        "original": display_name(child.original),
                    }
                )
            child.tag = place

    # ------------------------------------------------------------------ files
    def _file(self, entry: Entry, out: _Out, own_rename: bool = False) -> None:
        target = out.path
        if entry.kind is not None:  # a symbolic link or a special file: recorded only
            self._link(entry, target)
            return
        if target is None:
            self._skip(entry, out.blocked or "error.extract.folder", None)
            return
        record: dict[str, Any] = {
            "path": self._rel(target),
            "source": self._source(entry),
            "size": entry.size,
            "created": entry.created,
            "modified": entry.modified,
            "accessed": entry.accessed,
            "changed": entry.changed,
            "renamed": out.renamed,
        }
        if entry.mode is not None:
            record.update(mode=f"{entry.mode:o}", uid=entry.uid, gid=entry.gid)
        if own_rename or out.renamed:
            record["original"] = display_name(entry.original)
        mark = len(self.volume.disk.touched)
        try:
            if os.path.lexists(target):
                self._skip(entry, "exists", target)
                return
            record["sha256"] = self._write(target, self.volume.read(entry))
            gaps = self.volume.file_gaps(entry, since=mark)
            if gaps:
                target = self._mark_incomplete(target, record, gaps)
        except InputError as exc:
            if exc.key == "error.output.exists":
                self._skip(entry, "exists", target)
            else:
                extra = {"offset": exc.params["offset"]} if "offset" in exc.params else {}
                self._skip(entry, exc.key, target, **extra)
            return
        except HvrescueError as exc:  # our output failed (permission, name refused...)
            if exc.key in _DESTINATION_FULL:
                raise
            self._skip(entry, "error.extract.write", target, detail=exc.key)
            return
        except OSError as exc:
            _stop_if_destination(exc, target)
            self._skip(entry, "error.extract.write", target, errno=exc.errno)
            return
        _set_times(target, entry)
        if self.streams:
            record["streams"] = []
            for stream in entry.streams:
                if stream.name:
                    self._stream(entry, stream, target, record)
        self.result.files.append(record)

    def _link(self, entry: Entry, target: str | None) -> None:
        self.links_count += 1
        if len(self.links) >= _MAX_LISTED:
            return
        record: dict[str, Any] = {
            "source": self._source(entry),
            "path": self._rel(target) if target else None,
            "type": entry.kind,
            "mode": f"{entry.mode or 0:o}",
            "uid": entry.uid,
            "gid": entry.gid,
            "modified": entry.modified,
        }
        if entry.link is not None:
            record["target"] = entry.link
            record["leaves_volume"] = link_leaves(entry.path, entry.link)
        self.links.append(record)

    def _stream(self, entry: Entry, stream: Stream, target: str, record: dict[str, Any]) -> None:
        shown = display_name(stream.name)
        base = os.path.basename(target) + ".stream-"
        spath = os.path.join(
            os.path.dirname(target),
            fit(base + safe_name(stream.name), whole=base + stream.name),
        )
        source = f"{self._source(entry)}:{shown}"
        mark = len(self.volume.disk.touched)
        srecord: dict[str, Any] = {"name": shown, "size": stream.size}
        try:
            if os.path.lexists(spath):
                self.result.skipped.append({"source": source, "path": spath, "reason": "exists"})
                return
            srecord["sha256"] = self._write(spath, self.volume.read(entry, stream))
            sgaps = self.volume.file_gaps(entry, stream, since=mark)
            if sgaps:
                spath = self._mark_incomplete(spath, srecord, sgaps, source)
        except HvrescueError as exc:
            if exc.key in _DESTINATION_FULL:
                raise
            reason = "exists" if exc.key == "error.output.exists" else exc.key
            self.result.skipped.append({"source": source, "path": spath, "reason": reason})
            return
        except OSError as exc:
            _stop_if_destination(exc, spath)
            reason = "error.extract.write"
            self.result.skipped.append(
                {"source": source, "path": spath, "reason": reason, "errno": exc.errno}
            )
            return
        srecord["path"] = self._rel(spath)
        _set_times(spath, entry)
        record["streams"].append(srecord)

    def _mark_incomplete(
        self, target: str, record: dict[str, Any], gaps: list[Any], source: str | None = None
    ) -> str:
        """A file whose data touches undefined ranges is never handed out as if whole: it is
        renamed ``NAME.incomplete`` and its manifest record says which disk ranges and why."""
        new = target + INCOMPLETE_SUFFIX
        n = 1
        while os.path.lexists(new):
            n += 1
            new = f"{target}{INCOMPLETE_SUFFIX}-{n}"
        link_into_place(target, new)
        record["complete"] = False
        record["undefined"] = [g.as_dict() for g in gaps[:1000]]
        record["undefined_bytes"] = sum(g.length for g in gaps)
        record["path"] = self._rel(new)
        self.result.incomplete.append(
            {
                "source": source or record["source"],
                "path": record["path"],
                "undefined": len(gaps),
            }
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
            "renamed_folders": self.renamed_folders,
            "metadata_not_extracted": self.metadata,
            "deleted_entries": self.deleted,
            "partition": self.volume.partition.as_dict(),
            "volume": self.volume.id,
            "filesystem": self.volume.type,
            "notes": list(getattr(self.volume, "notes", [])),
            "links": self.links,
            "links_count": self.links_count,
            **base_record(argv),
        }
        path = os.path.join(self.root, name)
        text = json.dumps(data, ensure_ascii=False, indent=2)
        with atomic_output(path) as fd:
            view = memoryview(text.encode("utf-8", errors="backslashreplace") + b"\n")
            while view:
                view = view[os.write(fd, view) :]
        return path


def _set_times(path: str, entry: Entry) -> None:
    if entry.mtime_ns is None:
        return
    atime = entry.atime_ns if entry.atime_ns is not None else entry.mtime_ns
    # Windows has no utime without following links (the platform uses the path there);
    # ``path`` is a file or folder we created ourselves, never a link.
    with contextlib.suppress(OSError):
        set_times(path, atime, entry.mtime_ns, follow_symlinks=False)


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)
