"""Independent readers used as oracles: libvhdi-python (pyvhdi) and qemu-img."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

CHUNK = 4 * 1024 * 1024


def pyvhdi_sha256(path: Path, parent: Path | None = None) -> str:
    pyvhdi = pytest.importorskip("pyvhdi")
    f = pyvhdi.file()
    f.open(str(path))
    opened = [f]
    if parent is not None:
        p = pyvhdi.file()
        p.open(str(parent))
        opened.append(p)
        f.set_parent(p)
    h = hashlib.sha256()
    size = f.get_media_size()
    pos = 0
    while pos < size:
        n = min(CHUNK, size - pos)
        h.update(f.read_buffer_at_offset(n, pos))
        pos += n
    for x in opened:
        x.close()
    return h.hexdigest()


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
