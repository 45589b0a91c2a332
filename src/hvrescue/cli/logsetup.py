"""Where log records go (``-v``, ``--log-file``).

By default nowhere: a library's warnings (regipy's parse warnings, Python warnings) must not mix
with the result on the terminal. ``-v`` shows hvrescue's own INFO records and the libraries'
warnings on stderr, ``-vv`` everything down to DEBUG. ``--log-file FILE`` receives the same as
``-v`` (DEBUG with ``-vv``), with times, in a new file (never over an existing one, never
through a link).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Any

from hvrescue.errors import InputError

_MARK = "_hvrescue_handler"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Levels(logging.Filter):
    """Our own records from one level, the libraries' from another."""

    def __init__(self, ours: int, libraries: int) -> None:
        super().__init__()
        self.ours = ours
        self.libraries = libraries

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        ours = name == "hvrescue" or name.startswith("hvrescue.")
        return record.levelno >= (self.ours if ours else self.libraries)


def _levels(verbose: int) -> tuple[int, int]:
    return (logging.DEBUG, logging.DEBUG) if verbose >= 2 else (logging.INFO, logging.WARNING)


def _add(handler: logging.Handler, verbose: int) -> None:
    setattr(handler, _MARK, True)
    handler.addFilter(_Levels(*_levels(verbose)))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, min(_levels(verbose))))


def configure(verbose: int) -> None:
    """Replace the handlers a previous run installed; libraries' records reach stderr only
    with -v. A handler on the root logger (even a null one) also keeps a library's own
    ``basicConfig`` and Python's last-resort handler from printing there."""
    shutdown()
    root = logging.getLogger()
    null = logging.NullHandler()
    setattr(null, _MARK, True)
    root.addHandler(null)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    if verbose > 0:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _add(stream, verbose)


def add_log_file(path: str, verbose: int) -> None:
    """Log to the new file ``path`` as well (created exclusively, a link not followed)."""
    from hvrescue.io.atomic import check_output_folder, output_error
    from hvrescue.io.nofollow import open_new

    check_output_folder(path)
    try:
        fd = open_new(path, os.O_WRONLY)
    except FileExistsError as exc:
        raise InputError("error.output.exists", path=path) from exc
    except OSError as exc:
        raise output_error(exc, path) from exc
    stream: IO[str] = open(fd, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    _add(handler, max(verbose, 1))


def shutdown(*_: Any) -> None:
    """Remove (and close) the handlers installed here."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.flush()
            if isinstance(handler, logging.StreamHandler) and handler.stream not in (
                sys.stderr,
                sys.stdout,
            ):
                handler.close()
                handler.stream.close()
    logging.captureWarnings(False)
