"""`collect`: read-only live collection on a Windows host into one bundle (zip + manifest).

Calls :func:`hvrescue.collector.collect` and renders what it returns."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    cli,
    fail,
    json_option,
    on_interrupt,
    pass_ctx,
)
from hvrescue.cli.output import console, emit_json, is_quiet
from hvrescue.errors import HvrescueError, InputError
from hvrescue.units import human_size


def _size(c: Ctx, value: str, option: str) -> int:
    from hvrescue.evidence import parse_size

    try:
        return parse_size(value)
    except ValueError:
        message = c.msg("error.collect.size", value=value)
        raise click.BadParameter(message, param_hint=option) from None


@contextmanager
def _progress(as_json: bool, label: str) -> Iterator[Callable[[int, int, str], None] | None]:
    err = console(stderr=True)
    if as_json or is_quiet() or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "{task.fields[current]}",
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None, current="")

        def update(done: int, total: int, current: str) -> None:
            bar.update(task, completed=done, total=total, current=current)

        yield update


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "--max-output",
    default="64M",
    metavar="SIZE",
    help="Output kept of one command at most (the first part; default 64M).",
)
@click.option(
    "--max-file",
    default="1G",
    metavar="SIZE",
    help="Largest VM configuration file copied (default 1G).",
)
@click.option(
    "--max-time",
    type=click.FloatRange(1, 3600),
    default=None,
    metavar="SECONDS",
    help="Run no command longer than this (default: each command's own timeout).",
)
@click.option(
    "--skip",
    multiple=True,
    metavar="ID",
    help="A command id (or a prefix such as evtx) not to run (repeatable).",
)
@click.option(
    "--temp-dir",
    "temp_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder for the temporary files (default: the system's).",
)
@json_option
@pass_ctx
def collect(
    c: Ctx,
    out: str,
    max_output: str,
    max_file: str,
    max_time: float | None,
    skip: tuple[str, ...],
    temp_dir: str | None,
    as_json: bool,
) -> None:
    """Collect event logs, command outputs and VM configurations of this Windows host into
    OUT.zip, read-only."""
    from hvrescue.collector import Options
    from hvrescue.collector import collect as run_collect
    from hvrescue.collector.host import may_run_here

    if not may_run_here():
        fail(c, InputError("error.collect.not-windows"), as_json)
    options = Options(
        max_output=_size(c, max_output, "--max-output"),
        max_file=_size(c, max_file, "--max-file"),
        max_time=max_time,
        skip=skip,
        temp_dir=temp_dir,
    )
    on_interrupt("ui.collect.interrupted", out=out)
    try:
        with _progress(as_json, c.msg("ui.collect.progress")) as update:
            result = run_collect(out, options, progress=update)
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.complete else EXIT_FINDINGS
    m = result.manifest
    size = os.path.getsize(out)
    if as_json:
        emit_json(
            {
                "status": "complete" if result.complete else "partial",
                "bundle": out,
                "host": m["host"],
                "user": m["user"],
                "elevated": m["elevated"],
                "counts": result.counts(),
                "files": len(m["files"]),
                "bytes": size,
                "commands": m["commands"],
            }
        )
        sys.exit(code)
    _render(c, result, size)
    sys.exit(code)


def _render(c: Ctx, result: Any, size: int) -> None:
    m = result.manifest
    out = console()
    done = c.msg(
        "ui.collect.done",
        path=result.out,
        count=len(m["files"]),
        size=human_size(size),
        host=m["host"],
    )
    out.print(Text(done, style="bold"))
    counts = ", ".join(
        f"{c.msg('ui.collect.status.' + k)} {v}" for k, v in sorted(result.counts().items())
    )
    out.print(Text(counts))
    if not m["elevated"]:
        out.print(Text(c.msg("ui.collect.not-elevated"), style="yellow"))
    problems = [r for r in result.records if not r.collected]
    if not problems:
        return
    out.print(Text(c.msg("ui.collect.not-ok", count=len(problems))))
    table = Table(show_header=True)
    table.add_column(c.msg("ui.collect.col.command"), overflow="fold")
    table.add_column(c.msg("ui.collect.col.status"), no_wrap=True)
    table.add_column(c.msg("ui.collect.col.exit-code"), justify="right", no_wrap=True)
    table.add_column(c.msg("ui.collect.col.seconds"), justify="right", no_wrap=True)
    for r in problems:
        code = "" if r.exit_code is None else str(r.exit_code)
        table.add_row(
            r.command.id, c.msg("ui.collect.status." + r.status), code, f"{r.duration_s:.1f}"
        )
    out.print(table)


__all__ = ["EXIT_ERROR", "collect"]
