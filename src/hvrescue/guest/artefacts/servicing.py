"""Servicing (Windows Update / CBS) state: the packages CBS knows with their states (SOFTWARE),
RebootPending and PackagesPending, pending file renames (SYSTEM), WinSxS\\pending.xml and the
package manifests on disk (Windows\\servicing\\Packages\\*.mum)."""

from __future__ import annotations

import re

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.registry_hives import SOFTWARE, SYSTEM, current_control_set
from hvrescue.guest.context import GuestContext
from hvrescue.guest.values import filetime, to_int

CBS = "\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
PENDING_XML = "/Windows/WinSxS/pending.xml"
MANIFESTS = "/Windows/servicing/Packages"
# CBS CurrentState values (Microsoft's servicing chart).
CBS_STATES = {
    0x00: "absent",
    0x05: "uninstall_pending",
    0x10: "resolving",
    0x20: "resolved",
    0x30: "staging",
    0x40: "staged",
    0x50: "superseded",
    0x60: "install_pending",
    0x65: "partially_installed",
    0x70: "installed",
    0x80: "permanent",
    -0x20: "resolved",  # some tools print 0xFFFFFFE0
}
KB = re.compile(r"KB\d{6,8}", re.IGNORECASE)


def read_servicing(ctx: GuestContext) -> None:
    pending_renames(ctx)
    cbs_packages(ctx)
    pending_xml(ctx)
    package_manifests(ctx)


def pending_renames(ctx: GuestContext) -> None:
    """PendingFileRenameOperations of the Session Manager (SYSTEM)."""
    hive = ctx.hive(SYSTEM)
    if hive is None:
        return
    _current, cs = current_control_set(hive)
    session = hive.values(hive.key(cs + "\\Control\\Session Manager"))
    renames = session.get("PendingFileRenameOperations")
    count = len(renames) if isinstance(renames, list) else (1 if renames else 0)
    ctx.fact(
        "servicing_state",
        {"pending_file_renames": count, "source": "SYSTEM"},
        SYSTEM,
        f"key:{cs}\\Control\\Session Manager",
    )


def cbs_packages(ctx: GuestContext) -> None:
    """Each package of Component Based Servicing with its state, as DISM /Get-Packages shows."""
    hive = ctx.hive(SOFTWARE)
    if hive is None:
        return
    for sk in hive.subkeys(hive.key(CBS + "\\Packages")):
        identity = str(sk.name)
        locator = f"key:{CBS}\\Packages\\{identity}"
        vals = hive.values(sk, where=locator)
        state = to_int(vals.get("CurrentState"))
        if state is None:
            continue
        if state > 0x7FFFFFFF:
            state -= 0x100000000
        kb = KB.search(identity)
        ctx.fact(
            "package",
            {
                "identity": identity,
                "kb": kb.group(0).upper() if kb else None,
                "state_code": CBS_STATES.get(state, f"0x{state & 0xFFFFFFFF:x}"),
                "current_state": state,
                "install_time_local": filetime(
                    vals.get("InstallTimeHigh"), vals.get("InstallTimeLow")
                ),
                "image": "offline",
            },
            SOFTWARE,
            locator,
        )
    ctx.fact(
        "servicing_state",
        {
            "reboot_pending": hive.key(CBS + "\\RebootPending") is not None,
            "packages_pending": hive.key(CBS + "\\PackagesPending") is not None,
            "source": "SOFTWARE",
        },
        SOFTWARE,
        f"key:{CBS}",
    )


def pending_xml(ctx: GuestContext) -> None:
    entry = ctx.stat(PENDING_XML)
    ctx.fact(
        "servicing_state",
        {
            "pending_xml": entry is not None and not entry.is_dir,
            "pending_xml_size": entry.size if entry else None,
            "pending_xml_modified": entry.modified if entry else None,
            "source": "WinSxS",
        },
        PENDING_XML,
    )


def package_manifests(ctx: GuestContext) -> None:
    """KB numbers of the packages whose manifests are on disk (Windows\\servicing\\Packages)."""
    seen: set[str] = set()
    for entry in ctx.listdir(MANIFESTS):
        if entry.is_dir or not entry.name.lower().endswith(".mum"):
            continue
        kb = KB.search(entry.name)
        if kb is None or kb.group(0).upper() in seen:
            continue
        seen.add(kb.group(0).upper())
        ctx.fact(
            "package_manifest",
            {"identity": entry.name[:-4], "kb": kb.group(0).upper(), "modified": entry.modified},
            entry.path,
        )


READER = Artefact(
    name="servicing",
    reads=(
        SOFTWARE + " (Component Based Servicing)",
        SYSTEM + " (Session Manager)",
        PENDING_XML,
        MANIFESTS + "/*.mum",
    ),
    run=read_servicing,
    needs=("regipy",),
)
