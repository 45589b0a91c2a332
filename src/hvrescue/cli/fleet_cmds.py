"""`fleet`: many hosts' bundles triaged in parallel into one summary (HTML, JSON, text)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    max_memory_option,
    named_paths,
    on_interrupt,
    pass_ctx,
)
from hvrescue.cli.output import check_output_path, console, emit_json, transfer_progress

SHOWN_PER_HOST = 3


@contextmanager
def _progress(as_json: bool, description: str, total: int) -> Iterator[Any]:
    """A bundles-done bar on a terminal (nothing for pipes, --json, -q): ``advance()``."""
    if transfer_progress(as_json) is None:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task, 1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    "summary_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the summary to this new file: HTML, or JSON when the name ends in .json.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Bundles triaged at once, each in its own process (default: one per CPU).",
)
@max_memory_option
@pass_ctx
@audited("paths")
def fleet(
    c: Ctx,
    paths: tuple[str, ...],
    summary_path: str | None,
    as_json: bool,
    jobs: int | None,
    max_memory: str | None,
) -> None:
    """Triage many hosts' bundles (zips or folders, one host each; a folder is searched for
    them) in parallel and summarise: per host its verdict and top diagnoses, per diagnosis
    the hosts that have it, the hosts whose evidence could not be read.

    Exit 0 every host healthy, 1 anything else on any host, 2 could not run."""
    from hvrescue.errors import InputError
    from hvrescue.evidence import Budget
    from hvrescue.fleet import find_bundles, run_fleet, to_json, write_summary
    from hvrescue.fleet.html import to_html

    budget = Budget.from_option(max_memory).max_memory if max_memory else None
    if summary_path is not None:
        named, inputs = named_paths(click.get_current_context())
        named.remove(summary_path)  # the summary's own option (an input named so stays)
        check_output_path(summary_path, named, inputs)  # before the work, not after it
    bundles = find_bundles(list(paths))
    if not bundles:
        raise InputError("error.fleet.no-bundles", path=", ".join(paths))
    on_interrupt("ui.fleet.interrupted")
    with _progress(as_json, c.msg("ui.fleet.progress"), len(bundles)) as advance:
        summary = run_fleet(bundles, c.msg.lang, jobs, budget, on_result=lambda r: advance())
    data = summary.as_dict()
    code = EXIT_FINDINGS if summary.serious else EXIT_OK
    if summary_path is not None:
        as_file = summary_path.lower().endswith(".json")
        write_summary(summary_path, to_json(data) if as_file else to_html(data, c.msg.lang))
    if as_json:
        emit_json(data)
        sys.exit(code)
    _show(c, data)
    if summary_path is not None:
        console().print(Text(c.msg("ui.fleet.written", path=summary_path)))
    sys.exit(code)


def _show(c: Ctx, data: dict[str, Any]) -> None:
    from hvrescue.fleet.html import verdict_text

    con = console()
    counts = data["counts"]
    con.print(
        Text(
            c.msg(
                "ui.fleet.banner",
                hosts=counts["hosts"],
                problems=counts["problems"],
                failed=counts["failed"],
                healthy=counts["healthy"],
                unrecognised=counts["nothing-recognised"],
                diagnoses=counts["diagnoses"],
            ),
            style="bold",
        )
    )
    titles = {d["id"]: d["title"] for d in data["diagnoses"]}
    for h in data["hosts"]:
        con.print(Text(f"{h['host']}  [{verdict_text(c.msg, h['verdict'])}]  {h['bundle']}"))
        for d in h["diagnoses"][:SHOWN_PER_HOST]:
            title = titles.get(d["id"], d["id"])
            con.print(Text(f"    {d['confidence']:.0%}  {title}  ({d['id']})"))
        if h["error"]:
            con.print(Text(f"    {h['error']}", style="red"))
    if data["diagnoses"]:
        con.print(Text(c.msg("ui.fleet.section.diagnoses") + ":", style="bold"))
        for d in data["diagnoses"]:
            con.print(Text(f"  {d['count']:>5}  {d['title']}  ({d['id']})"))
