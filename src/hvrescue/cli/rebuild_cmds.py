"""`rebuild`: print the PowerShell script that recreates a VM from its surviving disks (the
plan and the script are made by :mod:`hvrescue.hyperv.rebuild`)."""

from __future__ import annotations

import datetime as dt
import os
import sys

import click
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    named_paths,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import check_output_path, console, emit_json, stdout_binary

BOM = b"\xef\xbb\xbf"


@cli.command()
@click.argument("target", type=click.Path(exists=True))
@click.option("--name", default=None, help="Name of the new VM.")
@click.option("--vm-path", "vm_path", default=None, help="Folder for the new VM (New-VM -Path).")
@click.option("--switch", default=None, help="Switch to connect after the first boot.")
@search_option
@click.option(
    "-o",
    "--output",
    "script_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the script to this new file.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
@audited("target")
def rebuild(
    c: Ctx,
    target: str,
    name: str | None,
    vm_path: str | None,
    switch: str | None,
    search: tuple[str, ...],
    script_path: str | None,
    as_json: bool,
) -> None:
    """Print (never run) a PowerShell script that recreates a VM from its surviving disks.

    Exit 0 the script was made, 1 made with warnings, 2 could not run."""
    from hvrescue.hyperv.rebuild import plan_rebuild
    from hvrescue.hyperv.rebuild_script import render_script
    from hvrescue.io.atomic import atomic_output

    if script_path is not None:
        named, inputs = named_paths(click.get_current_context())
        named.remove(script_path)  # the script's own option
        check_output_path(script_path, named, inputs)
    plan = plan_rebuild(target, name, vm_path, switch, list(search))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    script = render_script(plan, c.msg, when)
    code = EXIT_FINDINGS if plan.warnings else EXIT_OK
    if script_path is not None:
        with atomic_output(script_path) as fd:
            os.write(fd, BOM + script.replace("\n", "\r\n").encode("utf-8"))
    if as_json:
        warnings = [{"key": k, "message": c.msg(k, **p), "params": p} for k, p in plan.warnings]
        notes = [{"key": k, "message": c.msg(k, **p), "params": p} for k, p in plan.notes]
        emit_json({**plan.as_dict(), "warnings": warnings, "notes": notes, "script": script})
        sys.exit(code)
    if script_path is None:
        with stdout_binary() as out:
            out.write(script.encode("utf-8"))
    err = console(stderr=True)
    for key, params in plan.notes:
        err.print(Text(c.msg(key, **params)))
    if plan.warnings:
        err.print(Text(c.msg("ui.rebuild.warnings"), style="bold yellow"))
        for key, params in plan.warnings:
            err.print(Text("  - " + c.msg(key, **params)))
    if script_path is not None:
        err.print(Text(c.msg("ui.rebuild.written", path=script_path)))
    sys.exit(code)
