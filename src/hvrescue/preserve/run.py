"""`preserve`: copy a VM or chain to other storage, prove the copy, and record it.

Safety rules, checked before a byte is copied: DEST may not lie inside a source folder, must be
new or empty (or a preservation being resumed), must be on other storage than every source
unless the user insists, and must have room. Copies are written under a work folder inside DEST
and appear under their final names only when complete (hard link, never replacing a file).
Finished files are journalled, so ``--resume`` verifies and skips them and continues a partial
one from its last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError, InputError, OutputError
from hvrescue.io.nofollow import Confined, LinkError, lstat_or_none
from hvrescue.preserve.case import CASE_FILE, CaseRecord
from hvrescue.preserve.copy import ALGORITHMS, copy_file, hash_file
from hvrescue.preserve.dest import (
    JOURNAL,
    RESERVED,
    WORK_DIR,
    Journal,
    check_destination,
    check_space,
    check_storage,
    publish,
)
from hvrescue.preserve.manifest import (
    MANIFEST,
    base_record,
    iso_ns,
    load_manifest,
    safe_join,
    verify_entries,
    write_manifest,
)
from hvrescue.preserve.plan import NOT_A_GAP, PlannedFile, Unreachable, build_plan
from hvrescue.preserve.refill import RefillResult, refill
from hvrescue.preserve.snapshot import Snapshots

REFERENCE_ONLY = {"config-disk-missing", "config-file-missing", *NOT_A_GAP}
# Problems of a retry of unreadable ranges (the original changed or is gone): the ranges stay.
RETRY_ONLY = {"source-changed", "source-unavailable"}


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
    snapshot: bool = False  # read the sources through volume shadow copies (Windows)


@dataclass
class Outcome:
    dest: str
    manifest: dict[str, Any]
    complete: bool
    resumed_verified: int = 0
    retried: int = 0  # bytes unreadable before that a --resume read again
    recovered: int = 0  # bytes among them that read this time (now in the copies)


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
    """Run a preservation. ``progress(done_bytes, total_bytes)`` is called from worker threads.
    With ``options.snapshot`` the sources are read through shadow copies made for this run and
    deleted when it ends, however it ends."""
    if not options.snapshot:
        return _preserve(sources, dest, options, argv, progress, cancel, None)
    with Snapshots() as snaps:
        return _preserve(sources, dest, options, argv, progress, cancel, snaps)


def _preserve(
    sources: list[str],
    dest: str,
    options: Options,
    argv: list[str],
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    snaps: Snapshots | None,
) -> Outcome:
    cancel = cancel or threading.Event()
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

    plan = build_plan(snaps.take(sources) if snaps else sources, options.search)
    if not plan.files:
        raise InputError("error.preserve.nothing", sources=", ".join(sources))
    same = check_storage(plan, dest, options.allow_same_storage)
    work = os.path.join(dest, WORK_DIR)
    confined = Confined(dest)  # below DEST, no link is followed
    journal = Journal(confined, os.path.join(work, JOURNAL))
    done = journal.load() if state == "resume" else {}
    check_space(dest, sum(f.allocated for f in plan.files if f.rel not in done))
    if state == "fresh" and not os.path.isdir(dest):
        try:
            os.mkdir(dest)  # DEST itself only: the folders above it must exist
        except FileExistsError as exc:
            raise InputError("error.output.exists", path=dest) from exc
    confined.makedirs(work)

    rel_of = {f.source: f.rel for f in plan.files}
    total = plan.total_bytes
    counter = [0]
    counter_lock = threading.Lock()

    def tick(n: int) -> None:
        if cancel.is_set():
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
            # confined.exists refuses a link at either name (LinkError): never followed.
            target = final if confined.exists(final) else part if confined.exists(part) else None
            if target is not None:
                _only_name(target, part, final)
            if target is not None and previous.get("unreadable"):
                _retry_finished(f, previous, target, part, final)
                return
            if target is not None:
                wanted = {a: previous.get(a) for a in algorithms if previous.get(a)}
                hashes, _size = hash_file(target, tuple(wanted) or ("sha256",), tick, own=True)
                if hashes == wanted:
                    if target == part:
                        publish(part, final, confined)
                    entries[f.rel] = previous
                    verified[0] += 1
                    return
                with problems_lock:
                    problems.append(Unreachable(f.source, "copy-changed", detail=f.rel))
                return
        elif confined.exists(final):
            with problems_lock:
                problems.append(Unreachable(f.source, "target-exists", detail=f.rel))
            return
        confined.makedirs(os.path.dirname(part))
        try:
            result = copy_file(
                f.source,
                part,
                algorithms,
                progress=tick,
                resume=state == "resume",
                confined=confined,
            )
        except LinkError:
            raise  # a link in our own work folder: the whole run is refused, never followed
        except HvrescueError as exc:
            with problems_lock:
                problems.append(Unreachable(f.source, "unreadable", detail=exc.key))
            return
        entry = _entry(f, rel_of, result)
        if snaps is not None:
            snaps.restore_names(entry)
        journal.append(entry)
        publish(part, final, confined)
        confined.unlink(part + ".state")
        entries[f.rel] = entry

    def _only_name(target: str, part: str, final: str) -> None:
        """A copy trusted from an earlier run must be no other name of a file (an original
        hard-linked into DEST would pass its hash check and then be handed out, or written
        into, as the copy). A run cut between linking the finished part to its final name and
        removing the part leaves both names: the part, ours, goes."""
        st = os.lstat(target)
        if st.st_nlink > 1 and target == final:
            other = lstat_or_none(part)
            if other is not None and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                confined.unlink(part)
                st = os.lstat(target)
        if st.st_nlink > 1:
            raise LinkError(target, "error.links.hard-link")

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
            publish(part, final, confined)
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
            _wait_all(futures)
        except BaseException:
            # Ctrl-C or a failure: running copies stop at their next chunk (their checkpoints
            # stay for --resume), queued ones never start.
            cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if snaps is not None:
        snaps.release()  # before the manifest, which records when they went

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
    if snaps is not None:
        manifest["snapshots"] = snaps.records()
        if snaps.undeleted():
            manifest["warnings"].append("snapshot-not-deleted")
    write_manifest(dest, manifest)
    _record_case(options.case or os.path.join(dest, CASE_FILE), argv, manifest, dest, complete)
    shutil.rmtree(work, ignore_errors=True)
    return Outcome(dest, manifest, complete, verified[0], retried[0], recovered[0])


def _wait_all(futures: list[Future[None]]) -> None:
    """Wait for every future, raising the first failure. Short waits, never one unbounded
    ``result()``: on Windows before Python 3.14 a blocked wait does not see Ctrl-C."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
        for fut in done:
            fut.result()


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
        with case.batch():  # one commit for the whole action, not one per file
            action = case.begin("preserve", argv)
            for e in manifest["files"]:
                if not isinstance(e.get("source"), str):
                    continue  # an entry a hand made: nothing to record for it
                case.add_file(
                    action,
                    "input",
                    e["source"],
                    size=e.get("size"),
                    mtime_ns=e.get("mtime_ns"),
                    sha256=e.get("sha256"),
                    role=e.get("role"),
                )
                copy = os.path.join(dest, *e["path"].split("/"))
                sha = e.get("sha256")
                case.add_file(action, "output", copy, sha256=sha, role=e.get("role"))
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
    listed = manifest.get("unreachable")
    manifest["unreachable"] = [u for u in listed if isinstance(u, dict)] if listed else []
    gappy = [e for e in files if e.get("unreadable") and "invalid" not in e]
    whole = [e for e in files if not e.get("unreadable") or "invalid" in e]
    results = verify_entries(dest, whole, options.jobs)
    bad = [r.path for r in results if r.status != "ok"]
    retried: dict[str, RefillResult] = {}
    confined = Confined(dest)
    for e in gappy:
        copy = safe_join(dest, e["path"])
        if copy is None or not confined.exists(copy) or not os.path.isfile(copy):
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
        Unreachable(e.get("source"), r.problem, detail=e["path"]).as_dict()
        for e in gappy
        if (r := retried[e["path"]]).problem is not None
    ]
    if problems:
        # Shown with this run's answer; the manifest keeps only what the copy is.
        shown = [*manifest.get("unreachable", []), *problems]
        outcome.manifest = {**manifest, "unreachable": shown}
    return outcome
