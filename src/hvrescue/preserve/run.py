"""`preserve`: copy a VM or chain to other storage, prove the copy, and record it.

Safety rules, checked before a byte is copied: DEST may not lie inside a source folder, must be
new or empty (or a preservation being resumed), must be on other storage than every source
unless the user insists, and must have room. Copies are written under a work folder inside DEST
and appear under their final names only when complete (hard link, never replacing a file).
Finished files are journalled, so ``--resume`` verifies and skips them and continues a partial
one from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError, OutputError
from hvrescue.io.atomic import link_into_place
from hvrescue.preserve.case import CASE_FILE, CaseRecord
from hvrescue.preserve.copy import ALGORITHMS, copy_file, hash_file
from hvrescue.preserve.manifest import (
    MANIFEST,
    base_record,
    iso_ns,
    load_manifest,
    safe_join,
    verify_entries,
    write_manifest,
)
from hvrescue.preserve.plan import Plan, PlannedFile, Unreachable, build_plan
from hvrescue.preserve.refill import RefillResult, refill

WORK_DIR = ".hvrescue-partial"
JOURNAL = "done.jsonl"
SPACE_MARGIN = 64 * 1024 * 1024
REFERENCE_ONLY = {"config-disk-missing", "config-file-missing"}
# Problems of a retry of unreadable ranges (the original changed or is gone): the ranges stay.
RETRY_ONLY = {"source-changed", "source-unavailable"}
RESERVED = {WORK_DIR, "manifest.json", "manifest.csv", "case.sqlite", "case.sqlite-journal"}


class Cancelled(Exception):
    pass


@dataclass
class Options:
    algorithms: tuple[str, ...] = ("sha256",)
    allow_same_storage: bool = False
    resume: bool = False
    jobs: int = 2
    search: list[str] = field(default_factory=list)
    case: str | None = None


@dataclass
class Outcome:
    dest: str
    manifest: dict[str, Any]
    complete: bool
    resumed_verified: int = 0
    retried: int = 0  # bytes unreadable before that a --resume read again
    recovered: int = 0  # bytes among them that read this time (now in the copies)


def _existing_ancestor(path: str) -> str:
    cur = os.path.abspath(path)
    while not os.path.exists(cur):
        up = os.path.dirname(cur)
        if up == cur:
            break
        cur = up
    return cur


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_destination(sources: list[str], dest: str, resume: bool) -> str:
    """Refusals that need no plan; returns 'fresh', 'resume' or 'done'."""
    for s in sources:
        if os.path.isdir(s) and _inside(dest, s):
            raise InputError("error.preserve.dest-inside-source", dest=dest, source=s)
        if os.path.isfile(s) and os.path.realpath(s) == os.path.realpath(dest):
            raise InputError("error.preserve.dest-inside-source", dest=dest, source=s)
    if not os.path.exists(dest):
        if os.path.lexists(dest):
            raise InputError("error.output.exists", path=dest)
        return "fresh"
    if not os.path.isdir(dest):
        raise InputError("error.output.exists", path=dest)
    entries = set(os.listdir(dest))
    if MANIFEST in entries:
        if resume:
            return "done"
        raise InputError("error.preserve.dest-not-empty", dest=dest)
    if not entries:
        return "fresh"
    if WORK_DIR in entries and resume:
        return "resume"
    if WORK_DIR in entries:
        raise InputError("error.preserve.needs-resume", dest=dest)
    raise InputError("error.preserve.dest-not-empty", dest=dest)


def check_storage(plan: Plan, dest: str, allow_same: bool) -> list[str]:
    anchor = _existing_ancestor(dest)
    device = os.stat(anchor).st_dev
    same = [f.source for f in plan.files if f.device == device]
    if same and not allow_same:
        raise InputError("error.preserve.same-storage", dest=dest, source=same[0])
    return same


def check_space(dest: str, needed: int) -> None:
    anchor = _existing_ancestor(dest)
    free = shutil.disk_usage(anchor).free
    if needed + SPACE_MARGIN > free:
        raise InputError(
            "error.preserve.no-space", dest=dest, needed=needed + SPACE_MARGIN, free=free
        )


def publish(tmp: str, final: str) -> None:
    """Give ``tmp`` its final name without ever replacing an existing file."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    link_into_place(tmp, final)


class _Journal:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by the interruption
                    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                        out[entry["path"]] = entry
        except FileNotFoundError:
            pass
        return out

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _entry(f: PlannedFile, rel_of: dict[str, str], result: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": f.rel,
        "source": f.source,
        "size": result.size,
        "mtime": iso_ns(result.mtime_ns),
        "mtime_ns": result.mtime_ns,
    }
    entry.update(result.hashes)
    entry.update(
        {
            "role": f.role,
            "parent": rel_of.get(f.parent) if f.parent else None,
            "parent_source": f.parent,
            "unreadable": result.unreadable,
            "holes": result.holes,
        }
    )
    return entry


def preserve(
    sources: list[str],
    dest: str,
    options: Options,
    argv: list[str],
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Run a preservation. ``progress(done_bytes, total_bytes)`` is called from worker threads."""
    for a in options.algorithms:
        if a not in ALGORITHMS:
            raise InputError("error.preserve.algorithm", name=a, known=", ".join(ALGORITHMS))
    algorithms = tuple(dict.fromkeys(("sha256", *options.algorithms)))
    dest = os.path.abspath(dest)
    sources = [os.path.abspath(s) for s in sources]
    if not any(os.path.lexists(s) for s in sources):
        raise InputError("error.input.missing", path=sources[0])
    parent = os.path.dirname(dest.rstrip(os.sep)) or dest
    if not os.path.isdir(parent):
        # DEST itself is made, never the folders above it: a mistyped path is refused.
        raise OutputError("error.output.folder-missing", path=dest, folder=parent)
    state = check_destination(sources, dest, options.resume)
    if state == "done":
        return _reverify_done(dest, options, argv)

    plan = build_plan(sources, options.search)
    if not plan.files:
        raise InputError("error.preserve.nothing", sources=", ".join(sources))
    same = check_storage(plan, dest, options.allow_same_storage)
    work = os.path.join(dest, WORK_DIR)
    journal = _Journal(os.path.join(work, JOURNAL))
    done = journal.load() if state == "resume" else {}
    check_space(dest, sum(f.allocated for f in plan.files if f.rel not in done))
    os.makedirs(work, exist_ok=True)

    rel_of = {f.source: f.rel for f in plan.files}
    total = plan.total_bytes
    counter = [0]
    counter_lock = threading.Lock()

    def tick(n: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        with counter_lock:
            counter[0] += n
            current = counter[0]
        if progress:
            progress(current, total)

    entries: dict[str, dict[str, Any]] = {}
    problems: list[Unreachable] = []
    problems_lock = threading.Lock()
    verified = [0]

    def one(f: PlannedFile) -> None:
        final = safe_join(dest, f.rel)
        if f.rel.split("/")[0] in RESERVED:
            with problems_lock:
                problems.append(Unreachable(f.source, "reserved-name", detail=f.rel))
            return
        if final is None:
            with problems_lock:
                problems.append(Unreachable(f.source, "invalid-name", detail=f.rel))
            return
        part = os.path.join(work, "parts", *f.rel.split("/"))
        previous = done.get(f.rel)
        if previous is not None:
            target = final if os.path.exists(final) else part if os.path.exists(part) else None
            if target is not None and previous.get("unreadable"):
                _retry_finished(f, previous, target, part, final)
                return
            if target is not None:
                wanted = {a: previous.get(a) for a in algorithms if previous.get(a)}
                hashes, _size = hash_file(target, tuple(wanted) or ("sha256",), tick)
                if hashes == wanted:
                    if target == part:
                        publish(part, final)
                    entries[f.rel] = previous
                    verified[0] += 1
                    return
                with problems_lock:
                    problems.append(Unreachable(f.source, "copy-changed", detail=f.rel))
                return
        elif os.path.lexists(final):
            with problems_lock:
                problems.append(Unreachable(f.source, "target-exists", detail=f.rel))
            return
        os.makedirs(os.path.dirname(part), exist_ok=True)
        try:
            result = copy_file(f.source, part, algorithms, progress=tick, resume=state == "resume")
        except HvrescueError as exc:
            with problems_lock:
                problems.append(Unreachable(f.source, "unreadable", detail=exc.key))
            return
        entry = _entry(f, rel_of, result)
        journal.append(entry)
        publish(part, final)
        state_file = part + ".state"
        if os.path.exists(state_file):
            os.unlink(state_file)
        entries[f.rel] = entry

    def _retry_finished(
        f: PlannedFile, previous: dict[str, Any], target: str, part: str, final: str
    ) -> None:
        """A file finished with unreadable ranges: read those again (see refill)."""
        result = refill(previous, target, f.source, tick)
        if result.problem is not None:
            with problems_lock:
                problems.append(Unreachable(f.source, result.problem, detail=f.rel))
            if result.problem == "copy-changed":
                return
        if result.changed:
            journal.append(result.entry)
        if target == part:
            publish(part, final)
        entries[f.rel] = result.entry
        with counter_lock:
            verified[0] += 1
            recovered[0] += result.recovered
            retried[0] += result.retried

    recovered, retried = [0], [0]
    order = sorted(plan.files, key=lambda f: -f.size)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = [pool.submit(one, f) for f in order]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            if cancel is not None:
                cancel.set()
            for fut in futures:
                fut.cancel()
            raise

    files = [entries[f.rel] for f in plan.files if f.rel in entries]
    unreachable = plan.unreachable + problems
    complete = _complete([u.as_dict() for u in unreachable], files)
    manifest: dict[str, Any] = {
        "files": files,
        **base_record(argv),
        "complete": complete,
        "algorithms": list(algorithms),
        "sources": sources,
        "dest": dest,
        "root": plan.root,
        "unreachable": [u.as_dict() for u in unreachable],
        "notes": plan.notes,
        "warnings": ["same-storage"] if same else [],
    }
    write_manifest(dest, manifest)
    _record_case(options.case or os.path.join(dest, CASE_FILE), argv, manifest, dest, complete)
    shutil.rmtree(work, ignore_errors=True)
    return Outcome(dest, manifest, complete, verified[0], retried[0], recovered[0])


def _complete(unreachable: list[dict[str, Any]], files: list[dict[str, Any]]) -> bool:
    """Complete: every file copied whole, and nothing the copy needs left behind."""
    # A file the configuration names but the evidence lacks is listed, yet does not make the copy
    # incomplete: the configuration may be stale or name another host's path. A missing chain
    # parent does: the chain would be copied half. A retry that could not run changes nothing
    # by itself: the file's unreadable ranges still stand.
    ignored = REFERENCE_ONLY | RETRY_ONLY
    if any(u.get("reason") not in ignored for u in unreachable):
        return False
    return not any(e.get("unreadable") for e in files)


def _record_case(
    case_path: str, argv: list[str], manifest: dict[str, Any], dest: str, complete: bool
) -> None:
    case = CaseRecord(case_path)
    try:
        action = case.begin("preserve", argv)
        for e in manifest["files"]:
            case.add_file(
                action,
                "input",
                e["source"],
                size=e["size"],
                mtime_ns=e["mtime_ns"],
                sha256=e["sha256"],
                role=e["role"],
            )
            copy = os.path.join(dest, *e["path"].split("/"))
            case.add_file(action, "output", copy, sha256=e["sha256"], role=e["role"])
        for name in (MANIFEST, "manifest.csv"):
            case.add_file(action, "output", os.path.join(dest, name), role="manifest")
        case.finish(
            action,
            0 if complete else 1,
            {"files": len(manifest["files"]), "unreachable": len(manifest["unreachable"])},
        )
    finally:
        case.close()


def _reverify_done(dest: str, options: Options, argv: list[str]) -> Outcome:
    """--resume on a finished preservation: verify every copy, read again every range that
    could not be read before (into the copy, where it reads now), and report."""
    _, manifest = load_manifest(dest)
    files: list[dict[str, Any]] = manifest["files"]
    gappy = [e for e in files if e.get("unreadable")]
    whole = [e for e in files if not e.get("unreadable")]
    results = verify_entries(dest, whole, options.jobs)
    bad = [r.path for r in results if r.status != "ok"]
    retried: dict[str, RefillResult] = {}
    for e in gappy:
        copy = safe_join(dest, e["path"])
        if copy is None or not os.path.isfile(copy):
            bad.append(e["path"])
            continue
        retried[e["path"]] = result = refill(e, copy)
        if result.problem == "copy-changed":
            bad.append(e["path"])
    if bad:
        raise InputError("error.preserve.done-but-changed", dest=dest, path=bad[0])
    recovered = sum(r.recovered for r in retried.values())
    again = sum(r.retried for r in retried.values())
    if any(r.changed for r in retried.values()):
        manifest["files"] = [retried[e["path"]].entry if e["path"] in retried else e for e in files]
        # What an earlier retry could not do is superseded by this one.
        manifest["unreachable"] = [
            u for u in manifest.get("unreachable", []) if u.get("reason") not in RETRY_ONLY
        ]
        manifest["complete"] = _complete(manifest["unreachable"], manifest["files"])
        # The copy changed after the manifest was first written: when, by which command.
        manifest.setdefault("retries", []).append(
            {**base_record(argv), "retried_bytes": again, "recovered_bytes": recovered}
        )
        write_manifest(dest, manifest, update=True)
        case = options.case or os.path.join(dest, CASE_FILE)
        _record_case(case, argv, manifest, dest, bool(manifest["complete"]))
    complete = bool(manifest.get("complete")) and _complete([], manifest["files"])
    outcome = Outcome(dest, manifest, complete, len(files), again, recovered)
    problems = [
        Unreachable(e["source"], r.problem, detail=e["path"]).as_dict()
        for e in gappy
        if (r := retried[e["path"]]).problem is not None
    ]
    if problems:
        # Shown with this run's answer; the manifest keeps only what the copy is.
        shown = [*manifest.get("unreachable", []), *problems]
        outcome.manifest = {**manifest, "unreachable": shown}
    return outcome
