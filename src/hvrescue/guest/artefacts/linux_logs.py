"""The last boots and errors a Linux guest logged as text (``/var/log/syslog``, ``messages``,
``kern.log``, ``boot.log``, ``dmesg``): a bounded tail of each, the lines that mark a boot and
the ones that explain a failure (filesystem errors, mounts and devices that never came, a full
disk, I/O errors, panics) as ``linux_log_event`` facts with file and line. The binary systemd
journal (``/var/log/journal``, the only log of a guest without rsyslog: Debian 12, Fedora) is
decoded too (``hvrescue.logs.journal``): its newest files, up to :data:`JOURNAL_BYTES`, give
``linux_log_event`` facts the same way, located by file and sequence number, and
``linux_journal`` says how much was read."""

from __future__ import annotations

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.linux_files import resolve, tail
from hvrescue.guest.context import GuestContext

# The line classifier lives with the other text readers (pasted logs use it too).
from hvrescue.logs.linux_lines import MAX_EVENTS as MAX_EVENTS
from hvrescue.logs.linux_lines import PATTERNS as PATTERNS
from hvrescue.logs.linux_lines import classify as classify
from hvrescue.logs.linux_lines import scan as scan

LOGS = (
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/kern.log",
    "/var/log/boot.log",
    "/var/log/dmesg",
)
JOURNAL = "/var/log/journal"
TAIL = 1024 * 1024  # bytes of each log kept
SCAN_LIMIT = 512 * 1024 * 1024  # a log larger than this is not read through for its tail
MAX_JOURNAL_FILES = 10_000
JOURNAL_BYTES = 256 * 1024 * 1024  # of the newest journal files, each read whole


def read_logs(ctx: GuestContext) -> None:
    for path in LOGS:
        entry = resolve(ctx, path)
        if entry is None or entry.is_dir or entry.kind is not None:
            continue
        if entry.size > SCAN_LIMIT:
            ctx.fact(
                "linux_log",
                {"file": entry.path, "size": entry.size, "read": False, "reason": "too-large"},
                entry.path,
            )
            continue
        data = tail(ctx, entry, TAIL, SCAN_LIMIT)
        if data is None:
            continue
        text = data.decode("utf-8", "replace")
        if entry.size > TAIL:
            text = text.split("\n", 1)[-1]  # the first line of the tail is cut
        events, count = scan(text)
        ctx.fact(
            "linux_log",
            {
                "file": entry.path,
                "size": entry.size,
                "read": True,
                "tail_bytes": len(data),
                "tail_lines": count,
                "modified": entry.modified,
                "events": len(events),
                "boots": sum(1 for e in events if e["category"] == "boot"),
            },
            entry.path,
        )
        for event in events:
            event["file"] = entry.path
            ctx.fact("linux_log_event", event, entry.path, f"tail-line:{event['tail_line']}")
    _journal(ctx)


def _journal(ctx: GuestContext) -> None:
    folders = [e for e in ctx.listdir(JOURNAL) if e.is_dir][:64]
    files = 0
    size = 0
    newest: str | None = None
    for folder in folders:
        for entry in ctx.listdir(folder.path)[:MAX_JOURNAL_FILES]:
            if entry.name.endswith((".journal", ".journal~")):
                files += 1
                size += entry.size
                if entry.modified and (newest is None or entry.modified > newest):
                    newest = entry.modified
    if files:
        attrs: dict[str, object] = {
            "folder": JOURNAL,
            "files": files,
            "bytes": size,
            "newest": newest,
        }
        attrs.update(_decode_journals(ctx, [f.path for f in folders]))
        ctx.fact("linux_journal", attrs, JOURNAL)


def _decode_journals(ctx: GuestContext, folders: list[str]) -> dict[str, object]:
    """The notable entries of the newest journal files as ``linux_log_event`` facts (newest
    ``MAX_EVENTS``), and what was read."""
    from hvrescue.logs.journal import JournalError, journal_event, read_journal

    found = [
        e
        for folder in folders
        for e in ctx.listdir(folder)[:MAX_JOURNAL_FILES]
        if e.name.endswith((".journal", ".journal~")) and not e.is_dir and e.kind is None
    ]
    found.sort(key=lambda e: e.modified or "", reverse=True)
    events: list[tuple[int, dict[str, object], str, str]] = []
    read = entries = undecoded = 0
    budget = JOURNAL_BYTES
    cut: list[str] = []
    for entry in found:
        if entry.size > budget:
            break
        data = tail(ctx, entry, entry.size, JOURNAL_BYTES)
        if data is None:
            continue  # said as a problem
        budget -= entry.size
        try:
            journal = read_journal(data)
        except JournalError as exc:
            ctx.problem(entry.path, "guest.unreadable", f"journal: {exc}")
            continue
        read += 1
        entries += len(journal.entries)
        if not journal.complete:
            cut.append(entry.path)
        for item in journal.entries:
            undecoded += len(item.undecoded)
            event = journal_event(item, entry.path)
            if event is not None:
                events.append((item.realtime, event, entry.path, f"journal-seqnum:{item.seqnum}"))
    events.sort(key=lambda e: e[0])
    for _when, event, path, locator in events[-MAX_EVENTS:]:
        ctx.fact("linux_log_event", event, path, locator)
    return {
        "decoded": read > 0,
        "files_read": read,
        "files_not_read": len(found) - read,
        "entries": entries,
        "events": min(len(events), MAX_EVENTS),
        "undecoded_fields": undecoded,
        "incomplete_files": cut[:20],
    }


READER = Artefact(
    name="linux-logs",
    reads=(*LOGS, JOURNAL + "/*/*.journal"),
    run=read_logs,
    roles=frozenset({"linux"}),
)
