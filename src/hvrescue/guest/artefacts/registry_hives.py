"""Registry hives: SYSTEM and SOFTWARE opened (their transaction logs applied in a private copy;
a replay is a ``hive_replay`` fact, damage a problem), and the Windows version they record. The
services, drivers and servicing readers use the hives opened here."""

from __future__ import annotations

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext
from hvrescue.guest.hive import Hive
from hvrescue.guest.values import to_int

CONFIG = "/Windows/System32/config/"
SYSTEM = CONFIG + "SYSTEM"
SOFTWARE = CONFIG + "SOFTWARE"
CURRENT_VERSION = "\\Microsoft\\Windows NT\\CurrentVersion"


def read_hives(ctx: GuestContext) -> None:
    ctx.hive(SYSTEM)
    software = ctx.hive(SOFTWARE)
    if software is None:
        return
    nt = software.values(software.key(CURRENT_VERSION))
    ctx.fact(
        "system_info",
        {
            "os_name": nt.get("ProductName"),
            "current_build": nt.get("CurrentBuild"),
            "ubr": nt.get("UBR"),
            "edition": nt.get("EditionID"),
            "source": "registry",
        },
        SOFTWARE,
        "key:" + CURRENT_VERSION,
    )


READER = Artefact(
    name="registry-hives",
    reads=(SYSTEM, SOFTWARE, SYSTEM + ".LOG1", SYSTEM + ".LOG2"),
    run=read_hives,
    needs=("regipy",),
)


def current_control_set(hive: Hive) -> tuple[int, str]:
    """The control set Windows boots with (``\\Select\\Current``, 1 when unreadable)."""
    current = to_int(hive.values(hive.key("\\Select")).get("Current")) or 1
    return current, f"\\ControlSet{current:03d}"
