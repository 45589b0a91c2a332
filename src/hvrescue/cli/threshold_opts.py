"""The thresholds `inventory` and `audit` share: the age of a checkpoint and the depth of a
chain above which each is reported (help texts from the catalogues, as every option's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_older_than = click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(0, 100_000),
    default=None,
    help="Report checkpoints older than this many days (default 14).",
)
_max_depth = click.option(
    "--max-depth",
    type=click.IntRange(0, 1000),
    default=None,
    help="Report chains with more differencing disks than this (default 5).",
)


def threshold_options(fn: F) -> F:
    """``--older-than DAYS`` and ``--max-depth N``."""
    return _older_than(_max_depth(fn))
