"""Services and drivers from the SYSTEM hive's current control set: each service as `sc qc`
shows it, each driver with its file on the volume, service security descriptors as SDDL,
file-system minifilters with their altitudes, device class upper/lower filters, and whether the
Windows Installer may run in Safe Mode."""

from __future__ import annotations

from typing import Any

from hvrescue.fs.volume import Entry
from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.registry_hives import SYSTEM, current_control_set
from hvrescue.guest.context import GuestContext
from hvrescue.guest.hive import Hive
from hvrescue.guest.sddl import to_sddl
from hvrescue.guest.values import to_binary, to_int

START_NAMES = {
    0: "BOOT_START",
    1: "SYSTEM_START",
    2: "AUTO_START",
    3: "DEMAND_START",
    4: "DISABLED",
}


def read_services(ctx: GuestContext) -> None:
    hive = ctx.hive(SYSTEM)
    if hive is None:
        return
    current, cs = current_control_set(hive)
    for sk in hive.subkeys(hive.key(cs + "\\Services")):
        _service(ctx, hive, sk, current, f"key:{cs}\\Services\\{sk.name}")
    _class_filters(ctx, hive, cs)
    safeboot = {}
    for mode in ("Minimal", "Network"):
        safeboot[f"{mode.lower()}_msiserver"] = (
            hive.key(f"{cs}\\Control\\SafeBoot\\{mode}\\MSIServer") is not None
        )
    ctx.fact("safeboot_msiserver", safeboot, SYSTEM, f"key:{cs}\\Control\\SafeBoot")


def _service(ctx: GuestContext, hive: Hive, sk: Any, current: int, locator: str) -> None:
    vals = hive.values(sk, where=locator)
    stype = to_int(vals.get("Type"))
    if stype is None:
        return
    start = to_int(vals.get("Start"))
    name = str(sk.name)
    common = {
        "service_name": name,
        "start_type": {"code": start, "name": START_NAMES.get(start or -1)},
        "type": {"code": stype},
        "load_order_group": vals.get("Group"),
        "display_name": vals.get("DisplayName"),
        "source": "registry",
        "control_set": current,
    }
    if stype & 0x0B and not stype & 0x30:  # kernel / file-system drivers
        image = vals.get("ImagePath")
        entry = driver_file(ctx, image if isinstance(image, str) else None, name)
        ctx.fact(
            "driver",
            {
                **common,
                "name": name,
                "image_path": image,
                "file": entry.path if entry else None,
                "file_size": entry.size if entry else None,
                "file_created": entry.created if entry else None,
                "file_modified": entry.modified if entry else None,
            },
            SYSTEM,
            locator,
        )
    else:
        ctx.fact(
            "service_config",
            {
                **common,
                "binary_path_name": vals.get("ImagePath"),
                "service_start_name": vals.get("ObjectName"),
            },
            SYSTEM,
            locator,
        )
    security = hive.subkey(sk, "Security")
    raw = to_binary(hive.values(security, whole=True, where=locator + "\\Security").get("Security"))
    described = to_sddl(raw) if raw else None
    if described is not None:
        ctx.fact(
            "service_security",
            {"service_name": name, "service_name_from": "registry", **described},
            SYSTEM,
            locator + "\\Security",
        )
    altitudes = []
    for inst in hive.subkeys(hive.subkey(sk, "Instances")):
        altitude = hive.values(inst).get("Altitude")
        if altitude:
            altitudes.append({"instance": str(inst.name), "altitude": str(altitude)})
    if altitudes:
        ctx.fact(
            "minifilter",
            {
                "name": name,
                "image_path": vals.get("ImagePath"),
                "start": start,
                "instances": altitudes,
                "altitude": altitudes[0]["altitude"],
            },
            SYSTEM,
            locator + "\\Instances",
        )


def _class_filters(ctx: GuestContext, hive: Hive, cs: str) -> None:
    for cls in hive.subkeys(hive.key(cs + "\\Control\\Class")):
        cvals = hive.values(cls)
        for kind in ("UpperFilters", "LowerFilters"):
            names = cvals.get(kind)
            if isinstance(names, str):
                names = [names]
            if isinstance(names, list) and names:
                ctx.fact(
                    "class_filter",
                    {
                        "class_guid": str(cls.name),
                        "class": cvals.get("Class"),
                        "position": kind[:5].lower(),
                        "filters": [str(n) for n in names],
                    },
                    SYSTEM,
                    f"key:{cs}\\Control\\Class\\{cls.name}",
                )


def driver_file(ctx: GuestContext, image: str | None, name: str) -> Entry | None:
    """The driver's file on this volume (ImagePath forms: \\SystemRoot\\..., System32\\...,
    \\??\\C:\\..., or none: System32\\drivers\\<name>.sys)."""
    text = (image or f"System32\\drivers\\{name}.sys").strip().strip('"')
    lower = text.lower()
    for prefix in ("\\??\\", "\\\\?\\"):
        if lower.startswith(prefix):
            text, lower = text[len(prefix) :], lower[len(prefix) :]
    if len(text) > 2 and text[1] == ":":
        text = text[2:]
    elif lower.startswith("\\systemroot\\"):
        text = "\\Windows\\" + text[len("\\systemroot\\") :]
    elif lower.startswith("%systemroot%\\"):
        text = "\\Windows\\" + text[len("%systemroot%\\") :]
    elif not text.startswith("\\"):
        text = "\\Windows\\" + text
    return ctx.stat(text.replace("\\", "/"))


READER = Artefact(
    name="services-drivers",
    reads=(SYSTEM + " (ControlSet\\Services, Control\\Class, Control\\SafeBoot)",),
    run=read_services,
    needs=("regipy",),
)
