"""The command list (``commands.yaml``, package data) as typed entries, expanded for one run.

The list is data so that it can be reviewed as a whole (docs/collect.md) and checked by a test
against an allow-list of read-only verbs; this module only loads it, checks its shape and
fills its placeholders. A placeholder's value is inserted as one argument (no shell ever sees
it); inside a PowerShell ``-Command`` string, where it stands between single quotes, a quote
in the value is doubled so that the value stays one string literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from hvrescue.errors import InputError

KINDS = ("txt", "json", "xml", "evtx", "folder")
PHASE2 = ("vm-folder", "disk", "volume")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
# A command in the list is run at most this long, whatever the data file says.
MAX_TIMEOUT = 3600


@dataclass(frozen=True)
class Command:
    """One process to run: ``argv`` with its placeholders filled except ``{out}``/``{outdir}``
    (the runner's temporary paths), what its output is, how long it may take."""

    id: str
    argv: tuple[str, ...]
    kind: str
    timeout: float
    admin: bool
    windows: str
    member: str | None = None  # evtx: the name under logs/
    target: str | None = None  # phase 2: the discovered path or volume it is about


@dataclass(frozen=True)
class Template:
    """An entry of the data file before expansion."""

    id: str
    argv: tuple[str, ...]
    kind: str
    timeout: float
    admin: bool
    windows: str
    each: tuple[str, ...] = ()
    phase2: str | None = None
    member: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def safe_id(text: str) -> str:
    """A command id usable as a member name (a channel's "/" and spaces become "-")."""
    return _SAFE_ID.sub("-", text).strip("-") or "command"


def channel_file(channel: str) -> str:
    """An event log channel's file name, as Windows names it in winevt\\Logs."""
    return channel.replace("/", "%4")


def _fill(argv: tuple[str, ...], name: str, value: str) -> tuple[str, ...]:
    out = []
    powershell = argv[0].lower().startswith("powershell")
    for arg in argv:
        if "{" + name + "}" not in arg:
            out.append(arg)
            continue
        inserted = value.replace("'", "''") if powershell and arg != "{" + name + "}" else value
        out.append(arg.replace("{" + name + "}", inserted))
    return tuple(out)


def _template(raw: Any, defaults: dict[str, Any], where: str) -> Template:
    if not isinstance(raw, dict):
        raise InputError("error.collect.command-list", path=where, reason="an entry is not a map")
    try:
        argv = tuple(str(a) for a in raw["argv"])
        ident = str(raw["id"])
        kind = str(raw.get("kind", "txt"))
    except (KeyError, TypeError) as exc:
        raise InputError("error.collect.command-list", path=where, reason=str(exc)) from exc
    if not argv or kind not in KINDS:
        raise InputError("error.collect.command-list", path=where, reason=f"{ident}: kind/argv")
    phase2 = raw.get("for")
    if phase2 is not None and phase2 not in PHASE2:
        raise InputError("error.collect.command-list", path=where, reason=f"{ident}: for")
    timeout = float(raw.get("timeout", defaults.get("timeout", 120)))
    return Template(
        id=ident,
        argv=argv,
        kind=kind,
        timeout=min(max(timeout, 1.0), MAX_TIMEOUT),
        admin=bool(raw.get("admin", defaults.get("admin", False))),
        windows=str(raw.get("windows", defaults.get("windows", ""))),
        each=tuple(str(v) for v in raw.get("each", ()) or ()),
        phase2=phase2,
        member=raw.get("member"),
    )


def load_templates(text: str | None = None, where: str = "commands.yaml") -> list[Template]:
    """The entries of the data file (the package's own unless ``text`` is given)."""
    if text is None:
        text = resources.files("hvrescue.collector").joinpath("commands.yaml").read_text("utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError("error.collect.command-list", path=where, reason=str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("commands"), list):
        raise InputError("error.collect.command-list", path=where, reason="no commands list")
    defaults = data.get("defaults") or {}
    templates = [_template(raw, defaults, where) for raw in data["commands"]]
    ids = [t.id for t in templates]
    if len(ids) != len(set(ids)):
        raise InputError("error.collect.command-list", path=where, reason="duplicate id")
    return templates


def _command(t: Template, ident: str, argv: tuple[str, ...], **kw: Any) -> Command:
    return Command(ident, argv, t.kind, t.timeout, t.admin, t.windows, **kw)


def phase1(templates: list[Template]) -> list[Command]:
    """The commands that need nothing discovered, ``each`` expanded, in the file's order."""
    out: list[Command] = []
    for t in templates:
        if t.phase2 is not None:
            continue
        if not t.each:
            out.append(_command(t, t.id, t.argv))
            continue
        for item in t.each:
            member = None
            if t.member:
                member = t.member.replace("{item}", channel_file(item))
            out.append(
                _command(t, safe_id(f"{t.id}-{item}"), _fill(t.argv, "item", item), member=member)
            )
    return out


def phase2(templates: list[Template], found: dict[str, list[str]]) -> list[Command]:
    """The commands about discovered paths: ``found`` maps ``vm-folder``/``disk``/``volume``
    to the paths (volume roots) found, each run once per path, numbered in order."""
    out: list[Command] = []
    for t in templates:
        if t.phase2 is None:
            continue
        name = "root" if t.phase2 == "volume" else "path"
        for n, value in enumerate(found.get(t.phase2, ()), 1):
            argv = _fill(t.argv, name, value)
            out.append(_command(t, f"{t.id}-{n}", argv, target=value))
    return out


def all_argv(templates: list[Template]) -> list[tuple[str, ...]]:
    """Every argv the list can run (phase 2 with a sample path): what a review checks."""
    sample = {
        "vm-folder": [r"D:\Hyper-V\vm"],
        "disk": [r"D:\Hyper-V\vm\d.vhdx"],
        "volume": ["D:\\"],
    }
    return [c.argv for c in phase1(templates) + phase2(templates, sample)]
