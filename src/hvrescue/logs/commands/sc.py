"""`sc qc`, `sc query` / `sc queryex` and `sc sdshow` outputs."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.sddl import SDDL_LINE, parse_sddl
from hvrescue.logs.textutil import Text

SERVICE_NAME = re.compile(r"^\s*(SERVICE_NAME|サービス名)\s*:\s*(?P<name>\S.*?)\s*$")
FIELD = re.compile(r"^\s+(?P<key>[A-Z][A-Z0-9_]*)\s*:\s?(?P<value>.*?)\s*$")
CONT = re.compile(r"^\s{10,}:\s*(?P<value>\S.*?)\s*$")
FLAGS = re.compile(r"^\s{10,}\((?P<flags>[A-Z_, ]+)\)\s*$")
CODED = re.compile(r"^(?P<code>[0-9a-fA-Fx]+)\s+(?P<name>\S.*)$")
HEX_FIELDS = {"TYPE"}


_FILE_NAME_NOISE = {
    "sc",
    "sd",
    "sdshow",
    "sddl",
    "dacl",
    "acl",
    "perm",
    "perms",
    "permissions",
    "security",
    "qc",
    "query",
    "queryex",
    "before",
    "after",
    "output",
    "out",
    "result",
    "txt",
    "log",
    "old",
    "new",
    "backup",
    "orig",
    "original",
    "current",
    "fixed",
    "bak",
}
# Services the rules and the field ask about, spelled as Windows spells them: a file name's words
# are matched against these (and against the services the evidence names elsewhere).
KNOWN_SERVICES = (
    "CryptSvc",
    "EventSystem",
    "VSS",
    "swprv",
    "COMSysApp",
    "SENS",
    "vmms",
    "vmcompute",
    "HvHost",
    "vmickvpexchange",
    "vmicvss",
    "vmicheartbeat",
    "vmicshutdown",
    "vmictimesync",
    "vmicguestinterface",
    "vmicrdv",
    "vmicvmsession",
    "wbengine",
    "SDRSVC",
    "vds",
    "Winmgmt",
    "RpcSs",
    "DcomLaunch",
    "BITS",
    "wuauserv",
    "TrustedInstaller",
    "msiserver",
    "EventLog",
    "Schedule",
    "WinRM",
    "ClusSvc",
    "MSDTC",
    "SQLWriter",
    "LanmanServer",
    "LanmanWorkstation",
    "Spooler",
)


def file_name_words(path: str) -> list[str]:
    """The words of a saved output's file name that may name its service (`sd-cryptsvc.txt`:
    ["cryptsvc"]): not the command, not a note about the capture, not a number."""
    stem = os.path.splitext(os.path.basename(path.split("!/")[-1].replace("\\", "/")))[0]
    return [
        w
        for w in re.split(r"[\s_\-.]+", stem)
        if w and w.lower() not in _FILE_NAME_NOISE and not w.isdigit()
    ]


def service_from_words(words: list[str], known: Iterable[str] = ()) -> str | None:
    """The service a file name names: the first word that is a service known to the rules or
    seen in the evidence (as that service is spelled), else the first word."""
    spelled = {name.lower(): name for name in KNOWN_SERVICES}
    spelled.update({name.lower(): name for name in known if name})
    for word in words:
        if word.lower() in spelled:
            return spelled[word.lower()]
    return words[0] if words else None


def _coded(key: str, value: str) -> dict[str, Any] | str:
    m = CODED.match(value)
    if not m:
        return value
    code_text = m.group("code")
    try:
        code = (
            int(code_text, 16)
            if key in HEX_FIELDS or code_text.startswith("0x")
            else int(code_text)
        )
    except ValueError:
        return value
    return {"code": code, "name": m.group("name").strip()}


def _block(text: Text, start: int) -> tuple[dict[str, Any], int]:
    fields: dict[str, Any] = {}
    last: str | None = None
    i = start + 1
    while i < len(text.lines):
        line = text.lines[i]
        if not line.strip() or SERVICE_NAME.match(line) or text.is_prompt(i):
            break
        f = FIELD.match(line)
        c = CONT.match(line)
        fl = FLAGS.match(line)
        if fl and last == "STATE":
            fields["STATE_FLAGS"] = [x.strip() for x in fl.group("flags").split(",")]
        elif c and last is not None:
            prev = fields[last]
            fields[last] = (prev if isinstance(prev, list) else [prev] if prev else []) + [
                c.group("value")
            ]
        elif f:
            last = f.group("key")
            fields[last] = f.group("value")
        else:
            break
        i += 1
    return fields, i


def _service_type(value: Any) -> dict[str, Any]:
    code = value.get("code") if isinstance(value, dict) else None
    # 0x10 own process, 0x20 shared process; 0x30 ("WIN32") says neither for certain.
    own = code is not None and bool(code & 0x10) and not code & 0x20
    shared = code is not None and bool(code & 0x20) and not code & 0x10
    return {"type": value, "own_process": own, "shared_process": shared}


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    i = 0
    lines = text.lines
    while i < len(lines):
        m = SERVICE_NAME.match(lines[i])
        if m:
            fields, nxt = _block(text, i)
            attrs: dict[str, Any] = {"service_name": m.group("name")}
            for key, value in fields.items():
                attrs[key.lower()] = _coded(key, value) if isinstance(value, str) else value
            if "dependencies" in attrs and isinstance(attrs["dependencies"], str):
                attrs["dependencies"] = [attrs["dependencies"]] if attrs["dependencies"] else []
            if "type" in attrs:
                attrs.update(_service_type(attrs["type"]))
            if "pid" in attrs:
                with contextlib.suppress(ValueError):
                    attrs["pid"] = int(str(attrs["pid"]))
            kind = (
                "service_config"
                if ("start_type" in attrs or "binary_path_name" in attrs)
                else "service_status"
            )
            if kind == "service_status" or "state" in attrs:
                state = attrs.get("state")
                attrs["running"] = isinstance(state, dict) and state.get("code") == 4
            facts.append(Fact(kind, attrs, Provenance(text.path, text.locator(i))))
            i = max(nxt, i + 1)
            continue
        s = SDDL_LINE.match(lines[i])
        if s:
            facts.append(_security(text, i, s.group(1)))
        i += 1
    return facts


def _security(text: Text, index: int, sddl: str) -> Fact:
    command = text.command_at(index) or ""
    m = re.search(r"\bsdshow\s+(\S+)", command, re.I)
    service: str | None
    if m:
        service, source = m.group(1), "command"
    else:
        # `sc sdshow cryptsvc > sd-cryptsvc.txt` leaves only the name of the file.
        words = file_name_words(text.path)
        service, source = service_from_words(words, _services_named(text)), "file_name"
    attrs: dict[str, Any] = {"service_name": service, "service_name_from": source}
    if source == "file_name":
        attrs["file_name_words"] = words
    attrs.update(parse_sddl(sddl))
    return Fact("service_security", attrs, Provenance(text.path, text.locator(index)))


def _services_named(text: Text) -> list[str]:
    """Services the same text names in `sc` outputs (SERVICE_NAME lines)."""
    return [m.group("name") for line in text.lines if (m := SERVICE_NAME.match(line))]
