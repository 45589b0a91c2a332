"""Event exports as XML: `wevtutil qe /f:xml` and `/f:renderedxml` (events without a root),
Event Viewer "Save as XML" (an <Events> root), with or without <RenderingInfo>.

Parsed with defusedxml (evidence may be hostile: no entity expansion, no external references),
streamed with iterparse so that large exports need no more memory than one event.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from hvrescue.deps import MissingDependencyError, require
from hvrescue.evidence.classify import EVENT_NS, looks_like_event_xml
from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.logs.events import as_int, event_fact, level_from_word, normalise_utc

__all__ = ["EVENT_NS", "iter_xml_events", "iter_xml_stream", "looks_like_event_xml"]
DECL = re.compile(r"<\?xml[^>]*\?>")
ROOT = re.compile(r"<(\w+:)?Events[\s>]")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: Element, name: str) -> Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _text(elem: Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    return elem.text.strip() or None


def _data(event: Element) -> tuple[dict[str, Any] | list[Any], str | None]:
    """EventData as named fields or a positional list, and the Binary element apart."""
    ed = _child(event, "EventData")
    if ed is not None:
        binary = _text(_child(ed, "Binary"))
        items = [
            (c.get("Name"), (c.text or "").strip() or None) for c in ed if _local(c.tag) == "Data"
        ]
        if items and all(name is not None for name, _v in items):
            return {str(name): value for name, value in items}, binary
        return [value for _n, value in items], binary
    ud = _child(event, "UserData")
    if ud is not None and len(ud):
        inner = ud[0]
        return {_local(c.tag): (c.text or "").strip() or None for c in inner}, None
    return {}, None


def _fact(event: Element, path: str, index: int) -> Fact:
    system = _child(event, "System")

    def sysget(name: str) -> Element | None:
        return None if system is None else _child(system, name)

    provider = sysget("Provider")
    eid = sysget("EventID")
    created = sysget("TimeCreated")
    execution = sysget("Execution")
    security = sysget("Security")
    rendering = _child(event, "RenderingInfo")
    level = as_int(_text(sysget("Level")))
    if level is None and rendering is not None:
        level = level_from_word(_text(_child(rendering, "Level")))
    record_id = as_int(_text(sysget("EventRecordID")))
    data, binary = _data(event)
    locator = f"record:{record_id}" if record_id is not None else f"event:{index}"
    return event_fact(
        Provenance(path, locator),
        source_format="xml",
        channel=_text(sysget("Channel")),
        provider=None if provider is None else provider.get("Name"),
        source_name=None
        if provider is None
        else (provider.get("EventSourceName") or provider.get("Name")),
        event_id=as_int(_text(eid)),
        qualifiers=None if eid is None else as_int(eid.get("Qualifiers")),
        level=level,
        time=normalise_utc(None if created is None else created.get("SystemTime")),
        record_id=record_id,
        computer=_text(sysget("Computer")),
        data=data,
        binary=binary,
        message=None if rendering is None else _text(_child(rendering, "Message")),
        task=_text(sysget("Task")),
        opcode=_text(sysget("Opcode")),
        keywords=_text(sysget("Keywords")),
        user_sid=None if security is None else security.get("UserID"),
        process_id=None if execution is None else as_int(execution.get("ProcessID")),
        thread_id=None if execution is None else as_int(execution.get("ThreadID")),
    )


def iter_xml_events(text: str, path: str) -> Iterator[Fact | Problem]:
    body = DECL.sub("", text).strip()
    if not ROOT.match(body):
        body = "<Events>" + body + "</Events>"  # wevtutil prints events without a root
    yield from iter_xml_stream(io.BytesIO(body.encode("utf-8")), path)


def iter_xml_stream(stream: IO[bytes], path: str) -> Iterator[Fact | Problem]:
    """The events of an export as a UTF-8 byte stream holding one root element (declarations
    removed, the root added where wevtutil printed none: what ``iter_xml_events`` does to a
    text), read as it comes: a large export costs the memory of one event."""
    try:
        defused = require("defusedxml.ElementTree", "XML event exports")
        rejected = require("defusedxml", "XML event exports").DefusedXmlException
    except MissingDependencyError as exc:
        yield Problem(path, "facts.dependency-missing", None, exc.params)
        return
    index = 0
    try:
        for _event, elem in defused.iterparse(stream, events=("end",), forbid_dtd=True):
            if _local(elem.tag) != "Event":
                continue
            index += 1
            yield _fact(elem, path, index)
            elem.clear()
    except (ParseError, rejected) as exc:
        yield Problem(path, "xml.damaged", f"event:{index + 1}", {"reason": str(exc)[:300]})
