"""Event logs of the guest (System, Application, Setup, Hyper-V worker) read as `facts` reads
collected ones, with their provenance inside the disk."""

from __future__ import annotations

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext

LOGS = "/Windows/System32/winevt/Logs/"
EVENT_LOGS = (
    "System.evtx",
    "Application.evtx",
    "Setup.evtx",
    "Microsoft-Windows-Hyper-V-Worker-Admin.evtx",
)
MAX_EVTX = 256 * 1024 * 1024


def read_event_logs(ctx: GuestContext) -> None:
    from hvrescue.logs.collect import facts_from_bytes

    for name in EVENT_LOGS:
        path = LOGS + name
        data = ctx.read(path, MAX_EVTX)
        if not data:
            continue
        found = facts_from_bytes(data, ctx.where(path))
        ctx.result.facts.extend(found.facts)
        ctx.result.problems.extend(found.problems)


READER = Artefact(
    name="event-logs",
    reads=tuple(LOGS + name for name in EVENT_LOGS),
    run=read_event_logs,
    needs=("evtx",),
)
