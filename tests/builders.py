"""Build test disks and chains with the project's writer, qemu-img, or by patching bytes."""

from __future__ import annotations

import os
import shutil
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


# ---------------------------------------------------------------------------- guest disks
def _run(*cmd: str) -> None:
    import subprocess

    subprocess.run(cmd, check=True, capture_output=True)


def ntfs_tools() -> bool:
    import shutil as _sh

    return all(_sh.which(t) for t in ("mkntfs", "ntfs-3g", "sfdisk", "mkfs.fat", "mcopy"))


class NtfsMount:
    """Populate an NTFS image through ntfs-3g (FUSE); `None` from `open` when FUSE is denied."""

    def __init__(self, image: Path, where: Path) -> None:
        self.image, self.where = image, where

    def __enter__(self) -> Path:
        self.where.mkdir(parents=True, exist_ok=True)
        _run("ntfs-3g", str(self.image), str(self.where))
        return self.where

    def __exit__(self, *exc: object) -> None:
        _run("umount", str(self.where))


def populate(root: Path, files: dict[str, bytes], times: dict[str, int], streams: dict) -> None:
    for rel, data in files.items():
        target = root / rel
        if rel.endswith("/"):  # an empty folder
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if rel in times:
            os.utime(target, ns=(times[rel], times[rel]))
    for rel, pairs in streams.items():
        for name, data in pairs.items():
            os.setxattr(root / rel, f"user.{name}", data)


def make_ntfs(
    path: Path, size: int, files: dict[str, bytes], times: dict[str, int], streams: dict, mnt: Path
) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    _run("mkntfs", "-F", "-Q", "-q", "-s", "512", "-L", "Windows", str(path))
    with NtfsMount(path, mnt) as root:
        populate(root, files, times, streams)


def make_fat(path: Path, size: int, files: dict[str, bytes]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    _run("mkfs.fat", "-F", "16", "-n", "ESP", str(path))
    for rel, data in files.items():
        parts = rel.split("/")
        for i in range(1, len(parts)):
            import subprocess

            subprocess.run(
                ["mmd", "-i", str(path), "::/" + "/".join(parts[:i])], capture_output=True
            )
        src = path.parent / ("fat-" + parts[-1])
        src.write_bytes(data)
        _run("mcopy", "-i", str(path), str(src), "::/" + rel)
        src.unlink()


def make_guest_raw(
    folder: Path,
    scheme: str,
    ntfs_files: dict[str, bytes],
    times: dict[str, int] | None = None,
    streams: dict | None = None,
    esp_files: dict[str, bytes] | None = None,
    size: int = 96 * MiB,
) -> Path:
    """A raw disk: GPT (ESP FAT16 + NTFS) or MBR (NTFS only), partitions from 1 MiB."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"guest-{scheme}.raw"
    with open(raw, "wb") as f:
        f.truncate(size)
    if scheme == "gpt":
        layout = (
            "label: gpt\n"
            'start=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\n'
            'start=34816, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="Basic data"\n'
        )
    else:
        layout = "label: dos\nstart=2048, type=7, bootable\n"
    import subprocess

    subprocess.run(
        ["sfdisk", "-q", str(raw)], input=layout.encode(), check=True, capture_output=True
    )
    parts = subprocess.run(["sfdisk", "-J", str(raw)], check=True, capture_output=True).stdout
    table = __import__("json").loads(parts)["partitiontable"]["partitions"]
    for p in table:
        start, count = p["start"] * 512, p["size"] * 512
        image = folder / f"part{start}.img"
        if scheme == "gpt" and p["start"] == 2048:
            make_fat(image, count, esp_files or {})
        else:
            make_ntfs(image, count, ntfs_files, times or {}, streams or {}, folder / "mnt")
        with open(image, "rb") as src, open(raw, "r+b") as dst:
            dst.seek(start)
            shutil.copyfileobj(src, dst, 4 * MiB)
        image.unlink()
    return raw


def raw_to_vhdx_chain(raw_v1: Path, raw_v2: Path, folder: Path) -> tuple[Path, Path]:
    """base.vhdx (qemu-img's conversion of v1) <- child.avhdx (our writer: what v2 changed)."""
    import subprocess

    base, child = folder / "base.vhdx", folder / "child.avhdx"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vhdx",
            "-o",
            "subformat=dynamic",
            str(raw_v1),
            str(base),
        ],
        check=True,
        capture_output=True,
    )
    from hvrescue.vdisk.detect import probe_identity

    ident = probe_identity(str(base))
    assert ident is not None and ident[1]
    a, b = raw_v1.read_bytes(), raw_v2.read_bytes()
    changed: dict[int, bytes] = {}
    unit = 4096
    for off in range(0, len(b), unit):
        if a[off : off + unit] != b[off : off + unit]:
            changed[off] = b[off : off + unit]
    merged: dict[int, bytes] = {}
    for off in sorted(changed):
        prev = max(merged) if merged else None
        if prev is not None and prev + len(merged[prev]) == off:
            merged[prev] += changed[off]
        else:
            merged[off] = changed[off]
    write_vhdx(
        str(child),
        VhdxSpec(
            virtual_size=len(b),
            parent=ParentSpec(uuid.UUID(ident[1].strip("{}")), relative_path=".\\base.vhdx"),
        ),
        merged,
    )
    return base, child


def update_ntfs(
    raw_in: Path,
    raw_out: Path,
    files: dict[str, bytes],
    mnt: Path,
    times: dict[str, int] | None = None,
) -> None:
    """A copy of ``raw_in`` whose (last) NTFS partition also holds ``files``."""
    import json
    import subprocess

    table = json.loads(
        subprocess.run(["sfdisk", "-J", str(raw_in)], check=True, capture_output=True).stdout
    )["partitiontable"]["partitions"]
    part = table[-1]
    start, count = part["start"] * 512, part["size"] * 512
    image = raw_out.parent / "update-part.img"
    with open(raw_in, "rb") as src, open(image, "wb") as dst:
        src.seek(start)
        left = count
        while left:
            chunk = src.read(min(4 * MiB, left))
            dst.write(chunk)
            left -= len(chunk)
    with NtfsMount(image, mnt) as root:
        populate(root, files, times or {}, {})
    shutil.copyfile(raw_in, raw_out)
    with open(image, "rb") as src, open(raw_out, "r+b") as dst:
        dst.seek(start)
        shutil.copyfileobj(src, dst, 4 * MiB)
    image.unlink()
