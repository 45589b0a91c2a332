"""The preservation manifest (`manifest.json` and `manifest.csv`) and its verification."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import getpass
import io
import json
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hvrescue import __version__
from hvrescue.errors import HvrescueError, InputError
from hvrescue.io.atomic import atomic_output, output_error
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


def write_manifest(dest: str, data: dict[str, Any], *, update: bool = False) -> None:
    """manifest.json and manifest.csv, each appearing only when complete. With ``update`` they
    replace the ones of this preservation (a retry that read more), each in one step."""
    payload = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    with _output(os.path.join(dest, MANIFEST), update) as fd:
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
    with _output(os.path.join(dest, MANIFEST_CSV), update) as fd:
        # A BOM so that Excel on Japanese Windows opens UTF-8 paths correctly.
        os.write(fd, b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))


@contextmanager
def _output(path: str, update: bool) -> Iterator[int]:
    if not update:
        with atomic_output(path) as fd:
            yield fd
        return
    # Our own manifest, replaced whole: the new one is complete under a name of ours first.
    staged = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".update")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staged)  # left by a retry that was killed
    with atomic_output(staged) as fd:
        yield fd
    try:
        os.replace(staged, path)
    except OSError as exc:
        raise output_error(exc, path) from exc


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
    # "ok"; "incomplete": as recorded, but the record lists ranges the original could not give
    # (zeros in the copy); "mismatch", "missing", "size-mismatch", "unreadable", "invalid-path"
    status: str
    expected: dict[str, str]
    found: dict[str, str]
    size: int | None
    expected_size: int | None
    unreadable_in_copy: bool
    unreadable: list[list[int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "expected": self.expected,
            "found": self.found,
            "size": self.size,
            "expected_size": self.expected_size,
            "zero_filled_ranges": self.unreadable_in_copy,
            "unreadable": self.unreadable,
        }


def recorded_ranges(entry: dict[str, Any]) -> list[list[int]]:
    """The unreadable ranges a manifest entry records, as ``[[offset, length], ...]``."""
    raw = entry.get("unreadable")
    if not isinstance(raw, list):
        return []
    out: list[list[int]] = []
    for item in raw:
        if (
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            out.append([item[0], item[1]])
    return out


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
        ranges = recorded_ranges(entry)
        partial = bool(entry.get("unreadable"))

        def result(
            status: str, size: int | None, found: dict[str, str] | None = None
        ) -> VerifyResult:
            return VerifyResult(
                rel, status, expected, found or {}, size, expected_size, partial, ranges
            )

        full = safe_join(dest, rel)
        if full is None:
            return result("invalid-path", None)
        if not os.path.isfile(full):
            return result("missing", None)
        size = os.path.getsize(full)
        if expected_size is not None and size != expected_size:
            return result("size-mismatch", size)
        if not expected:
            return result("invalid-path", size)
        try:
            found, _ = hash_file(full, tuple(expected), progress)
        except HvrescueError:
            return result("unreadable", size)
        if found != expected:
            return result("mismatch", size, found)
        # The copy is what was recorded; where the record says the original could not be read,
        # the copy holds zeros, not the evidence: it never passes as complete.
        return result("incomplete" if partial else "ok", size, found)

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
