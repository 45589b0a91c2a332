"""Boot configuration: every object of the BCD stores on a volume (the EFI system partition's
\\EFI\\Microsoft\\Boot\\BCD, a BIOS system's \\Boot\\BCD) as a `bcd_entry`, with the elements the
rules use: description, hypervisorlaunchtype, safeboot, bootstatuspolicy, testsigning."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext
from hvrescue.guest.hive import Hive
from hvrescue.guest.values import to_int

STORES = ("/EFI/Microsoft/Boot/BCD", "/Boot/BCD")
# Element types (BCDE_*): the name bcdedit shows is in the comment.
HYPERVISOR_LAUNCH = "250000f0"  # hypervisorlaunchtype
SAFEBOOT = "25000080"  # safeboot
DESCRIPTION = "12000004"  # description
BOOTSTATUSPOLICY = "250000e0"  # bootstatuspolicy
TESTSIGNING = "16000049"  # testsigning
LAUNCH_TYPES = {0: "Off", 1: "Auto"}
SAFEBOOT_TYPES = {0: "Minimal", 1: "Network", 2: "DsRepair"}
_HEX_NUMBER = re.compile(r"[0-9a-fA-F]{2,16}")


def read_bcd(ctx: GuestContext) -> None:
    for path in STORES:
        if ctx.exists(path):
            hive = ctx.hive(path)
            if hive is not None:
                read_store(ctx, hive, path)


def _number(raw: Any) -> int | None:
    """An integer element: regipy gives REG_BINARY as hex text (little-endian bytes)."""
    if isinstance(raw, str) and _HEX_NUMBER.fullmatch(raw):
        return int.from_bytes(bytes.fromhex(raw)[:8], "little")
    if isinstance(raw, (bytes, bytearray)):
        return int.from_bytes(bytes(raw)[:8], "little")
    return to_int(raw)


def read_store(ctx: GuestContext, hive: Hive, path: str) -> None:
    for obj in hive.subkeys(hive.key("\\Objects")):
        elements: dict[str, Any] = {}
        for el in hive.subkeys(hive.subkey(obj, "Elements")):
            elements[str(el.name).lower()] = hive.values(el).get("Element")
        launch = _number(elements.get(HYPERVISOR_LAUNCH))
        safeboot = _number(elements.get(SAFEBOOT))
        testsigning = _number(elements.get(TESTSIGNING))
        ctx.fact(
            "bcd_entry",
            {
                "identifier": str(obj.name),
                "description": elements.get(DESCRIPTION),
                "hypervisorlaunchtype": LAUNCH_TYPES.get(launch, launch)
                if launch is not None
                else None,
                "safeboot": SAFEBOOT_TYPES.get(safeboot, safeboot)
                if safeboot is not None
                else None,
                "bootstatuspolicy": _number(elements.get(BOOTSTATUSPOLICY)),
                "testsigning": bool(testsigning) if testsigning is not None else None,
                "source": "bcd-store",
            },
            path,
            f"key:\\Objects\\{obj.name}",
        )


READER = Artefact(
    name="bcd",
    reads=STORES,
    run=read_bcd,
    roles=frozenset({"windows", "boot"}),
    needs=("regipy",),
)
