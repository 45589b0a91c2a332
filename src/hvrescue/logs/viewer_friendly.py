"""Events copied from the Details tab of Event Viewer in its "Friendly View".

The view prints the event's XML as an outline, in every language the same (the names are the
XML's own): a section per element, marked "-" or "+" when it can fold, an attribute as
"[ Name]  value", an element as "Name value"::

    - System
      - Provider
         [ Name]  Microsoft-Windows-Hyper-V-VMMS
         [ Guid]  {6066f867-7ca1-4418-85fd-36e3f9c0600c}
        EventID 19100
        Level 2
      - TimeCreated
         [ SystemTime]  2023-10-02T00:12:01.5275837Z
        Channel Microsoft-Windows-Hyper-V-VMMS-Admin
        Computer HV01
    - EventData
        VmName web01
        ErrorCode 0x80070299

Copied, it loses its indentation, gains blank lines between items, is flattened onto one line
(a web form), or has every name and value on a line of its own (a pasted table). All of these
are read; what cannot be told apart is left out rather than guessed.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.events import as_int, event_fact, normalise_utc
from hvrescue.logs.textutil import DASHES, Text
from hvrescue.logs.viewer_labels import LABEL_LINE, XML_LABELS, label

SECTIONS = {
    "system", "provider", "timecreated", "correlation", "execution", "security", "eventdata",
    "userdata", "renderinginfo", "binaryeventdata", "processingerrordata", "debugdata", "event",
}  # fmt: skip
ELEMENTS = {
    "eventid", "version", "level", "task", "opcode", "keywords", "eventrecordid", "channel",
    "computer",
}  # fmt: skip
DATA_SECTIONS = {"eventdata", "userdata"}
STARTS = {"system", "provider"}
ATTRIBUTE = re.compile(r"^\[\s*(?P<name>\w+)\s*\]\s*(?P<value>.*)$")
ELEMENT = re.compile(r"^(?P<name>[A-Za-z_][\w.:-]*)(?:\s+(?P<value>.*))?$")
MARKER = re.compile(r"^[-+]\s*")
NAME = re.compile(r"^[A-Za-z0-9][\w .()/-]*$")
MAX_BLOCK_LINES = 600
MAX_DATA_ITEMS = 500
CONFIDENCE = 0.9
# A flattened outline: every item starts where one of these words does.
_FLAT = re.compile(
    r"\s+(?=(?:[-+]\s+)?(?:Provider|TimeCreated|Correlation|Execution|Security|EventData"
    r"|UserData|EventID|Version|Level|Task|Opcode|Keywords|EventRecordID|Channel|Computer)\b"
    r"|\[\s?\w+\])"
)


def _item(line: str) -> tuple[str, str, str] | None:
    """('attr'|'elem', name, value) of one line of the outline, without its fold marker."""
    text = MARKER.sub("", line.strip())
    if not text:
        return None
    m = ATTRIBUTE.match(text)
    if m:
        return "attr", m.group("name"), m.group("value").strip()
    m = ELEMENT.match(text)
    if m:
        return "elem", m.group("name"), (m.group("value") or "").strip()
    return "text", "", text


class _Event:
    def __init__(self) -> None:
        self.system: dict[str, str] = {}
        self.data: list[tuple[str | None, str]] = []
        self.binary: str | None = None
        self.flat = False

    def fact(self, path: str, locator: str) -> Fact | None:
        s = self.system
        event_id = as_int(s.get("eventid"))
        if event_id is None or not 0 <= event_id <= 0xFFFF:
            return None
        provider, channel = _whole(s.get("name")), _whole(s.get("channel"))
        known = (provider, s.get("systemtime"), channel, s.get("level"), s.get("computer"))
        if sum(1 for k in known if k) < 2 or not (provider or channel):
            return None
        complete = provider and s.get("systemtime") and not self.flat
        return event_fact(
            Provenance(path, locator),
            source_format="viewer-friendly",
            channel=channel,
            provider=provider,
            source_name=_whole(s.get("eventsourcename")) or provider,
            event_id=event_id,
            qualifiers=as_int(s.get("qualifiers")),
            level=as_int(s.get("level")),
            time=_utc(s.get("systemtime")),
            record_id=as_int(s.get("eventrecordid")),
            computer=s.get("computer") or None,
            binary=self.binary,
            data=_data(self.data),
            task=_number_or_text(s.get("task")),
            opcode=_number_or_text(s.get("opcode")),
            keywords=s.get("keywords") or None,
            user_sid=s.get("userid") or None,
            process_id=as_int(s.get("processid")),
            thread_id=as_int(s.get("threadid")),
            confidence=None if complete else CONFIDENCE,
        )


def _whole(value: str | None) -> str | None:
    """A name, unless it was cut where a line was broken ("Microsoft-Windows-") or is not a
    name at all ("…" where a writer left part of the outline out)."""
    if not value or value.endswith(("-", "\\", "/")) or not NAME.match(value):
        return None
    return value


def _utc(value: str | None) -> str | None:
    if not value or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$", value):
        return None
    return normalise_utc(value)


def _number_or_text(value: str | None) -> int | str | None:
    if not value:
        return None
    number = as_int(value)
    return number if number is not None else value


def _data(items: list[tuple[str | None, str]]) -> dict[str, Any] | list[Any]:
    """Named values as a dict (a name seen twice keeps all its values, in a list); unnamed
    ones, or the classic "Data" items, as a list, as the XML readers give them."""
    if not items:
        return {}
    names = [name for name, _ in items]
    if all(n == "Data" for n in names) or any(n is None for n in names):
        return [value if name in (None, "Data") else f"{name} {value}" for name, value in items]
    out: dict[str, Any] = {}
    for name, value in items:
        assert name is not None
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        line = lines[i]
        if "EventID" in line and "Name]" in line and _is_flat(line):
            event = _flat(line)
            fact = event.fact(text.path, text.locator(i))
            if fact is not None:
                facts.append(fact)
            i += 1
            continue
        maybe = len(line) < 200 and ("Name]" in line or "System" in line or "Provider" in line)
        item = _item(line) if maybe else None
        if item is None or not _starts(item):
            i += 1
            continue
        event = _Event()
        end = _block(text, i, event)
        fact = event.fact(text.path, text.locator(i))
        if fact is not None:
            facts.append(fact)
        i = max(end, i + 1)  # a block that is no event is not read again from its middle
    return facts


def _starts(item: tuple[str, str, str]) -> bool:
    kind, name, value = item
    if kind == "attr":
        return name == "Name"
    return kind == "elem" and name.lower() in STARTS and not value


def _is_flat(line: str) -> bool:
    return bool(re.search(r"\[\s?Name\]", line)) and bool(re.search(r"\bEventID\s+\d", line))


def _flat(line: str) -> _Event:
    """A whole outline on one line: the system part is read, the data part is not (its names
    and values can no longer be told apart)."""
    event = _Event()
    event.flat = True
    for piece in _FLAT.split(line):
        item = _item(piece)
        if item is None:
            continue
        kind, name, value = item
        key = name.lower()
        if key in DATA_SECTIONS:
            break
        if kind == "attr" or key in ELEMENTS:
            event.system.setdefault(key, value)
    return event


def _block(text: Text, i: int, event: _Event) -> int:
    """Reads the outline from line ``i``; returns the index after it."""
    lines = text.lines
    section = "system"
    pending: tuple[str, str] | None = None  # a name whose value is on the next line
    blank = 0
    data_indent: int | None = None
    last: tuple[dict[str, str], str] | None = None  # the value a broken line may continue
    start = i
    while i < len(lines) and i - start < MAX_BLOCK_LINES:
        line = lines[i]
        if not line.strip() or DASHES.match(line) or line.strip() in ("-", "+", "<br>"):
            blank += 1 if not line.strip() else 0
            last = None  # a line broken at a console's width has no blank line in it
            if section == "data" and blank >= 2:
                break
            i += 1
            continue
        blank = 0
        if text.is_prompt(i) or line.strip().lower().startswith(XML_LABELS):
            break
        item = _item(line)
        assert item is not None
        kind, name, value = item
        key = name.lower()
        if i > start and kind == "elem" and key == "system" and not value:
            break  # the next event
        if last is not None and (_broken(last, line) or _cut(last, item)):
            last[0][last[1]] = last[0][last[1]] + line.strip()
            i += 1
            continue
        last = None
        if pending is not None:
            if kind == "text" or not (key in SECTIONS or key in ELEMENTS or kind == "attr"):
                _store(event, section, pending, line.strip())
                pending = None
                i += 1
                continue
            pending = None
        if section == "data":
            m = LABEL_LINE.match(line) if ":" in line else None
            if m and label(m.group("key")):
                break  # "Log Name:" ...: an event in another layout follows
            indent = len(line) - len(line.lstrip())
            if data_indent is None:
                data_indent = indent
            elif data_indent > 0 and indent == 0:
                break  # back at the margin: the outline is over
            if len(event.data) >= MAX_DATA_ITEMS:
                break
        if kind == "elem" and key in DATA_SECTIONS and not value:
            section = "data"
        elif kind == "elem" and key in SECTIONS and not value:
            pass
        elif kind != "text" and not value and _next(lines, i) == "value":
            pending = (kind, name)
        elif kind == "elem" and not value and _next(lines, i) == "structure":
            pass  # a section of the event's own data ("- CryptRetrieveObjectByUrlWire")
        elif section == "system":
            if kind == "text" or (kind == "elem" and key not in ELEMENTS):
                break  # prose after the outline
            if key not in event.system:
                event.system[key] = value
                last = (event.system, key)
        else:
            _store(event, section, (kind, name), value)
        i += 1
    return i


def _broken(last: tuple[dict[str, str], str], line: str) -> bool:
    """Whether ``line`` is the rest of a value a mail client broke after a hyphen."""
    value = last[0].get(last[1], "")
    rest = line.strip()
    if not value.endswith(("-", "\\")) or " " in rest or rest.startswith(("[", "-", "+")):
        return False
    return rest.lower() not in SECTIONS and rest.lower() not in ELEMENTS


def _cut(last: tuple[dict[str, str], str], item: tuple[str, str, str]) -> bool:
    """Whether ``item`` is the rest of a name a console broke at its width ("Microsoft-W",
    then "indows-Hyper-V-VMMS"): one word, known to no outline, after a value of one word."""
    kind, name, value = item
    if kind != "elem" or value or name.lower() in SECTIONS or name.lower() in ELEMENTS:
        return False
    previous = last[0].get(last[1], "")
    return last[1] in ("name", "channel", "computer") and bool(previous) and " " not in previous


def _next(lines: list[str], i: int) -> str:
    """What follows a name alone on its line: its 'value' ('EventID', then '4740': the
    pasted-table form), or 'structure' (an attribute or a named value: the name was a
    section), or 'none'."""
    for j in range(i + 1, min(len(lines), i + 6)):
        if lines[j].strip() in ("", "-", "+", "<br>") or DASHES.match(lines[j]):
            continue
        item = _item(lines[j])
        if item is None:
            return "none"
        kind, name, value = item
        if kind == "attr" or name.lower() in SECTIONS or name.lower() in ELEMENTS:
            return "structure"
        return "value" if kind == "text" or not value else "structure"
    return "none"


def _store(event: _Event, section: str, named: tuple[str, str], value: str) -> None:
    kind, name = named
    if section == "system":
        event.system.setdefault(name.lower(), value)
    elif kind == "attr" and name == "xmlns":
        pass  # the namespace of the event's own data, not a value of it
    elif name == "Binary" and value and event.binary is None:
        event.binary = value
    elif kind == "text":
        event.data.append((None, value))
    elif value:
        event.data.append((name, value))
    elif kind == "elem":
        event.data.append((None, name))
