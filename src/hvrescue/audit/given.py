"""The files a user gives `audit` (``--acl``, ``--vm-info``): each read read-only and bounded,
parsed into facts, and refused with a clear error when it cannot be read, is too large or holds
nothing of its kind (a wrong file must not pass for a host with nothing to report)."""

from __future__ import annotations

from collections.abc import Callable

from hvrescue.errors import InputError
from hvrescue.facts.model import Fact
from hvrescue.io.files import read_evidence


def read_given(
    paths: list[str],
    limit: int,
    parse: Callable[[bytes, str], list[Fact]],
    option: str,
    empty: str,
) -> list[Fact]:
    """The facts of every file in ``paths``; errors are ``error.audit.<option>-unreadable``,
    ``error.audit.<option>-too-large`` and ``error.audit.<empty>``."""
    facts: list[Fact] = []
    for path in paths:
        try:
            data = read_evidence(path, limit + 1)
        except OSError as exc:
            key = f"error.audit.{option}-unreadable"
            raise InputError(key, path=path, reason=str(exc)) from exc
        if len(data) > limit:
            raise InputError(f"error.audit.{option}-too-large", path=path, limit=limit)
        found = parse(data, path)
        if not found:
            raise InputError(f"error.audit.{empty}", path=path)
        facts.extend(found)
    return facts
