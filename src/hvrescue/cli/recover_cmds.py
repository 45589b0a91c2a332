"""`merge`, `reparent`, `replay-log`, `repair`, `salvage`: recovery that writes only new files.

Each command parses its arguments, calls one function of :mod:`hvrescue.recover.api` and
renders its result; every decision lives there."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_ERROR,
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
from hvrescue.cli.output import console, emit_json, finding_json, findings_table, gaps_table
from hvrescue.cli.progress import progress_bar
from hvrescue.errors import HvrescueError, UndefinedContentError

out_argument = click.argument("out", type=click.Path(dir_okay=False))
allow_gaps_option = click.option(
    "--allow-gaps",
    is_flag=True,
    help="Go ahead where content is undefined (zeros in the copy, a ddrescue map beside it).",
)


def _changes_text(c: Ctx, changes: list[Any]) -> Text:
    text = Text()
    for change in changes:
        text.append("  - " + c.msg(change.code, **change.params) + "\n")
    return text


def _with_messages(c: Ctx, data: dict[str, Any], findings: list[Any]) -> dict[str, Any]:
    """A result's JSON with each finding's message in the run's language."""
    data["findings"] = [finding_json(f, c.msg) for f in findings]
    return data


def fail_undefined(c: Ctx, exc: UndefinedContentError, as_json: bool) -> None:
    """Refused because the source has undefined ranges: say which, and the way on (salvage)."""
    if not as_json:
        err = console(stderr=True)
        err.print(Text(c.msg(exc.key, **exc.params), style="red"))
        err.print(gaps_table(exc.gaps, c.msg))
        sys.exit(EXIT_ERROR)
    fail(c, exc, as_json)


# ---------------------------------------------------------------- merge
@cli.command()
@click.argument("leaf", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--format", "fmt", type=click.Choice(["vhdx", "raw"]), default="vhdx", show_default=True
)
@click.option(
    "--block-size",
    "block_mib",
    type=click.IntRange(1, 256),
    default=None,
    help="Block size of the VHDX output in MiB (default: the base disk's).",
)
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Write zeros where the chain's content is undefined, with a ddrescue map beside OUT.",
)
@click.option(
    "--no-verify",
    "no_verify",
    is_flag=True,
    help="Skip the digest and the read-back (status unverified, exit 1).",
)
@search_option
@json_option
@pass_ctx
@audited("leaf")
def merge(
    c: Ctx,
    leaf: str,
    out: str,
    fmt: str,
    block_mib: int | None,
    allow_gaps: bool,
    no_verify: bool,
    search: tuple[str, ...],
    as_json: bool,
) -> None:
    """Flatten a whole chain into one new standalone disk, then verify it.

    Exit 0 written and verified, 1 written with gaps (--allow-gaps) or its content differs
    from the chain, 2 not done (a chain with undefined ranges is refused)."""
    from hvrescue.recover.api import merge_chain

    block = block_mib * 1024 * 1024 if block_mib else None
    try:
        with progress_bar(as_json, c.msg("ui.merge.progress")) as bar:
            result = merge_chain(
                leaf,
                out,
                fmt,
                block,
                list(search),
                bar.update,
                allow_gaps,
                sys.argv,
                verify=not no_verify,
            )
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.verified else EXIT_FINDINGS
    if as_json:
        emit_json(result.as_dict())
        sys.exit(code)
    con = console()
    done = c.msg(
        "ui.merge.done",
        layers=len(result.chain),
        out=result.out,
        format=result.format,
        blocks=result.blocks_written,
        bytes=result.data_bytes,
    )
    con.print(Text(done, style="bold"))
    if result.status == "written-with-gaps":
        gaps = c.msg(
            "ui.merge.with-gaps",
            count=len(result.gaps),
            bytes=sum(g.length for g in result.gaps),
            map=result.map,
        )
        con.print(Text(gaps, style="yellow"))
        for child, parent in result.missing_parents:
            text = c.msg("ui.merge.parent-missing", child=child, parent=parent)
            con.print(Text(text, style="yellow"))
        con.print(gaps_table(result.gaps, c.msg))
    elif result.status == "unverified":
        con.print(Text(c.msg("ui.merge.unverified"), style="yellow"))
    else:
        key = "ui.merge.verified" if result.verified else "ui.merge.mismatch"
        style = "green" if result.verified else "red"
        con.print(Text(c.msg(key, digest=result.output_digest), style=style))
    sys.exit(code)


# ---------------------------------------------------------------- replay-log / repair
@cli.command("replay-log")
@click.argument("disk", type=click.Path(dir_okay=False))
@out_argument
@allow_gaps_option
@json_option
@pass_ctx
@audited("disk")
def replay_log(c: Ctx, disk: str, out: str, allow_gaps: bool, as_json: bool) -> None:
    """A copy of a VHDX with its log applied and cleared, as Hyper-V would leave it.

    Exit 0 written (and the copy checks clean), 1 written with findings left, 2 not done."""
    _rewrite(c, disk, out, as_json, repair=False, allow_gaps=allow_gaps)


@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@out_argument
@allow_gaps_option
@json_option
@pass_ctx
@audited("disk")
def repair(c: Ctx, disk: str, out: str, allow_gaps: bool, as_json: bool) -> None:
    """A copy with damaged headers and region tables rebuilt from their valid twins, the log
    applied, and blocks past the end of file given room; says what changed.

    Exit 0 written and clean, 1 written with findings left, 2 not done."""
    _rewrite(c, disk, out, as_json, repair=True, allow_gaps=allow_gaps)


def _rewrite(c: Ctx, disk: str, out: str, as_json: bool, repair: bool, allow_gaps: bool) -> None:
    from hvrescue.recover.api import rewrite_copy

    try:
        result = rewrite_copy(disk, out, repair=repair, allow_gaps=allow_gaps, argv=sys.argv)
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.ok else EXIT_FINDINGS
    if as_json:
        emit_json(_with_messages(c, result.as_dict(), result.findings))
        sys.exit(code)
    con = console()
    con.print(Text(c.msg("ui.rewrite.done", out=out, count=len(result.changes)), style="bold"))
    con.print(_changes_text(c, result.changes))
    if result.findings:
        con.print(findings_table(result.findings, c.msg))
    else:
        con.print(Text(c.msg("ui.rewrite.clean", out=out), style="green"))
    sys.exit(code)


# ---------------------------------------------------------------- reparent
@cli.command()
@click.argument("child", type=click.Path(dir_okay=False))
@click.option(
    "--parent", "parent", required=True, type=click.Path(dir_okay=False), help="The new parent."
)
@out_argument
@click.option(
    "--ignore-id-mismatch",
    is_flag=True,
    help="Accept a parent whose identity differs (only valid if it holds exactly the data the "
    "child was written against).",
)
@click.option(
    "--parent-windows-path",
    default=None,
    help="Absolute Windows path of the parent where the disk will be used (C:\\...\\base.vhdx).",
)
@allow_gaps_option
@json_option
@pass_ctx
@audited("child", "parent")
def reparent(
    c: Ctx,
    child: str,
    parent: str,
    out: str,
    ignore_id_mismatch: bool,
    parent_windows_path: str | None,
    allow_gaps: bool,
    as_json: bool,
) -> None:
    """A copy of CHILD whose parent locator points at PARENT (relative to OUT, and absolute).

    Exit 0 written and the new chain checks clean, 1 written with findings, 2 refused."""
    from hvrescue.recover.api import reparent as run

    try:
        result = run(
            child,
            parent,
            out,
            ignore_id_mismatch=ignore_id_mismatch,
            parent_windows_path=parent_windows_path,
            allow_gaps=allow_gaps,
            argv=sys.argv,
        )
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.ok else EXIT_FINDINGS
    warnings = [c.msg(w.key, **w.params) for w in result.plan.warnings]
    if as_json:
        data = result.as_dict()
        data["warnings"] = warnings
        emit_json(_with_messages(c, data, result.findings))
        sys.exit(code)
    con = console()
    for w in warnings:
        console(stderr=True).print(Text(w, style="bold red"))
    con.print(Text(c.msg("ui.rewrite.done", out=out, count=len(result.changes)), style="bold"))
    con.print(_changes_text(c, result.changes))
    if result.linked:
        con.print(Text(c.msg("ui.reparent.linked", out=out, parent=parent), style="green"))
    else:
        con.print(Text(c.msg("ui.reparent.not-linked", out=out, parent=parent), style="red"))
    if result.findings:
        con.print(findings_table(result.findings, c.msg))
    sys.exit(code)


# ---------------------------------------------------------------- salvage
@cli.command()
@click.argument("leaf", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--map",
    "map_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="GNU ddrescue map file: written on the first run, read and updated on later runs.",
)
@search_option
@json_option
@pass_ctx
@audited("leaf")
def salvage(
    c: Ctx, leaf: str, out: str, map_path: str, search: tuple[str, ...], as_json: bool
) -> None:
    """Read a damaged chain with error tolerance into a raw image OUT; what cannot be read is
    zeros in OUT and listed in the map. Run again with the same map to retry only those ranges.

    Exit 0 everything read, 1 bad ranges remain, 2 not done."""
    from hvrescue.cli.main import on_interrupt
    from hvrescue.recover.api import salvage_chain

    def started() -> None:
        on_interrupt("ui.interrupted.salvage", out=out, map=map_path)

    try:
        with progress_bar(as_json, c.msg("ui.salvage.progress")) as bar:
            result = salvage_chain(
                leaf, out, map_path, list(search), bar.advance, sys.argv, on_start=started
            )
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_FINDINGS if result.bad else EXIT_OK
    if as_json:
        emit_json({"status": result.status, **result.as_dict()})
        sys.exit(code)
    con = console()
    done = c.msg(
        "ui.salvage.done",
        out=out,
        map=map_path,
        size=result.size,
        bad=len(result.bad),
        bad_bytes=result.bad_bytes,
    )
    con.print(Text(done, style="bold"))
    if result.resumed:
        con.print(Text(c.msg("ui.salvage.resumed")))
    if result.retried:
        con.print(Text(c.msg("ui.salvage.recovered", bytes=result.recovered)))
    if result.gaps:
        con.print(gaps_table(result.gaps, c.msg))
    sys.exit(code)


# `ls`, `extract` and `mount` read inside a disk; they register themselves on `cli` too.
import hvrescue.cli.fs_cmds  # noqa: E402, F401
