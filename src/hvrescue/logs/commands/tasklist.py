"""`tasklist /svc` (also filtered through findstr, without its header): which services share
which process."""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

HEADER = re.compile(r"^\s*(Image Name|イメージ名)\s+PID\s+(Services|サービス)\s*$", re.I)
SEPARATOR = re.compile(r"^\s*=+(\s+=+){2}\s*$")
ROW = re.compile(r"^(?P<image>\S(?:.*?\S)?)\s+(?P<pid>\d+)\s+(?P<services>\S.*?)\s*$")
IMAGE = re.compile(r"\.(exe|com)$|^System|^Registry|^Memory", re.I)
CONTINUATION = re.compile(r"^\s{8,}(?P<services>[A-Za-z0-9_.\-]+(?:,\s*[A-Za-z0-9_.\-]+)*,?)\s*$")


def _services(text: str) -> list[str]:
    if text.strip().upper() in ("N/A", "該当なし"):
        return []
    return [s.strip() for s in text.split(",") if s.strip()]


def _rows_only(lines: list[str]) -> bool:
    """`tasklist /svc | findstr svchost > file`: no header, no prompt, only process rows."""
    body = [line for line in lines if line.strip()]
    if not body or len(body) > 10_000:
        return False
    return (
        all(
            ((m := ROW.match(line)) is not None and IMAGE.search(m.group("image")) is not None)
            or (CONTINUATION.match(line) is not None)
            for line in body
        )
        and ROW.match(body[0]) is not None
    )


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    rows_only = _rows_only(lines)
    in_table = False
    current: dict[str, object] | None = None
    current_at = 0

    def flush() -> None:
        nonlocal current
        if current is not None:
            services = current["services"]
            assert isinstance(services, list)
            current["shared"] = len(services) > 1
            facts.append(Fact("process", current, Provenance(text.path, text.locator(current_at))))
        current = None

    for i, line in enumerate(lines):
        if HEADER.match(line):
            flush()
            in_table = True
            continue
        if in_table and SEPARATOR.match(line):
            continue
        if not in_table and not rows_only:
            command = text.command_at(i)
            if not (command and "tasklist" in command.lower() and "/svc" in command.lower()):
                continue
        if text.is_prompt(i):
            flush()
            in_table = False
            continue
        if not line.strip():
            continue
        cont = CONTINUATION.match(line)
        if cont and current is not None and str(current.get("_tail", "")).endswith(","):
            services = current["services"]
            assert isinstance(services, list)
            services.extend(_services(cont.group("services")))
            current["_tail"] = cont.group("services")
            continue
        m = ROW.match(line)
        if m and IMAGE.search(m.group("image")):
            flush()
            current = {
                "image": m.group("image"),
                "pid": int(m.group("pid")),
                "services": _services(m.group("services")),
                "_tail": m.group("services"),
            }
            current_at = i
            continue
        if in_table:
            flush()
            in_table = False
    flush()
    for fact in facts:
        fact.attributes.pop("_tail", None)
    return facts
