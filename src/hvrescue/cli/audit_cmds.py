"""`audit`: prevention checks of Hyper-V storage trees, for people and for monitoring.

Calls :func:`hvrescue.audit.run_audit` and renders what it returns: text, ``--json``, and the
node_exporter textfile (``--prometheus``, :mod:`hvrescue.audit.prometheus`)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    json_option,
    max_memory_option,
    pass_ctx,
)
from hvrescue.cli.output import console, emit_json, finding_json, findings_table
from hvrescue.cli.threshold_opts import threshold_options
from hvrescue.errors import HvrescueError
from hvrescue.units import human_size


def _size(c: Ctx, value: str | None, option: str) -> int | None:
    from hvrescue.evidence import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError:
        message = c.msg("error.audit.size", value=value)
        raise click.BadParameter(message, param_hint=option) from None


def _volumes(c: Ctx, values: tuple[str, ...]) -> dict[str, int] | None:
    """``D:=120G`` (or ``D=120G``) per volume, as Get-Volume's DriveLetter and SizeRemaining."""
    out: dict[str, int] = {}
    for value in values:
        drive, _, size = value.partition("=")
        letter = drive.strip().rstrip(":")
        if len(letter) != 1 or not letter.isalpha() or not size:
            message = c.msg("error.audit.volume-free", value=value)
            raise click.BadParameter(message, param_hint="--volume-free")
        out[letter.upper() + ":"] = _size(c, size, "--volume-free") or 0
    return out or None


def _figure(value: int | None, size: bool = False) -> str:
    if value is None:
        return "-"
    return human_size(value) if size else str(value)


@cli.command()
@click.argument("directories", nargs=-1, required=True, type=click.Path(exists=True))
@threshold_options
@click.option(
    "--headroom-margin",
    "headroom_margin",
    type=click.FloatRange(1.0, 100.0),
    default=None,
    help="Free space must exceed what a merge writes times this (default 1.1).",
)
@click.option(
    "--rct-max-size",
    "rct_max_size",
    default=None,
    metavar="SIZE",
    help="Report change-tracking files (.rct/.mrt) larger than this (a size: 512M, 1G).",
)
@click.option(
    "--acl",
    "acl_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An icacls output of the disk files (repeatable).",
)
@click.option(
    "--vm-info",
    "vm_info",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A Get-VM, Get-VMHardDiskDrive or Get-VMSnapshot output (repeatable).",
)
@click.option(
    "--volume-free",
    "volume_free",
    multiple=True,
    metavar="DRIVE=SIZE",
    help="Free space of a host volume (D:=120G), for a copy of the storage (repeatable).",
)
@click.option(
    "--prometheus",
    "prometheus",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the figures in node_exporter's textfile format to this file (replaced).",
)
@max_memory_option
@json_option
@pass_ctx
@audited("directories", "acl_files", "vm_info")
def audit(
    c: Ctx,
    directories: tuple[str, ...],
    older_than: int | None,
    max_depth: int | None,
    headroom_margin: float | None,
    rct_max_size: str | None,
    acl_files: tuple[str, ...],
    vm_info: tuple[str, ...],
    volume_free: tuple[str, ...],
    prometheus: str | None,
    max_memory: str | None,
    as_json: bool,
) -> None:
    """Prevention: old checkpoints, deep chains, merge headroom, orphaned and leftover files,
    disk ACLs lacking their VM's grant.

    Exit 0 nothing above the thresholds, 1 conditions found, 2 could not run."""
    from hvrescue.audit import AuditOptions, run_audit
    from hvrescue.audit import prometheus as prom
    from hvrescue.audit.run import DEFAULT_HEADROOM_MARGIN
    from hvrescue.evidence import Budget
    from hvrescue.inventory import DEFAULT_MAX_DEPTH, DEFAULT_OLDER_THAN_DAYS

    inputs = [*directories, *acl_files, *vm_info]
    if prometheus is not None:
        output = click.get_current_context().params.get("output")
        prom.check_path(prometheus, [*inputs, *([output] if output else [])])
    options = AuditOptions(
        older_than_days=DEFAULT_OLDER_THAN_DAYS if older_than is None else older_than,
        max_depth=DEFAULT_MAX_DEPTH if max_depth is None else max_depth,
        headroom_margin=DEFAULT_HEADROOM_MARGIN if headroom_margin is None else headroom_margin,
        rct_max_bytes=_size(c, rct_max_size, "--rct-max-size"),
        acl_files=tuple(acl_files),
        vm_info_files=tuple(vm_info),
        budget=Budget.from_option(max_memory),
        volume_free=_volumes(c, volume_free),
    )
    help_text = _prom_help(c)
    try:
        result = run_audit(list(directories), options)
    except HvrescueError:
        if prometheus is not None:
            # The monitor learns that this run could not audit (success 0), not nothing.
            prom.write(prometheus, prom.render(None, help_text, time.time(), False), inputs)
        raise
    data = result.as_dict()
    data["findings"] = [finding_json(f, c.msg) for f in result.findings]
    code = EXIT_FINDINGS if result.status == "findings" else EXIT_OK
    if prometheus is not None:
        now = result.as_of.timestamp()
        prom.write(prometheus, prom.render(data, help_text, now), inputs)
    if as_json:
        emit_json(data)
        sys.exit(code)
    _show(c, data, result.findings)
    if prometheus is not None:
        console().print(Text(c.msg("ui.audit.prometheus-written", path=prometheus)))
    sys.exit(code)


def _prom_help(c: Ctx) -> Any:
    return lambda name: c.msg("ui.audit.metric." + name.replace("_", "-"))


def _show_sources(c: Ctx, data: dict[str, Any]) -> None:
    """Where the VMs came from, and the configurations that were not read."""
    out = console()
    info = data["vm_info"]
    if info.get("vms"):
        out.print(Text(c.msg("ui.audit.vm-info", count=info["vms"], matched=len(info["matched"]))))
    live = info.get("live")
    if live and live.get("failed"):
        out.print(Text(c.msg("ui.audit.vm-info-live-failed", commands=", ".join(live["failed"]))))
    unread = data["configs_not_read"]
    if unread:
        alone = sum(1 for u in unread if not u["vm"])
        out.print(Text(c.msg("ui.audit.configs-not-read", count=len(unread), alone=alone)))


def _show(c: Ctx, data: dict[str, Any], findings: list[Any]) -> None:
    out = console()
    out.print(Text(c.msg("ui.audit.title", roots=", ".join(data["roots"])), style="bold"))
    t = data["thresholds"]
    out.print(
        Text(
            c.msg(
                "ui.audit.thresholds",
                days=t["older_than_days"],
                depth=t["max_depth"],
                margin=t["headroom_margin"],
            )
        )
    )
    if data["vms"]:
        table = Table(show_header=True, title=c.msg("ui.audit.vms"))
        for col in ("vm", "depth", "age", "merge", "free", "findings"):
            table.add_column(c.msg(f"ui.audit.col.{col}"), overflow="fold")
        for vm in data["vms"]:
            table.add_row(
                Text(str(vm["name"] or "?")),
                str(vm["depth"]),
                _figure(vm["oldest_checkpoint_days"]),
                _figure(vm["merge_bytes"], True),
                _figure(vm["free_bytes"], True),
                str(len(vm["findings"])),
            )
        out.print(table)
    if data["chains"]:
        table = Table(show_header=True, title=c.msg("ui.audit.chains"))
        for col in ("chain", "vm", "depth", "age", "merge", "free"):
            table.add_column(c.msg(f"ui.audit.col.{col}"), overflow="fold")
        for ch in data["chains"]:
            table.add_row(
                Text(ch["leaf"]),
                Text(str(ch["vm"] or "-")),
                str(ch["depth"]),
                _figure(ch["oldest_checkpoint_days"]),
                _figure(ch["merge_bytes"], True),
                _figure(ch["free_bytes"], True),
            )
        out.print(table)
    out.print(Text(c.msg("ui.audit.acl-checked", count=data["acl_checked"])))
    _show_sources(c, data)
    if findings:
        out.print(findings_table(findings, c.msg))
    key = "ui.audit.status.findings" if data["status"] == "findings" else "ui.audit.status.clean"
    out.print(Text(c.msg(key, count=len(findings)), style="bold"))
