"""A bundle's members told apart by its manifest: which command printed each, and how it ended.

The walker classifies a member by its name and first bytes; a bundle knows more. Its manifest
says, for each member, which command produced it (its argv), whether that command ended well
(``status``), and what the member is: a command's output, what it wrote to stderr, an exported
event log, a VM file copied with its source, the collector's own listing. A reader uses this
to give a parser the command a text came from (``prompt_line``: the command as a console
transcript shows it) and to tell a complete output from the first part of one, or from the
words of a refusal (``complete``), so that an empty list printed by a refused command is not
read as an empty list.

The walker reads the manifest once, bounded, where it meets a bundle (a zip or a folder with
``hvrescue-bundle.json`` at its top) and gives every member item its route (``Item.route``).
Pure: reads the manifest's bytes, imports nothing of hvrescue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MANIFEST = "hvrescue-bundle.json"
FORMAT = "hvrescue-bundle"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
ROLES = ("output", "stderr", "export", "cluster-log", "vm-file", "listing")


@dataclass(frozen=True)
class Route:
    member: str
    role: str  # one of ROLES
    command: str | None = None  # the command id
    argv: tuple[str, ...] = ()
    status: str | None = None  # the command's status; None for what no command produced
    source: str | None = None  # where a copied file was on the host

    @property
    def complete(self) -> bool:
        """Whether the member holds everything the command printed, and the command ended
        well (a refusal's or a failure's words are not the output it would have printed)."""
        return self.role not in ("output", "export") or self.status == "ok"

    @property
    def evidence(self) -> bool:
        """Whether a reader of outputs should read it as evidence of the host: the outputs,
        exports and copied files; not stderr nor the collector's own listing."""
        return self.role in ("output", "export", "cluster-log", "vm-file")

    def prompt_line(self) -> str | None:
        """The command as a console transcript shows it above its output (``C:\\> argv``)."""
        if self.role != "output" or not self.argv:
            return None
        return "C:\\> " + " ".join(_quoted(a) for a in self.argv)


def _quoted(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) and not arg.startswith('"') else arg


def read_manifest(data: bytes) -> dict[str, Any] | None:
    """The manifest of a bundle, or None when ``data`` is not one (bounded, validated)."""
    if len(data) > MAX_MANIFEST_BYTES:
        return None
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def routes(manifest: dict[str, Any]) -> dict[str, Route]:
    """Every member the manifest names -> its route."""
    out: dict[str, Route] = {}
    commands = manifest.get("commands")
    for cmd in commands if isinstance(commands, list) else []:
        if not isinstance(cmd, dict):
            continue
        ident = str(cmd.get("id"))
        argv = tuple(str(a) for a in cmd.get("argv") or () if isinstance(a, str))
        status = cmd.get("status") if isinstance(cmd.get("status"), str) else None
        output, stderr = cmd.get("output"), cmd.get("stderr")
        if isinstance(output, str):
            role = "export" if output.startswith("logs/") else "output"
            out[output] = Route(output, role, ident, argv, status)
        if isinstance(stderr, str):
            out[stderr] = Route(stderr, "stderr", ident, argv, status)
    files = manifest.get("files")
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        path, source = entry["path"], entry.get("source")
        if path in out:
            continue
        if path.startswith("vms/"):
            out[path] = Route(path, "vm-file", source=source)
        elif path.startswith("logs/cluster/"):
            out[path] = Route(path, "cluster-log", source=source)
        elif path.startswith("listings/"):
            out[path] = Route(path, "listing")
    return out


def route_of(table: dict[str, Route], item_path: str) -> Route | None:
    """The route of an item the walker names ``bundle.zip!/commands/x.txt`` (or the member
    name itself)."""
    member = item_path.rsplit("!/", 1)[-1].replace("\\", "/")
    return table.get(member)


def table_from(data: bytes) -> dict[str, Route]:
    """The routes of a bundle from its manifest's bytes; empty when they are not a manifest."""
    manifest = read_manifest(data)
    return routes(manifest) if manifest is not None else {}
