"""The registry of artefact readers: what `guest` reads inside a disk, one module per artefact.

A volume is first given roles by the detectors (``windows``: it holds a SYSTEM hive; ``boot``: it
holds a BCD store but no Windows); then every reader whose roles meet the volume's runs on it, in
the order below, each timed and failing alone (see :mod:`.base`). A new artefact is a module with
a ``READER`` added to ``ARTEFACTS``; a new guest OS is a detector in ``DETECTORS`` and readers
with that role (``linux`` beside ``windows``), nothing else changes.

=================  =============================================  ==========================
name               reads                                          module
=================  =============================================  ==========================
registry-hives     SYSTEM and SOFTWARE hives, transaction logs    :mod:`.registry_hives`
services-drivers   services, drivers, filters, SafeBoot (SYSTEM)  :mod:`.services`
servicing          CBS packages, pending renames, pending.xml     :mod:`.servicing`
bcd                boot configuration stores                      :mod:`.bcd`
crash-dumps        MEMORY.DMP, Minidump                           :mod:`.crash_dumps`
event-logs         System, Application, Setup, Hyper-V worker     :mod:`.event_logs`
dotnet-folders     .NET and Temporary ASP.NET Files folders       :mod:`.dotnet`
wer                Windows Error Reporting reports                :mod:`.wer`
=================  =============================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable

from hvrescue.guest.artefacts import (
    bcd,
    crash_dumps,
    dotnet,
    event_logs,
    registry_hives,
    services,
    servicing,
    wer,
)
from hvrescue.guest.artefacts.base import Artefact, run_artefact
from hvrescue.guest.context import GuestContext

ARTEFACTS: tuple[Artefact, ...] = (
    registry_hives.READER,  # first: opens the hives the next two read
    services.READER,
    servicing.READER,
    bcd.READER,
    crash_dumps.READER,
    event_logs.READER,
    dotnet.READER,
    wer.READER,
)


def _windows(ctx: GuestContext) -> bool:
    return ctx.exists(registry_hives.SYSTEM)


def _boot(ctx: GuestContext) -> bool:
    """A BCD store outside a Windows volume (an EFI system partition, a BIOS system partition);
    the EFI store counts on a Windows volume too."""
    if ctx.exists(bcd.STORES[0]):
        return True
    return "windows" not in ctx.roles and ctx.exists(bcd.STORES[1])


# (role, test) in order: a test may look at the roles found before it.
DETECTORS: tuple[tuple[str, Callable[[GuestContext], bool]], ...] = (
    ("windows", _windows),
    ("boot", _boot),
)


def by_name(name: str) -> Artefact:
    """The reader called ``name`` (KeyError when there is none)."""
    for artefact in ARTEFACTS:
        if artefact.name == name:
            return artefact
    raise KeyError(name)


def detect_roles(ctx: GuestContext) -> list[str]:
    """What the volume is, in detector order; also kept in ``ctx.roles``."""
    ctx.roles = []
    for role, test in DETECTORS:
        if test(ctx):
            ctx.roles.append(role)
    return list(ctx.roles)


def readers_for(roles: list[str] | set[str]) -> list[Artefact]:
    """The readers that apply to a volume with these roles, in registry order."""
    wanted = set(roles)
    return [a for a in ARTEFACTS if a.roles & wanted]


def read_volume(ctx: GuestContext) -> list[str]:
    """Detect the volume's roles and run every reader that applies; returns the roles."""
    roles = detect_roles(ctx)
    for artefact in readers_for(roles):
        run_artefact(artefact, ctx)
    return roles


__all__ = [
    "ARTEFACTS",
    "DETECTORS",
    "Artefact",
    "by_name",
    "detect_roles",
    "read_volume",
    "readers_for",
    "run_artefact",
]
