"""/etc/fstab across the disks of one VM: `guest` reads one disk and can only say that a UUID is
not on *that* disk; when `triage` is given all of a VM's disks, an entry whose device is on
another of them is not a boot failure. :func:`reconcile_fstab` turns such entries into resolved
ones (``matched_disk`` names the disk) so that ``linux.fstab-missing-uuid`` fires only for
devices that no disk given has."""

from __future__ import annotations

from typing import Any

from hvrescue.facts.model import Fact
from hvrescue.guest.artefacts.linux_fstab import spec_kind

KEYS = ("uuid", "label", "partuuid", "partlabel")


def _disk_of(fact: Fact) -> str:
    return fact.provenance.path.split("!", 1)[0]


def reconcile_fstab(facts: list[Fact]) -> list[Fact]:
    """``facts`` with each unresolved fstab entry resolved when a ``linux_volume`` of another
    disk has its device; the other facts unchanged, in order."""
    volumes = [f for f in facts if f.kind == "linux_volume"]
    if len({_disk_of(v) for v in volumes}) < 2:
        return facts
    out: list[Fact] = []
    for fact in facts:
        attrs = fact.attributes
        if fact.kind != "fstab_entry" or attrs.get("resolved") is not False:
            out.append(fact)
            continue
        match = _elsewhere(attrs, _disk_of(fact), volumes)
        if match is None:
            out.append(fact)
            continue
        fixed: dict[str, Any] = {
            **attrs,
            "resolved": True,
            "blocks_boot": False,
            "matched_volume": match.attributes.get("id"),
            "matched_filesystem": match.attributes.get("filesystem"),
            "matched_disk": _disk_of(match),
        }
        out.append(Fact(fact.kind, fixed, fact.provenance))
    return out


def _elsewhere(attrs: dict[str, Any], disk: str, volumes: list[Fact]) -> Fact | None:
    kind, value = spec_kind(str(attrs.get("spec") or ""))
    for vol in volumes:
        if _disk_of(vol) == disk:
            continue
        have = vol.attributes
        if kind == "lvm" and have.get("vg") and f"{have['vg']}/{have['lv']}" == value:
            return vol
        if kind in KEYS and have.get(kind):
            same = (
                str(have[kind]).lower() == value.lower()
                if kind in ("uuid", "partuuid")
                else have[kind] == value
            )
            if same:
                return vol
    return None
