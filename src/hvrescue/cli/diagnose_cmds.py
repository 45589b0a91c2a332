"""`triage` and `explain`."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
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
    json_option,
    on_interrupt,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import console, emit_json
from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.diagnose.triage import SYMPTOMS
from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output, check_output_dir, prepare_output_folder


def _write(path: str, text: str) -> None:
    with atomic_output(path) as fd:
        os.write(fd, text.encode("utf-8"))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--symptom",
    "symptoms",
    multiple=True,
    type=click.Choice(SYMPTOMS),
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
@json_option
@pass_ctx
@audited("paths")
def triage(
    c: Ctx, paths: tuple[str, ...], symptoms: tuple[str, ...], out_dir: str | None, as_json: bool
) -> None:
    """What is most likely wrong, the evidence, and what to do next, from everything given
    (event exports, command outputs, VM folders, disks, zip bundles).

    Exit 0 nothing of severity warning or worse, 1 diagnoses, 2 could not run."""
    from hvrescue.diagnose.triage import default_out_dir, run_triage
    from hvrescue.report.render import build, to_html, to_json, to_markdown

    lang = c.msg.lang
    if out_dir is not None:
        check_output_dir(out_dir)  # before the analysis, not after it
    result = run_triage(list(paths), list(symptoms))
    report = build(result, lang, list(symptoms))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir or default_out_dir(list(paths), stamp)
    for p in paths:
        if os.path.isdir(p) and os.path.realpath(out).startswith(os.path.realpath(p) + os.sep):
            raise InputError("error.triage.out-inside", out=out, path=p)
    reports = (
        ("report.json", to_json(report)),
        ("report.md", to_markdown(report, lang)),
        ("report.html", to_html(report, lang)),
    )
    created = not os.path.isdir(out)
    prepare_output_folder(out)
    on_interrupt("ui.interrupted.triage", out=out)
    written: list[str] = []
    try:
        for name, text in reports:
            target = os.path.join(out, name)
            _write(target, text)
            written.append(target)
    except BaseException:
        # Part of a report is no report (a full disk, Ctrl-C): remove what this run wrote.
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise
    v = report["verdict"]
    # Exit 1 whenever anything of warning or worse was found, diagnosed or not.
    serious = any(SEVERITY_ORDER[d["severity"]] >= 1 for d in report["diagnoses"])
    code = EXIT_FINDINGS if serious or v["state"] == "problems" else EXIT_OK
    if as_json:
        emit_json({**report, "reports": written})
        sys.exit(code)
    con = console()
    con.print(Text(f"{c.msg('ui.report.verdict')} · {v['state_text']}: {v['title']}", style="bold"))
    for d in report["diagnoses"][:5]:
        con.print(Text(f"  {d['confidence']:.0%}  [{d['severity']}] {d['title']}  ({d['id']})"))
    if len(report["diagnoses"]) > 5:
        con.print(Text(c.msg("ui.triage.more-diagnoses", count=len(report["diagnoses"]) - 5)))
    if report["diagnoses"]:
        top = next((d for d in report["diagnoses"] if d["id"] == v["id"]), report["diagnoses"][0])
        con.print(Text(c.msg("ui.report.steps") + ":", style="bold"))
        for n, s in enumerate(top["steps"], 1):
            con.print(Text(f"  {n}. [{s['precondition_text']}] {s['text']}"))
            if s["command"]:
                con.print(Text(f"       {s['command']}", style="cyan"))
        if top["avoid"]:
            con.print(Text(c.msg("ui.report.avoid") + ":", style="bold"))
            for a in top["avoid"]:
                con.print(Text(f"  - {a}", style="red"))
    for u in report["unrecognised"]:
        con.print(
            Text(c.msg("ui.facts.unrecognised", path=u["path"], reason=u["reason"]), style="dim")
        )
    con.print(Text(c.msg("ui.triage.written", out=out)))
    sys.exit(code)


def _lookup(code: str, lang: str, msg: Any) -> dict[str, Any] | None:
    from hvrescue.diagnose.codes import lookup
    from hvrescue.diagnose.rules import load_rules

    found = lookup(code, lang)
    if found is not None:
        return found
    text = code.strip()
    for rule in load_rules():
        if rule.id == text:
            return {
                "code": rule.id,
                "kind": "rule",
                "layer": rule.layer,
                "meaning": getattr(rule.title, lang),
                "detail": getattr(rule.summary, lang),
            }
    if msg.has(text) and "." in text and not text.startswith(("ui.", "error.")):
        return {
            "code": text,
            "kind": "finding",
            "layer": _finding_layer(text),
            "meaning": msg(text),
        }
    return None


def _finding_layer(code: str) -> str:
    if code.startswith(("vm.", "inventory.")):
        return "vm-configuration"
    if code.startswith(("io.", "evidence.", "evtx.", "xml.", "zip.", "walk.")):
        return "storage"
    if code.startswith("guest."):
        return "guest-os"
    return "virtual-disk"


@cli.command()
@click.argument("code")
@json_option
@pass_ctx
def explain(c: Ctx, code: str, as_json: bool) -> None:
    """What a code means: NTSTATUS/HRESULT/STATUS_VHD_* (0xC03A000D), an event (VSS/8193,
    Microsoft-Windows-Hyper-V-Hypervisor/80), a finding code or a rule id."""
    found = _lookup(code, c.msg.lang, c.msg)
    if found is None:
        if as_json:
            emit_json({"status": "unknown", "code": code})
        else:
            console(stderr=True).print(Text(c.msg("ui.explain.unknown", code=code), style="red"))
        sys.exit(EXIT_ERROR)
    found["layer_text"] = c.msg("layer." + found["layer"])
    if as_json:
        emit_json({"status": "known", **found})
        sys.exit(EXIT_OK)
    con = console()
    title = found["code"] + (f" ({found['name']})" if found.get("name") else "")
    con.print(Text(title, style="bold"))
    con.print(Text(found["meaning"]))
    if found.get("detail"):
        con.print(Text(found["detail"]))
    con.print(Text(f"{c.msg('ui.report.layer')}: {found['layer_text']}", style="dim"))
    sys.exit(EXIT_OK)


@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@search_option
@json_option
@pass_ctx
@audited("disk")
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
        emit_json(
            {
                "disk": disk,
                "volumes": result.volumes,
                "facts": [f.as_dict() for f in result.facts],
                "problems": [p.as_dict() for p in result.problems],
            }
        )
        sys.exit(EXIT_OK)
    con = console()
    for vol in result.volumes:
        roles = ", ".join(vol["roles"]) or "-"
        con.print(
            Text(f"p{vol['index']} {vol['filesystem']} {vol['type']} ({roles})", style="bold")
        )
    counts: dict[str, int] = {}
    for f in result.facts:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    con.print(
        Text(
            c.msg(
                "ui.facts.summary",
                count=len(result.facts),
                kinds=", ".join(f"{k} {n}" for k, n in sorted(counts.items())),
            )
        )
    )
    for f in result.facts:
        if f.kind in (
            "crash_dump",
            "bcd_entry",
            "servicing_state",
            "safeboot_msiserver",
            "folder_count",
            "hive_replay",
        ) or (f.kind == "package" and f.attributes.get("state_code") != "installed"):
            from hvrescue.diagnose.engine import excerpt

            con.print(Text(f"{f.kind}: {excerpt(f)}  [{f.provenance.path}]"))
    for p in result.problems:
        con.print(
            Text(
                c.msg("ui.facts.problem", path=p.path, code=p.code, locator=p.locator or ""),
                style="yellow",
            )
        )
    sys.exit(EXIT_OK)
