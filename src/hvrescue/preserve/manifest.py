"""The preservation manifest (`manifest.json` and `manifest.csv`) and its verification."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import getpass
import io
import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hvrescue import __version__
from hvrescue.errors import HvrescueError, InputError
from hvrescue.io.atomic import atomic_output, output_error
from hvrescue.io.files import NotRegularFileError
from hvrescue.io.nofollow import (
    Confined,
    LinkError,
    TooLargeError,
    lstat_or_none,
    read_own,
    refuse_link,
)
from hvrescue.preserve.copy import ALGORITHMS, hash_file

MANIFEST = "manifest.json"
MANIFEST_CSV = "manifest.csv"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
# Bounds of what a manifest may hold (ours nests 4 deep and lists at most plan.MAX_FILES).
MAX_MANIFEST_DEPTH = 32
MAX_MANIFEST_ENTRIES = 1_000_000


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
        # .get: a manifest rewritten by a retry may hold entries a hand edited.
        writer.writerow(
            [
                f.get("path", ""),
                f.get("source", ""),
                f.get("size", ""),
                f.get("mtime", ""),
                f.get("role", ""),
                f.get("parent") or "",
                *[f.get(a, "") for a in algorithms],
                ";".join(f"{o}+{n}" for o, n in recorded_ranges(f)),
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
        os.unlink(staged)  # left by a retry that was killed (a link there: removed itself)
    with atomic_output(staged) as fd:
        yield fd
    refuse_link(path)  # rename() would replace a link, not write through it: refused anyway
    try:
        os.replace(staged, path)
    except OSError as exc:
        raise output_error(exc, path) from exc


def load_manifest(path: str) -> tuple[str, dict[str, Any]]:
    """(DEST folder, manifest) from a DEST folder or a manifest.json path.

    The folder is the one the user named (links in that path are the user's choice); the
    manifest file itself is never read through a link, and is parsed within bounds (size,
    nesting depth, entry count). An entry that is not an object with a string ``path`` does not
    spoil the others: it stands in the list as ``{"path": "files[N]", "invalid": reason}``,
    which verification reports as ``invalid-entry``."""
    manifest_path = os.path.join(path, MANIFEST) if os.path.isdir(path) else path
    try:
        raw = read_own(manifest_path, MAX_MANIFEST_BYTES)
    except FileNotFoundError as exc:
        raise InputError("error.manifest.missing", path=manifest_path) from exc
    except LinkError as exc:
        raise InputError("error.links.manifest-link", path=manifest_path) from exc
    except TooLargeError as exc:
        reason = f"larger than {MAX_MANIFEST_BYTES} bytes"
        raise InputError("error.manifest.invalid", path=manifest_path, reason=reason) from exc
    except NotRegularFileError as exc:
        raise InputError("error.manifest.invalid", path=manifest_path, reason=exc.kind) from exc
    except OSError as exc:
        raise InputError(
            "error.manifest.invalid", path=manifest_path, reason=exc.strerror or str(exc)
        ) from exc
    return os.path.dirname(os.path.abspath(manifest_path)), parse_manifest(raw, manifest_path)


def _too_deep(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects deeper than ``limit`` (counted
    without recursion: strings removed, then innermost pairs stripped one level a pass)."""
    text = _STRING.sub(b"", raw)
    brackets = text.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        inner = _PAIR.sub(b"", brackets)
        if inner == brackets:
            return False  # unbalanced: the parser says what is wrong
        brackets = inner
    return bool(brackets)


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_manifest(raw: bytes, path: str) -> dict[str, Any]:
    """A manifest from its bytes, within bounds; see :func:`load_manifest`."""

    def invalid(reason: str) -> InputError:
        return InputError("error.manifest.invalid", path=path, reason=reason)

    if len(raw) > MAX_MANIFEST_BYTES:
        raise invalid(f"larger than {MAX_MANIFEST_BYTES} bytes")
    if _too_deep(raw, MAX_MANIFEST_DEPTH):
        raise invalid(f"nested deeper than {MAX_MANIFEST_DEPTH} levels")
    try:
        data = json.loads(raw)
    except RecursionError as exc:  # the depth check above makes this unreachable in practice
        raise invalid(f"nested deeper than {MAX_MANIFEST_DEPTH} levels") from exc
    except ValueError as exc:
        raise invalid(str(exc)[:300]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise invalid("no 'files' list")
    files: list[Any] = data["files"]
    if len(files) > MAX_MANIFEST_ENTRIES:
        raise invalid(f"more than {MAX_MANIFEST_ENTRIES} entries")
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            files[i] = {"path": f"files[{i}]", "invalid": "not an object"}
        elif not isinstance(entry.get("path"), str) or not entry["path"]:
            files[i] = {"path": f"files[{i}]", "invalid": "no path"}
    return data


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
    # (zeros in the copy); "mismatch", "missing", "size-mismatch", "unreadable", "invalid-path",
    # "link" (a link where the copy should be: not followed), "invalid-entry" (not an object)
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
    algorithms: tuple[str, ...] | None = None,
) -> list[VerifyResult]:
    """Hash each entry's copy in ``dest``, under every algorithm it records (or those of
    ``algorithms`` it records), all in one read; a copy is read only through real folders of
    DEST, never through a link (a link where a copy should be is reported as ``link``)."""
    confined = Confined(dest)
    wanted = ALGORITHMS if algorithms is None else algorithms

    def one(entry: dict[str, Any]) -> VerifyResult:
        rel = entry["path"]
        expected = {a: str(entry[a]).lower() for a in wanted if isinstance(entry.get(a), str)}
        expected_size = entry.get("size") if isinstance(entry.get("size"), int) else None
        ranges = recorded_ranges(entry)
        partial = bool(entry.get("unreadable"))

        def result(
            status: str, size: int | None, found: dict[str, str] | None = None
        ) -> VerifyResult:
            return VerifyResult(
                rel, status, expected, found or {}, size, expected_size, partial, ranges
            )

        if "invalid" in entry:
            return result("invalid-entry", None)
        full = safe_join(dest, rel)
        if full is None:
            return result("invalid-path", None)
        try:
            confined.check(full)
        except LinkError:
            return result("link", None)
        st = lstat_or_none(full)
        if st is None or not stat.S_ISREG(st.st_mode):
            return result("missing", None)
        size = st.st_size
        if expected_size is not None and size != expected_size:
            return result("size-mismatch", size)
        if not expected:
            return result("invalid-path", size)
        try:
            found, _ = hash_file(full, tuple(expected), progress, own=True)
        except LinkError:
            return result("link", size)
        except HvrescueError:
            return result("unreadable", size)
        if found != expected:
            return result("mismatch", size, found)
        # The copy is what was recorded; where the record says the original could not be read,
        # the copy holds zeros, not the evidence: it never passes as complete.
        return result("incomplete" if partial else "ok", size, found)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, entries))


def check_recorded(entries: list[dict[str, Any]], algorithms: tuple[str, ...]) -> None:
    """Refuse to verify with an algorithm the manifest does not record for every entry
    (``error.verify.not-recorded``): a file checked by nothing must not pass."""
    for entry in entries:
        if "invalid" in entry:
            continue  # reported as invalid-entry by verification
        for a in algorithms:
            if not isinstance(entry.get(a), str):
                recorded = ", ".join(x for x in ALGORITHMS if isinstance(entry.get(x), str))
                raise InputError(
                    "error.verify.not-recorded",
                    algorithm=a,
                    path=entry.get("path", ""),
                    recorded=recorded or "-",
                )


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
