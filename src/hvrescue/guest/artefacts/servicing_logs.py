"""What Windows servicing logged inside the guest: the tails of ``Windows\\Logs\\CBS\\CBS.log``
and ``Windows\\Logs\\DISM\\dism.log`` read by the same reader as a pasted excerpt
(:mod:`hvrescue.logs.commands.cbs`), so an update that failed before the guest stopped booting
is diagnosed from the disk itself. Facts are located by the line in the tail that was read
(``tail-line:N``): a large log's first lines are not read."""

from __future__ import annotations

from hvrescue.evidence.text import decode_text
from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.linux_files import tail
from hvrescue.guest.context import GuestContext

LOGS = ("/Windows/Logs/CBS/CBS.log", "/Windows/Logs/DISM/dism.log")
TAIL = 8 * 1024 * 1024  # bytes of each log read: its newest sessions
SCAN_LIMIT = 4 * 1024 * 1024 * 1024  # CBS.log rolls over at 50-100 MB; larger is not read


def read_servicing_logs(ctx: GuestContext) -> None:
    from hvrescue.logs.commands import cbs
    from hvrescue.logs.textutil import Text

    for path in LOGS:
        entry = ctx.stat(path)
        if entry is None or entry.is_dir:
            continue
        data = tail(ctx, entry, TAIL, SCAN_LIMIT)
        if data is None:
            continue  # too large, unreadable or undefined: said as a problem
        text, _encoding = decode_text(data)
        if entry.size > TAIL:
            text = text.split("\n", 1)[-1]  # the first line of the tail is cut
        facts = cbs.parse(Text.of(text, entry.path))
        for fact in facts:
            locator = fact.provenance.locator or ""
            where = f"tail-{locator}" if locator.startswith("line:") else locator or None
            ctx.fact(fact.kind, {**fact.attributes, "image": "offline"}, entry.path, where)
        ctx.fact(
            "servicing_log_file",
            {
                "file": entry.path,
                "size": entry.size,
                "tail_bytes": len(data),
                "whole": entry.size <= TAIL,
                "modified": entry.modified,
                "facts": len(facts),
            },
            entry.path,
        )


READER = Artefact(
    name="servicing-logs",
    reads=LOGS,
    run=read_servicing_logs,
)
