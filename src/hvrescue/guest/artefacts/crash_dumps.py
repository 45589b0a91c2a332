"""Crash dumps: the bugcheck code and parameters from the header of Windows\\MEMORY.DMP and
of each file in Windows\\Minidump (kernel dump headers, PAGEDU64 / PAGEDUMP)."""

from __future__ import annotations

import struct
from typing import Any

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext
from hvrescue.guest.values import from_filetime

MEMORY_DMP = "/Windows/MEMORY.DMP"
MINIDUMPS = "/Windows/Minidump"
HEADER = 8192
MAX_MINIDUMPS = 10_000


def crash_dump_header(data: bytes) -> dict[str, Any] | None:
    """Bugcheck code and parameters from a kernel dump header (PAGEDU64 / PAGEDUMP)."""
    if data[:8] == b"PAGEDU64" and len(data) >= 0x60:
        code = struct.unpack_from("<I", data, 0x38)[0]
        params = struct.unpack_from("<4Q", data, 0x40)
        out: dict[str, Any] = {"bits": 64}
        if len(data) >= 0xFB0:
            out["dump_type"] = struct.unpack_from("<I", data, 0xF98)[0]
            when = from_filetime(struct.unpack_from("<Q", data, 0xFA8)[0])
            if when is not None:
                out["system_time"] = when
    elif data[:8] == b"PAGEDUMP" and len(data) >= 0x34:
        code = struct.unpack_from("<I", data, 0x20)[0]
        params = struct.unpack_from("<4I", data, 0x24)
        out = {"bits": 32}
    else:
        return None
    out.update(
        {
            "bugcheck_code": code,
            "bugcheck_hex": f"0x{code:08x}",
            "parameters": [f"0x{p:x}" for p in params],
        }
    )
    return out


def read_dumps(ctx: GuestContext) -> None:
    candidates = [MEMORY_DMP]
    candidates += [e.path for e in ctx.listdir(MINIDUMPS)[:MAX_MINIDUMPS] if not e.is_dir]
    for path in candidates:
        entry = ctx.stat(path)
        if entry is None or entry.is_dir:
            continue
        info = crash_dump_header(ctx.head(entry, HEADER))
        if info is None:
            ctx.problem(path, "guest.dump-unknown-format")
            continue
        info["file_modified"] = entry.modified
        info["file"] = path
        ctx.fact("crash_dump", info, path, "offset:0")


READER = Artefact(
    name="crash-dumps",
    reads=(MEMORY_DMP, MINIDUMPS + "/*"),
    run=read_dumps,
)
