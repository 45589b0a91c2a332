"""Preserve and verify, one call each: what the `preserve` and `verify` commands run, for
Python users too.

:func:`preserve_to` copies VM folders, disks (their whole chains) and configurations to DEST
with hashes, a manifest and a case record (see :mod:`hvrescue.preserve.run` for the safety
rules). :func:`verify_copy` re-hashes a preserved copy against its manifest and says whether it
is a whole copy: a file recorded with unreadable (zero-filled) ranges, or a preservation that
could not reach every file it needed, never passes as complete.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvrescue.preserve.manifest import (
    MANIFEST,
    VerifyResult,
    check_recorded,
    load_manifest,
    verify_entries,
)
from hvrescue.preserve.run import REFERENCE_ONLY, Options, Outcome, preserve

# Files copied or hashed at once unless told: enough to overlap reads of a few disks without
# thrashing one spindle.
MAX_DEFAULT_JOBS = 4


def default_jobs() -> int:
    """The CPU count, at most :data:`MAX_DEFAULT_JOBS`."""
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def is_reference_only(unreachable: dict[str, Any]) -> bool:
    """An unreachable entry that only records a reference nobody could follow (a configuration
    naming a disk or file not present): worth a warning, not a gap in the copy."""
    return unreachable.get("reason") in REFERENCE_ONLY


@dataclass
class PreserveResult:
    """A finished preservation: the manifest written to DEST and what it says."""

    outcome: Outcome

    @property
    def dest(self) -> str:
        return self.outcome.dest

    @property
    def manifest(self) -> dict[str, Any]:
        return self.outcome.manifest

    @property
    def complete(self) -> bool:
        return self.outcome.complete

    @property
    def status(self) -> str:
        """``complete``, or ``incomplete`` (zero-filled ranges, files unreachable)."""
        return "complete" if self.outcome.complete else "incomplete"

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.outcome.dest, MANIFEST)

    @property
    def total_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.manifest["files"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "manifest_path": self.manifest_path,
            "verified_from_previous_run": self.outcome.resumed_verified,
            "retried_bytes": self.outcome.retried,
            "recovered_bytes": self.outcome.recovered,
            **self.manifest,
        }


def preserve_to(
    sources: list[str],
    dest: str,
    *,
    algorithms: tuple[str, ...] = ("sha256",),
    allow_same_storage: bool = False,
    resume: bool = False,
    snapshot: bool = False,
    jobs: int | None = None,
    search: list[str] | None = None,
    case: str | None = None,
    argv: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> PreserveResult:
    """Copy ``sources`` to ``dest`` with hashes (SHA-256 always, ``algorithms`` besides).
    ``progress(done, total)`` is called from worker threads; setting ``cancel`` stops the
    copy (raising :class:`hvrescue.preserve.run.Cancelled`), resumable with ``resume``."""
    options = Options(
        algorithms=algorithms or ("sha256",),
        allow_same_storage=allow_same_storage,
        resume=resume,
        snapshot=snapshot,
        jobs=jobs or default_jobs(),
        search=list(search or []),
        case=case,
    )
    command = argv or ["hvrescue", "preserve", *sources, dest]
    return PreserveResult(preserve(list(sources), dest, options, command, progress, cancel))


@dataclass
class VerifyReport:
    """Every recorded file re-hashed against the manifest."""

    dest: str
    manifest: dict[str, Any]
    files: list[VerifyResult]

    @property
    def failed(self) -> list[VerifyResult]:
        """Missing, different, unreadable, or with a path that leaves DEST."""
        return [r for r in self.files if r.status not in ("ok", "incomplete")]

    @property
    def incomplete(self) -> list[VerifyResult]:
        """As recorded, but the record lists ranges the original could not give (zeros)."""
        return [r for r in self.files if r.status == "incomplete"]

    @property
    def unreached(self) -> bool:
        """The preservation itself was recorded incomplete (files it could not reach) while
        no copy lists zero-filled ranges."""
        return self.manifest.get("complete") is False and not self.incomplete

    @property
    def unreached_count(self) -> int:
        return len(self.manifest.get("unreachable") or [])

    @property
    def zero_filled_bytes(self) -> int:
        return sum(n for r in self.incomplete for _o, n in r.unreadable)

    @property
    def status(self) -> str:
        """``mismatch``, ``incomplete`` or ``ok``."""
        if self.failed:
            return "mismatch"
        return "incomplete" if self.incomplete or self.unreached else "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "complete": self.ok,
            "dest": self.dest,
            "files": [r.as_dict() for r in self.files],
            "failed": [r.path for r in self.failed],
            "incomplete": [{"path": r.path, "unreadable": r.unreadable} for r in self.incomplete],
        }


def recorded_bytes(manifest: dict[str, Any]) -> int:
    """The bytes a manifest's files add up to (what verifying reads)."""
    return sum(e.get("size") or 0 for e in manifest["files"] if isinstance(e.get("size"), int))


def _running_total(
    progress: Callable[[int, int], None] | None, total: int
) -> Callable[[int], None] | None:
    """``progress(done, total)`` fed from calls with each step's byte count (from threads)."""
    if progress is None:
        return None
    done = [0]
    lock = threading.Lock()

    def step(n: int) -> None:
        with lock:  # one at a time, so that ``done`` never goes back
            done[0] += n
            progress(done[0], total)

    return step


def verify_copy(
    target: str,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    case: str | None = None,
    argv: list[str] | None = None,
    algorithms: tuple[str, ...] | None = None,
) -> VerifyReport:
    """Re-hash the preserved copy at ``target`` (DEST or its manifest.json), under every
    algorithm the manifest records, or only ``algorithms`` (each must be recorded).

    ``progress(done, total)`` is called from worker threads. With ``argv`` (the command line),
    the action is appended to the case record (``case``, default DEST/case.sqlite) with exit
    code 0 (ok) or 1, as best effort: a read-only DEST (write-blocked media) is still
    verified. Without ``argv`` nothing is written anywhere."""
    from hvrescue.preserve.case import CASE_FILE, record_command

    dest, manifest = load_manifest(target)
    entries = manifest["files"]
    if algorithms:
        check_recorded(entries, algorithms)
    results = verify_entries(
        dest,
        entries,
        jobs or default_jobs(),
        _running_total(progress, recorded_bytes(manifest)),
        algorithms or None,
    )
    report = VerifyReport(dest, manifest, results)
    if argv is not None:
        code = 0 if report.ok else 1
        with contextlib.suppress(OSError, sqlite3.Error):
            record_command(case or os.path.join(dest, CASE_FILE), "verify", argv, [], code)
    return report
