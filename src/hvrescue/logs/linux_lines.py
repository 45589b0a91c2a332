"""Linux log lines: which ones explain a failure, in a guest's logs and in any pasted text.

:func:`classify` names the notable lines (a panic, filesystem errors and recoveries, a full
disk, mounts and devices that never came, I/O errors, the OOM killer, a boot) and :func:`scan`
reads a log's tail with it (``hvrescue.guest.artefacts.linux_logs`` gives it a guest's
``/var/log``). :func:`parse` finds the Linux log lines in any text an admin pastes about a VM that
does not boot: ``journalctl -xb`` (short, short-iso, short-precise, short-full, also in other
locales: "Mär 04", "11月 28"), ``/var/log/messages`` and syslog, ``dmesg`` (with ``-T`` or the
console's ``<4>`` level), bare ``systemd[1]: ...`` / ``kernel: ...`` lines, and the boot console
as people type it out: systemd's ``[FAILED]``/``[ TIME ]``/``[DEPEND]`` lines, dracut's
``Warning: /dev/mapper/rhel-root does not exist``, initramfs-tools' ``ALERT!``, the emergency
shell's prompt, the kernel's panic. Each notable line becomes a ``linux_log_event`` fact, as the
guest reader gives, with the line it came from.

A line counts only when it carries a Linux log's stamp, a Linux program's name (``ident[pid]:``)
or wording only Linux prints: a Windows sentence that says "I/O error" or "Read-only" is not a
Linux log line, and gives nothing here.
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

MAX_EVENTS = 200  # per log or text, the newest
MAX_LINE = 8192  # characters of a line looked at (a line longer than that is not a log's)
# (category, pattern) in order: the first that matches names the line.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.I))
    for name, pattern in (
        ("panic", r"Kernel panic|not syncing|VFS: Unable to mount root"),
        (
            "fs-error",
            r"EXT[234]-fs error|EXT4-fs \(\S+\): warning: mounting fs with errors|"
            r"XFS \(\S+\): (Corruption|Metadata corruption|log I/O error|Internal error)|"
            r"Structure needs cleaning|journal commit I/O error|Couldn't clean up the journal|"
            r"Remounting filesystem read-only|Read-only file system",
        ),
        (
            "fs-recovery",
            r"EXT4-fs \(\S+\): recovery complete|XFS \(\S+\): Starting recovery|"
            r"orphan cleanup|recovering journal",
        ),
        ("disk-full", r"No space left on device|ENOSPC"),
        (
            "mount-failure",
            r"Timed out waiting for device|Dependency failed for|Failed to mount|start timed out|"
            r"failed with result 'dependency'|Emergency Shell|"
            r"Failed to start File System Check|emergency mode|Give root password for maintenance|"
            r"can't find (UUID|LABEL)=|Cannot open access to console",
        ),
        (
            "io-error",
            r"I/O error|blk_update_request|critical medium error|"
            r"hv_storvsc \S+: tag#\d+ cmd 0x[0-9a-f]+ status",
        ),
        ("oom", r"Out of memory|oom-kill|invoked oom-killer"),
        (
            "boot",
            r"Linux version \d|Booting Linux|Command line: .*root=|Startup finished in|"
            r"systemd\[1\]: systemd \d+ running|-- Reboot --",
        ),
    )
)
# What a reposted log carries in front of its lines: a quote marker, a code fence's indent.
_REPOST = re.compile(r"^(?:\s|\u00a0|>)+")
_STAMP = re.compile(
    r"^(?P<t>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?|"
    r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s+(?P<host>\S+)\s+(?P<rest>.*)$"
)
_UPTIME = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\]\s*(?P<rest>.*)$")


def classify(line: str) -> str | None:
    for name, pattern in PATTERNS:
        if pattern.search(line):
            return name
    return None


def scan(text: str) -> tuple[list[dict[str, object]], int]:
    """The notable lines of a log's tail (newest ``MAX_EVENTS``) and how many lines it had."""
    events: list[dict[str, object]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        category = classify(line)
        if category is None:
            continue
        body = _REPOST.sub("", line).replace("\u00a0", " ")
        event: dict[str, object] = {"category": category, "tail_line": number}
        stamp = _STAMP.match(body)
        uptime = _UPTIME.match(body)
        if stamp:
            event.update(time_text=stamp.group("t"), host=stamp.group("host"))
            body = stamp.group("rest")
        elif uptime:
            event.update(time_text=None, uptime_seconds=float(uptime.group("t")))
            body = uptime.group("rest")
        else:
            event["time_text"] = None
        event["message"] = body.strip()[:400]
        events.append(event)
    return events[-MAX_EVENTS:], len(lines)


# ---------------------------------------------------------------- pasted text
# What a paste puts before a line: indentation, quote markers, a list's bullet or number
# (pastebin's "- ", a numbered listing's "12. "), odd spaces.
_LEAD = re.compile(r"^(?:[\s\u00a0\u3000>|]|[-*•]\s|\d{1,5}\.\s)+")
# The time stamps of syslog and of journalctl's output modes, in any locale's month names:
# "Nov 28 06:15:35", "Mär 04 21:01:10", "11月 28 06:15:35", "Nov 28 06:15:35.123456"
# (short-precise), "2026-11-28T06:15:35+0900" (short-iso, RFC 5424), "Sat 2026-11-28
# 06:15:35 JST" (short-full).
_TIME = (
    r"(?:[^\W\d_]{3,5}\.?|\d{1,2}月)\s+\d{1,2}日?\s+\d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|[^\W\d_]{2,3}\.?\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+[A-Z]{2,5}"
)
# The program that wrote the line: "systemd[1]:", "kernel:", "dracut-initqueue[455]:".
_IDENT = r"[\w()][\w().@/-]{0,63}(?:\[\d{1,10}\])?:(?:\s|$)"
_STAMPED = re.compile(rf"^(?P<t>{_TIME})\s+(?P<host>[^\s:]+)\s+(?P<rest>{_IDENT}.*)$")
# The same line as pasted without its stamp (journalctl -o cat, a console, a grep).
_BARE = re.compile(
    r"^(?P<rest>(?:kernel|systemd(?:-[\w-]+)?|dracut(?:-[\w-]+)?|[\w().-]{1,64}\[\d{1,10}\]):\s.*)$"
)
# dmesg: "[    1.234567] ..." (also with the console's printk level "<4>[...]"); dmesg -T:
# "[Sat Nov 28 06:15:35 2026] ...".
_DMESG = re.compile(r"^(?:<\d>)?\[\s*(?P<up>\d{1,9}\.\d{1,9})\]\s?(?P<rest>.*)$")
_DMESG_T = re.compile(
    r"^\[(?P<t>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s?(?P<rest>.*)$"
)
# systemd's status lines on the console: "[FAILED] Failed to mount /data.", "[ TIME ] ...".
_STATUS = re.compile(r"^\[\s*(?:OK|FAILED|DEPEND|TIME|WARN|\*{1,6})\s*\]\s+(?P<rest>\S.*)$")
# Wording only Linux prints, with nothing in front of it (a console typed out or photographed).
_CONSOLE = re.compile(
    r"^(?P<rest>(?:Kernel panic - not syncing|---\[ end Kernel panic"
    r"|VFS: (?:Unable to mount root|Cannot open root device)"
    r"|Give root password for maintenance|Welcome to emergency mode|You are in emergency mode"
    r"|Entering emergency mode|Cannot open access to console"
    r"|Warning: (?:/dev/\S+ does not exist|Could not boot|dracut-initqueue timeout)"
    r"|Starting Dracut Emergency Shell|ALERT!\s+\S+ does not exist|Gave up waiting for root"
    r"|EXT[234]-fs (?:error|warning|\(\S+\):)|XFS \(\S+\):|blk_update_request:"
    r"|Buffer I/O error on dev|print_req_error:|Timed out waiting for device\s"
    r"|Dependency failed for\s|Failed to mount /|-- Reboot --).*)$"
)
# What the guest patterns do not name and a failed boot prints before its shell: the root
# device that never came (dracut, initramfs-tools, the kernel), as a mount failure.
_ROOT_MISSING = re.compile(
    r"Warning: /dev/\S+ does not exist|Could not boot|ALERT!\s+\S+ does not exist|"
    r"Gave up waiting for root|VFS: Cannot open root device|dracut-initqueue timeout|"
    r"Cannot find root device",
    re.I,
)
_DEVICE = re.compile(
    r"Timed out waiting for device\s+(?P<dev>\S+?)(?:\s+-\s+(?P<path>/\S+?))?\s*\.?$"
)
_JOB = re.compile(r"Job (?P<unit>\S+\.device)/start timed out")
_MOUNT = re.compile(r"(?:Dependency failed for|Failed to mount)\s+(?P<mp>/[^\s]*?)\s*\.?$")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def parse(doc: Text) -> list[Fact]:
    """The notable Linux log lines of ``doc`` as ``linux_log_event`` facts (newest
    ``MAX_EVENTS``), each located by its line."""
    found: list[Fact] = []
    # read from the end: the newest lines are the ones kept, so a long log costs its tail
    for index in range(len(doc.lines) - 1, -1, -1):
        raw = doc.lines[index]
        if len(raw) < 8:
            continue
        attrs = log_line(raw[:MAX_LINE])
        if attrs is None:
            continue
        attrs["file"] = doc.path
        found.append(Fact("linux_log_event", attrs, Provenance(doc.path, doc.locator(index))))
        if len(found) >= MAX_EVENTS:
            break
    found.reverse()
    return found


def log_line(line: str) -> dict[str, object] | None:
    """What a notable Linux log line says (category, message, time, host), or None when the
    line is not one."""
    line = _LEAD.sub("", line.replace("\u00a0", " ")).rstrip()
    time_text: str | None = None
    host: str | None = None
    uptime: float | None = None
    m = _STAMPED.match(line)
    if m:
        time_text, host, rest = m.group("t"), m.group("host"), m.group("rest")
        k = _DMESG.match(rest[8:]) if rest.startswith("kernel: ") else None
        if k:  # rsyslog keeps the kernel's own stamp: "kernel: [    1.234] ..."
            uptime = float(k.group("up"))
    elif m := _DMESG.match(line):
        uptime, rest = float(m.group("up")), m.group("rest")
    elif m := _DMESG_T.match(line):
        time_text, rest = m.group("t"), m.group("rest")
    elif m := _STATUS.match(line) or _BARE.match(line) or _CONSOLE.match(line):
        rest = m.group("rest")
    else:
        return None
    category = classify(rest) or ("mount-failure" if _ROOT_MISSING.search(rest) else None)
    if category is None:
        return None
    message = rest.strip()[:400]
    attrs: dict[str, object] = {
        "category": category,
        "message": message,
        "time_text": time_text,
        "host": host,
    }
    if uptime is not None:
        attrs["uptime_seconds"] = uptime
    attrs.update(_subject(message))
    attrs["source"] = "text"
    return attrs


def _subject(message: str) -> dict[str, object]:
    """The device a boot waited for, the mount point that failed and its systemd unit."""
    if m := _DEVICE.search(message):
        path = m.group("path") or m.group("dev")
        return {"device": unit_path(path) if path.endswith(".device") else path}
    if m := _JOB.search(message):  # the line systemd writes just before the one above
        return {"device": unit_path(m.group("unit"))}
    if (m := _MOUNT.search(message)) and not m.group("mp").startswith("/dev/"):
        mount_point = m.group("mp")
        return {"mount_point": mount_point, "unit": mount_unit(mount_point)}
    return {}


def unit_path(unit: str) -> str:
    """The path a systemd device unit stands for: ``dev-disk-by\\x2duuid-1234.device`` ->
    ``/dev/disk/by-uuid/1234`` (systemd.unit(5), "String Escaping for Inclusion in Unit
    Names")."""
    name = unit.rsplit(".", 1)[0] if unit.endswith(".device") else unit
    return "/" + _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name.replace("-", "/"))


def mount_unit(path: str) -> str:
    """The mount unit of a mount point, as ``systemd-escape --path --suffix=mount`` names it."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "-.mount"
    joined = "/".join(parts)
    # "/" becomes "-"; what is not [A-Za-z0-9:_.] is \xNN, and so is a "." that starts the name
    escaped = "".join(
        "-"
        if ch == "/"
        else ch
        if ch.isascii() and (ch.isalnum() or ch in ":_.") and not (i == 0 and ch == ".")
        else "".join(f"\\x{b:02x}" for b in ch.encode())
        for i, ch in enumerate(joined)
    )
    return escaped + ".mount"
