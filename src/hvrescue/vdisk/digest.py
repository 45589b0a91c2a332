"""Digests of a disk's whole virtual content (``hash``): several algorithms in one pass.

What some layer holds is read ahead on a second thread into one reused buffer
(:func:`hvrescue.io.digest.digest_segments`) while this thread hashes the chunk before; every
other stretch (zeros the format defines, undefined ranges) is hashed from one zero buffer
without a read. Undefined ranges hash as zeros and are listed, as :meth:`Disk.iter_content`
does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from hvrescue.io.digest import CHUNK, DEFAULT, Segment, digest_segments
from hvrescue.vdisk.disk import Disk, check_hash_cost
from hvrescue.vdisk.layer import Gap
from hvrescue.vdisk.ranges import merge_gaps


def content_segments(disk: Disk) -> Iterator[Segment]:
    """The virtual content as (offset, length, is_data) in order: the extents some layer may
    hold are data, the rest zeros."""
    pos = 0
    for lo, n in disk.extents():
        if lo > pos:
            yield pos, lo - pos, False
        yield lo, n, True
        pos = lo + n
    if pos < disk.size:
        yield pos, disk.size - pos, False


def disk_digests(
    disk: Disk,
    algorithms: Iterable[str] = DEFAULT,
    progress: Callable[[int], None] | None = None,
    gaps: list[Gap] | None = None,
    allow_gaps: bool = False,
    chunk: int = CHUNK,
) -> dict[str, str]:
    """``{algorithm: hex}`` of the whole content (undefined ranges as zeros, listed in
    ``gaps``). Refused (``error.hash.undefined-span``) when undefined ranges dwarf the files,
    unless ``allow_gaps`` (see :func:`hvrescue.vdisk.disk.check_hash_cost`)."""
    if not allow_gaps:
        check_hash_cost(disk)
    found: list[Gap] = list(disk.undefined())

    def fill(offset: int, view: memoryview) -> None:
        got, met = disk.read_into_checked(offset, view)
        found.extend(met)
        if got < len(view):  # past the end cannot happen (segments stop at the size)
            view[got:] = bytes(len(view) - got)

    hashes = digest_segments(content_segments(disk), fill, algorithms, progress, chunk)
    if gaps is not None:
        gaps.extend(merge_gaps(found))
    return hashes
