"""Pieces that let a command module load without importing the engine behind it, so that
``hvrescue --help`` and the small commands start fast: the engine is imported when a command
runs (or its own ``--help`` lists what a choice allows)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import click


class LazyChoice(click.Choice):  # type: ignore[type-arg]
    """A ``click.Choice`` whose values are a module's constant, imported on first use."""

    def __init__(self, module: str, name: str, case_sensitive: bool = True) -> None:
        self._source = (module, name)
        self._loaded: Sequence[str] | None = None
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> Sequence[str]:
        if self._loaded is None:
            module, name = self._source
            self._loaded = tuple(getattr(importlib.import_module(module), name))
        return self._loaded

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        # click.Choice.__init__ stores its (empty) choices here; the real ones load on use.
        if value:
            self._loaded = tuple(value)
