"""Walk files, folders and .zip bundles; recognise each file by content; return its facts.

Nothing is extracted to disk: zip members are read in memory, bounded in size, nested zips one
level deep. A file nothing recognises is listed as unrecognised with the reason, never a crash.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable

from hvrescue.facts.model import Fact, FactSet, Problem, Unrecognised
from hvrescue.logs import csv_events, text_events, xml_events
from hvrescue.logs.commands import (
    bcdedit,
    dism,
    hotfix,
    powershell,
    sc,
    systeminfo,
    tasklist,
    vssadmin,
)
from hvrescue.logs.decode import decode_text, looks_binary
from hvrescue.logs.evtx_reader import EVTX_MAGIC, read_evtx
from hvrescue.logs.textutil import Text

ZIP_MAGIC = b"PK\x03\x04"
MAX_TEXT_BYTES = 256 * 1024 * 1024
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
MAX_ZIP_DEPTH = 2
MAX_FILES = 100_000

TEXT_PARSERS: tuple[Callable[[Text], list[Fact]], ...] = (
    vssadmin.parse,
    tasklist.parse,
    sc.parse,
    dism.parse,
    hotfix.parse,
    systeminfo.parse,
    bcdedit.parse,
    powershell.parse,
    text_events.parse,
)


def facts_from_text(text: str, path: str) -> list[Fact]:
    """Every command output and pasted event found anywhere in ``text`` (a transcript of
    several commands yields the facts of each)."""
    as_json = powershell.parse_json(text, path)
    if as_json is not None:
        return as_json
    doc = Text.of(text, path)
    facts: list[Fact] = []
    for parser in TEXT_PARSERS:
        facts.extend(parser(doc))
    facts.sort(key=lambda f: _line(f.provenance.locator))
    return facts


def _line(locator: str | None) -> int:
    if locator and locator.startswith("line:"):
        return int(locator[5:])
    return 0


def facts_from_bytes(data: bytes, path: str, depth: int = 0) -> FactSet:
    out = FactSet()
    if data.startswith(EVTX_MAGIC):
        _add_evtx(out, io.BytesIO(data), path)
        return out
    if data.startswith(ZIP_MAGIC):
        if depth >= MAX_ZIP_DEPTH:
            out.unrecognised.append(Unrecognised(path, "zip-too-deep"))
            return out
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                _walk_zip(zf, path, out, depth + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            out.unrecognised.append(Unrecognised(path, "damaged-zip", str(exc)))
        return out
    if looks_binary(data):
        out.unrecognised.append(Unrecognised(path, "binary"))
        return out
    text, _encoding = decode_text(data)
    if xml_events.looks_like_event_xml(text):
        for item in xml_events.iter_xml_events(text, path):
            (out.problems if isinstance(item, Problem) else out.facts).append(item)  # type: ignore[arg-type]
    elif csv_events.looks_like_event_csv(text):
        out.facts.extend(csv_events.iter_csv_events(text, path))
    else:
        out.facts.extend(facts_from_text(text, path))
    if not out.facts and not out.problems:
        out.unrecognised.append(Unrecognised(path, "no-known-content"))
    return out


def _add_evtx(out: FactSet, source: str | io.BytesIO, path: str) -> None:
    facts, problems = read_evtx(source, path)
    out.facts.extend(facts)
    out.problems.extend(problems)


def _walk_zip(zf: zipfile.ZipFile, path: str, out: FactSet, depth: int) -> None:
    total = 0
    for info in zf.infolist():
        if info.is_dir():
            continue
        member = f"{path}!/{info.filename}"
        if info.file_size > MAX_MEMBER_BYTES or total + info.file_size > 4 * MAX_MEMBER_BYTES:
            out.unrecognised.append(Unrecognised(member, "too-large"))
            continue
        try:
            with zf.open(info) as fh:
                data = fh.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            out.problems.append(
                Problem(member, "zip.member-unreadable", None, {"reason": str(exc)[:300]})
            )
            out.unrecognised.append(Unrecognised(member, "unreadable"))
            continue
        total += len(data)
        out.extend(facts_from_bytes(data, member, depth))


DISK_SIGNATURES = (b"vhdxfile", b"conectix")


def facts_from_file(path: str) -> FactSet:
    out = FactSet()
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            size = os.fstat(fh.fileno()).st_size
            if head.startswith(DISK_SIGNATURES):
                # Virtual disks are the disk engine's (hvrescue check/info), not text.
                out.unrecognised.append(Unrecognised(path, "disk-image"))
                return out
            kind = (
                "evtx"
                if head.startswith(EVTX_MAGIC)
                else ("zip" if head.startswith(ZIP_MAGIC) else "other")
            )
            if kind == "other" and (size > MAX_TEXT_BYTES or looks_binary(head)):
                out.unrecognised.append(
                    Unrecognised(path, "too-large" if size > MAX_TEXT_BYTES else "binary")
                )
                return out
            data = head + fh.read() if kind == "other" else b""
    except OSError as exc:
        out.unrecognised.append(Unrecognised(path, "unreadable", exc.strerror))
        return out
    if kind == "evtx":
        _add_evtx(out, path, path)  # the Rust reader streams the file itself
    elif kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                _walk_zip(zf, path, out, 1)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            out.unrecognised.append(Unrecognised(path, "damaged-zip", str(exc)))
    else:
        out.extend(facts_from_bytes(data, path))
    return out


def collect(paths: list[str]) -> FactSet:
    out = FactSet()
    seen = 0
    for root in paths:
        if os.path.isdir(root):
            for folder, dirs, names in os.walk(root):
                dirs.sort()
                for name in sorted(names):
                    seen += 1
                    if seen > MAX_FILES:
                        out.problems.append(
                            Problem(root, "walk.too-many-files", None, {"limit": MAX_FILES})
                        )
                        return out
                    out.extend(facts_from_file(os.path.join(folder, name)))
        else:
            out.extend(facts_from_file(root))
    return out
