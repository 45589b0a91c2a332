"""`hvrescue` entry point: the command group, its options, and how a run ends.

Exit codes: 0 success / clean, 1 ran and found problems, 2 could not run (bad input, not a disk,
internal error), 130 interrupted. No traceback reaches the user unless --debug is given.

The commands live in ``disk_cmds`` (info, chain, check, hash, facts), ``diagnose_cmds``,
``preserve_cmds`` and ``recover_cmds``; each registers itself on :data:`cli`. Options every
printing command shares (``--json``, ``-o``) are declared by :func:`json_option` and carried
out here, once for all commands (:func:`_with_outputs`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hvrescue import __version__
from hvrescue.cli.exits import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    READ_ONLY_COMMANDS,
    fail,
    interrupt_note,
    not_a_disk,
    on_interrupt,
    os_error_message,
)
from hvrescue.cli.help import HelpGroup
from hvrescue.cli.lazy import COMMAND_MODULES, LazyCommands
from hvrescue.cli.output import (
    check_output_path,
    console,
    emit_json,
    make_stream_safe,
    output_file,
    set_quiet,
)
from hvrescue.errors import HvrescueError, OutputError
from hvrescue.report.i18n import Messages, detect_language

CASE_TABLES = frozenset({"meta", "actions", "files"})  # as hvrescue.preserve.case_record says


def check_case_record(path: str, may_create: bool = False) -> None:
    """:func:`hvrescue.preserve.case_record.check_case_record`, imported when --case is given
    (sqlite3 is not needed to start)."""
    from hvrescue.preserve.case_record import check_case_record as check

    check(path, may_create)


class _NoDatabaseError(Exception):
    """Stands for sqlite3.Error while sqlite3 was never imported (so none can be raised)."""


def _database_error() -> type[Exception]:
    module = sys.modules.get("sqlite3")
    return module.Error if module is not None else _NoDatabaseError


# Shared with the command modules, which import them from here.
__all__ = [
    "CASE_TABLES",
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "check_case_record",
    "fail",
    "not_a_disk",
    "on_interrupt",
]


class Ctx:
    def __init__(
        self,
        lang: str,
        debug: bool,
        case: str | None = None,
        verbose: int = 0,
        quiet: bool = False,
        log_file: str | None = None,
    ) -> None:
        self.msg = Messages(lang)
        self.debug = debug
        self.case = case
        self.verbose = verbose
        self.quiet = quiet
        self.log_file = log_file


pass_ctx = click.make_pass_decorator(Ctx)
_json_flag = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_output_file = click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write what would be printed (text or JSON) to this new file instead; never over an "
    "existing file or an input, nor inside or beside the evidence.",
)
F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """``--json`` and ``-o/--output FILE`` (carried out for every command by _with_outputs)."""
    return _json_flag(_output_file(fn))


search_option = click.option(
    "--search",
    "search",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Directory to search for parents by identity (repeatable).",
)
max_memory_option = click.option(
    "--max-memory",
    "max_memory",
    default=None,
    metavar="SIZE",
    help="Memory the evidence may take at once (256M, 1G; default 512M).",
)


class CommandGroup(HelpGroup):
    """hvrescue's group. A command's module is imported when the command is run or asked for
    (``lazy.COMMAND_MODULES``): ``hvrescue --help`` and the small commands start without
    importing the others (nor rich, nor the engine behind them). Each command runs with its
    -o file and --log-file in place (:func:`_with_outputs`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("commands", LazyCommands(COMMAND_MODULES))
        super().__init__(*args, **kwargs)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.callback is not None and not hasattr(cmd.callback, "_hvrescue_outputs"):
            cmd.callback = _with_outputs(cmd.callback)
        super().add_command(cmd, name)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log to stderr: our progress and the libraries' warnings (-vv: everything).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bars or hints; results and errors as always."
)
@click.option(
    "--log-file",
    "log_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the log (with times) to this new file.",
)
@click.version_option(__version__, prog_name="hvrescue")
@click.pass_context
def cli(
    ctx: click.Context,
    lang: str | None,
    debug: bool,
    case: str | None,
    verbose: int,
    quiet: bool,
    log_file: str | None,
) -> None:
    """First response and recovery for Hyper-V virtual disks. Inputs are only ever read."""
    from hvrescue.cli import logsetup

    ctx.obj = Ctx(detect_language(lang), debug, case, verbose, quiet, log_file)
    set_quiet(quiet)
    logsetup.configure(verbose)
    ctx.call_on_close(logsetup.shutdown)
    command = ctx.invoked_subcommand
    if command is None:
        return
    key = "ui.interrupted.read-only" if command in READ_ONLY_COMMANDS else "ui.interrupted"
    interrupt_note.update(key=key, params={"command": command})
    if case:
        # Before the command runs: a mistyped --case must not cost a long run, nor create a
        # new case record that nobody will find. Only preserve starts a case.
        check_case_record(case, may_create=command == "preserve")


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, (tuple, list)) else [value]
    return [os.fsdecode(item) for item in items if isinstance(item, (str, bytes, os.PathLike))]


def named_paths(ctx: click.Context) -> tuple[list[str], list[str]]:
    """Every path the running command was given (inputs, searched folders, outputs) and the
    case record; and its inputs (the parameters it declares with ``audited``): what an -o or
    --log-file file must not be, nor lie inside, nor lie beside."""
    paths: list[str] = []
    for param in ctx.command.params:
        if param.name != "output" and isinstance(param.type, click.Path):
            paths += _values(ctx.params.get(param.name or ""))
    state = ctx.find_object(Ctx)
    if state is not None and state.case:
        paths.append(state.case)
    names = getattr(ctx.command.callback, "_hvrescue_inputs", ())
    inputs = [p for name in names for p in _values(ctx.params.get(name))]
    return paths, inputs


def _with_outputs(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with its -o file and the --log-file in place, both checked first."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        import logging

        from hvrescue.cli import logsetup

        ctx = click.get_current_context()
        output = kwargs.pop("output", None)
        state = ctx.find_object(Ctx)
        named, inputs = named_paths(ctx)
        if state is not None and state.log_file:
            check_output_path(state.log_file, named, inputs)
            logsetup.add_log_file(state.log_file, state.verbose)
        logging.getLogger("hvrescue.cli").info("hvrescue %s %s", __version__, ctx.info_name)
        if output is None:
            return callback(*args, **kwargs)
        check_output_path(output, named, inputs)
        with output_file(output):
            return callback(*args, **kwargs)

    run._hvrescue_outputs = True  # type: ignore[attr-defined]
    return run


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
                except (OSError, _database_error()) as exc:
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
                record(EXIT_INTERRUPTED if interrupt_note.get("seen") else EXIT_ERROR)
                raise
            record(EXIT_OK)
            return None

        # Read by _with_outputs: an -o or --log-file file never goes beside these inputs.
        inner._hvrescue_inputs = input_params  # type: ignore[attr-defined]
        return inner  # type: ignore[return-value]

    return wrap


# The commands of the other modules register themselves on `cli` when their module is imported:
# on first use of one of them (lazy.COMMAND_MODULES names each command's module).


def _args() -> list[str]:
    return sys.argv[1:]


def _messages() -> Messages:
    """The catalogue of --lang (click's context is gone when main() reports an error)."""
    args = _args()
    lang = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--lang"), None)
    lang = next((a.split("=", 1)[1] for a in args if a.startswith("--lang=")), lang)
    return Messages(detect_language(lang))


def _wants_json(args: list[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=True)
    return "--json" in args or "--format=json" in args or ("--format", "json") in pairs


def _report_error(key: str, params: dict[str, Any], status: str = "error") -> None:
    """An error that ended the command, as text on stderr, and as JSON on stdout for --json."""
    from rich.text import Text

    msg = _messages()
    text = msg(key, **params)
    console(stderr=True).print(Text(text, style="red"))
    if _wants_json(_args()):
        emit_json({"status": status, "error": {"key": key, "message": text, "params": params}})


def _on_sigint(signum: int, frame: Any) -> None:
    # As Python's own handler, and remembered: a library that turns the KeyboardInterrupt
    # into another exception (pytsk3 makes it a RuntimeError) must not hide the interruption.
    interrupt_note["seen"] = True
    raise KeyboardInterrupt


def _interrupted() -> None:
    """Temporary outputs are already removed by then (every writer cleans up on the way out);
    say so, and what was kept."""
    _report_error(interrupt_note["key"], dict(interrupt_note["params"]), "interrupted")
    sys.exit(EXIT_INTERRUPTED)


def main() -> None:
    import signal

    debug = "--debug" in _args()
    make_stream_safe(sys.stdout)
    make_stream_safe(sys.stderr)
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
        if interrupt_note.get("seen"):
            _interrupted()
        _report_error(exc.key, exc.params)
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        if interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        key, params = os_error_message(exc)
        _report_error(key, params)
        sys.exit(EXIT_ERROR)
    except _database_error() as exc:
        if interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        _report_error("error.database", {"reason": str(exc)})
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if interrupt_note.get("seen"):
            _interrupted()
        if debug:
            raise
        from rich.text import Text

        msg = Messages(detect_language(None))
        console(stderr=True).print(
            Text(msg("error.internal", detail=f"{type(exc).__name__}: {exc}"))
        )
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
