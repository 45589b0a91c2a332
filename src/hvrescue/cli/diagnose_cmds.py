"""`triage`, `explain` and `guest`: each calls one library function and shows its result."""

from __future__ import annotations

import atexit
import gc
import sys
from typing import TYPE_CHECKING, Any

import click

from hvrescue.cli.lazy import LazyChoice
from hvrescue.cli.main import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    json_option,
    max_memory_option,
    on_interrupt,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import console, emit_json, hint, printer, stdout_binary, styled
from hvrescue.cli.unlock import secret_options
from hvrescue.errors import InputError

if TYPE_CHECKING:
    from rich.text import Text

MAX_SHOWN = 5


def _text(text: str, style: str = "") -> Text:
    """A line for the console: rich only where one is printed (``--json`` never needs it)."""
    from rich.text import Text

    return Text(text, style=style)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--symptom",
    "symptoms",
    multiple=True,
    type=LazyChoice("hvrescue.diagnose.triage", "SYMPTOMS"),
    help="What you see (repeatable): adds the triage table's checks for it.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for report.html, report.md and report.json (default: a new folder beside the "
    "evidence, never inside it).",
)
@click.option(
    "--timeline-format",
    "timeline_format",
    type=click.Choice(("jsonl", "csv", "json")),
    default=None,
    help="Print the timeline (every event with a time, oldest first) instead of the summary: "
    "jsonl (Timesketch), csv (Excel) or json.",
)
@click.option("--jobs", type=click.IntRange(1, 64), default=None, help="EVTX logs read at once.")
@max_memory_option
@json_option
@pass_ctx
@audited("paths")
@secret_options
def triage(
    c: Ctx,
    paths: tuple[str, ...],
    symptoms: tuple[str, ...],
    out_dir: str | None,
    timeline_format: str | None,
    jobs: int | None,
    max_memory: str | None,
    as_json: bool,
) -> None:
    """What is most likely wrong, the evidence, and what to do next, from everything given
    (event exports, command outputs, VM folders, disks, zip bundles).

    Exit 0 nothing of severity warning or worse, 1 diagnoses, 2 could not run."""
    from hvrescue.evidence import Budget
    from hvrescue.report.triage_report import triage_to_folder

    _no_collection_at_exit()
    if as_json and timeline_format is not None:
        raise InputError("error.cli.format-conflict", format=timeline_format)
    outcome = triage_to_folder(
        list(paths),
        list(symptoms),
        c.msg.lang,
        out_dir,
        on_folder=lambda out: on_interrupt("ui.interrupted.triage", out=out),
        budget=Budget.from_option(max_memory),
        jobs=jobs,
        all_events=timeline_format is not None,
    )
    report = outcome.report
    code = EXIT_FINDINGS if outcome.serious else EXIT_OK
    if as_json:
        emit_json({**report, "reports": outcome.written})
        sys.exit(code)
    if timeline_format is not None:
        from hvrescue.report.records import timeline_records, write_records

        with stdout_binary() as stream:
            write_records(timeline_records(outcome.triage.facts), stream, timeline_format)
        hint(_text(c.msg("ui.triage.written", out=outcome.out)))
        sys.exit(code)
    _show_summary(c, report)
    console().print(_text(c.msg("ui.triage.written", out=outcome.out)))
    sys.exit(code)


def _no_collection_at_exit() -> None:
    """At exit, leave what the run made to the system instead of the cycle collector: its passes
    over every object (the modules, and each fact kept) were 30-50 ms of a triage's fixed cost.
    They free memory the system takes back anyway; nothing of triage waits on them (its files
    are closed by then, worker pools shut down, atexit handlers still run)."""
    if not _FREEZE_AT_EXIT:
        _FREEZE_AT_EXIT.append(True)
        atexit.register(gc.freeze)


_FREEZE_AT_EXIT: list[bool] = []


def _severity(c: Ctx, severity: str) -> str:
    key = f"ui.severity.{severity}"
    return c.msg(key) if c.msg.has(key) else severity


def _show_summary(c: Ctx, report: dict[str, Any]) -> None:
    """The verdict, the most likely diagnoses, and the steps of the first."""
    v = report["verdict"]
    con = console()
    con.print(
        _text(f"{c.msg('ui.report.verdict')} · {v['state_text']}: {v['title']}", style="bold")
    )
    diagnoses = report["diagnoses"]
    for d in diagnoses[:MAX_SHOWN]:
        sev = _severity(c, d["severity"])
        con.print(_text(f"  {d['confidence']:.0%}  [{sev}] {d['title']}  ({d['id']})"))
    if len(diagnoses) > MAX_SHOWN:
        con.print(_text(c.msg("ui.triage.more-diagnoses", count=len(diagnoses) - MAX_SHOWN)))
    if diagnoses:
        top = next((d for d in diagnoses if d["id"] == v["id"]), diagnoses[0])
        con.print(_text(c.msg("ui.report.steps") + ":", style="bold"))
        for n, s in enumerate(top["steps"], 1):
            con.print(_text(f"  {n}. [{s['precondition_text']}] {s['text']}"))
            if s["command"]:
                con.print(_text(f"       {s['command']}", style="cyan"))
        if top["avoid"]:
            con.print(_text(c.msg("ui.report.avoid") + ":", style="bold"))
            for a in top["avoid"]:
                con.print(_text(f"  - {a}", style="red"))
    for u in report["unrecognised"]:
        reason = c.msg(f"facts.reason.{u['reason']}")
        con.print(_text(c.msg("ui.facts.unrecognised", path=u["path"], reason=reason), style="dim"))
    said = {u["path"] for u in report["unrecognised"]}
    for s in report.get("skipped", []):
        if s["path"] not in said:
            reason = c.msg(f"skipped.reason.{s['reason']}")
            text = c.msg("ui.facts.skipped", path=s["path"], reason=reason, detail=s["detail"])
            con.print(_text(text, style="yellow"))


# A negative decimal HRESULT (-2147024882) is a code, not an option.
@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("code")
@json_option
@pass_ctx
def explain(c: Ctx, code: str, as_json: bool) -> None:
    """What a code means: NTSTATUS/HRESULT/STATUS_VHD_* (0xC03A000D), an event (VSS/8193,
    Microsoft-Windows-Hyper-V-Hypervisor/80), a finding code or a rule id."""
    from hvrescue.report.explain import explain as explain_code

    found = explain_code(code, c.msg.lang)
    if found is None:
        if as_json:
            emit_json({"status": "unknown", "code": code})
        else:
            printer(stderr=True).print(styled(c.msg("ui.explain.unknown", code=code), style="red"))
        sys.exit(EXIT_ERROR)
    if as_json:
        emit_json({"status": "known", **found})
        sys.exit(EXIT_OK)
    con = printer()
    title = found["code"] + (f" ({found['name']})" if found.get("name") else "")
    con.print(styled(title, style="bold"))
    con.print(styled(found["meaning"]))
    if found.get("detail"):
        con.print(styled(found["detail"]))
    con.print(styled(f"{c.msg('ui.report.layer')}: {found['layer_text']}", style="dim"))
    sys.exit(EXIT_OK)


@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@search_option
@json_option
@pass_ctx
@audited("disk")
@secret_options
def guest(c: Ctx, disk: str, search: tuple[str, ...], as_json: bool) -> None:
    """Facts from inside a Windows guest's disk, offline and read-only: registry (transaction
    logs applied in memory), boot configuration, servicing, services and drivers, crash dumps,
    event logs, .NET folder counts. The same facts feed `triage` when a disk is given."""
    from hvrescue.cli.main import fail
    from hvrescue.errors import HvrescueError
    from hvrescue.guest.collect import guest_facts

    try:
        result = guest_facts(disk, list(search))
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    if as_json:
        emit_json(result.as_dict())
        sys.exit(EXIT_OK)
    con = console()
    for vol in result.volumes:
        roles = ", ".join(vol["roles"]) or "-"
        con.print(
            _text(
                f"{vol.get('id') or vol['index']} {vol['filesystem']} {vol['type']} ({roles})",
                style="bold",
            )
        )
    counts = result.kind_counts()
    con.print(
        _text(
            c.msg(
                "ui.facts.summary",
                count=len(result.facts),
                kinds=", ".join(f"{k} {n}" for k, n in counts.items()),
            )
        )
    )
    from hvrescue.diagnose.engine import excerpt

    for f in result.notable():
        con.print(_text(f"{f.kind}: {excerpt(f)}  [{f.provenance.path}]"))
    for p in result.problems:
        con.print(
            _text(
                c.msg("ui.facts.problem", path=p.path, code=p.code, locator=p.locator or ""),
                style="yellow",
            )
        )
    sys.exit(EXIT_OK)
