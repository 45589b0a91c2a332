"""The BitLocker secret options shared by `ls`, `extract`, `mount`, `guest` and `triage`.

The secrets go from the options straight into :func:`hvrescue.fs.bitlocker.unlocking` for
the length of the command; ``sys.argv`` is redacted first, so the case record and the
manifests (which copy the command line) never hold them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def secret_options(fn: F) -> F:
    """``--recovery-password``, ``--password-file`` and ``--bek`` (each repeatable)."""

    @functools.wraps(fn)
    def inner(c: Any, *args: Any, **kwargs: Any) -> Any:
        recovery = kwargs.pop("recovery_password", ()) or ()
        password_files = kwargs.pop("password_file", ()) or ()
        beks = kwargs.pop("bek", ()) or ()
        if not (recovery or password_files or beks):
            return fn(c, *args, **kwargs)  # no secret: the volume readers load when needed

        from hvrescue.cli.main import fail
        from hvrescue.errors import HvrescueError
        from hvrescue.fs.bitlocker import redact_argv, secrets_from_options, unlocking

        sys.argv[:] = redact_argv(sys.argv)
        try:
            # `triage` goes on with a volume its secret does not open (and says so).
            strict = click.get_current_context().info_name != "triage"
            secrets = secrets_from_options(recovery, password_files, beks, strict)
        except HvrescueError as exc:
            fail(c, exc, bool(kwargs.get("as_json")))
            return None
        with unlocking(secrets):
            return fn(c, *args, **kwargs)

    options = [
        click.option("--recovery-password", "recovery_password", multiple=True, metavar="KEY"),
        click.option(
            "--password-file",
            "password_file",
            multiple=True,
            type=click.Path(dir_okay=False),
            metavar="FILE",
        ),
        click.option("--bek", "bek", multiple=True, type=click.Path(dir_okay=False)),
    ]
    wrapped: Any = inner
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped  # type: ignore[no-any-return]
