"""``--hash``, shared by ``hash``, ``preserve`` and ``verify``: algorithm names, repeatable or
comma-separated (``--hash sha256,blake3``), checked when the command line is parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _parse(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from hvrescue.io.digest import UnknownAlgorithmError, parse_algorithms

    try:
        return parse_algorithms(value, default=())
    except UnknownAlgorithmError as exc:
        from hvrescue.cli.main import Ctx
        from hvrescue.report.i18n import Messages, detect_language

        state = ctx.find_object(Ctx)
        msg = state.msg if state is not None else Messages(detect_language(None))
        raise click.BadParameter(msg(exc.key, **exc.params), ctx, param) from None


def hash_option(help_text: str) -> Callable[[F], F]:
    """``--hash ALG[,ALG]`` (repeatable) as a tuple of known names, () when not given."""
    return click.option(
        "--hash",
        "hashes",
        multiple=True,
        metavar="ALG[,ALG]",
        callback=_parse,
        help=help_text,
    )
