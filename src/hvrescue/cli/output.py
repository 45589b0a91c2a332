"""Output helpers: JSON for machines, rich tables for people (colour only on a terminal)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hvrescue.findings import Finding
from hvrescue.report.i18n import Messages

SEVERITY_STYLE = {"info": "dim", "warning": "yellow", "error": "red", "critical": "bold red"}


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def finding_json(f: Finding, msg: Messages) -> dict[str, Any]:
    out = f.as_dict()
    out["message"] = msg(f.message_key, **f.message_params)
    return out


def findings_table(findings: list[Finding], msg: Messages, show_file: bool = True) -> Text:
    """Findings as a list: one head line (severity, code, file, offset), then the message."""
    text = Text()
    for f in findings:
        sev = f.severity.label
        text.append(f"[{msg('ui.severity.' + sev)}]", style=SEVERITY_STYLE[sev])
        text.append(f" {f.code}", style="bold")
        if show_file:
            text.append(f"  {f.path}")
        if f.offset is not None:
            text.append(f" @ {f.offset:#x}")
        text.append("\n    " + msg(f.message_key, **f.message_params) + "\n")
    return text


def kv_table(rows: list[tuple[str, Any]], msg: Messages) -> Table:
    table = Table(show_header=True)
    table.add_column(msg("ui.col.field"))
    table.add_column(msg("ui.col.value"), overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), Text("" if value is None else str(value)))
    return table


def flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    """Nested dicts/lists as dotted rows for the human 'info' view."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append((prefix, value))


def transfer_progress(as_json: bool) -> Any:
    """A bytes / rate / ETA progress bar on stderr when it is a terminal and output is for a
    person; None otherwise (pipes, --json)."""
    err = console(stderr=True)
    if as_json or not err.is_terminal:
        return None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


MAX_GAP_LINES = 20


def gaps_table(gaps: list[Any], msg: Messages) -> Text:
    """Undefined ranges, one line each (the first few; the count of the rest)."""
    text = Text()
    for g in gaps[:MAX_GAP_LINES]:
        text.append(f"  {g.offset:#x}+{g.length:#x}", style="red")
        text.append(f"  {msg('gap.cause.' + g.cause)}  {g.path}\n")
    if len(gaps) > MAX_GAP_LINES:
        text.append(msg("ui.gaps.more", count=len(gaps) - MAX_GAP_LINES) + "\n")
    return text
