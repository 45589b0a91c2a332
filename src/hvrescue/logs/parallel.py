"""EVTX files of a walk read in worker processes, the results taken in the walk's order.

A host's ``winevt\\Logs`` folder holds hundreds of logs; each is parsed alone, so the files are
spread over processes (``jobs``; one per core by default) while the walk, the text readers and
the rest stay in this process. The facts come back in exactly the order a serial read gives
them (entry by entry, as the walk lists them): the serial and parallel results are equal
(tests/test_events_parallel.py holds the two together on the public EVTX corpus).

Memory stays bounded whatever the folder holds: at most ``WINDOW_PER_JOB`` files per worker are
read ahead of the one the caller is taking, each worker holds one file's facts at a time under
its own copy of the walk's budget, and what a file gave is handed on as soon as the files before
it have been. A worker that dies (the system ran out of memory, say) costs nothing: that file is
read again here, as it would have been without workers.

Only on-disk EVTX files go to the workers: zip members are read whole from their archive, which
is open in this process, and text is cheap next to the walk.

Whether to start workers at all is decided by the EVTX bytes the walk holds: the walk is looked
ahead (cheap: names, sizes, a few bytes of each file) until ``PARALLEL_FROM_BYTES`` of on-disk
EVTX are met, and the workers start then, with every log met so far for them; a walk that ends
below it (or meets a zip first: its members are read while it is open) is read here.
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from hvrescue.evidence import Budget, Folder, Item, Skipped
from hvrescue.evidence import classify as cls
from hvrescue.facts.model import FactSet
from hvrescue.logs.events import EventFilter

if TYPE_CHECKING:
    # Imported when the first worker starts: a run on one core, or on a few small logs,
    # never loads multiprocessing.
    from concurrent.futures import Future, ProcessPoolExecutor

# Files read ahead per worker: enough to keep every worker busy while the caller takes the
# oldest result, few enough that their facts never pile up.
WINDOW_PER_JOB = 2
MAX_JOBS = 64
# A walk starts workers only once it has met this many bytes of on-disk EVTX (two or more
# files): below that, starting processes costs more than it saves.
PARALLEL_FROM_BYTES = 4 * 1024 * 1024
# Entries looked ahead at most, to see whether the walk holds that much EVTX.
LOOK_AHEAD = 4096
# Small logs go to a worker together, up to this many bytes or files.
BATCH_BYTES = 2 * 1024 * 1024
BATCH_FILES = 64

Entry = Item | Folder | Skipped
# facts_from_item: (item, budget) or, with events to keep, (item, budget, keep)
Reader = Callable[..., FactSet]
# What a worker reads each item with, instead of read_item (picklable: a module-level function
# or a partial of one), called as (item, budget, keep).
Work = Callable[..., FactSet]


def default_jobs() -> int:
    """One worker per core."""
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def _context() -> Any:
    # fork shares the imported modules with the workers (no second start-up); where there is
    # no fork (Windows), spawn.
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker_read(
    files: list[tuple[str, str, str | None, str, int, str]],
    budget: Budget,
    keep: EventFilter | None = None,
    work: Work | None = None,
) -> list[FactSet]:
    """In a worker: the facts of on-disk files, each as :func:`collect.facts_from_item` gives
    them in the parent (the same opener, the same readers, the same events kept), or what
    ``work`` makes of them."""
    from hvrescue.evidence.walk import _opener
    from hvrescue.logs import evtx_reader
    from hvrescue.logs.evtx_item import read_item

    # the workers are the parallelism: one parser thread each, not a pool each on every core
    evtx_reader.PARSER_THREADS = 1
    read = read_item if work is None else work
    return [
        read(Item(path, kind, fmt, content, size, _opener(path), root), budget, keep)
        for path, kind, fmt, content, size, root in files
    ]


def _parallel_item(entry: Entry) -> bool:
    return (
        isinstance(entry, Item)
        and not entry.member
        and entry.content == cls.C_EVTX
        and entry.kind not in (cls.ARCHIVE, cls.BUNDLE)
    )


def read_entries(
    entries: Iterable[Entry],
    budget: Budget,
    read: Reader,
    jobs: int | None = None,
    from_bytes: int | None = None,
    keep: EventFilter | None = None,
    work: Work | None = None,
) -> Iterator[tuple[Entry, FactSet | None]]:
    """Each entry of ``entries`` with what ``read`` gives for it (None for a folder or a skipped
    entry, which the caller handles as before), in the order of ``entries``. On-disk EVTX files
    are read in ``jobs`` worker processes (None: one per core; 1: none, all here) once the
    walk holds ``from_bytes`` of them (None: ``PARALLEL_FROM_BYTES``); small ones go to a
    worker together (``BATCH_BYTES``, ``BATCH_FILES``), so a folder of many small logs does
    not pay a hand-over per file. ``keep``: the events to keep in full, the others counted
    (``read`` is then called with it as a third argument). ``work``: what the workers read
    each item with instead of ``read_item`` (``read`` here is not given to them)."""
    if keep is not None:
        read = functools.partial(_read_keeping, read, keep)
    jobs = default_jobs() if jobs is None else max(1, min(MAX_JOBS, jobs))
    if jobs == 1:
        for entry in entries:
            yield entry, (read(entry, budget) if isinstance(entry, Item) else None)
        return
    state = _Run(jobs, budget, read, keep, work)
    start_at = PARALLEL_FROM_BYTES if from_bytes is None else from_bytes
    entries = iter(entries)
    ahead, seen = _look_ahead(entries, start_at)
    if seen < start_at:
        seen = 0  # counted again below, as the walk goes on
    # The results are unpickled in the pool's own thread while this one goes on: facts are
    # acyclic, and the cyclic collector would rescan every fact taken so far, again and again.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for entry in itertools.chain(ahead, entries):
            if _parallel_item(entry) and not state.broken:
                assert isinstance(entry, Item)
                if state.pool is None:
                    seen += entry.size
                    if seen >= start_at:
                        state.start(jobs)
                if state.pool is not None:
                    state.add(entry)
                    yield from state.ready()
                    continue
            state.flush()
            found: FactSet | None = None
            if isinstance(entry, Item):
                # Text and the rest are read here with the collector on, as without workers
                # (their parsers may make cycles, and a large text is read piece by piece).
                if was_enabled:
                    gc.enable()
                try:
                    found = read(entry, budget)
                finally:
                    gc.disable()
            state.pending.append(([entry], [found]))
            yield from state.ready()
        state.flush()
        while state.pending:
            yield from state.settle()
    finally:
        if was_enabled:
            gc.enable()
        if state.pool is not None:
            state.pool.shutdown(wait=True, cancel_futures=True)


def _look_ahead(entries: Iterator[Entry], start_at: int) -> tuple[list[Entry], int]:
    """The first entries of the walk and the bytes of on-disk EVTX among them: up to the one
    that brings those to ``start_at`` (the workers start at the first log), the walk's end,
    ``LOOK_AHEAD`` entries, or an archive (its members are read while it is open, not held)."""
    ahead: list[Entry] = []
    seen = 0
    for entry in entries:
        ahead.append(entry)
        if _parallel_item(entry):
            assert isinstance(entry, Item)
            seen += entry.size
            if seen >= start_at:
                break
        elif isinstance(entry, Item) and (entry.member or entry.kind in (cls.ARCHIVE, cls.BUNDLE)):
            break
        if len(ahead) >= LOOK_AHEAD:
            break
    return ahead, seen


def _read_keeping(read: Reader, keep: EventFilter, item: Item, budget: Budget) -> FactSet:
    return read(item, budget, keep)


# Read here (a list), or in a worker (a Future: the pool's module is imported only with it).
_Result: TypeAlias = "list[FactSet | None] | Future[list[FactSet]]"


class _Run:
    """The entries handed out and not yet taken, oldest first, and the batch being filled."""

    def __init__(
        self,
        jobs: int,
        budget: Budget,
        read: Reader,
        keep: EventFilter | None = None,
        work: Work | None = None,
    ) -> None:
        self.keep = keep
        self.work = work
        self.pool: ProcessPoolExecutor | None = None
        self.broken = False
        self.window = jobs * WINDOW_PER_JOB
        self.budget = budget
        self.read = read
        self.pending: deque[tuple[list[Entry], _Result]] = deque()
        self.batch: list[Item] = []
        self.batch_bytes = 0

    def start(self, jobs: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        from hvrescue.deps import available

        # What every worker needs, imported once here: forked workers find it imported. (No
        # evtx package: each log says so, facts.dependency-missing.)
        from hvrescue.logs import evtx_reader  # noqa: F401

        available("evtx")
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_context())

    def add(self, item: Item) -> None:
        self.batch.append(item)
        self.batch_bytes += item.size
        if self.batch_bytes >= BATCH_BYTES or len(self.batch) >= BATCH_FILES:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        files = [(i.path, i.kind, i.format, i.content, i.size, i.root) for i in batch]
        from concurrent.futures.process import BrokenProcessPool

        result: _Result
        try:
            assert self.pool is not None
            extra: tuple[Any, ...] = () if self.keep is None else (self.keep,)
            if self.work is not None:
                extra = (self.keep, self.work)
            result = self.pool.submit(_worker_read, files, self.budget, *extra)
        except (BrokenProcessPool, RuntimeError):
            self.broken = True
            result = [self.read(item, self.budget) for item in batch]
        self.pending.append((list(batch), result))

    def ready(self) -> Iterator[tuple[Entry, FactSet | None]]:
        """What is ready at the head; waiting for the head only when the window is full."""
        while self.pending:
            head = self.pending[0][1]
            running = sum(not isinstance(r, list) for _e, r in self.pending)
            if not isinstance(head, list) and not head.done() and running <= self.window:
                return
            yield from self.settle()

    def settle(self) -> Iterator[tuple[Entry, FactSet | None]]:
        entries, result = self.pending.popleft()
        if not isinstance(result, list):
            from concurrent.futures.process import BrokenProcessPool

            try:
                found: list[FactSet | None] = list(result.result())
            except BrokenProcessPool:
                # A worker died under it (killed, out of memory): read here, as without workers.
                self.broken = True
                found = [self.read(e, self.budget) for e in entries if isinstance(e, Item)]
        else:
            found = result
        yield from zip(entries, found, strict=True)
