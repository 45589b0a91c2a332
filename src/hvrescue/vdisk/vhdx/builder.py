"""Stream a new dynamic VHDX to an open file: payload blocks are appended as they come, the BAT
entries of the blocks written are kept in memory (the rest of the BAT is zeros: a hole) and
written with the headers, region tables and metadata when the disk is finished, so memory
follows the blocks written, not the virtual size. Cost follows the data: a block never added
stays NOT_PRESENT (reads as zeros) and takes no space.

Layout (MS-VHDX 2.1): identifier, two headers, two region tables in the first 1 MiB; the log at
1 MiB (empty, its GUID zero: nothing to replay); metadata at 2 MiB; the BAT at 3 MiB; payload
blocks 1 MiB-aligned after it.
"""

from __future__ import annotations

import struct

from hvrescue.platform import make_sparse, pwrite, set_size
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.writer import (
    BAT_OFFSET,
    METADATA_OFFSET,
    VhdxSpec,
    _header,
    _metadata,
    _region_table,
)


def bat_layout(spec: VhdxSpec) -> tuple[int, int, int]:
    """(chunk ratio, BAT entries, BAT region length) for ``spec``."""
    cr = s.chunk_ratio(spec.logical_sector_size, spec.block_size)
    blocks = -(-spec.virtual_size // spec.block_size)
    entries = -(-blocks // cr) * (cr + 1) if spec.parent else blocks + (blocks - 1) // cr
    length = -(-entries * 8 // s.MiB) * s.MiB
    return cr, entries, length


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        pos += pwrite(fd, view[pos:], offset + pos)


class VhdxBuilder:
    def __init__(self, fd: int, spec: VhdxSpec) -> None:
        if spec.block_size % s.MiB or not s.MiB <= spec.block_size <= 256 * s.MiB:
            raise ValueError("block size must be a multiple of 1 MiB between 1 and 256 MiB")
        if spec.virtual_size % spec.logical_sector_size:
            raise ValueError("virtual size must be a multiple of the logical sector size")
        self.fd = fd
        make_sparse(fd)  # blocks land far past what is written: no zeros in between
        self.spec = spec
        self.chunk_ratio, self.entries, self.bat_length = bat_layout(spec)
        self.bat: dict[int, int] = {}  # BAT index -> entry, for the blocks written
        self.payload_start = BAT_OFFSET + self.bat_length  # every structure lies below it
        self.next_free = self.payload_start
        self.blocks_written = 0

    def entry_index(self, block: int) -> int:
        cr = self.chunk_ratio
        return block + block // cr

    def place(self, block: int) -> int:
        """The file offset of block ``block``'s payload, given (FULLY_PRESENT) on first call.

        A dynamic VHDX has no partly present block (MS-VHDX 2.5.1.1: PARTIALLY_PRESENT needs a
        sector bitmap, which only a differencing disk has), so a block holding a little data
        still owns a whole block of file offsets; but only what is written there takes space:
        the rest is a hole of the sparse file and reads as zeros. Blocks are placed one after
        the other in the order of the calls, so a caller placing them in ascending order writes
        the file front to back."""
        index = self.entry_index(block)
        entry = self.bat.get(index)
        if entry is not None:
            return entry & ~0xFFFFF
        offset = self.next_free
        self.bat[index] = offset | s.PAYLOAD_FULLY_PRESENT
        self.next_free += self.spec.block_size
        self.blocks_written += 1
        return offset

    def add_block(self, block: int, data: bytes | memoryview) -> None:
        """Block ``block`` holds ``data`` (at most one block; a short last block is padded by the
        file's sparse tail)."""
        if len(data) > self.spec.block_size:
            raise ValueError("more than one block of data")
        pwrite_all(self.fd, data, self.place(block))

    def finish(self) -> int:
        """Write every structure; returns the file size."""
        spec = self.spec
        ident = bytearray(64 * s.KiB)
        ident[0:8] = s.FILE_SIGNATURE
        creator = spec.creator.encode("utf-16-le")[:512]
        ident[8 : 8 + len(creator)] = creator
        pwrite(self.fd, bytes(ident), 0)
        pwrite(self.fd, _header(spec, 1, s.ZERO_GUID), s.HEADER_OFFSETS[0])
        pwrite(self.fd, _header(spec, 2, s.ZERO_GUID), s.HEADER_OFFSETS[1])
        table = _region_table(self.bat_length)
        pwrite(self.fd, table, s.REGION_TABLE_OFFSETS[0])
        pwrite(self.fd, table, s.REGION_TABLE_OFFSETS[1])
        pwrite(self.fd, _metadata(spec), METADATA_OFFSET)
        set_size(self.fd, self.next_free)
        # The BAT page by page where entries were set; the rest stays a hole (zeros).
        page = 64 * s.KiB
        per_page = page // 8
        pages: dict[int, bytearray] = {}
        for index in sorted(self.bat):
            buf = pages.setdefault(index // per_page, bytearray(page))
            struct.pack_into("<Q", buf, (index % per_page) * 8, self.bat[index])
            if len(pages) > 1:  # indexes ascend: earlier pages are complete
                first = min(pages)
                pwrite_all(self.fd, pages.pop(first), BAT_OFFSET + first * page)
        for number, buf in pages.items():
            pwrite_all(self.fd, buf, BAT_OFFSET + number * page)
        return self.next_free
