"""ext2/3/4 (libfsext) and XFS (libfsxfs) volumes, read-only, over a :class:`MappedSource`
(a partition, a partitionless disk or an LVM logical volume).

The same surface as :class:`hvrescue.fs.volume.Volume` (``stat``, ``children``, ``listdir``,
``walk``, ``read``, ``data_runs``, ``file_gaps``), so that ``ls``, ``extract`` and ``mount``
serve both. Entries carry their POSIX mode, owner and symbolic link target. An ext3/4 journal
that needs recovery is replayed in memory first (fs.jbd2): the view is the state the journal
describes, and :attr:`LinuxVolume.notes` says so. An XFS log that needs recovery is not
replayed (fs.xfs_log): the notes say that the view is the state before recovery. Nothing is
written anywhere.
"""

from __future__ import annotations

import bisect
import importlib
import stat as st
import struct
from collections.abc import Iterator
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.names import display_name
from hvrescue.fs.partitions import Partition
from hvrescue.fs.source import MappedSource
from hvrescue.fs.volume import CHUNK, MAX_WALK, Entry, Stream, _norm, _when
from hvrescue.vdisk.disk import merge_gaps
from hvrescue.vdisk.layer import Gap

EXT_TYPES = ("ext2", "ext3", "ext4")
# libfsext marks an extent with this flag when it is sparse (no blocks: reads as zeros).
_EXTENT_SPARSE = 0x1


def _library(filesystem: str) -> Any:
    module, package = (
        ("pyfsext", "libfsext-python")
        if filesystem in EXT_TYPES
        else ("pyfsxfs", "libfsxfs-python")
    )
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # declared dependencies, but a broken install must be said
        raise InputError(
            "error.fs.linux-library", filesystem=filesystem, module=module, package=package
        ) from exc


def _ns(fe: Any, what: str) -> int | None:
    try:
        value = getattr(fe, f"get_{what}_time_as_integer")()
    except (OSError, AttributeError):
        return None
    return int(value) if value else None


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return _when(ns // 1_000_000_000, ns % 1_000_000_000)


class LinuxVolume:
    """An ext2/3/4 or XFS filesystem; ``vid`` is its address ("1", "3/vg0/root")."""

    def __init__(
        self, vid: str, filesystem: str, source: MappedSource, partition: Partition
    ) -> None:
        self.id = vid
        self.type = filesystem
        self.source = source
        self.disk = source.disk
        self.partition = partition
        self.notes: list[dict[str, Any]] = []
        # XFS: whether its log needs recovery (``fs.xfs_log``; None for ext, whose superblock
        # says it)
        self.log_state: str | None = None
        self._lib = _library(filesystem)
        note = None
        if filesystem in EXT_TYPES:
            from hvrescue.fs.jbd2 import replay_if_needed

            note = replay_if_needed(self._open(), source)
        elif filesystem == "xfs":
            from hvrescue.fs.xfs_log import log_state

            log = log_state(source)
            self.log_state, note = log.state, log.note()
        if note is not None:
            self.notes.append(note)
        self.fs = self._open()
        try:
            self.root_inode = int(self.fs.get_root_directory().inode_number)
        except OSError as exc:
            raise self._refused(exc) from exc
        self._gap_cache: tuple[int, list[Gap], list[int]] | None = None

    def _refused(self, exc: Exception) -> InputError:
        return InputError(
            "error.fs.no-filesystem-volume", volume=self.id, reason=str(exc).split(". ")[-1][:200]
        )

    def _open(self) -> Any:
        fs = self._lib.volume()
        try:
            fs.open_file_object(self.source.file_object())
        except OSError as exc:
            raise self._refused(exc) from exc
        return fs

    # ------------------------------------------------------------------ entries
    def _entry(
        self, fe: Any, path: str, folder: Entry | None = None, name: str | None = None
    ) -> Entry:
        if name is None:
            name = fe.name if folder is not None else path.rsplit("/", 1)[-1]
        name = name or ""
        mode = int(fe.file_mode or 0)
        kind = st.S_IFMT(mode)
        is_dir = kind == st.S_IFDIR
        link = None
        label: str | None = None
        if kind == st.S_IFLNK:
            label = "symlink"
            try:
                link = fe.symbolic_link_target or ""
            except OSError:
                link = ""
        elif kind not in (st.S_IFDIR, st.S_IFREG):
            label = "special"
        if folder is not None:
            path = folder.path.rstrip("/") + "/" + display_name(name)
        times = {w: _ns(fe, w) for w in ("creation", "modification", "access", "inode_change")}
        size = int(fe.size or 0) if kind == st.S_IFREG else 0
        return Entry(
            path=path or "/",
            name=display_name(name),
            is_dir=is_dir,
            size=size,
            inode=int(fe.inode_number),
            created=_iso(times["creation"]),
            modified=_iso(times["modification"]),
            accessed=_iso(times["access"]),
            changed=_iso(times["inode_change"]),
            mtime_ns=times["modification"],
            atime_ns=times["access"],
            streams=[],
            raw_name=name.encode("utf-8", "surrogateescape"),
            original=name,
            parent=folder.inode if folder is not None else -1,
            depth=folder.depth + 1 if folder is not None else 0,
            mode=mode,
            uid=int(fe.owner_identifier or 0),
            gid=int(fe.group_identifier or 0),
            link=link,
            kind=label,
        )

    def _by_inode(self, inode: int, path: str) -> Any:
        try:
            fe = self.fs.get_file_entry_by_inode(inode)
        except OSError as exc:
            raise InputError("error.fs.no-such-path", path=path) from exc
        if fe is None:
            raise InputError("error.fs.no-such-path", path=path)
        return fe

    def stat(self, path: str) -> Entry:
        path = _norm(path)
        try:
            fe = self.fs.get_file_entry_by_path(path)
        except OSError:
            fe = None
        if fe is None:
            # libfsext cannot look up a name it cannot read (not UTF-8, 255 bytes), nor any
            # name in a folder that holds one: follow the path through the folders' listings.
            return self._resolve(path)
        return self._entry(fe, path)

    def _resolve(self, path: str) -> Entry:
        """The entry at ``path`` found one folder at a time by its shown name (as ``ls``
        lists it, which is also the exact name where that needs no escape)."""
        entry = self._entry(self.fs.get_root_directory(), "/")
        for part in (p for p in path.split("/") if p):
            found = None
            if entry.is_dir:
                found = next(
                    (e for e in self.children(entry) if part in (e.name, e.original)), None
                )
            if found is None:
                raise InputError("error.fs.no-such-path", path=path)
            entry = found
        return entry

    def children(self, folder: Entry, counter: Any = None) -> Iterator[Entry]:
        fe = self._by_inode(folder.inode, folder.path)
        raw: dict[int, list[bytes]] | None = None
        try:
            count = int(fe.number_of_sub_file_entries)
            for i in range(min(count, MAX_WALK)):
                child = fe.get_sub_file_entry(i)
                utf8 = True
                try:
                    name = child.name
                except OSError:
                    name, utf8 = None, False
                if not name:
                    # Not UTF-8 (Linux names are bytes: OSError), or longer than libfsext reads
                    # (255 bytes, the ext maximum, comes back empty): the exact bytes from the
                    # folder itself.
                    if raw is None:
                        raw = _ext_names(fe, self.source) if self.type in EXT_TYPES else {}
                    name = _raw_name(raw, int(child.inode_number), utf8)
                if name in (".", ".."):
                    continue
                yield self._entry(child, "", folder, name)
        except OSError as exc:
            raise InputError("error.fs.unreadable-dir", path=folder.path) from exc

    def listdir(self, path: str) -> list[Entry]:
        entry = self.stat(path)
        if not entry.is_dir:
            return [entry]
        out: list[Entry] = []
        for child in self.children(entry):
            out.append(child)
            if len(out) >= MAX_WALK:
                break
        out.sort(key=lambda e: e.name)
        return out

    def walk(self, path: str) -> Iterator[Entry]:
        from hvrescue.fs.walk import Walk

        root = self.stat(path)
        yield root
        for _folder, children in Walk(self).folders(root):
            yield from children

    # ------------------------------------------------------------------ content
    def data_runs(self, entry: Entry, stream: Stream | None = None) -> list[tuple[int, int]] | None:
        """Where a file's data lies, as (disk offset, length); None when the filesystem keeps
        it inside the inode (inline data, XFS local format) or the extents cannot be read."""
        if entry.is_dir or entry.kind is not None:
            return None
        try:
            fe = self._by_inode(entry.inode, entry.path)
            count = int(fe.number_of_extents)
            runs: list[tuple[int, int]] = []
            for i in range(min(count, 10_000_000)):
                offset, size, flags = fe.get_extent(i)
                if flags & _EXTENT_SPARSE:
                    continue
                runs += self.source.to_disk(int(offset), int(size))
        except (OSError, HvrescueError):
            return None
        return runs if count or not entry.size else None

    def _known_gaps(self) -> tuple[list[Gap], list[int]]:
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
        """The undefined ranges of the disk the file's data touches (see Volume.file_gaps)."""
        known, reach = self._known_gaps()
        if not known:
            return []
        runs = self.data_runs(entry, stream)
        if runs is None:
            return merge_gaps(self.disk.touched[since:]) if since is not None else []
        out = []
        for lo, n in runs:
            i = bisect.bisect_right(reach, lo)
            while i < len(known) and known[i].offset < lo + n:
                g = known[i]
                a, b = max(lo, g.offset), min(lo + n, g.offset + g.length)
                if b > a:
                    out.append(Gap(a, b - a, g.cause, g.path))
                i += 1
        return merge_gaps(out)

    def read(self, entry: Entry, stream: Stream | None = None) -> Iterator[bytes]:
        fe = self._by_inode(entry.inode, entry.path)
        pos = 0
        while pos < entry.size:
            n = min(CHUNK, entry.size - pos)
            try:
                data = fe.read_buffer_at_offset(n, pos)
            except OSError as exc:
                raise InputError("error.fs.read", path=entry.path, offset=pos) from exc
            if not data:
                break
            yield data
            pos += len(data)


def _decodes(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _raw_name(raw: dict[int, list[bytes]], inode: int, utf8: bool) -> str:
    """The name of ``inode`` in its folder's own records that libfsext could not give: one
    that is not UTF-8 (``utf8`` False), or else the longest UTF-8 one (the one too long for
    libfsext; a shorter hard link to the same inode in the folder came back by itself)."""
    names = [n for n in raw.get(inode, []) if _decodes(n) == utf8] or raw.get(inode, [])
    if not names:
        return f"?inode-{inode}"
    found = max(names, key=len) if utf8 else names[0]
    raw[inode].remove(found)
    return found.decode("utf-8", "surrogateescape")


def _ext_names(folder: Any, source: MappedSource) -> dict[int, list[bytes]]:
    """{inode: [names]} of the names in an ext folder's blocks, in the folder's order
    (struct ext4_dir_entry_2: inode, record length, name length, type, name), bounded."""
    data = b""
    for i in range(int(folder.number_of_extents)):
        offset, size, flags = folder.get_extent(i)
        if not flags & _EXTENT_SPARSE and len(data) + size <= 64 << 20:
            data += source.read(int(offset), int(size))
    out: dict[int, list[bytes]] = {}
    pos = 0
    while pos + 8 <= len(data):
        inode, rec_len, name_len = struct.unpack_from("<IHB", data, pos)
        if rec_len < 8 or pos + rec_len > len(data):
            pos = (pos // 1024 + 1) * 1024  # a damaged record: the next block
            continue
        name = data[pos + 8 : pos + 8 + min(name_len, rec_len - 8)]
        if inode and name not in (b".", b".."):
            out.setdefault(inode, []).append(name)
        pos += rec_len
    return out


def link_leaves(path: str, target: str) -> bool:
    """A link's target names something outside the volume's tree (absolute, or ``..`` past
    the root): it means a place on the guest's running system, not in this folder."""
    if target.startswith("/"):
        return True
    depth = len([p for p in path.split("/") if p]) - 1
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False
