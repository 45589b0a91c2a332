"""A progress bar for long library calls: the callbacks they take, fed to a rich bar on a
terminal and to nothing otherwise (pipes, --json, -q)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hvrescue.cli.output import transfer_progress


class Bar:
    """``update(done, total)`` and ``advance(n)``, the two shapes of progress callback the
    library takes; both do nothing without a bar."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)


@contextmanager
def progress_bar(as_json: bool, description: str, total: int | None = None) -> Iterator[Bar]:
    bar = transfer_progress(as_json)
    if bar is None:
        yield Bar()
        return
    with bar:
        yield Bar(bar, bar.add_task(description, total=total))
