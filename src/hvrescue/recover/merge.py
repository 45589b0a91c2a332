"""`merge`: flatten a whole chain (logs replayed) into one new standalone disk.

Only what some layer of the chain holds is read, in pieces of at most 4 MiB, never a whole
block at once; a piece's runs of non-zero 1 MiB units are all that is written. A block whose
merged content is all zeros stays unallocated in the output; a partly filled block is
allocated (a dynamic VHDX has no partly present state) but only its data takes space: the
rest is a hole of the sparse output. The output is a dynamic VHDX (block size as the base's
unless given) or a sparse raw image, written under a temporary name. Reading, writing, the
content digest (taken once), the read-back and the flushing overlap on threads with a
bounded pool of buffers (:mod:`hvrescue.recover.merge_pipe`). Before the output gets its final
name its structure is read back with the engine and everything written is proved equal to the
chain (:mod:`hvrescue.recover.merge_check` says exactly what is read back and why it proves
equality), so a name never stands for an output that was not checked. ``verify=False`` skips
the digest and the read-back: the status is then ``unverified``.

A chain with undefined ranges (see :meth:`Disk.undefined`, a missing parent's included) is
refused: its output would present unknown bytes as content. ``allow_gaps`` writes zeros there
instead, writes a GNU ddrescue map beside the output naming them, and the result's status is
``written-with-gaps``. "verified" means exactly: the output equals the chain's content and the
chain had no undefined range.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from hvrescue.errors import InputError, UndefinedContentError
from hvrescue.io.atomic import atomic_output, temp_path
from hvrescue.io.files import open_evidence
from hvrescue.platform import set_size
from hvrescue.recover import ddmap
from hvrescue.recover.digest import KIND, ContentDigest
from hvrescue.recover.merge_check import Proof, digest_ranges, full_digest, structure_holds
from hvrescue.recover.merge_plan import copy_chain
from hvrescue.vdisk.disk import Disk, gap_ranges, merge_gaps
from hvrescue.vdisk.layer import OVERLAP, PARENT_MISSING, Gap
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.builder import VhdxBuilder
from hvrescue.vdisk.vhdx.writer import VhdxSpec

DEFAULT_BLOCK = 32 * s.MiB
FORMATS = ("vhdx", "raw")


@dataclass
class MergeResult:
    out: str
    format: str
    virtual_size: int
    block_size: int
    chain: list[str]
    blocks_written: int
    data_bytes: int
    file_size: int
    digest: str
    output_digest: str
    gaps: list[Gap]
    map: str | None = None
    missing_parents: list[tuple[str, str]] = field(default_factory=list)  # (child, parent)

    @property
    def verified(self) -> bool:
        """The output equals the chain's content, and all of that content was defined."""
        return bool(self.output_digest) and self.digest == self.output_digest and not self.gaps

    @property
    def status(self) -> str:
        if not self.output_digest:
            return "unverified"  # merged with verify=False: nothing was read back
        if self.digest != self.output_digest:
            return "mismatch"
        return "written-with-gaps" if self.gaps else "verified"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "out": self.out,
            "map": self.map,
            "undefined": [g.as_dict() for g in self.gaps],
            "undefined_bytes": sum(g.length for g in self.gaps),
            "format": self.format,
            "virtual_size": self.virtual_size,
            "block_size": self.block_size,
            "chain": self.chain,
            "blocks_written": self.blocks_written,
            "data_bytes": self.data_bytes,
            "file_size": self.file_size,
            "digest_kind": KIND,
            "chain_digest": self.digest,
            "output_digest": self.output_digest,
            "verified": self.verified,
        }


def _valid_block(size: int) -> bool:
    return s.MiB <= size <= 256 * s.MiB and size % s.MiB == 0 and size & (size - 1) == 0


def choose_block_size(disk: Disk, requested: int | None) -> int:
    if requested is not None:
        if not _valid_block(requested):
            raise InputError("error.merge.block-size", value=requested)
        return requested
    base_block = int(getattr(disk.layers[-1], "block_size", 0) or 0)
    return base_block if _valid_block(base_block) else DEFAULT_BLOCK


def check_geometry(disk: Disk, leaf: str, fmt: str) -> None:
    """A disk of 0 bytes has nothing to merge; a VHDX output needs a size of whole logical
    sectors within the format's 64 TiB (a damaged size field can claim anything)."""
    if disk.size <= 0:
        raise InputError("error.merge.empty", path=leaf)
    if fmt == "vhdx" and (disk.size % disk.logical_sector_size or disk.size > s.MAX_VIRTUAL_SIZE):
        raise InputError(
            "error.merge.geometry",
            path=leaf,
            size=disk.size,
            sector=disk.logical_sector_size,
            limit=s.MAX_VIRTUAL_SIZE,
        )


def overlap_summary(disk: Disk, limit: int = 5) -> tuple[str, int]:
    """The first overlapping BAT entries of the chain's files as ``file: entry↔other @offset``
    (an entry is a VHD block or a VHDX BAT index; the other an entry or a structure), and how
    many entries overlap in all."""
    parts: list[str] = []
    total = 0
    for layer in disk.layers:
        total += len(getattr(layer, "overlapping", ()) or ())
        for at, who, other in list(getattr(layer, "overlaps", ()) or ()):
            if len(parts) < limit:
                parts.append(f"{os.path.basename(layer.path)}: {who}↔{other} @{at:#x}")
    return "; ".join(parts), total


def data_blocks(disk: Disk, block_size: int) -> Iterator[int]:
    """Indexes of blocks that any layer holds data for, ascending, each once."""
    last = -1
    for lo, n in disk.extents():
        first = max(lo // block_size, last + 1)
        end = (lo + n - 1) // block_size
        yield from range(first, end + 1)
        last = max(last, end)


def map_path_for(out: str) -> str:
    """Where merge writes the ddrescue map of an output with gaps: beside it."""
    return out + ".map"


def merge(
    leaf: str,
    out: str,
    fmt: str = "vhdx",
    block_size: int | None = None,
    search: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_gaps: bool = False,
    argv: list[str] | None = None,
    verify: bool = True,
) -> MergeResult:
    """Merge the chain ending at ``leaf`` into ``out``. With ``verify`` (the default) the output
    is read back and proved equal to the chain before it is named (see
    :mod:`hvrescue.recover.merge_check`); without it nothing is hashed or read back, and the
    result's status is ``unverified``."""
    if fmt not in FORMATS:
        raise InputError("error.merge.format", value=fmt)
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    map_path = map_path_for(out)
    if allow_gaps and os.path.lexists(map_path):
        raise InputError("error.output.exists", path=map_path)
    # A chain with a missing parent is opened: what only the parent holds is undefined,
    # refused below like any other undefined range (or written as zeros with --allow-gaps).
    with Disk.open(leaf, search, allow_incomplete=True) as disk:
        check_geometry(disk, leaf, fmt)
        undefined = disk.undefined()
        missing = disk.chain.missing_parents()
        if undefined and not allow_gaps:
            refuse_undefined(disk, leaf, undefined, missing)
        bs = choose_block_size(disk, block_size)
        spec = output_spec(disk, bs)
        digest = ContentDigest(disk.size) if verify else None
        size = disk.size
        outcome: dict[str, str] = {}
        proof: list[Proof] = []
        gaps: list[Gap] = []

        def check_output(tmp: str) -> None:
            # Runs before the output gets its name: read it back and compare; with gaps, the
            # map goes beside it first, so the output never stands without it.
            if proof:
                outcome["digest"] = digest_of(tmp, fmt, size, None, proof[0])
            if gaps:
                ddmap.write_map(
                    map_path,
                    ddmap.entries_for(size, gap_ranges(gaps)),
                    argv or ["hvrescue", "merge", leaf, out],
                )

        try:
            with atomic_output(out, check=check_output) as fd:
                builder = VhdxBuilder(fd, spec) if fmt == "vhdx" else None
                if builder is None:
                    set_size(fd, disk.size)  # sparse: nothing written but the data
                check_fd = _open_again(out, fd) if verify else None
                try:
                    stats = copy_chain(
                        disk, fd, builder, bs, digest, check_fd, progress, allow_gaps
                    )
                finally:
                    if check_fd is not None:
                        os.close(check_fd)
                found = list(undefined) + stats.gaps
                if stats.gaps and not allow_gaps:
                    refuse_undefined(disk, leaf, merge_gaps(found), missing)
                file_size = builder.finish() if builder is not None else disk.size
                gaps[:] = merge_gaps(found)
                if digest is not None:
                    proof.append(
                        Proof(
                            digest.hexdigest(),
                            stats.matched,
                            stats.written,
                            builder.payload_start if builder is not None else 0,
                            bs,
                            stats.blocks,
                        )
                    )
        except BaseException:
            if gaps and os.path.lexists(map_path) and not os.path.lexists(out):
                os.unlink(map_path)  # a map without its output would mislead
            raise
        chain = [layer.path for layer in disk.layers]
    chain_hex = proof[0].digest if proof else ""
    return MergeResult(
        out,
        fmt,
        size,
        bs,
        chain,
        len(stats.blocks),
        stats.data_bytes,
        file_size,
        chain_hex,
        outcome.get("digest", ""),
        gaps,
        map_path if gaps else None,
        missing if any(g.cause == PARENT_MISSING for g in gaps) else [],
    )


def refuse_undefined(
    disk: Disk, leaf: str, undefined: list[Gap], missing: list[tuple[str, str]]
) -> NoReturn:
    """Raise the refusal for a chain with undefined ranges, naming the cause that explains
    them best: overlapping BAT entries, a missing parent (with where it was expected), or
    the ranges alone."""
    overlaps, entries = overlap_summary(disk)
    if entries and any(g.cause == OVERLAP for g in undefined):
        raise UndefinedContentError(
            "error.merge.overlap",
            gaps=undefined,
            leaf=leaf,
            overlaps=overlaps,
            entries=entries,
        )
    if missing and any(g.cause == PARENT_MISSING for g in undefined):
        child, parent = missing[0]
        raise UndefinedContentError(
            "error.merge.parent-missing", gaps=undefined, leaf=leaf, child=child, parent=parent
        )
    raise UndefinedContentError("error.merge.undefined", gaps=undefined, leaf=leaf)


def output_spec(disk: Disk, bs: int) -> VhdxSpec:
    """The output's geometry: the chain's size and logical sector, the base's physical sector
    where the format allows it (512 or 4096, never below the logical sector)."""
    base = disk.layers[-1]
    physical = int(getattr(base, "physical_sector_size", 0) or 4096)
    if disk.logical_sector_size > physical:
        physical = disk.logical_sector_size
    spec = VhdxSpec(
        virtual_size=disk.size,
        block_size=bs,
        logical_sector_size=disk.logical_sector_size,
        physical_sector_size=physical,
        creator="hvrescue merge",
    )
    if spec.physical_sector_size not in (512, 4096):
        spec.physical_sector_size = 4096
    return spec


def _open_again(out: str, fd: int) -> int:
    """A read-only descriptor on the output being written (its temporary name), to read each
    write back through; refused unless it is the very file ``fd`` writes."""
    check_fd = open_evidence(temp_path(out))
    mine, again = os.fstat(fd), os.fstat(check_fd)
    if (mine.st_dev, mine.st_ino) != (again.st_dev, again.st_ino):
        os.close(check_fd)
        raise OSError(errno.ESTALE, "the output being written was replaced", out)
    return check_fd


def digest_of(
    path: str,
    fmt: str,
    size: int,
    written: list[tuple[int, int]] | None = None,
    proof: Proof | None = None,
) -> str:
    """The content digest of a finished output, read back from the file. With merge's
    ``proof``, the structure is read back and checked against what was written and compared
    (:func:`~hvrescue.recover.merge_check.structure_holds`): when it holds, the output's
    content is the chain's and so is its digest; otherwise (and without a proof) the whole
    content is read and hashed."""
    if proof is not None:
        if structure_holds(path, fmt, size, proof):
            return proof.digest
        written = [(virtual, n) for virtual, _at, n in proof.written]
    return full_digest(path, fmt, size, written)


def chain_digest(leaf: str, search: list[str] | None = None) -> str:
    """The content digest of a chain (for comparing against any output)."""
    with Disk.open(leaf, search) as disk:
        return digest_ranges(disk.read_into, list(disk.extents()), disk.size)
