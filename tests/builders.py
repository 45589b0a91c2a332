"""Build test disks and chains with the project's writer, qemu-img, or by patching bytes."""

from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

MiB = 1024 * 1024


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def set_data_write_guid(path: Path, value: uuid.UUID) -> None:
    """Rewrite DataWriteGuid in both VHDX headers and fix their CRC-32C."""
    for off in s.HEADER_OFFSETS:
        raw = bytearray(read_at(path, off, s.HEADER_SIZE))
        raw[32:48] = value.bytes_le
        struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
        patch(path, off, bytes(raw))


def fix_region_crc(path: Path, index: int) -> None:
    off = s.REGION_TABLE_OFFSETS[index]
    raw = bytearray(read_at(path, off, s.REGION_TABLE_SIZE))
    struct.pack_into("<I", raw, 4, crc32c_with_field_zeroed(bytes(raw), 4))
    patch(path, off, bytes(raw))


def make_chain(
    folder: Path,
    lss: int = 512,
    depth: int = 2,
    size: int = 64 * MiB,
    block: int = 2 * MiB,
    seed: int = 1,
) -> list[Path]:
    """base.vhdx <- c1.avhdx <- ... (leaf last), each layer writing partly over the previous."""
    rnd = __import__("random").Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    parent_guid: uuid.UUID | None = None
    for level in range(depth):
        guid = uuid.UUID(int=rnd.getrandbits(128))
        data: dict[int, bytes] = {}
        for _ in range(6):
            sectors = rnd.randrange(1, 3 * block // lss)
            offset = rnd.randrange(0, (size - sectors * lss) // lss) * lss
            data[offset] = rnd.randbytes(sectors * lss)
        # Keep writes apart so the dict holds non-overlapping ranges.
        ordered: dict[int, bytes] = {}
        end = 0
        for off in sorted(data):
            if off >= end:
                ordered[off] = data[off]
                end = off + len(data[off])
        name = "base.vhdx" if level == 0 else f"c{level}.avhdx"
        path = folder / name
        parent = None
        if parent_guid is not None:
            parent = ParentSpec(
                parent_guid,
                relative_path=".\\" + paths[-1].name,
                absolute_win32_path="D:\\VMs\\old\\" + paths[-1].name,
            )
        write_vhdx(
            str(path),
            VhdxSpec(
                virtual_size=size,
                block_size=block,
                logical_sector_size=lss,
                parent=parent,
                data_write_guid=guid,
            ),
            ordered,
        )
        paths.append(path)
        parent_guid = guid
    return paths


def sparse_raw(path: Path, size: int, blocks: dict[int, bytes]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in blocks.items():
            os.pwrite(f.fileno(), data, off)
