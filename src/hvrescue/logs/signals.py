"""Free-text signals: what any text names that a diagnosis can use, wherever it is written.

From every line of a text input (a post, a ticket, a transcript, also one a parser has read):
HRESULT, NTSTATUS and Win32 codes, KB numbers, event references ("VSS 8193", "event ID 12289",
"イベント ID 12140", "Event 19100 from Hyper-V-VMMS"), virtual disk and VM file paths, VM and
checkpoint GUIDs. Each becomes a ``signal`` fact citing its line, with confidence 0.5, once per
(type, value) in a file: the first line, and how often it was seen. Parsed event logs (EVTX,
XML, CSV exports) are not searched: their records are facts already, and every code in a
large log would drown the few in a pasted note.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

CONFIDENCE = 0.5
MAX_TEXT = 300  # characters of the line kept in a signal
MAX_SIGNALS = 500  # distinct signals of one text: past that, a log of noise, not a note (the
# rest of the text is not searched and the counts are those of the part searched)
MAX_LINE = 4000
TYPES = ("hresult", "ntstatus", "win32", "kb", "event_ref", "vdisk_path", "vm_guid", "guid")

_HEX = re.compile(r"(?<![0-9A-Za-z_\-])0[xX]([0-9A-Fa-f]{1,8})(?![0-9A-Za-z_])")
# A code printed without its 0x after a label: "Error code: 80070005", "hr = 8004230f".
_BARE = re.compile(
    r"(?:error(?:\s+code)?|code|hresult|hr|エラー(?:\s*コード)?)\s*[:=：]?\s*"
    r"(?<![0-9A-Fa-f])([89ABCabc][0-9A-Fa-f]{7})(?![0-9A-Za-z_])",
    re.I,
)
# "error 32", "System error 5 has occurred.", "エラー 5": a Win32 error in decimal.
_WIN32 = re.compile(
    r"(?:\berror|エラー)(?:\s+code)?\s*[:：]?\s*(\d{1,5})(?![\d/:\-年月]|[.,]\d)", re.I
)
_LOW_CONTEXT = re.compile(r"(?:\berror|エラー|win32|status)\W{0,4}$", re.I)
# Not "Package_for_KB5034768": a servicing package's identity, which the DISM reader reads as a
# package (and which a CBS log repeats on every line).
_KB = re.compile(r"(?<![A-Za-z0-9_])KB\s?(\d{6,7})(?!\d)", re.I)
_GUID = re.compile(
    r"(?<![0-9A-Fa-f])\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12})\}?(?![0-9A-Fa-f])"
)
_VM_CONTEXT = re.compile(
    r"virtual\s*machine\s*id|\bvm\s*id\b|\bvmid\b|仮想マシン\s*ID|NT VIRTUAL MACHINE\\"
    r"|\.(?:vmcx|vmrs|vmgs|xml)\b|Virtual Machines\\",
    re.I,
)
_CHECKPOINT_CONTEXT = re.compile(
    r"checkpoint\s*id|snapshot\s*id|チェックポイント\s*ID|Snapshots\\|ParentCheckpointId", re.I
)
_DISK_EXT = re.compile(r"\.(?:a?vhdx?|vhds|vmcx|vmrs|vmgs)(?![0-9A-Za-z_])(?!\.[A-Za-z])", re.I)
_ROOT = re.compile(r"[A-Za-z]:[\\/]|\\\\[?.]\\|\\\\")
_TOKEN_START = re.compile(r"[^\s\"'<>|()\[\]{},;=]*$")
_BAD_IN_PATH = set("\"'<>|*?\n")

# Providers as people name them in text, longest first, with the provider name events carry.
_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("Microsoft-Windows-Hyper-V-VMMS", "Microsoft-Windows-Hyper-V-VMMS"),
    ("Hyper-V-VMMS", "Microsoft-Windows-Hyper-V-VMMS"),
    ("Hyper-V-Worker", "Microsoft-Windows-Hyper-V-Worker"),
    ("Hyper-V-Compute", "Microsoft-Windows-Hyper-V-Compute"),
    ("Hyper-V-Config", "Microsoft-Windows-Hyper-V-Config"),
    ("Hyper-V-Hypervisor", "Microsoft-Windows-Hyper-V-Hypervisor"),
    ("Hyper-V-StorageVSP", "Microsoft-Windows-Hyper-V-StorageVSP"),
    ("Hyper-V-VmSwitch", "Microsoft-Windows-Hyper-V-VmSwitch"),
    ("Hyper-V-High-Availability", "Microsoft-Windows-Hyper-V-High-Availability"),
    ("StorageVSP", "Microsoft-Windows-Hyper-V-StorageVSP"),
    ("VMMS", "Microsoft-Windows-Hyper-V-VMMS"),
    ("VHDMP", "Microsoft-Windows-VHDMP"),
    ("Kernel-Power", "Microsoft-Windows-Kernel-Power"),
    ("Kernel-Boot", "Microsoft-Windows-Kernel-Boot"),
    ("Kernel-General", "Microsoft-Windows-Kernel-General"),
    ("FailoverClustering", "Microsoft-Windows-FailoverClustering"),
    ("CAPI2", "Microsoft-Windows-CAPI2"),
    ("BugCheck", "BugCheck"),
    ("volsnap", "volsnap"),
    ("VSS", "VSS"),
    ("Ntfs", "Ntfs"),
)
_PROVIDER_NAMES = {name.lower(): full for name, full in _PROVIDERS}
_P = "|".join(re.escape(name) for name, _ in _PROVIDERS)
_EVENT_WORD = r"(?:event\s*id|eventid|event|イベント\s*ID|イベント)"
# "VSS 8193", "VMMS event 19100", "CAPI2 Event ID: 513", "Hyper-V-VMMS イベント ID 16010".
_REF_AFTER = re.compile(
    rf"(?<![\w\-])(?P<p>{_P})(?![\w\-])\s*(?:[-/:(、,]\s*)?(?:(?:{_EVENT_WORD}|ID)\s*[:：#]?\s*)?"
    r"(?P<id>\d{1,5})(?![\d/:\-]|[.,]\d)",
    re.I,
)
# "event ID 12289", "イベント ID: 12140", "EventID 513", optionally "... from Hyper-V-VMMS".
_REF_ID = re.compile(
    r"(?:\bevent\s*id|\beventid|イベント\s*ID|イベントID)\s*[:：#=]?\s*(?P<id>\d{1,5})(?!\d)"
    rf"(?:\s*(?:from|in|of|on|source|ソース|\(|,)\s*:?\s*(?P<p>{_P})(?![\w\-]))?",
    re.I,
)
# "Event 19100 from Hyper-V-VMMS", "event 41 (Kernel-Power)".
_REF_EVENT = re.compile(
    rf"\bevent\s+(?P<id>\d{{1,5}})\s*(?:from|in|of|on|\()\s*(?P<p>{_P})(?![\w\-])", re.I
)


# Whatever a signal needs somewhere in its line, lower-case: found with ``str.find`` over the
# whole text, so that only the few lines holding one of them meet the expressions above (a
# large log is mostly lines with none).
_NEEDLES = (
    "0x",
    "error",
    "エラー",
    "code",
    "hr =",
    "hr=",
    "hresult",
    "kb",
    "event",
    "イベント",
    ".vhd",
    ".avhd",
    ".vmcx",
    ".vmrs",
    ".vmgs",
    *(name.lower() for name, _ in _PROVIDERS if not name.startswith("Microsoft-")),
)


_DIGIT = re.compile(r"\d")
_CODE_WORDS = re.compile(r"error|エラー|code|hr|status|win32")
_REF_WORDS = re.compile("event|イベント|" + _P.lower())
_PATHISH = re.compile(r"\.(?:a?vhd|vm[cgr])", re.I)
MEMO = 4096  # distinct lines remembered


_NEEDLE = re.compile("|".join(re.escape(n) for n in _NEEDLES) + r"|[0-9a-f]{8}-[0-9a-f]{4}-")


def _candidate_lines(lines: list[str]) -> Iterator[int]:
    """The indexes of the lines that hold a needle or the start of a GUID, in order (each
    distinct line looked at once)."""
    seen: dict[str, bool] = {}
    for index, line in enumerate(lines):
        hit = seen.get(line)
        if hit is None:
            hit = _NEEDLE.search(line[:MAX_LINE].lower()) is not None
            if len(seen) < MEMO:
                seen[line] = hit
        if hit:
            yield index


def code_type(value: int) -> str | None:
    """``hresult`` (severity bit set), ``ntstatus`` (0xC... ) or None for what is neither."""
    top = value >> 28
    if top == 0xC:
        return "ntstatus"
    if top in (0x8, 0x9, 0xA, 0xB):
        return "hresult"
    return None


def normalise_code(value: int) -> str:
    return f"0x{value:08x}"


def signals(text: Text) -> list[Fact]:
    """The signals of ``text``, once per (type, value), with the first line and a count."""
    found: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    counts: dict[tuple[str, str], int] = {}
    # A log repeats its lines ("Level: Error", the same message all day): each is read once.
    seen: dict[tuple[str, str], list[tuple[str, str, dict[str, Any]]]] = {}
    for index in _candidate_lines(text.lines):
        if len(found) >= MAX_SIGNALS:
            break  # a log of noise, not a note: the counts so far stand
        line = text.lines[index][:MAX_LINE]
        previous = text.lines[index - 1][:MAX_LINE] if index and _PATHISH.search(line) else ""
        memo = (line, previous)
        hits = seen.get(memo)
        if hits is None:
            hits = list(_line_signals(line, previous if previous.strip() else ""))
            if len(seen) >= MEMO:
                seen.clear()
            seen[memo] = hits
        for kind, value, extra in hits:
            key = (kind, value.lower())
            if key in counts:
                counts[key] += 1
                continue
            if len(found) >= MAX_SIGNALS:
                break
            counts[key] = 1
            found[key] = (index, {"type": kind, "value": value, **dict(extra)})
    out = []
    for key, (index, attrs) in found.items():
        attrs["text"] = " ".join(text.lines[index].split())[:MAX_TEXT]
        attrs["count"] = counts[key]
        attrs["confidence"] = CONFIDENCE
        out.append(Fact("signal", attrs, Provenance(text.path, text.locator(index))))
    return out


def _line_signals(line: str, previous: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    # Each expression only where its cheapest precondition holds: most lines of a log hold a
    # word the needles catch ("Error", "Event ID") and nothing else.
    low = line.lower()
    digit = _DIGIT.search(line) is not None
    if "0x" in low or (digit and _CODE_WORDS.search(low)):
        yield from _codes(line)
    if digit and "kb" in low:
        for m in _KB.finditer(line):
            yield "kb", f"KB{m.group(1)}", {}
    if digit and _REF_WORDS.search(low):
        yield from _event_refs(line)
    if _PATHISH.search(line):
        yield from _paths(line, previous)
    if line.count("-") >= 4:
        yield from _guids(line)


def _codes(line: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    seen: set[int] = set()
    hexes = [(m.start(), m.group(1)) for m in _HEX.finditer(line)]
    hexes += [(m.start(1), m.group(1)) for m in _BARE.finditer(line)]
    for start, digits in hexes:
        value = int(digits, 16)
        if value == 0 or value in seen:
            continue
        kind = code_type(value) if len(digits) == 8 else None
        if kind is None:
            # A small hex number is a Win32 error only where the line calls it an error.
            if value > 0xFFFF or not _LOW_CONTEXT.search(line[:start]):
                continue
            kind = "win32"
        seen.add(value)
        extra: dict[str, Any] = {"win32": value} if kind == "win32" else {}
        yield kind, normalise_code(value), extra
    for m in _WIN32.finditer(line):
        value = int(m.group(1))
        if 0 < value < 16000 and value not in seen:
            seen.add(value)
            yield "win32", normalise_code(value), {"win32": value}


def _event_refs(line: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    seen: set[tuple[str | None, int]] = set()
    refs: list[tuple[str | None, int]] = []
    for expression in (_REF_EVENT, _REF_ID, _REF_AFTER):
        for m in expression.finditer(line):
            provider = _PROVIDER_NAMES.get(m.group("p").lower()) if m.group("p") else None
            refs.append((provider, int(m.group("id"))))
    with_provider = {event_id for provider, event_id in refs if provider}
    for provider, event_id in refs:
        if not 0 < event_id <= 65535 or (provider is None and event_id in with_provider):
            continue
        if (provider, event_id) in seen:
            continue
        seen.add((provider, event_id))
        value = f"{provider}:{event_id}" if provider else str(event_id)
        yield "event_ref", value, {"provider": provider, "event_id": event_id}


def _root_tail(text: str) -> str | None:
    """The path that runs from the last drive or share root of ``text`` to its end, if any."""
    start = None
    for root in _ROOT.finditer(text):
        start = root.start()  # the last root
    if start is None or any(c in _BAD_IN_PATH for c in text[start:]):
        return None
    return text[start:]


def _paths(line: str, previous: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    for m in _DISK_EXT.finditer(line):
        head = line[: m.start()]
        tail = _root_tail(head)
        if tail is not None:
            path = tail + m.group(0)
        else:
            token = _TOKEN_START.search(head)
            path = (head[token.start() :] if token else "") + m.group(0)
            # A path the console wrapped at its width: its start ends the line above.
            wrapped = _root_tail(previous) if previous and not previous[-1].isspace() else None
            if wrapped is not None and not any(c in _BAD_IN_PATH for c in head):
                path = wrapped + head + m.group(0)
        path = path.strip()
        name = re.split(r"[\\/]", path)[-1]
        if len(name) <= len(m.group(0)):
            continue  # ".vhdx" alone: a word about the format, not a file
        yield "vdisk_path", path, {"extension": m.group(0).lower()}


_FAILURE_CONTEXT = re.compile(
    r"fail|error|denied|corrupt|missing|not found|cannot|could not|unable|0x[0-9a-f]{8}"
    r"|失敗|エラー|拒否|破損|見つかりません|できません",
    re.IGNORECASE,
)


def _guids(line: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for m in _GUID.finditer(line):
        value = m.group(1).lower()
        before = line[max(0, m.start() - 60) : m.start()]
        after = line[m.end() : m.end() + 8]
        if _CHECKPOINT_CONTEXT.search(before):
            yield "vm_guid", value, {"role": "checkpoint"}
        elif _VM_CONTEXT.search(before) or _VM_CONTEXT.search(after):
            yield "vm_guid", value, {"role": "vm"}
        elif _FAILURE_CONTEXT.search(line):
            # Any other GUID only where the line speaks of a failure: writer, provider and boot
            # entry ids of a healthy listing are not signals of anything.
            yield "guid", value, {}


def dedupe(facts: Iterable[Fact]) -> list[Fact]:
    """Signals of one file read in pieces, once per (type, value): the first, counts summed."""
    out: list[Fact] = []
    first: dict[tuple[str, str], int] = {}
    for fact in facts:
        if fact.kind != "signal":
            out.append(fact)
            continue
        key = (fact.attributes["type"], str(fact.attributes["value"]).lower())
        at = first.get(key)
        if at is None:
            first[key] = len(out)
            out.append(fact)
            continue
        kept = out[at]
        attrs = dict(kept.attributes)
        attrs["count"] = int(attrs.get("count", 1)) + int(fact.attributes.get("count", 1))
        out[at] = Fact("signal", attrs, kept.provenance)
    return out
