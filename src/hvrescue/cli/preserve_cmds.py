"""`preserve`, `verify` and `inventory`: freeze the evidence first, prove the copy, map the VMs.

Each command parses its arguments, calls one library function (:mod:`hvrescue.preserve.api`,
:mod:`hvrescue.inventory`) and renders its result."""

from __future__ import annotations

import sys
import threading

import click
from rich.table import Table
from rich.text import Text

from hvrescue.cli.hash_opts import hash_option
from hvrescue.cli.main import (
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    fail,
    json_option,
    max_memory_option,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import console, emit_json, finding_json, findings_table
from hvrescue.cli.progress import progress_bar
from hvrescue.cli.threshold_opts import threshold_options
from hvrescue.errors import HvrescueError
from hvrescue.units import human_size


# ---------------------------------------------------------------- preserve
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@hash_option("Further hash algorithms besides SHA-256 (repeatable).")
@click.option(
    "--allow-same-storage",
    is_flag=True,
    help="Allow DEST on the same filesystem as a source (a copy there fails with it).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted preservation into DEST.")
@click.option(
    "--snapshot",
    is_flag=True,
    help="Read the sources through a volume shadow copy made for this run (Windows).",
)
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
    snapshot: bool,
    jobs: int | None,
    search: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy VM folders or disks (whole chains) to DEST with hashes: preserve SRC... DEST.

    Exit 0 complete, 1 copied with gaps (unreadable ranges zero-filled or files unreachable),
    2 refused or failed."""
    from hvrescue.preserve.api import is_reference_only, preserve_to
    from hvrescue.preserve.run import Cancelled

    if len(paths) < 2:
        raise click.UsageError(c.msg("error.preserve.usage"))
    sources, dest = list(paths[:-1]), paths[-1]
    cancel = threading.Event()
    try:
        with progress_bar(as_json, c.msg("ui.preserve.progress")) as bar:
            result = preserve_to(
                sources,
                dest,
                algorithms=hashes or ("sha256",),
                allow_same_storage=allow_same_storage,
                resume=resume,
                snapshot=snapshot,
                jobs=jobs,
                search=list(search),
                case=c.case,
                argv=sys.argv,
                progress=bar.update,
                cancel=cancel,
            )
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    except (KeyboardInterrupt, Cancelled):
        cancel.set()
        console(stderr=True).print(Text(c.msg("ui.preserve.interrupted", dest=dest), style="red"))
        sys.exit(130)
    m = result.manifest
    code = EXIT_OK if result.complete else EXIT_FINDINGS
    if as_json:
        emit_json(result.as_dict())
        sys.exit(code)
    out = console()
    done = c.msg(
        "ui.preserve.done",
        count=len(m["files"]),
        size=human_size(result.total_bytes),
        dest=result.dest,
    )
    out.print(Text(done, style="bold"))
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
    retried, recovered = result.outcome.retried, result.outcome.recovered
    if retried:
        line = c.msg("ui.preserve.retried", bytes=retried, recovered=recovered)
        out.print(Text(line, style="green" if recovered == retried else "yellow"))
    for f in m["files"]:
        for off, length in f["unreadable"]:
            out.print(
                Text(
                    c.msg("ui.preserve.zero-filled", path=f["path"], offset=off, length=length),
                    style="red",
                )
            )
    for u in m["unreachable"]:
        reference_only = is_reference_only(u)
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
    if "same-storage" in m.get("warnings", []):
        out.print(Text(c.msg("ui.preserve.same-storage-warning"), style="yellow"))
    for shadow in m.get("snapshots", []):
        if shadow["deleted"] is None:
            line = c.msg(
                "ui.preserve.snapshot-not-deleted", reason=shadow["delete_error"], **shadow
            )
            out.print(Text(line, style="red"))
        else:
            out.print(Text(c.msg("ui.preserve.snapshot-used", **shadow)))
    out.print(Text(c.msg("ui.preserve.manifest", path=result.manifest_path)))
    sys.exit(code)


# ---------------------------------------------------------------- verify
@cli.command()
@click.argument("target", type=click.Path(exists=True))
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="Files hashed at once.")
@hash_option("Check only these recorded digests (repeatable or comma-separated).")
@json_option
@pass_ctx
def verify(c: Ctx, target: str, jobs: int | None, hashes: tuple[str, ...], as_json: bool) -> None:
    """Re-hash a preserved copy against its manifest: verify DEST|MANIFEST.

    Exit 0 when every file matches, 1 when a file is missing or differs or the preservation is
    incomplete (ranges the original could not give are zeros in the copy), 2 when the manifest
    cannot be read."""
    from hvrescue.preserve.api import verify_copy

    try:
        with progress_bar(as_json, c.msg("ui.verify.progress")) as bar:
            report = verify_copy(
                target, jobs, bar.update, c.case, sys.argv, algorithms=hashes or None
            )
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    results, bad, gaps = report.files, report.failed, report.incomplete
    code = EXIT_OK if report.ok else EXIT_FINDINGS
    if as_json:
        emit_json(report.as_dict())
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
        summary = c.msg("ui.verify.failed", count=len(results), bad=len(bad), dest=report.dest)
        out.print(Text(summary, style="bold"))
    elif gaps:
        summary = c.msg(
            "ui.verify.incomplete",
            count=len(results),
            dest=report.dest,
            gaps=len(gaps),
            bytes=report.zero_filled_bytes,
        )
        out.print(Text(summary, style="bold red"))
    else:
        out.print(Text(c.msg("ui.verify.ok", count=len(results), dest=report.dest), style="bold"))
        if report.unreached:
            count = report.unreached_count
            out.print(Text(c.msg("ui.verify.recorded-incomplete", count=count), style="bold red"))
    sys.exit(code)


# ---------------------------------------------------------------- inventory
@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@search_option
@threshold_options
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Judge ages as of this ISO date/time instead of now (for evidence examined later).",
)
@max_memory_option
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
    max_memory: str | None,
    as_json: bool,
) -> None:
    """Which files belong together (per VM, per chain) and what does not add up.

    Exit 0 nothing to report, 1 findings, 2 error."""
    import datetime as dt

    from hvrescue.evidence import Budget
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
        budget=Budget.from_option(max_memory),
    )
    findings = inv.findings
    code = EXIT_FINDINGS if inv.status == "findings" else EXIT_OK
    if as_json:
        findings_json = [finding_json(f, c.msg) for f in findings]
        emit_json({**inv.as_dict(), "findings": findings_json, "status": inv.status})
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
    for s in inv.skipped:
        reason = c.msg(f"skipped.reason.{s.reason}")
        out.print(Text(c.msg("ui.facts.skipped", path=s.path, reason=reason, detail=s.detail)))
    if findings:
        out.print(findings_table(findings, c.msg))
    else:
        out.print(Text(c.msg("ui.check.none")))
    sys.exit(code)
