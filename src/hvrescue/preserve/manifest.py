"""The preservation manifest (`manifest.json` and `manifest.csv`) and its verification."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import json
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hvrescue import __version__
from hvrescue.errors import HvrescueError, InputError
from hvrescue.io.atomic import atomic_output
from hvrescue.preserve.copy import ALGORITHMS, hash_file

MANIFEST = "manifest.json"
MANIFEST_CSV = "manifest.csv"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_ns(ns: int) -> str:
    when = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC) + dt.timedelta(
        microseconds=(ns % 1_000_000_000) // 1000
    )
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def who() -> dict[str, str | None]:
    try:
        user: str | None = getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment: recorded as unknown
        user = None
    return {"host": socket.gethostname(), "user": user}


def write_manifest(dest: str, data: dict[str, Any]) -> None:
    """manifest.json and manifest.csv, each appearing only when complete."""
    payload = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    with atomic_output(os.path.join(dest, MANIFEST)) as fd:
        os.write(fd, payload)
    algorithms = data.get("algorithms") or ["sha256"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(
        ["path", "source", "size", "mtime", "role", "parent", *algorithms, "unreadable"]
    )
    for f in data["files"]:
        writer.writerow(
            [
                f["path"],
                f["source"],
                f["size"],
                f["mtime"],
                f["role"],
                f["parent"] or "",
                *[f.get(a, "") for a in algorithms],
                ";".join(f"{o}+{n}" for o, n in f["unreadable"]),
            ]
        )
    with atomic_output(os.path.join(dest, MANIFEST_CSV)) as fd:
        # A BOM so that Excel on Japanese Windows opens UTF-8 paths correctly.
        os.write(fd, b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))


def load_manifest(path: str) -> tuple[str, dict[str, Any]]:
    """(DEST folder, manifest) from a DEST folder or a manifest.json path."""
    manifest_path = os.path.join(path, MANIFEST) if os.path.isdir(path) else path
    try:
        size = os.path.getsize(manifest_path)
        if size > MAX_MANIFEST_BYTES:
            raise InputError("error.manifest.invalid", path=manifest_path, reason="too large")
        with open(manifest_path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError as exc:
        raise InputError("error.manifest.missing", path=manifest_path) from exc
    except (OSError, ValueError) as exc:
        raise InputError("error.manifest.invalid", path=manifest_path, reason=str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise InputError("error.manifest.invalid", path=manifest_path, reason="no 'files' list")
    for entry in data["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise InputError("error.manifest.invalid", path=manifest_path, reason="bad entry")
    return os.path.dirname(os.path.abspath(manifest_path)), data


def safe_join(dest: str, rel: str) -> str | None:
    """``dest``/``rel`` if it stays inside ``dest`` (a manifest may be hostile)."""
    if not rel or rel.startswith(("/", "\\")) or ":" in rel:
        return None
    full = os.path.normpath(os.path.join(dest, *rel.split("/")))
    if os.path.commonpath([full, os.path.normpath(dest)]) != os.path.normpath(dest):
        return None
    return full


@dataclass
class VerifyResult:
    path: str
    status: str  # "ok", "mismatch", "missing", "size-mismatch", "unreadable", "invalid-path"
    expected: dict[str, str]
    found: dict[str, str]
    size: int | None
    expected_size: int | None
    unreadable_in_copy: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "expected": self.expected,
            "found": self.found,
            "size": self.size,
            "expected_size": self.expected_size,
            "zero_filled_ranges": self.unreadable_in_copy,
        }


def verify_entries(
    dest: str,
    entries: list[dict[str, Any]],
    jobs: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[VerifyResult]:
    def one(entry: dict[str, Any]) -> VerifyResult:
        rel = entry["path"]
        expected = {a: str(entry[a]).lower() for a in ALGORITHMS if isinstance(entry.get(a), str)}
        expected_size = entry.get("size") if isinstance(entry.get("size"), int) else None
        partial = bool(entry.get("unreadable"))
        full = safe_join(dest, rel)
        if full is None:
            return VerifyResult(rel, "invalid-path", expected, {}, None, expected_size, partial)
        if not os.path.isfile(full):
            return VerifyResult(rel, "missing", expected, {}, None, expected_size, partial)
        size = os.path.getsize(full)
        if expected_size is not None and size != expected_size:
            return VerifyResult(rel, "size-mismatch", expected, {}, size, expected_size, partial)
        if not expected:
            return VerifyResult(rel, "invalid-path", expected, {}, size, expected_size, partial)
        try:
            found, _ = hash_file(full, tuple(expected), progress)
        except HvrescueError:
            return VerifyResult(rel, "unreadable", expected, {}, size, expected_size, partial)
        status = "ok" if found == expected else "mismatch"
        return VerifyResult(rel, status, expected, found, size, expected_size, partial)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, entries))


def base_record(command: list[str]) -> dict[str, Any]:
    import shlex

    return {
        "created": utc_now(),
        **who(),
        "tool": {"name": "hvrescue", "version": __version__},
        "command": shlex.join(command),
        "argv": command,
        "cwd": os.getcwd(),
    }
