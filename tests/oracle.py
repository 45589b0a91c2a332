"""Independent readers used as oracles: libvhdi-python (pyvhdi) and qemu-img."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

CHUNK = 4 * 1024 * 1024


def pyvhdi_sha256(path: Path, parent: Path | None = None) -> str:
    return pyvhdi_chain_sha256([path] if parent is None else [path, parent])


def qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    return exe


def qemu_sha256(path: Path, fmt: str, tmp: Path) -> str:
    raw = tmp / (path.name + ".raw")
    subprocess.run([qemu_img(), "convert", "-f", fmt, "-O", "raw", str(path), str(raw)], check=True)
    h = hashlib.sha256()
    with open(raw, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    raw.unlink()
    return h.hexdigest()


def pyvhdi_chain_sha256(layers: list[Path]) -> str:
    """SHA-256 of a chain (leaf first) as libvhdi reads it, each parent set explicitly."""
    pyvhdi = pytest.importorskip("pyvhdi")
    files = []
    for path in layers:
        f = pyvhdi.file()
        f.open(str(path))
        files.append(f)
    for child, parent in itertools.pairwise(files):
        child.set_parent(parent)
    leaf = files[0]
    h = hashlib.sha256()
    size = leaf.get_media_size()
    pos = 0
    while pos < size:
        n = min(CHUNK, size - pos)
        h.update(leaf.read_buffer_at_offset(n, pos))
        pos += n
    for f in files:
        f.close()
    return h.hexdigest()


def dissect_sha256(path: Path) -> str:
    """SHA-256 of a standalone VHDX/VHD as dissect.hypervisor reads it."""
    vhdx = pytest.importorskip("dissect.hypervisor.disk.vhdx")
    vhd = pytest.importorskip("dissect.hypervisor.disk.vhd")
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        disk = vhdx.VHDX(fh) if path.suffix.lower().endswith("x") else vhd.VHD(fh)
        disk.seek(0)
        for chunk in iter(lambda: disk.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def qemu_compare(a: Path, fmt_a: str, b: Path, fmt_b: str) -> subprocess.CompletedProcess[str]:
    """`qemu-img compare`: 0 when the two images have the same content."""
    return subprocess.run(
        [qemu_img(), "compare", "-f", fmt_a, "-F", fmt_b, str(a), str(b)],
        capture_output=True,
        text=True,
    )


def qemu_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [qemu_img(), "check", "-f", "vhdx", str(path)], capture_output=True, text=True
    )
