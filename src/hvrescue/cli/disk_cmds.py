"""`info`, `chain`, `check`, `hash` and `facts`: each calls one library function and shows it."""

from __future__ import annotations

import sys
from typing import Any

import click

from hvrescue import __version__
from hvrescue.cli.hash_opts import hash_option
from hvrescue.cli.main import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    fail,
    json_option,
    max_memory_option,
    not_a_disk,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import (
    console,
    emit_json,
    escape,
    finding_json,
    findings_lines,
    findings_table,
    flatten,
    gaps_table,
    print_kv_table,
    printer,
    rich_text,
    size_text,
    sized_rows,
    stdout_binary,
    styled,
)
from hvrescue.cli.progress import progress_bar
from hvrescue.errors import HvrescueError, InputError, NotADiskError
from hvrescue.findings import Severity

RECORD_FORMATS = ("json", "jsonl", "csv")


def record_format(as_json: bool, fmt: str | None) -> str | None:
    """--json is --format json; the two may not contradict each other."""
    if as_json and fmt not in (None, "json"):
        raise InputError("error.cli.format-conflict", format=fmt)
    return "json" if as_json else fmt


# ---------------------------------------------------------------- info
@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
@audited("file")
def info(c: Ctx, file: str, as_json: bool) -> None:
    """Every structure of one VHDX/VHD file."""
    if file.lower().endswith(".vmgs"):
        from hvrescue.hyperv.vmgs import info_report
    elif file.lower().endswith(".vhds"):
        from hvrescue.hyperv.vhds import info_report
    else:
        from hvrescue.vdisk.reports import info_report

    try:
        report = info_report(file)
    except NotADiskError as exc:
        not_a_disk(c, file, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    findings = report.findings
    if as_json:
        emit_json(
            {
                "path": file,
                **report.structures,
                "findings": [finding_json(f, c.msg) for f in findings],
            }
        )
        return
    out = printer()
    out.print(styled(c.msg("ui.info.title", path=file, format=report.format), style="bold"))
    rows: list[tuple[str, Any]] = []
    flatten("", report.structures, rows)
    print_kv_table(sized_rows(rows, c.msg), c.msg)
    if findings:
        out.print(styled(c.msg("ui.info.findings"), style="bold"))
        out.print(findings_lines(findings, c.msg, show_file=False))


# ---------------------------------------------------------------- chain
_LINK_TEXT = {
    "base": ("ui.chain.base", ""),
    "ok": ("ui.chain.ok", "green"),
    "mismatch": ("ui.chain.bad", "red"),
    "missing": ("ui.chain.none", "red"),
}


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@search_option
@json_option
@pass_ctx
@audited("file")
def chain(c: Ctx, file: str, search: tuple[str, ...], as_json: bool) -> None:
    """Each link of a differencing chain, its identity check and where the parent was found."""
    from hvrescue.vdisk.reports import chain_report

    try:
        report = chain_report(file, list(search))
    except NotADiskError as exc:
        not_a_disk(c, file, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_FINDINGS if report.broken else EXIT_OK
    if as_json:
        data = report.as_dict()
        data["findings"] = [finding_json(f, c.msg) for f in report.findings]
        emit_json(data)
        sys.exit(code)
    from rich.table import Table  # here: the other commands print no table of their own

    out = console()
    out.print(rich_text(c.msg("ui.chain.title", path=file), style="bold"))
    table = Table()
    for col in ("level", "file", "format", "size", "identity", "linkage", "found-via"):
        table.add_column(c.msg(f"ui.col.{col}"), overflow="fold")
    for row in report.rows():
        key, style = _LINK_TEXT[row.link_state]
        size = size_text(row.virtual_size, c.msg)
        cells = [str(row.level), row.path, row.format, size, str(row.identity)]
        via = row.found_via or ""
        if via and c.msg.has(f"ui.chain.via.{via}"):  # how the parent was found, in words
            via = c.msg(f"ui.chain.via.{via}")
        table.add_row(*(rich_text(x) for x in cells), rich_text(c.msg(key), style=style), via)
    out.print(table)
    out.print(
        rich_text(c.msg("ui.chain.complete", depth=len(report.layers)))
        if report.complete
        else rich_text(c.msg("ui.chain.incomplete"), style="red")
    )
    if report.findings:
        out.print(findings_table(report.findings, c.msg))
    sys.exit(code)


# ---------------------------------------------------------------- check
_CHECK_EXIT = {"error": EXIT_ERROR, "findings": EXIT_FINDINGS, "clean": EXIT_OK}


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@search_option
@click.option(
    "--deep", is_flag=True, help="Also read every allocated range to find unreadable areas."
)
@json_option
@pass_ctx
@audited("files")
def check(
    c: Ctx, files: tuple[str, ...], search: tuple[str, ...], deep: bool, as_json: bool
) -> None:
    """Integrity findings for each file and its chain. Exit 0 clean, 1 findings, 2 error."""
    if files and all(f.lower().endswith(".vmgs") for f in files):
        from hvrescue.hyperv.vmgs import check_files
    else:
        from hvrescue.vdisk.reports import check_files

    report = check_files(list(files), list(search), deep=deep)
    status, findings = report.status, report.findings
    if as_json:
        emit_json(
            {
                "status": status,
                "findings": [finding_json(f, c.msg) for f in findings],
                "files": [
                    {
                        "path": r.path,
                        "status": r.status,
                        "format": r.format,
                        "virtual_size": r.virtual_size,
                        "chain": r.chain,
                        "complete": r.complete,
                        "unreadable": r.unreadable,
                        "undefined": r.undefined,
                        "error": None
                        if r.error is None
                        else {"key": r.error.key, "message": c.msg(r.error.key, **r.error.params)},
                    }
                    for r in report.files
                ],
                "tool": {"name": "hvrescue", "version": __version__},
            }
        )
        sys.exit(_CHECK_EXIT[status])
    out = printer()
    for r in report.files:
        summary = c.msg(
            "ui.check.summary",
            path=r.path,
            status=c.msg(f"ui.status.{r.status}"),
            count=len(r.findings),
        )
        if r.virtual_size is not None:
            summary += "  " + c.msg("ui.check.size", size=size_text(r.virtual_size, c.msg))
        out.print(styled(summary))
        if r.error is not None:
            out.print(styled(c.msg(r.error.key, **r.error.params), style="red"))
    if findings:
        out.print(findings_lines(findings, c.msg))
    else:
        out.print(styled(c.msg("ui.check.none")))
    sys.exit(_CHECK_EXIT[status])


# ---------------------------------------------------------------- hash
@cli.command("hash")
@click.argument("file", type=click.Path(dir_okay=False))
@search_option
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Hash even when undefined ranges far exceed what the files hold (hashed as zeros).",
)
@hash_option("Hash algorithm(s) in one pass (repeatable or comma-separated; default sha256).")
@json_option
@pass_ctx
@audited("file")
def hash_(
    c: Ctx,
    file: str,
    search: tuple[str, ...],
    allow_gaps: bool,
    hashes: tuple[str, ...],
    as_json: bool,
) -> None:
    """SHA-256 of the virtual content as the guest sees it (log replayed, through the chain)."""
    from hvrescue.vdisk.reports import hash_disk

    try:
        with progress_bar(as_json, c.msg("ui.hash.progress")) as bar:
            report = hash_disk(
                file, list(search), bar.update, allow_gaps=allow_gaps, algorithms=hashes
            )
    except HvrescueError as exc:
        _say_missing_parents(c, file, search, [] if as_json else getattr(exc, "gaps", []))
        fail(c, exc, as_json)
        return
    # Structural findings are shown but do not change the answer; undefined ranges do.
    code = EXIT_OK if report.complete else EXIT_FINDINGS
    if as_json:
        data = report.as_dict()
        data["findings"] = [finding_json(f, c.msg) for f in report.findings]
        emit_json(data)
        sys.exit(code)
    size = size_text(report.size, c.msg)
    if list(report.hashes) == ["sha256"]:
        console().print(rich_text(c.msg("ui.hash.result.sized", size=size, sha256=report.sha256)))
    else:
        for name, digest in report.hashes.items():
            text = c.msg("ui.hash.result.digest", algorithm=name, size=size, digest=digest)
            console().print(rich_text(text))
    err = console(stderr=True)
    if report.undefined:
        undefined = size_text(report.undefined_bytes, c.msg)
        text = c.msg("ui.hash.undefined.sized", count=len(report.undefined), size=undefined)
        err.print(rich_text(text, style="red"))
        _say_missing_parents(c, file, search, report.undefined)
        err.print(gaps_table(report.undefined, c.msg))
    elif report.unreadable:
        err.print(rich_text(c.msg("ui.hash.unreadable", count=len(report.unreadable)), style="red"))
    warn = [f for f in report.findings if f.severity >= Severity.WARNING]
    if warn:
        err.print(findings_table(warn, c.msg))
    sys.exit(code)


def _say_missing_parents(c: Ctx, file: str, search: tuple[str, ...], gaps: list[Any]) -> None:
    from hvrescue.vdisk.chain import missing_parents_of  # where each was expected

    for child, parent in missing_parents_of(file, list(search), gaps):
        text = c.msg("ui.hash.parent-missing", child=child, parent=parent)
        console(stderr=True).print(rich_text(text, style="red"))


# ---------------------------------------------------------------- facts
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(RECORD_FORMATS),
    default=None,
    help="json (as --json), jsonl (one fact per line, Timesketch's fields) or csv (Excel).",
)
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="EVTX logs read at once.")
@max_memory_option
@json_option
@pass_ctx
@audited("paths")
def facts(
    c: Ctx,
    paths: tuple[str, ...],
    fmt: str | None,
    jobs: int | None,
    max_memory: str | None,
    as_json: bool,
) -> None:
    """Facts from event logs (EVTX, XML, CSV, text) and command outputs, with provenance."""
    from hvrescue.evidence import Budget

    fmt = record_format(as_json, fmt)
    if fmt == "jsonl":
        # Streamed: each log's facts written as soon as read, never all held.
        from hvrescue.logs.stream import FactStream
        from hvrescue.report.records import facts_jsonl, write_jsonl_parts

        # the records made where the logs are read (in the workers, for EVTX files)
        streamed = FactStream(list(paths), Budget.from_option(max_memory), jobs, facts_jsonl)
        with stdout_binary() as binary:
            write_jsonl_parts(streamed.parts(), binary)
        _say_problems(c, streamed.summary, console(stderr=True))
        _say_inputs(c, streamed.inputs(), console(stderr=True), brief=True)
        sys.exit(EXIT_OK)
    from hvrescue.logs.collect import collect

    found = collect(list(paths), Budget.from_option(max_memory), jobs)
    inputs = found.inputs()
    if fmt == "json":
        emit_json(
            {
                "facts": [f.as_dict() for f in found.facts],
                "unrecognised": [u.as_dict() for u in found.unrecognised],
                "problems": [p.as_dict() for p in found.problems],
                "skipped": [s.as_dict() for s in found.skipped],
                "inputs": inputs,
            }
        )
        sys.exit(EXIT_OK)
    if fmt is not None:
        from hvrescue.report.records import fact_records, write_records

        with stdout_binary() as stream:
            write_records(fact_records(found.facts), stream, fmt)
        # The records hold the facts; what could not be read is said on stderr, never dropped.
        _say_problems(c, found, console(stderr=True))
        _say_inputs(c, inputs, console(stderr=True), brief=True)
        sys.exit(EXIT_OK)
    out = console()
    counts: dict[str, int] = {}
    for fact in found.facts:
        counts[fact.kind] = counts.get(fact.kind, 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    out.print(rich_text(c.msg("ui.facts.summary", count=len(found.facts), kinds=kinds)))
    for fact in found.facts:
        where = f"{fact.provenance.path}#{fact.provenance.locator or ''}"
        summary = fact_summary(fact.attributes)
        out.print(f"[bold]{fact.kind}[/] [dim]{escape(where)}[/]\n    {escape(summary)}")
    _say_problems(c, found, out)
    _say_inputs(c, inputs, out)
    sys.exit(EXIT_OK)


def _say_inputs(c: Ctx, inputs: list[dict[str, Any]], out: Any, brief: bool = False) -> None:
    """How many inputs were recognised; then each one read by its low-confidence signals
    alone (and, unless ``brief``, each recognised one with its formats). The unrecognised
    ones were named above with their reason."""
    seen = sum(1 for i in inputs if i["recognised"])
    out.print(rich_text(c.msg("ui.facts.inputs", recognised=seen, count=len(inputs))))
    for item in inputs:
        if item["signals_only"]:
            text = c.msg("ui.facts.input-signals-only", path=item["path"], facts=item["facts"])
            out.print(f"[yellow]{escape(text)}[/]")
        elif item["recognised"] and not brief:
            formats = ", ".join(item["formats"])
            text = c.msg("ui.facts.input-recognised", path=item["path"], formats=formats)
            out.print(f"[dim]{escape(text)}[/]")


def _say_problems(c: Ctx, found: Any, out: Any) -> None:
    for problem in found.problems:
        text = c.msg(
            "ui.facts.problem", path=problem.path, code=problem.code, locator=problem.locator or ""
        )
        out.print(f"[yellow]{escape(text)}[/]")
    for unknown in found.unrecognised:
        reason = c.msg(f"facts.reason.{unknown.reason}")
        text = c.msg("ui.facts.unrecognised", path=unknown.path, reason=reason)
        out.print(f"[dim]{escape(text)}[/]")
    said = {u.path for u in found.unrecognised}
    for skipped in found.skipped:
        if skipped.path not in said:
            why = c.msg(f"skipped.reason.{skipped.reason}")
            text = c.msg("ui.facts.skipped", path=skipped.path, reason=why, detail=skipped.detail)
            out.print(f"[yellow]{escape(text)}[/]")


def fact_summary(attributes: dict[str, Any], limit: int = 6) -> str:
    """A one-line view: the first few attributes that have a value."""
    parts = []
    for key, value in attributes.items():
        if value in (None, "", [], {}) or key in ("properties", "elements", "data", "other"):
            continue
        text = str(value).replace("\n", " ")
        parts.append(f"{key}={text[:80]}")
        if len(parts) >= limit:
            break
    return " ".join(parts)
