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
servicing-logs     CBS.log and dism.log tails                     :mod:`.servicing_logs`
bcd                boot configuration stores                      :mod:`.bcd`
crash-dumps        MEMORY.DMP, Minidump                           :mod:`.crash_dumps`
event-logs         System, Application, Setup, Hyper-V worker     :mod:`.event_logs`
dotnet-folders     .NET and Temporary ASP.NET Files folders       :mod:`.dotnet`
wer                Windows Error Reporting reports                :mod:`.wer`
linux-os           os-release, kernels, Hyper-V drivers, KVP      :mod:`.linux_os`
linux-boot         kernels of a separate /boot volume             :mod:`.linux_os`
linux-fstab        /etc/fstab against the disk's volumes          :mod:`.linux_fstab`
linux-filesystem   ext/XFS state, errors, journal, free space     :mod:`.linux_fs`
linux-logs         tails of /var/log, systemd journal present     :mod:`.linux_logs`
=================  =============================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable

from hvrescue.guest.artefacts import (
    bcd,
    crash_dumps,
    dotnet,
    event_logs,
    linux_fs,
    linux_fstab,
    linux_logs,
    linux_os,
    registry_hives,
    services,
    servicing,
    servicing_logs,
    wer,
)
from hvrescue.guest.artefacts.base import Artefact, run_artefact
from hvrescue.guest.artefacts.linux_files import resolve
from hvrescue.guest.context import GuestContext

ARTEFACTS: tuple[Artefact, ...] = (
    registry_hives.READER,  # first: opens the hives the next two read
    services.READER,
    servicing.READER,
    servicing_logs.READER,
    bcd.READER,
    crash_dumps.READER,
    event_logs.READER,
    dotnet.READER,
    wer.READER,
    linux_os.READER,
    linux_os.BOOT_READER,
    linux_fstab.READER,
    linux_fs.READER,
    linux_logs.READER,
)
LINUX_FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs")


def _windows(ctx: GuestContext) -> bool:
    return ctx.exists(registry_hives.SYSTEM)


def _boot(ctx: GuestContext) -> bool:
    """A BCD store outside a Windows volume (an EFI system partition, a BIOS system partition);
    the EFI store counts on a Windows volume too."""
    if ctx.exists(bcd.STORES[0]):
        return True
    return "windows" not in ctx.roles and ctx.exists(bcd.STORES[1])


def _linux(ctx: GuestContext) -> bool:
    """A Linux root filesystem: it says which system it is (os-release(5), maybe a link)."""
    if not _linuxfs(ctx):
        return False
    return any(resolve(ctx, p) is not None for p in linux_os.OS_RELEASE)


def _linuxfs(ctx: GuestContext) -> bool:
    # Stand-ins for a volume in tests may carry no type: they are no Linux filesystem.
    return getattr(ctx.volume, "type", None) in LINUX_FILESYSTEMS


def _linux_boot(ctx: GuestContext) -> bool:
    """A separate /boot: kernels at its root, and no system of its own."""
    if "linux" in ctx.roles or not _linuxfs(ctx):
        return False
    return any(linux_os.IMAGE.match(e.name) for e in ctx.listdir("/") if not e.is_dir)


# (role, test) in order: a test may look at the roles found before it.
DETECTORS: tuple[tuple[str, Callable[[GuestContext], bool]], ...] = (
    ("windows", _windows),
    ("boot", _boot),
    ("linux", _linux),
    ("linuxfs", _linuxfs),
    ("linux-boot", _linux_boot),
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
