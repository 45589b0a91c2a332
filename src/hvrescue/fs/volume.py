"""Files inside a partition (NTFS, FAT for EFI system partitions, and whatever else The Sleuth
Kit knows), read through pytsk3 over the engine's :class:`Disk`, read-only: no journal is
replayed into the image and nothing is repaired. See docs/decisions.md for the choice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.partitions import Partition
from hvrescue.vdisk.disk import Disk, merge_gaps
from hvrescue.vdisk.layer import Gap

CHUNK = 4 * 1024 * 1024
MAX_WALK = 5_000_000
MAX_DEPTH = 256


def _tsk() -> Any:
    try:
        import pytsk3
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError("error.fs.no-library") from exc
    return pytsk3


def _when(seconds: int, nanos: int) -> str | None:
    if not seconds:
        return None
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(
            microseconds=(nanos or 0) // 1000
        )
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Stream:
    name: str  # "" for the unnamed (default) data stream
    size: int
    attr_type: int
    attr_id: int


@dataclass
class Entry:
    path: str  # "/Windows/System32/config/SYSTEM"
    name: str
    is_dir: bool
    size: int
    inode: int
    created: str | None
    modified: str | None
    accessed: str | None
    changed: str | None
    mtime_ns: int | None
    atime_ns: int | None
    streams: list[Stream] = field(default_factory=list)
    raw_name: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "type": "directory" if self.is_dir else "file",
            "size": self.size,
            "inode": self.inode,
            "created": self.created,
            "modified": self.modified,
            "accessed": self.accessed,
            "changed": self.changed,
            "streams": [{"name": s.name, "size": s.size} for s in self.streams if s.name],
        }


class Volume:
    def __init__(self, disk: Disk, partition: Partition) -> None:
        tsk = _tsk()
        self.disk = disk
        self.partition = partition
        self._tsk = tsk
        outer = self

        class _Image(tsk.Img_Info):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__(url="", type=tsk.TSK_IMG_TYPE_EXTERNAL)

            def close(self) -> None:
                pass

            def read(self, offset: int, size: int) -> bytes:
                end = min(offset + size, outer.partition.size)
                if offset >= end:
                    return b""
                return outer.disk.read(outer.partition.offset + offset, end - offset)

            def get_size(self) -> int:
                return outer.partition.size

        self._img = _Image()
        try:
            self.fs = tsk.FS_Info(self._img, offset=0)
        except OSError as exc:
            raise InputError(
                "error.fs.no-filesystem", partition=partition.index, reason=str(exc)[:200]
            ) from exc
        self.type = self._fs_type()

    def _fs_type(self) -> str:
        tsk = self._tsk
        ftype = int(self.fs.info.ftype)
        names = {
            tsk.TSK_FS_TYPE_NTFS: "ntfs",
            tsk.TSK_FS_TYPE_FAT12: "fat12",
            tsk.TSK_FS_TYPE_FAT16: "fat16",
            tsk.TSK_FS_TYPE_FAT32: "fat32",
            tsk.TSK_FS_TYPE_EXFAT: "exfat",
        }
        return names.get(ftype, f"tsk-{ftype:#x}")

    # ------------------------------------------------------------------ entries
    def _entry(self, f: Any, path: str) -> Entry:
        tsk = self._tsk
        meta = f.info.meta
        raw = f.info.name.name if f.info.name is not None else b""
        name = raw.decode("utf-8", errors="replace") if raw else path.rsplit("/", 1)[-1]
        is_dir = meta is not None and int(meta.type) == int(tsk.TSK_FS_META_TYPE_DIR)
        streams: list[Stream] = []
        size = int(meta.size) if meta is not None else 0
        if meta is not None and not is_dir:
            try:
                for attr in f:
                    info = attr.info
                    if int(info.type) in (
                        int(tsk.TSK_FS_ATTR_TYPE_NTFS_DATA),
                        int(tsk.TSK_FS_ATTR_TYPE_DEFAULT),
                    ):
                        aname = info.name.decode("utf-8", "replace") if info.name else ""
                        streams.append(Stream(aname, int(info.size), int(info.type), int(info.id)))
            except OSError:
                pass

        def ns(sec_attr: str) -> int | None:
            if meta is None:
                return None
            sec = int(getattr(meta, sec_attr, 0) or 0)
            if not sec:
                return None
            return sec * 1_000_000_000 + int(getattr(meta, sec_attr + "_nano", 0) or 0)

        def iso(sec_attr: str) -> str | None:
            if meta is None:
                return None
            return _when(
                int(getattr(meta, sec_attr, 0) or 0), int(getattr(meta, sec_attr + "_nano", 0) or 0)
            )

        return Entry(
            path=path or "/",
            name=name,
            is_dir=is_dir,
            size=size,
            inode=int(meta.addr) if meta is not None else 0,
            created=iso("crtime"),
            modified=iso("mtime"),
            accessed=iso("atime"),
            changed=iso("ctime"),
            mtime_ns=ns("mtime"),
            atime_ns=ns("atime"),
            streams=streams,
            raw_name=raw,
        )

    def _open(self, path: str) -> Any:
        try:
            return self.fs.open(path or "/")
        except OSError as exc:
            raise InputError("error.fs.no-such-path", path=path) from exc

    def stat(self, path: str) -> Entry:
        return self._entry(self._open(path), _norm(path))

    def listdir(self, path: str) -> list[Entry]:
        path = _norm(path)
        f = self._open(path)
        entry = self._entry(f, path)
        if not entry.is_dir:
            return [entry]
        out: list[Entry] = []
        try:
            directory = f.as_directory()
        except OSError as exc:
            raise InputError("error.fs.unreadable-dir", path=path) from exc
        for child in directory:
            if child.info.name is None:
                continue
            raw = child.info.name.name
            if raw in (b".", b".."):
                continue
            name = raw.decode("utf-8", errors="replace")
            out.append(self._entry(child, (path.rstrip("/") + "/" + name)))
            if len(out) >= MAX_WALK:
                break
        out.sort(key=lambda e: e.name.lower())
        return out

    def walk(self, path: str) -> Iterator[Entry]:
        """Every entry under ``path`` (itself included), depth first, bounded."""
        root = self.stat(path)
        yield root
        if not root.is_dir:
            return
        count = 0
        stack = [(root.path, 0)]
        seen = {root.inode}
        while stack:
            current, depth = stack.pop()
            try:
                children = self.listdir(current)
            except HvrescueError:
                continue
            for child in children:
                count += 1
                if count > MAX_WALK:
                    return
                yield child
                if child.is_dir and depth < MAX_DEPTH and child.inode not in seen:
                    seen.add(child.inode)
                    stack.append((child.path, depth + 1))

    def data_runs(self, entry: Entry, stream: Stream | None = None) -> list[tuple[int, int]] | None:
        """Where a file's (or stream's) data lies on the disk, as (disk offset, length); None
        when the data has no runs of its own (resident in its metadata record) or they cannot
        be read."""
        tsk = self._tsk
        try:
            f = self._open(entry.path)
            block = int(self.fs.info.block_size)
            size = stream.size if stream is not None else entry.size
            runs: list[tuple[int, int]] = []
            for attr in f:
                info = attr.info
                if stream is not None:
                    if int(info.type) != stream.attr_type or int(info.id) != stream.attr_id:
                        continue
                elif int(info.type) not in (
                    int(tsk.TSK_FS_ATTR_TYPE_NTFS_DATA),
                    int(tsk.TSK_FS_ATTR_TYPE_DEFAULT),
                ) or (info.name and info.name not in (b"", b"$Data")):
                    continue
                if not int(info.flags) & int(tsk.TSK_FS_ATTR_NONRES):
                    return None
                holes = int(tsk.TSK_FS_ATTR_RUN_FLAG_SPARSE | tsk.TSK_FS_ATTR_RUN_FLAG_FILLER)
                for run in attr:
                    if int(run.flags) & holes:
                        continue
                    start = int(run.offset) * block
                    if start >= size:
                        continue
                    length = min(int(run.len) * block, size - start)
                    runs.append((self.partition.offset + int(run.addr) * block, length))
                return runs
        except (OSError, HvrescueError):
            return None
        return None

    def file_gaps(
        self, entry: Entry, stream: Stream | None = None, since: int | None = None
    ) -> list[Gap]:
        """The undefined ranges of the disk that the file's data touches: those the metadata
        names, and those reading met (read errors). For data without runs of its own, whatever
        undefined range was met since ``since`` (an index into ``disk.touched``)."""
        known = self.disk.undefined() + self.disk.touched
        runs = self.data_runs(entry, stream)
        if runs is None:
            met = self.disk.touched[since:] if since is not None else []
            return merge_gaps(met)
        out = []
        for g in known:
            for lo, n in runs:
                a, b = max(lo, g.offset), min(lo + n, g.offset + g.length)
                if b > a:
                    out.append(Gap(a, b - a, g.cause, g.path))
        return merge_gaps(out)

    def read(self, entry: Entry, stream: Stream | None = None) -> Iterator[bytes]:
        """The content of a file (or one of its streams), in chunks."""
        f = self._open(entry.path)
        size = stream.size if stream is not None else entry.size
        pos = 0
        while pos < size:
            n = min(CHUNK, size - pos)
            try:
                if stream is not None:
                    data = f.read_random(pos, n, stream.attr_type, stream.attr_id)
                else:
                    data = f.read_random(pos, n)
            except OSError as exc:
                raise InputError("error.fs.read", path=entry.path, offset=pos) from exc
            if not data:
                break
            yield data
            pos += len(data)


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)
