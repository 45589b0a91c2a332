"""Many bundles triaged in parallel processes, each within its memory budget, into one summary.

Workers are separate processes (the ``spawn`` way on every platform, as on Windows): one
bundle's memory, crash or bug stays in its worker. Workers are replaced after
``TASKS_PER_WORKER`` bundles each (a new pool per batch: ``max_tasks_per_child`` hung here
under CPython 3.11 when a worker was replaced), so that what one triage leaves allocated never
accumulates. At most ``QUEUED_PER_JOB`` bundles per worker are handed to the pool at a time:
when a worker dies (killed for memory by the system, a crash in a native library), only those
could have been in it. Each of them is triaged again alone in a fresh process: the one that
kills its worker again is recorded as failed (``worker-died``); the bundles not yet handed out
go on in a new pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from hvrescue.fleet.summary import FleetSummary
from hvrescue.fleet.worker import HostResult, failed, triage_bundle

TASKS_PER_WORKER = 250
QUEUED_PER_JOB = 2
MAX_JOBS = 64

Worker = Callable[[str, str, int | None], HostResult]


def default_jobs() -> int:
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def _pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _run_pool(
    bundles: list[str],
    jobs: int,
    lang: str,
    max_memory: int | None,
    done: Callable[[HostResult], None],
    worker: Worker = triage_bundle,
) -> tuple[list[str], list[str]]:
    """Triage ``bundles`` in one pool, calling ``done`` for each result. Returns the bundles
    that were in the pool when a worker died (each may be the cause) and those not handed out
    yet."""
    queue = list(reversed(bundles))
    lost: list[str] = []
    running: dict[Future[HostResult], str] = {}
    pool = _pool(jobs)
    try:
        while queue or running:
            while queue and len(running) < jobs * QUEUED_PER_JOB and not lost:
                bundle = queue.pop()
                running[pool.submit(worker, bundle, lang, max_memory)] = bundle
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                bundle = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(bundle)
                    continue
                done(result)
            if lost:
                # The pool is broken: what it still holds fails the same way.
                for future, bundle in running.items():
                    try:
                        done(future.result())
                    except BrokenProcessPool:
                        lost.append(bundle)
                running.clear()
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return lost, list(reversed(queue))


def run_fleet(
    bundles: list[str],
    lang: str,
    jobs: int | None = None,
    max_memory: int | None = None,
    on_result: Callable[[HostResult], None] | None = None,
    worker: Worker = triage_bundle,
) -> FleetSummary:
    """Triage every bundle (``jobs`` processes, default: one per CPU; ``max_memory``: each
    worker's evidence budget in bytes) and summarise; ``on_result`` is called as each bundle
    is done (in the calling process); ``worker``: what triages one bundle in a worker process
    (a module-level function, for spawn to find it)."""
    jobs = max(1, min(jobs or default_jobs(), MAX_JOBS, len(bundles) or 1))
    results: list[HostResult] = []

    def done(result: HostResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    suspects: list[str] = []
    remaining = list(bundles)
    batch = jobs * TASKS_PER_WORKER
    while remaining:
        lost, unsent = _run_pool(remaining[:batch], jobs, lang, max_memory, done, worker)
        suspects += lost
        remaining = unsent + remaining[batch:]
    for bundle in suspects:
        # Alone in a fresh worker: a bundle that kills this one too is the one to blame.
        lost, _ = _run_pool([bundle], 1, lang, max_memory, done, worker)
        if lost:
            done(failed(bundle, lang, "worker-died", bundle))
    order = {b: i for i, b in enumerate(bundles)}
    results.sort(key=lambda r: order.get(r.bundle, len(order)))
    return FleetSummary(results, lang)
