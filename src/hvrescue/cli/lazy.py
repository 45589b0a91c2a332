"""Pieces that let a command module load without importing the engine behind it, so that
``hvrescue --help`` and the small commands start fast: the engine is imported when a command
runs (or its own ``--help`` lists what a choice allows)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence

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


# The module that registers each of hvrescue's commands (``hvrescue.cli.<module>``): a module is
# imported when one of its commands is run or asked for, so ``hvrescue --help`` and a small
# command load only what they use. A module imported by other means registers its commands as
# always; tests/test_startup.py checks this map against what the modules register.
COMMAND_MODULES: dict[str, str] = {
    "audit": "audit_cmds",
    "chain": "disk_cmds",
    "check": "disk_cmds",
    "collect": "collect_cmds",
    "explain": "diagnose_cmds",
    "extract": "fs_cmds",
    "facts": "disk_cmds",
    "fleet": "fleet_cmds",
    "guest": "diagnose_cmds",
    "hash": "disk_cmds",
    "info": "disk_cmds",
    "inventory": "preserve_cmds",
    "ls": "fs_cmds",
    "merge": "recover_cmds",
    "mount": "fs_cmds",
    "preserve": "preserve_cmds",
    "rebuild": "rebuild_cmds",
    "repair": "recover_cmds",
    "reparent": "recover_cmds",
    "replay-log": "recover_cmds",
    "salvage": "recover_cmds",
    "triage": "diagnose_cmds",
    "verify": "preserve_cmds",
}


def import_command_module(module: str) -> None:
    """Import one of the modules of COMMAND_MODULES. The imports are spelled out so that tools
    that bundle a program by following its import statements (PyInstaller makes hvrescue.exe
    for the collector, see contrib/velociraptor/README.md) still take every command along."""
    match module:
        case "audit_cmds":
            import hvrescue.cli.audit_cmds
        case "collect_cmds":
            import hvrescue.cli.collect_cmds
        case "diagnose_cmds":
            import hvrescue.cli.diagnose_cmds
        case "disk_cmds":
            import hvrescue.cli.disk_cmds
        case "fleet_cmds":
            import hvrescue.cli.fleet_cmds
        case "fs_cmds":
            import hvrescue.cli.fs_cmds
        case "preserve_cmds":
            import hvrescue.cli.preserve_cmds
        case "rebuild_cmds":
            import hvrescue.cli.rebuild_cmds
        case "recover_cmds":
            import hvrescue.cli.recover_cmds  # noqa: F401
        case _:
            importlib.import_module(f"hvrescue.cli.{module}")


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands, each module imported on the first lookup of one of its commands;
    iterating (listing, counting, click's "did you mean") imports them all first, so every
    caller sees every command."""

    def __init__(
        self,
        modules: Mapping[str, str],
        importer: Callable[[str], object] = import_command_module,
    ) -> None:
        self._commands: dict[str, click.Command] = {}
        self._modules = dict(modules)
        self._import = importer

    def _load(self, name: str) -> None:
        module = self._modules.get(name)
        if module is not None and name not in self._commands:
            self._import(module)

    def _load_all(self) -> None:
        pending = {self._modules[name] for name in self.pending()}
        for module in sorted(pending):
            self._import(module)

    def pending(self) -> list[str]:
        """Commands whose module is not imported yet."""
        return [name for name in self._modules if name not in self._commands]

    def names(self) -> list[str]:
        """Every command's name, sorted as click lists them, without importing anything."""
        return sorted(set(self._commands) | set(self._modules))

    def __getitem__(self, name: str) -> click.Command:
        self._load(name)
        return self._commands[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]
        self._modules.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return iter(dict(self._commands))

    def __len__(self) -> int:
        self._load_all()
        return len(self._commands)
