"""Files inside a partition (NTFS, FAT for EFI system partitions, and whatever else The Sleuth
Kit knows), read through pytsk3 over the engine's :class:`Disk`, read-only: no journal is
replayed into the image and nothing is repaired. See docs/decisions.md for the choice.

Folders are read by their address (``open_dir(inode=...)``) and files are opened by theirs
(``open_meta(inode=...)``): a path is looked up from the root once, for the path a person
gives, never per file, so listing or reading a folder of 100,000 files costs its files."""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.names import display_name
from hvrescue.fs.ntfs_names import faithful_name, parents
from hvrescue.fs.partitions import Partition
from hvrescue.fs.source import MappedSource
from hvrescue.vdisk.disk import Disk, merge_gaps
from hvrescue.vdisk.layer import Gap

CHUNK = 4 * 1024 * 1024
MAX_WALK = 5_000_000  # entries of one walk or listing
# Windows paths have at most 32,767 UTF-16 units, so a tree deeper than this cannot be a
# Windows tree; deeper folders are reported (see fs.walk), never left out silently.
MAX_DEPTH = 16_384


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


@dataclass(slots=True)
class Stream:
    name: str  # "" for the unnamed (default) data stream
    size: int
    attr_type: int
    attr_id: int


@dataclass(slots=True)
class Entry:
    path: str  # "/Windows/System32/config/SYSTEM" (names as display_name writes them)
    name: str  # printable (display_name); ``original`` is the exact name
    is_dir: bool
    size: int
    inode: int
    created: str | None
    modified: str | None
    accessed: str | None
    changed: str | None
    mtime_ns: int | None
    atime_ns: int | None
    streams: list[Stream]
    raw_name: bytes = b""
    original: str = ""  # the exact name (may hold NUL, "/", lone surrogates)
    parent: int = -1  # address of the folder that lists it (-1: looked up by path)
    depth: int = 0  # levels below the entry a walk started from
    status: str | None = None  # set by a walk: "loop" or "too-deep" for a folder not entered
    tag: Any = None  # for the walk's consumer (the extractor keeps its output folder here)
    # POSIX filesystems (ext, XFS): mode bits, owner, symbolic link target ("" when none);
    # kind "symlink" or "special" (device, FIFO, socket) for what is neither file nor folder.
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    link: str | None = None
    kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = self._base()
        if self.mode is not None:
            out.update(mode=f"{self.mode:o}", uid=self.uid, gid=self.gid)
            if self.link is not None:
                out["target"] = self.link
        return out

    def _base(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.kind or ("directory" if self.is_dir else "file"),
            "size": self.size,
            "inode": self.inode,
            "created": self.created,
            "modified": self.modified,
            "accessed": self.accessed,
            "changed": self.changed,
            "streams": [
                {"name": display_name(s.name), "size": s.size} for s in self.streams if s.name
            ],
        }


class Volume:
    def __init__(
        self, disk: Disk, partition: Partition, source: MappedSource | None = None, vid: str = ""
    ) -> None:
        tsk = _tsk()
        self.disk = disk
        self.partition = partition
        # Where the bytes come from: the partition, or an LVM logical volume inside it.
        self.source = source or MappedSource.whole(disk, partition.offset, partition.size)
        self.id = vid or str(partition.index)  # the volume's address (see fs.addressing)
        self._tsk = tsk
        outer = self

        class _Image(tsk.Img_Info):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__(url="", type=tsk.TSK_IMG_TYPE_EXTERNAL)

            def close(self) -> None:
                pass

            def read(self, offset: int, size: int) -> bytes:
                return outer.source.read(offset, size)

            def get_size(self) -> int:
                return outer.source.size

        self._img = _Image()
        try:
            self.fs = tsk.FS_Info(self._img, offset=0)
        except OSError as exc:
            raise InputError(
                "error.fs.no-filesystem", partition=partition.index, reason=str(exc)[:200]
            ) from exc
        self.type = self._fs_type()
        self.root_inode = int(self.fs.info.root_inum)
        self._data_types = (
            int(tsk.TSK_FS_ATTR_TYPE_NTFS_DATA),
            int(tsk.TSK_FS_ATTR_TYPE_DEFAULT),
        )
        self._fname_type = int(tsk.TSK_FS_ATTR_TYPE_NTFS_FNAME)
        self._dir_type = int(tsk.TSK_FS_META_TYPE_DIR)
        self._unalloc = int(tsk.TSK_FS_NAME_FLAG_UNALLOC)
        self._gap_cache: tuple[int, list[Gap], list[int]] | None = None

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
    def _entry(self, f: Any, path: str, folder: Entry | None = None) -> Entry:
        meta = f.info.meta
        raw = f.info.name.name if f.info.name is not None else b""
        name = raw.decode("utf-8", "surrogateescape") if raw else path.rsplit("/", 1)[-1]
        is_dir = meta is not None and int(meta.type) == self._dir_type
        streams: list[Stream] = []
        fnames: list[tuple[int, int]] = []  # (attribute id, size) of NTFS $FILE_NAME
        size = int(meta.size) if meta is not None else 0
        if meta is not None:
            try:
                for attr in f:
                    info = attr.info
                    kind = int(info.type)
                    if kind == self._fname_type:
                        fnames.append((int(info.id), int(info.size)))
                    elif not is_dir and kind in self._data_types:
                        aname = info.name.decode("utf-8", "surrogateescape") if info.name else ""
                        streams.append(Stream(aname, int(info.size), kind, int(info.id)))
            except OSError:
                pass
        if folder is not None and fnames and self.type == "ntfs":
            # The Sleuth Kit ends a name at NUL and replaces UTF-16 it cannot convert: the
            # exact name is read from the file's own $FILE_NAME in this folder.
            name = faithful_name(f, self._fname_type, fnames, folder.inode, name)
        if folder is not None:
            path = folder.path.rstrip("/") + "/" + display_name(name)

        def stamp(attr: str) -> tuple[int, int]:
            if meta is None:
                return 0, 0
            return int(getattr(meta, attr, 0) or 0), int(getattr(meta, attr + "_nano", 0) or 0)

        times = {a: stamp(a) for a in ("crtime", "mtime", "atime", "ctime")}

        def ns(attr: str) -> int | None:
            sec, nano = times[attr]
            return sec * 1_000_000_000 + nano if sec else None

        return Entry(
            path=path or "/",
            name=display_name(name),
            is_dir=is_dir,
            size=size,
            inode=int(meta.addr) if meta is not None else 0,
            created=_when(*times["crtime"]),
            modified=_when(*times["mtime"]),
            accessed=_when(*times["atime"]),
            changed=_when(*times["ctime"]),
            mtime_ns=ns("mtime"),
            atime_ns=ns("atime"),
            streams=streams,
            raw_name=raw,
            original=name,
            parent=folder.inode if folder is not None else -1,
            depth=folder.depth + 1 if folder is not None else 0,
        )

    def _open(self, path: str) -> Any:
        try:
            return self.fs.open(path or "/")
        except OSError as exc:
            raise InputError("error.fs.no-such-path", path=path) from exc

    def _file(self, entry: Entry) -> Any:
        """The file of ``entry``, by its address: no lookup from the root."""
        try:
            return self.fs.open_meta(inode=entry.inode)
        except OSError as exc:
            raise InputError("error.fs.no-such-path", path=entry.path) from exc

    def stat(self, path: str) -> Entry:
        return self._entry(self._open(path), _norm(path))

    def children(self, folder: Entry, counter: Any = None) -> Iterator[Entry]:
        """The entries of ``folder``, in the order the filesystem keeps them, read through the
        folder's address. Left out: the folder's implicit links to itself and its parent, and
        names of deleted entries (counted in ``counter.deleted`` when given). A real entry
        named ``.`` or ``..`` (a crafted NTFS can hold one) is kept."""
        try:
            directory = self.fs.open_dir(inode=folder.inode)
        except OSError as exc:
            raise InputError("error.fs.unreadable-dir", path=folder.path) from exc
        ntfs = self.type == "ntfs"
        ups: set[int] | None = None
        # The Sleuth Kit may list a file twice (from the index, and from the file's own
        # record when the names it compares differ, as for a cut long name): once is enough.
        seen: set[tuple[int, str]] = set()
        try:
            for child in directory:
                info = child.info.name
                if info is None:
                    continue
                raw = info.name
                if int(info.flags) & self._unalloc:
                    if counter is not None:
                        counter.deleted += 1
                    continue
                if raw in (b".", b".."):
                    addr = int(info.meta_addr)
                    if not ntfs or (raw == b"." and addr == folder.inode):
                        continue
                    if raw == b"..":
                        if ups is None:
                            ups = self._parents(folder)
                        if addr in ups:
                            continue
                entry = self._entry(child, "", folder)
                if (entry.inode, entry.original) in seen:
                    continue
                seen.add((entry.inode, entry.original))
                yield entry
        except OSError as exc:
            raise InputError("error.fs.unreadable-dir", path=folder.path) from exc

    def _parents(self, folder: Entry) -> set[int]:
        """The folders that list ``folder`` (its NTFS $FILE_NAME parents, and where a walk
        came from): a ``..`` entry pointing at one of them is the implicit parent link."""
        ups = {folder.parent} if folder.parent >= 0 else set()
        if folder.inode == self.root_inode:
            ups.add(self.root_inode)
        with contextlib.suppress(HvrescueError):
            ups |= parents(self._file(folder), self._fname_type)
        return ups

    def listdir(self, path: str) -> list[Entry]:
        path = _norm(path)
        entry = self._entry(self._open(path), path)
        if not entry.is_dir:
            return [entry]
        out: list[Entry] = []
        for child in self.children(entry):
            out.append(child)
            if len(out) >= MAX_WALK:
                break
        out.sort(key=lambda e: e.name.lower())
        return out

    def walk(self, path: str) -> Iterator[Entry]:
        """Every entry under ``path`` (itself included), folder by folder; see fs.walk."""
        from hvrescue.fs.walk import Walk

        root = self.stat(path)
        yield root
        for _folder, children in Walk(self).folders(root):
            yield from children

    # ------------------------------------------------------------------ content
    def _attrs(self, f: Any, entry: Entry, stream: Stream | None) -> Iterator[Any]:
        for attr in f:
            info = attr.info
            if stream is not None:
                if int(info.type) == stream.attr_type and int(info.id) == stream.attr_id:
                    yield attr
            elif int(info.type) in self._data_types and not (
                info.name and info.name not in (b"", b"$Data")
            ):
                yield attr

    def data_runs(self, entry: Entry, stream: Stream | None = None) -> list[tuple[int, int]] | None:
        """Where a file's (or stream's) data lies on the disk, as (disk offset, length); None
        when the data has no runs of its own (resident in its metadata record) or they cannot
        be read."""
        tsk = self._tsk
        try:
            f = self._file(entry)
            block = int(self.fs.info.block_size)
            size = stream.size if stream is not None else entry.size
            for attr in self._attrs(f, entry, stream):
                if not int(attr.info.flags) & int(tsk.TSK_FS_ATTR_NONRES):
                    return None
                holes = int(tsk.TSK_FS_ATTR_RUN_FLAG_SPARSE | tsk.TSK_FS_ATTR_RUN_FLAG_FILLER)
                runs: list[tuple[int, int]] = []
                for run in attr:
                    if int(run.flags) & holes:
                        continue
                    start = int(run.offset) * block
                    if start >= size:
                        continue
                    length = min(int(run.len) * block, size - start)
                    runs += self.source.to_disk(int(run.addr) * block, length)
                return runs
        except (OSError, HvrescueError):
            return None
        return None

    def _known_gaps(self) -> tuple[list[Gap], list[int]]:
        """The disk's undefined ranges and those met so far, merged and sorted, with the
        running maximum of their ends (gaps of different causes may overlap) for bisection;
        recomputed only when reading has met new ones."""
        touched = len(self.disk.touched)
        if self._gap_cache is None or self._gap_cache[0] != touched:
            merged = merge_gaps(self.disk.undefined() + self.disk.touched)
            reach: list[int] = []
            for g in merged:
                reach.append(max(reach[-1] if reach else 0, g.offset + g.length))
            self._gap_cache = (touched, merged, reach)
        return self._gap_cache[1], self._gap_cache[2]

    def file_gaps(
        self, entry: Entry, stream: Stream | None = None, since: int | None = None
    ) -> list[Gap]:
        """The undefined ranges of the disk that the file's data touches: those the metadata
        names, and those reading met (read errors). For data without runs of its own, whatever
        undefined range was met since ``since`` (an index into ``disk.touched``)."""
        known, reach = self._known_gaps()
        if not known:
            return []
        runs = self.data_runs(entry, stream)
        if runs is None:
            met = self.disk.touched[since:] if since is not None else []
            return merge_gaps(met)
        out = []
        for lo, n in runs:
            i = bisect.bisect_right(reach, lo)  # the first gap that may reach past lo
            while i < len(known) and known[i].offset < lo + n:
                g = known[i]
                a, b = max(lo, g.offset), min(lo + n, g.offset + g.length)
                if b > a:
                    out.append(Gap(a, b - a, g.cause, g.path))
                i += 1
        return merge_gaps(out)

    def read(self, entry: Entry, stream: Stream | None = None) -> Iterator[bytes]:
        """The content of a file (or one of its streams), in chunks."""
        f = self._file(entry)
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
