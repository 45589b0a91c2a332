"""How a command ends: exit codes, what an interruption leaves, errors for a person or as JSON.

Imported by every command module through :mod:`hvrescue.cli.main`, which re-exports these names.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Protocol

from hvrescue.cli.output import console, emit_json, finding_json, findings_table

if TYPE_CHECKING:
    from hvrescue.errors import HvrescueError, NotADiskError
    from hvrescue.report.i18n import Messages


class HasMessages(Protocol):
    msg: Messages


EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
# Stopped by Ctrl-C (SIGINT), as shells report it (128 + 2).
EXIT_INTERRUPTED = 130
# Commands that write nothing: when Ctrl-C stops them there is nothing to clean up or resume.
READ_ONLY_COMMANDS = frozenset(
    {
        "info",
        "chain",
        "check",
        "hash",
        "facts",
        "inventory",
        "verify",
        "explain",
        "ls",
        "guest",
        "mount",
        "rebuild",
    }
)
# What to tell the user if Ctrl-C stops the running command: a catalogue key and parameters,
# set per command (see on_interrupt) and printed by main().
interrupt_note: dict[str, Any] = {"key": "ui.interrupted", "params": {"command": "hvrescue"}}


def on_interrupt(key: str, **params: Any) -> None:
    """Say what an interruption leaves behind from here on (the message main() prints)."""
    interrupt_note["key"] = key
    interrupt_note["params"] = {"command": interrupt_note["params"].get("command"), **params}


def fail(c: HasMessages, exc: HvrescueError, as_json: bool) -> None:
    from rich.text import Text

    text = c.msg(exc.key, **exc.params)
    if as_json:
        emit_json(
            {"status": "error", "error": {"key": exc.key, "message": text, "params": exc.params}}
        )
    else:
        console(stderr=True).print(Text(text, style="red"))
    sys.exit(EXIT_ERROR)


def not_a_disk(c: HasMessages, file: str, exc: NotADiskError, as_json: bool) -> None:
    """A file that is no disk at all: the error and its finding (`file.empty` for 0 bytes,
    `file.not-a-disk` otherwise, as `check` reports it), exit 2."""
    from rich.text import Text

    from hvrescue.findings import Finding, Severity

    code = "file.empty" if exc.key == "error.not-a-disk.empty" else "file.not-a-disk"
    finding = Finding(code, Severity.CRITICAL, file, 0)
    text = c.msg(exc.key, **exc.params)
    if as_json:
        emit_json(
            {
                "status": "error",
                "path": file,
                "error": {"key": exc.key, "message": text, "params": exc.params},
                "findings": [finding_json(finding, c.msg)],
            }
        )
    else:
        err = console(stderr=True)
        err.print(Text(text, style="red"))
        err.print(findings_table([finding], c.msg, show_file=False))
    sys.exit(EXIT_ERROR)


def os_error_message(exc: OSError) -> tuple[str, dict[str, Any]]:
    """A message for an OSError no command turned into a domain error: the file system refused
    something (writing an output, mostly); never an internal error."""
    import errno as errno_

    from hvrescue.io.atomic import is_write_failure, output_error

    path = os.fsdecode(exc.filename) if exc.filename is not None else None
    if is_write_failure(exc):
        if path is not None:
            err = output_error(exc, path)
            return err.key, err.params
        return "error.output.failed", {
            "errno": errno_.errorcode.get(exc.errno or 0, str(exc.errno)),
            "reason": exc.strerror or str(exc),
        }
    return "error.file-system", {
        "path": path or "-",
        "errno": errno_.errorcode.get(exc.errno or 0, str(exc.errno)),
        "reason": exc.strerror or str(exc),
    }
