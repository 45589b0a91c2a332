"""`preserve`, `verify` and `inventory`: freeze the evidence first, prove the copy, map the VMs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading

import click
from rich.table import Table
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    fail,
    json_option,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import (
    console,
    emit_json,
    finding_json,
    findings_table,
    transfer_progress,
)
from hvrescue.errors import HvrescueError
from hvrescue.preserve.copy import ALGORITHMS


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


# ---------------------------------------------------------------- preserve
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--hash",
    "hashes",
    multiple=True,
    type=click.Choice(ALGORITHMS),
    help="Further hash algorithms besides SHA-256 (repeatable).",
)
@click.option(
    "--allow-same-storage",
    is_flag=True,
    help="Allow DEST on the same filesystem as a source (a copy there fails with it).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted preservation into DEST.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Files copied at once (default: the CPU count, at most 4).",
)
@search_option
@json_option
@pass_ctx
def preserve(
    c: Ctx,
    paths: tuple[str, ...],
    hashes: tuple[str, ...],
    allow_same_storage: bool,
    resume: bool,
    jobs: int | None,
    search: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy VM folders or disks (whole chains) to DEST with hashes: preserve SRC... DEST.

    Exit 0 complete, 1 copied with gaps (unreadable ranges zero-filled or files unreachable),
    2 refused or failed."""
    from hvrescue.preserve.run import Cancelled, Options
    from hvrescue.preserve.run import preserve as run

    if len(paths) < 2:
        raise click.UsageError(c.msg("error.preserve.usage"))
    sources, dest = list(paths[:-1]), paths[-1]
    options = Options(
        algorithms=hashes or ("sha256",),
        allow_same_storage=allow_same_storage,
        resume=resume,
        jobs=jobs or max(1, min(4, os.cpu_count() or 1)),
        search=list(search),
        case=c.case,
    )
    cancel = threading.Event()
    bar = transfer_progress(as_json)
    try:
        if bar is not None:
            with bar:
                task = bar.add_task(c.msg("ui.preserve.progress"), total=None)

                def update(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                outcome = run(sources, dest, options, sys.argv, update, cancel)
        else:
            outcome = run(sources, dest, options, sys.argv, None, cancel)
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    except (KeyboardInterrupt, Cancelled):
        cancel.set()
        console(stderr=True).print(Text(c.msg("ui.preserve.interrupted", dest=dest), style="red"))
        sys.exit(130)
    m = outcome.manifest
    code = EXIT_OK if outcome.complete else EXIT_FINDINGS
    if as_json:
        emit_json(
            {
                "status": "complete" if outcome.complete else "incomplete",
                "manifest_path": os.path.join(outcome.dest, "manifest.json"),
                "verified_from_previous_run": outcome.resumed_verified,
                "retried_bytes": outcome.retried,
                "recovered_bytes": outcome.recovered,
                **m,
            }
        )
        sys.exit(code)
    out = console()
    total = sum(f["size"] for f in m["files"])
    out.print(
        Text(
            c.msg(
                "ui.preserve.done",
                count=len(m["files"]),
                size=_human_bytes(total),
                dest=outcome.dest,
            ),
            style="bold",
        )
    )
    table = Table(show_header=True)
    table.add_column(c.msg("ui.col.file"), overflow="fold")
    table.add_column(c.msg("ui.col.role"))
    table.add_column(c.msg("ui.col.bytes"), justify="right", no_wrap=True)
    table.add_column(c.msg("ui.col.sha256"), no_wrap=True, min_width=64)
    for f in m["files"]:
        table.add_row(
            Text(f["path"]), Text(c.msg(f"role.{f['role']}")), str(f["size"]), f["sha256"]
        )
    out.print(table)
    if outcome.retried:
        line = c.msg("ui.preserve.retried", bytes=outcome.retried, recovered=outcome.recovered)
        out.print(Text(line, style="green" if outcome.recovered == outcome.retried else "yellow"))
    for f in m["files"]:
        for off, length in f["unreadable"]:
            out.print(
                Text(
                    c.msg("ui.preserve.zero-filled", path=f["path"], offset=off, length=length),
                    style="red",
                )
            )
    for u in m["unreachable"]:
        reference_only = u["reason"] in ("config-disk-missing", "config-file-missing")
        out.print(
            Text(
                c.msg(
                    f"preserve.unreachable.{u['reason']}",
                    source=u["source"] or "",
                    referenced_by=u["referenced_by"] or "",
                    detail=u["detail"],
                ),
                style="yellow" if reference_only else "red",
            )
        )
    for note in m.get("notes", []):
        out.print(Text(c.msg(note["key"], path=note["path"]), style="yellow"))
    if m.get("warnings"):
        out.print(Text(c.msg("ui.preserve.same-storage-warning"), style="yellow"))
    out.print(Text(c.msg("ui.preserve.manifest", path=os.path.join(outcome.dest, "manifest.json"))))
    sys.exit(code)


# ---------------------------------------------------------------- verify
@cli.command()
@click.argument("target", type=click.Path(exists=True))
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="Files hashed at once.")
@json_option
@pass_ctx
def verify(c: Ctx, target: str, jobs: int | None, as_json: bool) -> None:
    """Re-hash a preserved copy against its manifest: verify DEST|MANIFEST.

    Exit 0 when every file matches, 1 when a file is missing or differs or the preservation is
    incomplete (ranges the original could not give are zeros in the copy), 2 when the manifest
    cannot be read."""
    from hvrescue.preserve.case import CASE_FILE, record_command
    from hvrescue.preserve.manifest import load_manifest, verify_entries

    try:
        dest, manifest = load_manifest(target)
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    entries = manifest["files"]
    total = sum(e.get("size") or 0 for e in entries if isinstance(e.get("size"), int))
    bar = transfer_progress(as_json)
    n_jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    if bar is not None:
        with bar:
            task = bar.add_task(c.msg("ui.verify.progress"), total=total)
            results = verify_entries(dest, entries, n_jobs, lambda n: bar.advance(task, n))
    else:
        results = verify_entries(dest, entries, n_jobs)
    bad = [r for r in results if r.status not in ("ok", "incomplete")]
    # A copy as recorded is not a whole copy while its record lists unreadable ranges, nor is a
    # preservation that could not reach every file it needed.
    gaps = [r for r in results if r.status == "incomplete"]
    unreached = manifest.get("complete") is False and not gaps
    status = "mismatch" if bad else "incomplete" if gaps or unreached else "ok"
    code = EXIT_OK if status == "ok" else EXIT_FINDINGS
    case_path = c.case or os.path.join(dest, CASE_FILE)
    # A read-only DEST (write-blocked media) can still be verified; the record is best effort.
    with contextlib.suppress(OSError, sqlite3.Error):
        record_command(case_path, "verify", sys.argv, [], code)
    if as_json:
        emit_json(
            {
                "status": status,
                "complete": status == "ok",
                "dest": dest,
                "files": [r.as_dict() for r in results],
                "failed": [r.path for r in bad],
                "incomplete": [{"path": r.path, "unreadable": r.unreadable} for r in gaps],
            }
        )
        sys.exit(code)
    out = console()
    for r in bad:
        out.print(Text(c.msg(f"ui.verify.{r.status}", path=r.path), style="red"))
    for r in gaps:
        out.print(Text(c.msg("ui.verify.zero-filled", path=r.path), style="yellow"))
        for off, length in r.unreadable:
            line = c.msg("ui.preserve.zero-filled", path=r.path, offset=off, length=length)
            out.print(Text(line, style="yellow"))
    if bad:
        summary = c.msg("ui.verify.failed", count=len(results), bad=len(bad), dest=dest)
        out.print(Text(summary, style="bold"))
    elif gaps:
        size = sum(n for r in gaps for _o, n in r.unreadable)
        summary = c.msg(
            "ui.verify.incomplete", count=len(results), dest=dest, gaps=len(gaps), bytes=size
        )
        out.print(Text(summary, style="bold red"))
    else:
        out.print(Text(c.msg("ui.verify.ok", count=len(results), dest=dest), style="bold"))
        if unreached:
            count = len(manifest.get("unreachable") or [])
            out.print(Text(c.msg("ui.verify.recorded-incomplete", count=count), style="bold red"))
    sys.exit(code)


# ---------------------------------------------------------------- inventory
@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@search_option
@click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(0, 100_000),
    default=None,
    help="Report checkpoints older than this many days (default 14).",
)
@click.option(
    "--max-depth",
    type=click.IntRange(0, 1000),
    default=None,
    help="Report chains with more differencing disks than this (default 5).",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Judge ages as of this ISO date/time instead of now (for evidence examined later).",
)
@json_option
@pass_ctx
@audited("directory")
def inventory(
    c: Ctx,
    directory: str,
    search: tuple[str, ...],
    older_than: int | None,
    max_depth: int | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Which files belong together (per VM, per chain) and what does not add up.

    Exit 0 nothing to report, 1 findings, 2 error."""
    import datetime as dt

    from hvrescue.findings import Severity
    from hvrescue.inventory import DEFAULT_MAX_DEPTH, DEFAULT_OLDER_THAN_DAYS, build_inventory

    when = None
    if as_of:
        try:
            when = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(c.msg("error.inventory.as-of", value=as_of)) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    inv = build_inventory(
        directory,
        list(search),
        when,
        DEFAULT_OLDER_THAN_DAYS if older_than is None else older_than,
        DEFAULT_MAX_DEPTH if max_depth is None else max_depth,
    )
    findings = inv.findings
    code = EXIT_FINDINGS if any(f.severity >= Severity.WARNING for f in findings) else EXIT_OK
    if as_json:
        emit_json(
            {
                **inv.as_dict(),
                "findings": [finding_json(f, c.msg) for f in findings],
                "status": "findings" if code else "clean",
            }
        )
        sys.exit(code)
    data = inv.as_dict()
    out = console()
    out.print(Text(c.msg("ui.inventory.title", root=inv.root), style="bold"))
    for vm in data["vms"]:
        label = c.msg(
            "ui.inventory.vm" if vm["kind"] == "vm" else "ui.inventory.snapshot",
            name=vm["name"] or "?",
            path=vm["path"],
        )
        out.print(Text(label, style="bold"))
        for d in vm["disks"]:
            where = d["local"] or c.msg("ui.inventory.not-found")
            out.print(Text(f"  {d['bus']} {d['controller']}:{d['drive']}  {d['path']}  -> {where}"))
    for chain in data["chains"]:
        text = " -> ".join(chain["files"])
        out.print(Text(c.msg("ui.inventory.chain", depth=chain["depth"], files=text)))
    table = Table(show_header=True)
    for col in ("file", "role", "bytes", "mtime"):
        table.add_column(c.msg(f"ui.col.{col}"), overflow="fold")
    for f in data["files"]:
        table.add_row(Text(f["path"]), Text(c.msg(f"role.{f['role']}")), str(f["size"]), f["mtime"])
    out.print(table)
    if findings:
        out.print(findings_table(findings, c.msg))
    else:
        out.print(Text(c.msg("ui.check.none")))
    sys.exit(code)
