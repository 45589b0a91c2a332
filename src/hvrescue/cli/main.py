"""`hvrescue` entry point.

Exit codes: 0 success / clean, 1 ran and found problems, 2 could not run (bad input, not a disk,
internal error). No traceback reaches the user unless --debug is given.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.text import Text

from hvrescue import __version__
from hvrescue.cli.output import (
    console,
    emit_json,
    finding_json,
    findings_table,
    flatten,
    gaps_table,
    kv_table,
    transfer_progress,
)
from hvrescue.errors import HvrescueError, InputError, NotADiskError, OutputError
from hvrescue.findings import Finding, Severity
from hvrescue.report.i18n import Messages, detect_language

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
# Stopped by Ctrl-C (SIGINT), as shells report it (128 + 2).
EXIT_INTERRUPTED = 130
# Commands that write nothing: when Ctrl-C stops them there is nothing to clean up or resume.
READ_ONLY_COMMANDS = frozenset(
    {
        "info",
        "chain",
        "check",
        "hash",
        "facts",
        "inventory",
        "verify",
        "explain",
        "ls",
        "guest",
        "mount",
    }
)
# What to tell the user if Ctrl-C stops the running command: a catalogue key and parameters,
# set per command (see on_interrupt) and printed by main().
_interrupt_note: dict[str, Any] = {"key": "ui.interrupted", "params": {"command": "hvrescue"}}


def on_interrupt(key: str, **params: Any) -> None:
    """Say what an interruption leaves behind from here on (the message main() prints)."""
    _interrupt_note["key"] = key
    _interrupt_note["params"] = {"command": _interrupt_note["params"].get("command"), **params}


class Ctx:
    def __init__(self, lang: str, debug: bool, case: str | None = None) -> None:
        self.msg = Messages(lang)
        self.debug = debug
        self.case = case


pass_ctx = click.make_pass_decorator(Ctx)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
search_option = click.option(
    "--search",
    "search",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Directory to search for parents by identity (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lang",
    type=click.Choice(["en", "ja"]),
    default=None,
    help="Language of messages (default: HVRESCUE_LANG or the locale).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option(
    "--case",
    "case",
    type=click.Path(dir_okay=False),
    default=None,
    help="Case record (SQLite) to append this action to, e.g. DEST/case.sqlite of a preserve.",
)
@click.version_option(__version__, prog_name="hvrescue")
@click.pass_context
def cli(ctx: click.Context, lang: str | None, debug: bool, case: str | None) -> None:
    """First response and recovery for Hyper-V virtual disks. Inputs are only ever read."""
    ctx.obj = Ctx(detect_language(lang), debug, case)
    command = ctx.invoked_subcommand
    if command is None:
        return
    key = "ui.interrupted.read-only" if command in READ_ONLY_COMMANDS else "ui.interrupted"
    _interrupt_note.update(key=key, params={"command": command})
    if case:
        # Before the command runs: a mistyped --case must not cost a long run, nor create a
        # new case record that nobody will find. Only preserve starts a case.
        check_case_record(case, may_create=command == "preserve")


CASE_TABLES = frozenset({"meta", "actions", "files"})


def check_case_record(path: str, may_create: bool = False) -> None:
    """Refuse a --case path that is not an existing, writable case database (its folder missing,
    a file of another kind, not yet created outside preserve)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError("error.case.folder-missing", path=path, folder=folder)
    if not os.path.lexists(path):
        if not may_create:
            raise InputError("error.case.missing", path=path)
        from hvrescue.io.atomic import check_output_folder

        check_output_folder(path)
        return
    if not os.path.isfile(path):
        raise InputError("error.case.not-a-case", path=path, reason="not a regular file")
    from pathlib import Path

    try:
        # Read-only and never created: looking must not change the file or make one.
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True)
        try:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            tables = {str(r[0]) for r in rows}
            schema = None
            if tables >= CASE_TABLES:
                schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise InputError("error.case.not-a-case", path=path, reason=str(exc)) from exc
    if schema is None:
        raise InputError("error.case.not-a-case", path=path, reason="no case record tables")
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        raise InputError("error.case.read-only", path=path)


F = TypeVar("F", bound=Callable[..., Any])


def audited(*input_params: str) -> Callable[[F], F]:
    """Append the action to the case record (--case) with its inputs, whatever its exit code."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(c: Ctx, *args: Any, **kwargs: Any) -> Any:
            if not c.case:
                return fn(c, *args, **kwargs)
            from hvrescue.preserve.case import record_command

            inputs: list[str] = []
            for name in input_params:
                value = kwargs.get(name)
                if isinstance(value, str):
                    inputs.append(value)
                elif isinstance(value, (tuple, list)):
                    inputs.extend(str(v) for v in value)
            name = click.get_current_context().info_name or fn.__name__

            def record(code: Any) -> None:
                assert c.case is not None
                try:
                    record_command(
                        c.case, name, sys.argv, inputs, code if isinstance(code, int) else 2
                    )
                except (OSError, sqlite3.Error) as exc:
                    raise OutputError("error.case.write", path=c.case, reason=str(exc)) from exc

            try:
                fn(c, *args, **kwargs)
            except SystemExit as exc:
                record(exc.code)
                raise
            except (KeyboardInterrupt, click.exceptions.Abort):
                record(EXIT_INTERRUPTED)
                raise
            except BaseException:
                record(EXIT_INTERRUPTED if _interrupt_note.get("seen") else EXIT_ERROR)
                raise
            record(EXIT_OK)
            return None

        return inner  # type: ignore[return-value]

    return wrap


def fail(c: Ctx, exc: HvrescueError, as_json: bool) -> None:
    text = c.msg(exc.key, **exc.params)
    if as_json:
        emit_json(
            {"status": "error", "error": {"key": exc.key, "message": text, "params": exc.params}}
        )
    else:
        console(stderr=True).print(Text(text, style="red"))
    sys.exit(EXIT_ERROR)


def not_a_disk(c: Ctx, file: str, exc: NotADiskError, as_json: bool) -> None:
    """A file that is no disk at all: the error and its finding (`file.empty` for 0 bytes,
    `file.not-a-disk` otherwise, as `check` reports it), exit 2."""
    code = "file.empty" if exc.key == "error.not-a-disk.empty" else "file.not-a-disk"
    finding = Finding(code, Severity.CRITICAL, file, 0)
    text = c.msg(exc.key, **exc.params)
    if as_json:
        emit_json(
            {
                "status": "error",
                "path": file,
                "error": {"key": exc.key, "message": text, "params": exc.params},
                "findings": [finding_json(finding, c.msg)],
            }
        )
    else:
        err = console(stderr=True)
        err.print(Text(text, style="red"))
        err.print(findings_table([finding], c.msg, show_file=False))
    sys.exit(EXIT_ERROR)


# ---------------------------------------------------------------- info
@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
@audited("file")
def info(c: Ctx, file: str, as_json: bool) -> None:
    """Every structure of one VHDX/VHD file."""
    from hvrescue.vdisk.detect import open_image

    try:
        image = open_image(file)
    except NotADiskError as exc:
        not_a_disk(c, file, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    try:
        data = image.describe()
        findings = list(image.findings)
    finally:
        image.close()
    if as_json:
        emit_json({"path": file, **data, "findings": [finding_json(f, c.msg) for f in findings]})
        return
    out = console()
    out.print(Text(c.msg("ui.info.title", path=file, format=data["format"]), style="bold"))
    rows: list[tuple[str, Any]] = []
    flatten("", data, rows)
    out.print(kv_table(rows, c.msg))
    if findings:
        out.print(Text(c.msg("ui.info.findings"), style="bold"))
        out.print(findings_table(findings, c.msg, show_file=False))


# ---------------------------------------------------------------- chain
@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@search_option
@json_option
@pass_ctx
@audited("file")
def chain(c: Ctx, file: str, search: tuple[str, ...], as_json: bool) -> None:
    """Each link of a differencing chain, its identity check and where the parent was found."""
    from hvrescue.vdisk.chain import resolve_chain

    try:
        ch = resolve_chain(file, list(search))
    except NotADiskError as exc:
        not_a_disk(c, file, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    try:
        layers = [
            {
                "path": layer.path,
                "format": layer.format,
                "readable": layer.readable,
                "virtual_size": layer.size if layer.readable else None,
                "logical_sector_size": layer.logical_sector_size,
                "differencing": layer.is_differencing,
                "identity": layer.identity,
            }
            for layer in ch.layers
        ]
        links = [link.describe() for link in ch.links]
        findings = ch.findings
        complete = ch.complete
        bad = any(f.severity >= Severity.ERROR for f in findings) or not complete
    finally:
        ch.close()
    if as_json:
        emit_json(
            {
                "path": file,
                "complete": complete,
                "layers": layers,
                "links": links,
                "findings": [finding_json(f, c.msg) for f in findings],
            }
        )
        sys.exit(EXIT_FINDINGS if bad else EXIT_OK)
    out = console()
    out.print(Text(c.msg("ui.chain.title", path=file), style="bold"))
    from rich.table import Table

    table = Table()
    for col in ("level", "file", "format", "size", "identity", "linkage", "found-via"):
        table.add_column(c.msg(f"ui.col.{col}"), overflow="fold")
    for i, layer in enumerate(layers):
        link = links[i] if i < len(links) else None
        if link is None:
            check = Text(c.msg("ui.chain.base" if not layer["differencing"] else "ui.chain.none"))
            via = ""
        elif link["parent"] is None:
            check, via = Text(c.msg("ui.chain.none"), style="red"), ""
        else:
            check = (
                Text(c.msg("ui.chain.ok"), style="green")
                if link["identity_ok"]
                else Text(c.msg("ui.chain.bad"), style="red")
            )
            via = link["found_via"] or ""
        cells = [str(i), layer["path"], layer["format"], layer["virtual_size"], layer["identity"]]
        table.add_row(*(Text(str(x)) for x in cells), check, Text(via))
    out.print(table)
    out.print(
        Text(c.msg("ui.chain.complete", depth=len(layers)))
        if complete
        else Text(c.msg("ui.chain.incomplete"), style="red")
    )
    if findings:
        out.print(findings_table(findings, c.msg))
    sys.exit(EXIT_FINDINGS if bad else EXIT_OK)


# ---------------------------------------------------------------- check
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
    from hvrescue.vdisk.check import check_file, dedupe

    results = [check_file(f, list(search), deep=deep) for f in files]
    # A file named on the command line and reached through a child's chain is listed once.
    findings = dedupe([f for r in results for f in r.findings])
    if any(r.error is not None for r in results):
        status, code = "error", EXIT_ERROR
    elif any(f.severity >= Severity.WARNING for f in findings):
        status, code = "findings", EXIT_FINDINGS
    else:
        status, code = "clean", EXIT_OK
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
                    for r in results
                ],
                "tool": {"name": "hvrescue", "version": __version__},
            }
        )
        sys.exit(code)
    out = console()
    for r in results:
        summary = c.msg(
            "ui.check.summary",
            path=r.path,
            status=c.msg(f"ui.status.{r.status}"),
            count=len(r.findings),
        )
        out.print(Text(summary))
        if r.error is not None:
            out.print(Text(c.msg(r.error.key, **r.error.params), style="red"))
    if findings:
        out.print(findings_table(findings, c.msg))
    else:
        out.print(Text(c.msg("ui.check.none")))
    sys.exit(code)


# ---------------------------------------------------------------- hash
@cli.command("hash")
@click.argument("file", type=click.Path(dir_okay=False))
@search_option
@json_option
@pass_ctx
@audited("file")
def hash_(c: Ctx, file: str, search: tuple[str, ...], as_json: bool) -> None:
    """SHA-256 of the virtual content as the guest sees it (log replayed, through the chain)."""
    from hvrescue.vdisk.disk import Disk

    try:
        disk = Disk.open(file, list(search))
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    with disk:
        err = console(stderr=True)
        bar = transfer_progress(as_json)
        gaps: list[Any] = []
        if bar is not None:
            with bar:
                task = bar.add_task(c.msg("ui.hash.progress"), total=disk.size)
                digest = disk.sha256(lambda n: bar.advance(task, n), gaps=gaps)
        else:
            digest = disk.sha256(gaps=gaps)
        bad = disk.bad_ranges
        findings = disk.findings
    # Complete means every byte hashed is content: no read error, no undefined range.
    complete = not bad and not gaps
    if as_json:
        emit_json(
            {
                "sha256": digest,
                "size": disk.size,
                "complete": complete,
                "chain": [layer.path for layer in disk.layers],
                "unreadable": [
                    {"path": p, "offset": r.offset, "length": r.length, "errno": r.errno}
                    for p, r in bad
                ],
                "undefined": [g.as_dict() for g in gaps],
                "undefined_bytes": sum(g.length for g in gaps),
                "findings": [finding_json(f, c.msg) for f in findings],
            }
        )
    else:
        out = console()
        out.print(Text(c.msg("ui.hash.result", size=disk.size, sha256=digest)))
        if gaps:
            err.print(
                Text(
                    c.msg(
                        "ui.hash.undefined",
                        count=len(gaps),
                        bytes=sum(g.length for g in gaps),
                    ),
                    style="red",
                )
            )
            err.print(gaps_table(gaps, c.msg))
        elif bad:
            err.print(Text(c.msg("ui.hash.unreadable", count=len(bad)), style="red"))
        warn = [f for f in findings if f.severity >= Severity.WARNING]
        if warn:
            err.print(findings_table(warn, c.msg))
    # Structural findings are shown but do not change the answer; undefined ranges do.
    sys.exit(EXIT_OK if complete else EXIT_FINDINGS)


# ---------------------------------------------------------------- facts
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@json_option
@pass_ctx
@audited("paths")
def facts(c: Ctx, paths: tuple[str, ...], as_json: bool) -> None:
    """Facts from event logs (EVTX, XML, CSV, text) and command outputs, with provenance."""
    from hvrescue.logs.collect import collect

    found = collect(list(paths))
    if as_json:
        emit_json(
            {
                "facts": [f.as_dict() for f in found.facts],
                "unrecognised": [u.as_dict() for u in found.unrecognised],
                "problems": [p.as_dict() for p in found.problems],
            }
        )
        sys.exit(EXIT_OK)
    out = console()
    counts: dict[str, int] = {}
    for fact in found.facts:
        counts[fact.kind] = counts.get(fact.kind, 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    out.print(Text(c.msg("ui.facts.summary", count=len(found.facts), kinds=kinds)))
    for fact in found.facts:
        where = f"{fact.provenance.path}#{fact.provenance.locator or ''}"
        summary = fact_summary(fact.attributes)
        out.print(f"[bold]{fact.kind}[/] [dim]{escape(where)}[/]\n    {escape(summary)}")
    for problem in found.problems:
        text = c.msg(
            "ui.facts.problem", path=problem.path, code=problem.code, locator=problem.locator or ""
        )
        out.print(f"[yellow]{escape(text)}[/]")
    for unknown in found.unrecognised:
        reason = c.msg(f"facts.reason.{unknown.reason}")
        text = c.msg("ui.facts.unrecognised", path=unknown.path, reason=reason)
        out.print(f"[dim]{escape(text)}[/]")
    sys.exit(EXIT_OK)


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


# The commands of the other packages register themselves on `cli`.
from hvrescue.cli import diagnose_cmds, preserve_cmds, recover_cmds  # noqa: E402,F401


def _messages() -> Messages:
    """The catalogue of --lang (click's context is gone when main() reports an error)."""
    args = sys.argv[1:]
    lang = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--lang"), None)
    lang = next((a.split("=", 1)[1] for a in args if a.startswith("--lang=")), lang)
    return Messages(detect_language(lang))


def _report_error(key: str, params: dict[str, Any], status: str = "error") -> None:
    """An error that ended the command, as text on stderr, and as JSON on stdout for --json."""
    msg = _messages()
    text = msg(key, **params)
    console(stderr=True).print(Text(text, style="red"))
    if "--json" in sys.argv[1:]:
        emit_json({"status": status, "error": {"key": key, "message": text, "params": params}})


def _os_error(exc: OSError) -> tuple[str, dict[str, Any]]:
    """A message for an OSError no command turned into a domain error: the file system refused
    something (writing an output, mostly); never an internal error."""
    import errno as errno_

    from hvrescue.io.atomic import is_write_failure, output_error

    path = os.fsdecode(exc.filename) if exc.filename is not None else None
    if is_write_failure(exc):
        if path is not None:
            err = output_error(exc, path)
            return err.key, err.params
        return "error.output.failed", {
            "errno": errno_.errorcode.get(exc.errno or 0, str(exc.errno)),
            "reason": exc.strerror or str(exc),
        }
    return "error.file-system", {
        "path": path or "-",
        "errno": errno_.errorcode.get(exc.errno or 0, str(exc.errno)),
        "reason": exc.strerror or str(exc),
    }


def _on_sigint(signum: int, frame: Any) -> None:
    # As Python's own handler, and remembered: a library that turns the KeyboardInterrupt
    # into another exception (pytsk3 makes it a RuntimeError) must not hide the interruption.
    _interrupt_note["seen"] = True
    raise KeyboardInterrupt


def _interrupted() -> None:
    """Temporary outputs are already removed by then (every writer cleans up on the way out);
    say so, and what was kept."""
    _report_error(_interrupt_note["key"], dict(_interrupt_note["params"]), "interrupted")
    sys.exit(EXIT_INTERRUPTED)


def main() -> None:
    import signal

    debug = "--debug" in sys.argv[1:]
    # Only where Ctrl-C is not ignored (a background job started by a shell ignores it).
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _interrupted()  # click turns Ctrl-C into Abort
    except BrokenPipeError:
        sys.exit(EXIT_INTERRUPTED)
    except HvrescueError as exc:
        if _interrupt_note.get("seen"):
            _interrupted()
        _report_error(exc.key, exc.params)
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        if _interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        key, params = _os_error(exc)
        _report_error(key, params)
        sys.exit(EXIT_ERROR)
    except sqlite3.Error as exc:
        if _interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        _report_error("error.database", {"reason": str(exc)})
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if _interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        msg = Messages(detect_language(None))
        console(stderr=True).print(
            Text(msg("error.internal", detail=f"{type(exc).__name__}: {exc}"))
        )
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
