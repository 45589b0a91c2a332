"""`--help` and click's own words from the message catalogues, in the language of the run.

Every command's help is ``help.<command>``, each parameter's ``help.<command>.<param>`` (or
``help.common.<param>`` for the options many commands share), the group's ``help.group`` and
``help.group.<param>``; ``<param>`` is the option's long name without dashes (``allow-gaps``) or
the argument's name (``file``). The decorators' ``help=`` texts are used only where a key is
missing. Click's fixed words ("Usage:", "Options:", its error messages) are gettext message ids:
the ``click.*`` keys of the catalogues translate them (their English text is click's msgid).

The language is settled before anything is printed: ``--lang`` anywhere before ``--`` (so that
``hvrescue --help --lang ja`` and ``hvrescue --lang ja check --help`` are both Japanese), then
HVRESCUE_LANG, then the locale.
"""

from __future__ import annotations

import gettext
import re
import sys
from collections.abc import Sequence
from typing import Any

import click

from hvrescue.cli.help_format import HelpContext
from hvrescue.report.i18n import LANGUAGES, Messages, catalogue, detect_language

_META_LANG = "hvrescue.lang"
# The language click's gettext calls answer in: set when a command line is parsed.
_state: dict[str, str | None] = {"lang": None}


def requested_language(args: Sequence[str]) -> str | None:
    """The value of ``--lang`` on a command line, if it names a language we have."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = None
        if arg == "--lang" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
        if value is not None:
            return value if value in LANGUAGES else None
    return None


def set_language(lang: str | None) -> str:
    """Settle the language of this run (click's words included) and return it."""
    settled = detect_language(lang)
    _state["lang"] = settled
    return settled


def _lang(ctx: click.Context | None) -> str:
    if ctx is not None and isinstance(ctx.meta.get(_META_LANG), str):
        return str(ctx.meta[_META_LANG])
    return _state["lang"] or detect_language(None)


# ---------------------------------------------------------------- click's gettext messages
def _click_ids() -> dict[str, str]:
    """click's English msgid -> our catalogue key."""
    return {v: k for k, v in catalogue("en").items() if k.startswith("click.")}


def _translate(message: str) -> str:
    lang = _state["lang"]
    if not lang or lang == "en":
        return message
    key = _click_ids().get(message)
    if key is None:
        return message
    return catalogue(lang).get(key, message)


def _gettext(message: str) -> str:
    return _translate(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _translate(singular if n == 1 else plural)


def _install_click_translation() -> None:
    """Answer click's gettext calls from our catalogues. Click binds ``gettext`` in each module
    at import; only names still bound to the standard functions are replaced, so a click that
    changes how it translates keeps its English rather than break."""
    import importlib

    for name in ("core", "decorators", "exceptions", "formatting", "parser", "types", "termui"):
        try:
            module = importlib.import_module(f"click.{name}")
        except ImportError:  # pragma: no cover - a click without that module
            continue
        if getattr(module, "_", None) is gettext.gettext:
            module._ = _gettext  # type: ignore[attr-defined]
        if getattr(module, "ngettext", None) is gettext.ngettext:
            module.ngettext = _ngettext  # type: ignore[attr-defined]


_install_click_translation()


# ---------------------------------------------------------------- commands
def command_key(ctx: click.Context) -> str:
    """``help.<command>`` (``help.group`` for hvrescue itself; subgroups join with dots)."""
    names: list[str] = []
    node: click.Context | None = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or node.command.name or "")
        node = node.parent
    return "help." + (".".join(reversed(names)) if names else "group")


def param_name(param: click.Parameter) -> str:
    """The name a user sees: an option's long name without dashes, an argument's name."""
    if isinstance(param, click.Option):
        longs = [o for o in param.opts if o.startswith("--")]
        return (longs[0] if longs else param.opts[0]).lstrip("-/")
    return (param.name or "").replace("_", "-")


def param_keys(command_key_: str, param: click.Parameter) -> list[str]:
    """The catalogue keys a parameter's help may come from, the first found wins."""
    name = param_name(param)
    return [f"{command_key_}.{name}", f"help.common.{name}"]


def _text(msg: Messages, keys: Sequence[str], fallback: str | None) -> str:
    for key in keys:
        text = catalogue(msg.lang).get(key) or catalogue("en").get(key)
        if text is not None:
            return text
    return fallback or ""


def _first_sentence(text: str) -> str:
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    # A full stop that ends a sentence: not one of "..." (SRC...), nor inside a word.
    match = re.match(r"(.+?(?:(?<!\.)\.(?![.\w])|。))", " ".join(paragraph.split()))
    return match.group(1) if match else paragraph


def _is_builtin(param: click.Parameter, name: str) -> bool:
    """click's own --help / --version options (not exposed to the command)."""
    return isinstance(param, click.Option) and not param.expose_value and param.name == name


class CatalogueHelp(click.Command):
    """A command whose help, in every part, comes from the message catalogues."""

    context_class = HelpContext

    def messages(self, ctx: click.Context) -> Messages:
        return Messages(_lang(ctx))

    def help_text(self, ctx: click.Context) -> str:
        return _text(self.messages(ctx), [command_key(ctx)], self.help)

    def short_help_text(self, ctx: click.Context) -> str:
        return _first_sentence(self.help_text(ctx))

    def param_help(self, ctx: click.Context, param: click.Parameter) -> str:
        msg = self.messages(ctx)
        if _is_builtin(param, "help"):
            return msg("help.ui.help-option")
        if _is_builtin(param, "version"):
            return msg("help.ui.version-option")
        return _text(msg, param_keys(command_key(ctx), param), getattr(param, "help", None))

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.messages(ctx)("help.ui.options-metavar")] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)
        prefix = self.messages(ctx)("help.ui.usage")
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=prefix)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        text = self.help_text(ctx)
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(text)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        msg = self.messages(ctx)
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Argument):
                term = " ".join(param.get_usage_pieces(ctx)).strip("[]")
                arguments.append((term, self.param_help(ctx, param)))
            elif isinstance(param, click.Option):
                help_ = self.param_help(ctx, param)
                extra = _option_extra(param, msg)
                options.append((_option_term(param, msg), f"{help_} {extra}".strip()))
        for heading, rows in (
            (msg("help.ui.arguments"), arguments),
            (msg("help.ui.options"), options),
        ):
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        return  # no epilogs: everything a user reads is in the catalogues

    def get_short_help_str(self, limit: int = 45) -> str:
        ctx = click.get_current_context(silent=True)
        if ctx is None:
            return super().get_short_help_str(limit)
        return _first_sentence(_text(self.messages(ctx), [f"help.{self.name}"], self.help))


def _option_term(option: click.Option, msg: Messages) -> str:
    def join(opts: Sequence[str]) -> str:
        return ", ".join(sorted(opts, key=lambda o: len(o) - len(o.lstrip("-/"))))

    term = join(option.opts)
    if option.secondary_opts:
        term += " / " + join(option.secondary_opts)
    if not option.is_flag and not option.count:
        term += " " + _metavar(option, msg)
    return term


def _metavar(option: click.Option, msg: Messages) -> str:
    if option.metavar:
        return option.metavar
    kind = option.type
    if isinstance(kind, click.Choice):
        return "[" + "|".join(map(str, kind.choices)) + "]"
    if isinstance(kind, click.Path):
        name = "file" if not kind.dir_okay else "directory" if not kind.file_okay else "path"
    elif isinstance(kind, click.types.IntParamType):
        name = "integer"
    elif isinstance(kind, click.types.FloatParamType):
        name = "float"
    elif isinstance(kind, click.types.StringParamType):
        name = "text"
    else:
        return kind.name.upper()
    return msg(f"help.type.{name}")


def _option_extra(option: click.Option, msg: Messages) -> str:
    extra: list[str] = []
    if option.show_default and option.default is not None and not option.is_flag:
        default = option.default
        if isinstance(default, (list, tuple)):
            default = ", ".join(map(str, default))
        extra.append(msg("help.ui.default", value=default))
    kind = option.type
    if isinstance(kind, (click.IntRange, click.FloatRange)) and not option.count:
        low = "" if kind.min is None else f"{kind.min}{'<' if kind.min_open else '<='}"
        high = "" if kind.max is None else f"{'<' if kind.max_open else '<='}{kind.max}"
        extra.append(f"{low}x{high}")
    if option.required:
        extra.append(msg("help.ui.required"))
    return f"[{'; '.join(extra)}]" if extra else ""


class HelpCommand(CatalogueHelp):
    """Every subcommand of hvrescue (set as the group's ``command_class``)."""


class HelpGroup(CatalogueHelp, click.Group):
    """hvrescue itself: its subcommands are HelpCommands, its language is settled on parsing."""

    command_class = HelpCommand
    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if _is_builtin(param, "version"):
                param.callback = _show_version

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        given = sys.argv[1:] if args is None else list(args)
        set_language(requested_language(given))
        return super().main(args, *a, **kw)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            ctx.meta[_META_LANG] = set_language(requested_language(args))
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.messages(ctx)("help.ui.command-metavar")]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = getattr(self.commands, "names", None)  # lazy.LazyCommands: without importing
        return list(names()) if callable(names) else super().list_commands(ctx)

    def _short_help_unloaded(self, ctx: click.Context, name: str) -> str | None:
        """A command's line in the group's help from the catalogue, its module not imported:
        what ``short_help_text`` gives once it is (``help.<name>``); None when the catalogue
        has no text for it (the command's own help is needed: it is imported)."""
        pending = getattr(self.commands, "pending", None)
        if not callable(pending) or name not in pending():
            return None
        text = _text(self.messages(ctx), [f"help.{name}"], None)
        return _first_sentence(text) if text else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            unloaded = self._short_help_unloaded(ctx, name)
            if unloaded is not None:
                rows.append((name, unloaded))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            if isinstance(cmd, CatalogueHelp):
                # A context for the subcommand, not run: it names the catalogue keys.
                text = cmd.short_help_text(HelpContext(cmd, parent=ctx, info_name=name))
            else:
                text = cmd.get_short_help_str(formatter.width)
            rows.append((name, text))
        if rows:
            with formatter.section(self.messages(ctx)("help.ui.commands")):
                formatter.write_dl(rows)


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from hvrescue import __version__

    click.echo(Messages(_lang(ctx))("help.ui.version", prog="hvrescue", version=__version__))
    ctx.exit()
