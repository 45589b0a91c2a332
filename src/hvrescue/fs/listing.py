"""What `ls`, `extract` and `mount` run, for Python users too: partitions of a disk or chain,
the files of a folder (each said complete or not), files copied out with a manifest, and the
read-only FUSE view.

Content nobody can know (damage, truncation, read errors, a missing parent) is never passed
over in silence: a file whose data touches an undefined range of the disk is listed with those
ranges; undefined ranges met while reading the filesystem's own records (a boot sector, a
folder) are returned as ``undefined_met``, since what they hide cannot be listed; a filesystem
that cannot be opened or walked raises :class:`FilesystemError` carrying those ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs import discover, open_path
from hvrescue.fs.volume import Entry
from hvrescue.vdisk.disk import Disk, merge_gaps
from hvrescue.vdisk.layer import Gap

# Ranges listed in JSON at most (the counts stay exact).
MAX_LISTED = 1000
MAX_LISTED_PER_FILE = 100
MAX_LISTED_IN_ERROR = 100


class FilesystemError(HvrescueError):
    """A filesystem that cannot be opened or walked, with the undefined ranges of the disk met
    on the way (a boot sector or folder in a damaged block is the usual cause). Key and
    parameters are the cause's; ``undefined_met`` is added when ranges were met."""

    def __init__(self, cause: HvrescueError, met: list[Gap]) -> None:
        super().__init__(cause.key, **cause.params)
        self.cause = cause
        self.met = met
        if met:
            self.params["undefined_met"] = [g.as_dict() for g in met[:MAX_LISTED_IN_ERROR]]


def _warned(notes: list[dict[str, Any]]) -> bool:
    """A note of warning (a journal not replayed: the view is before recovery)."""
    return any(n.get("severity") == "warning" for n in notes)


def met_so_far(disk: Disk) -> list[Gap]:
    """The undefined ranges reading has met on ``disk`` so far, merged."""
    return merge_gaps(disk.touched)


@contextmanager
def _walking(disk: Disk) -> Iterator[None]:
    try:
        yield
    except HvrescueError as exc:
        raise FilesystemError(exc, met_so_far(disk)) from exc


@dataclass
class PartitionListing:
    """``ls DISK``: the partitions (MBR, GPT) with the filesystem each holds."""

    disk: str
    size: int
    partitions: list[dict[str, Any]]  # Partition.as_dict() plus "filesystem" (None: unknown)
    undefined_met: list[Gap] = field(default_factory=list)
    # Every volume with its address (fs.addressing): partitions, LVM logical volumes...
    volumes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.undefined_met

    def as_dict(self) -> dict[str, Any]:
        return {
            "disk": self.disk,
            "size": self.size,
            "partitions": self.partitions,
            "volumes": self.volumes,
            "undefined_met": [g.as_dict() for g in self.undefined_met[:MAX_LISTED]],
        }


@dataclass
class FolderListing:
    """``ls DISK N:/PATH``: the entries of one folder."""

    disk: str
    partition: int
    filesystem: str
    path: str
    entries: list[Entry]
    incomplete: dict[str, list[Gap]]  # file path -> the undefined ranges its data touches
    disk_undefined: list[Gap] = field(default_factory=list)
    undefined_met: list[Gap] = field(default_factory=list)
    volume: str = ""  # the volume's address ("2", "3/vg0/root")
    notes: list[dict[str, Any]] = field(default_factory=list)  # e.g. a journal replayed

    @property
    def ok(self) -> bool:
        return not self.incomplete and not self.undefined_met and not _warned(self.notes)

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for e in self.entries:
            row = e.as_dict()
            if not e.is_dir:
                gaps = self.incomplete.get(e.path, [])
                row["complete"] = not gaps
                row["undefined"] = [g.as_dict() for g in gaps[:MAX_LISTED_PER_FILE]]
            rows.append(row)
        return {
            "disk": self.disk,
            "partition": self.partition,
            "volume": self.volume,
            "filesystem": self.filesystem,
            "notes": self.notes,
            "path": self.path,
            "entries": rows,
            "disk_undefined": [g.as_dict() for g in self.disk_undefined[:MAX_LISTED]],
            "undefined_met": [g.as_dict() for g in self.undefined_met[:MAX_LISTED]],
        }


def list_partitions(disk: str, search: list[str] | None = None) -> PartitionListing:
    with Disk.open(disk, list(search or [])) as d:
        volumes = discover(d)
        rows = [
            {**v.partition.as_dict(), "filesystem": v.filesystem}
            for v in volumes
            if v.kind == "partition"
        ]
        # A partition table or boot sector in an undefined range.
        return PartitionListing(disk, d.size, rows, met_so_far(d), [v.as_dict() for v in volumes])


def list_folder(disk: str, path: str, search: list[str] | None = None) -> FolderListing:
    """The entries of ``path`` ('2:/Windows', or '/Windows' when one partition holds a
    filesystem). Read-only: no journal replay, no repair."""
    with Disk.open(disk, list(search or [])) as d:
        with _walking(d):
            volume, inner = open_path(d, path)
            entries = volume.listdir(inner)
        met = met_so_far(d)  # met reading the filesystem's own structures
        undefined = d.undefined()
        incomplete: dict[str, list[Gap]] = {}
        if undefined:
            for e in entries:
                if not e.is_dir:
                    gaps = volume.file_gaps(e)
                    if gaps:
                        incomplete[e.path] = gaps
        return FolderListing(
            disk,
            volume.partition.index,
            volume.type,
            inner,
            entries,
            incomplete,
            undefined,
            met,
            volume.id,
            list(getattr(volume, "notes", [])),
        )


@dataclass
class ExtractResult:
    """``extract``: what was copied out, skipped or written incomplete, per manifest."""

    to: str
    manifests: list[str]
    files: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    incomplete: list[dict[str, Any]]
    undefined_met: list[Gap] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)  # symlinks, special files
    notes: list[dict[str, Any]] = field(default_factory=list)  # e.g. a journal replayed

    @property
    def ok(self) -> bool:
        return (
            not self.skipped
            and not self.incomplete
            and not self.undefined_met
            and not _warned(self.notes)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "manifests": self.manifests,
            "files": self.files,
            "skipped": self.skipped,
            "incomplete": self.incomplete,
            "undefined_met": [g.as_dict() for g in self.undefined_met[:MAX_LISTED]],
            "links": self.links,
            "notes": self.notes,
        }


def extract_files(
    disk: str,
    paths: list[str],
    to_dir: str,
    streams: bool = False,
    search: list[str] | None = None,
    argv: list[str] | None = None,
    on_start: Callable[[], None] | None = None,
) -> ExtractResult:
    """Copy files and folders (``N:/PATH`` or ``/PATH``) out of a disk or chain into
    ``to_dir`` (made if missing, its parent must exist): names made safe, times kept, never
    overwriting, with an ``extract-manifest.json`` of hashes per partition. ``on_start()`` is
    called once the output folder is ready, before anything is copied."""
    from hvrescue.fs.extract import Extractor
    from hvrescue.io.atomic import prepare_output_folder

    prepare_output_folder(to_dir)
    if on_start is not None:
        on_start()
    command = argv or ["hvrescue", "extract", disk, *paths, "--to", to_dir]
    with Disk.open(disk, list(search or [])) as d:
        extractors: dict[str, Extractor] = {}
        volumes = discover(d)
        for spec in paths:
            with _walking(d):
                volume, inner = open_path(d, spec, volumes)
            ex = extractors.get(volume.id)
            if ex is None:
                ex = Extractor(volume, to_dir, f"p{volume.id}", streams)
                extractors[volume.id] = ex
            ex.extract(inner)
        # Undefined ranges met while reading the filesystem's own structures (folders, file
        # records): what they hide cannot be listed, so they are said.
        met = met_so_far(d)
        for ex in extractors.values():
            ex.undefined_met = met
        manifests = [ex.write_manifest(command) for ex in extractors.values()]
    return ExtractResult(
        to_dir,
        manifests,
        [f for ex in extractors.values() for f in ex.result.files],
        [s for ex in extractors.values() for s in ex.result.skipped],
        [s for ex in extractors.values() for s in ex.result.incomplete],
        met,
        [link for ex in extractors.values() for link in ex.links],
        [n for ex in extractors.values() for n in getattr(ex.volume, "notes", [])],
    )


def mount_disk(
    disk: str,
    mountpoint: str,
    search: list[str] | None = None,
    debug: bool = False,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve the read-only FUSE view of a disk or chain at ``mountpoint`` (``disk.raw``,
    ``p1.raw``...) until interrupted. ``on_ready(names)`` is called with the file names the
    view shows just before it is mounted. libfuse refusing to mount raises
    ``error.mount.failed``."""
    from hvrescue.fs.mount import mount, volume_views

    try:
        with Disk.open(disk, list(search or [])) as d:
            names = list(volume_views(d))
            if on_ready is not None:
                on_ready(names)
            mount(d, mountpoint, debug=debug)
    except RuntimeError as exc:  # libfuse refused to mount (permissions, busy mountpoint)
        raise InputError("error.mount.failed", path=mountpoint, reason=str(exc)) from exc
