"""The bundle: one zip, written under a temporary name and renamed when complete, never over an
existing file; ``hvrescue-bundle.json`` at its root with the SHA-256 of every other member.

The hash of a member is taken of the bytes written into the zip (as they are read back from
the collector's temporary folder), so the manifest describes the bundle itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from typing import Any

from hvrescue.io.atomic import atomic_output
from hvrescue.io.nofollow import open_existing

MANIFEST = "hvrescue-bundle.json"
FORMAT = "hvrescue-bundle"
VERSION = 1
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Member:
    """A file of the temporary folder going into the bundle as ``name`` (at most ``limit``
    bytes of it: the first part of an output that passed the cap); ``source``: the host path
    it was copied from, or None for what the collector produced."""

    name: str
    temp: str
    source: str | None = None
    limit: int | None = None


def _add(zf: zipfile.ZipFile, member: Member) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    left = member.limit
    fd = open_existing(member.temp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as src, zf.open(member.name, "w", force_zip64=True) as dst:
        while left is None or left > 0:
            chunk = src.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return {
        "path": member.name,
        "sha256": digest.hexdigest(),
        "size": size,
        "source": member.source,
    }


def write_bundle(out: str, manifest: dict[str, Any], members: list[Member]) -> dict[str, Any]:
    """Write the zip at ``out``; return the manifest completed with its ``files``. ``manifest``
    is called with the files list filled in just before it is written (its ``finished`` is set
    by the caller)."""
    names: set[str] = {MANIFEST}
    files: list[dict[str, Any]] = []
    with (
        atomic_output(out) as fd,
        os.fdopen(fd, "wb", closefd=False) as fh,
        zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf,
    ):
        for member in members:
            if member.name in names:
                continue  # the same member twice (a path discovered twice): kept once
            names.add(member.name)
            files.append(_add(zf, member))
        complete = {**manifest, "files": files}
        text = json.dumps(complete, ensure_ascii=False, indent=2) + "\n"
        zf.writestr(MANIFEST, text.encode("utf-8"))
    return complete
