"""``/etc/fstab`` against the volumes the disk holds: each entry becomes an ``fstab_entry`` fact
saying whether the device it names (``UUID=``, ``LABEL=``, ``PARTUUID=``, ``PARTLABEL=``,
``/dev/disk/by-*/``, ``/dev/mapper/VG-LV``, ``/dev/VG/LV``) is on this disk. An entry naming a
UUID that no volume has any more (a disk replaced, a filesystem re-created, a clone given new
UUIDs) is the classic Linux boot failure: systemd waits 90 s for the device, then drops to the
emergency shell. Entries that cannot be checked offline (``/dev/sdb1``, network shares) say so
(``resolved`` null) rather than guessing."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.linux_files import read_text, resolve
from hvrescue.guest.context import GuestContext

FSTAB = "/etc/fstab"
MAX_FSTAB = 1024 * 1024
MAX_ENTRIES = 2000
PSEUDO = {
    "proc",
    "sysfs",
    "devpts",
    "tmpfs",
    "devtmpfs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "hugetlbfs",
    "mqueue",
    "pstore",
    "efivarfs",
    "binfmt_misc",
    "configfs",
    "fusectl",
    "none",
    "overlay",
    "autofs",
    "bpf",
    "tracefs",
    "ramfs",
    "rpc_pipefs",
    "nfsd",
    "drvfs",
    "9p",
    "virtiofs",
}
NETWORK = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs", "glusterfs", "ceph"}
BOOT_PATH = {"/", "/boot", "/boot/efi", "/efi", "/usr", "/var"}
# The root line of Ubuntu's WSL images: WSL mounts the root itself, no volume carries that label.
WSL_DEFAULT_ROOT = "LABEL=cloudimg-rootfs"
_FIELDS = re.compile(r"[ \t]+")
_ESCAPE = re.compile(r"\\([0-7]{3})")
_BY = {
    "by-uuid": "uuid",
    "by-label": "label",
    "by-partuuid": "partuuid",
    "by-partlabel": "partlabel",
}


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_fstab(text: str) -> list[dict[str, Any]]:
    """The entries of fstab(5) with their line numbers; malformed lines are kept with
    ``malformed`` set, never dropped. Fields are split on spaces and tabs only, as libmount
    does: a non-breaking space pasted from a web page stays inside its field (and the mount
    fails), so it must not be hidden here."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(text.split("\n"), 1):
        body = line.strip(" \t\r")
        if not body or body.startswith("#"):
            continue
        fields = _FIELDS.split(body)
        entry: dict[str, Any] = {"line": number, "text": body[:300]}
        if len(fields) < 3:
            entry["malformed"] = True
            entry["spec"] = _unescape(fields[0])
            out.append(entry)
        else:
            options = fields[3] if len(fields) > 3 else "defaults"
            entry.update(
                spec=_unescape(fields[0]),
                mount_point=_unescape(fields[1]),
                fstype=fields[2],
                options=options,
                dump=fields[4] if len(fields) > 4 else None,
                passno=fields[5] if len(fields) > 5 else None,
                # libmount refuses a line with more than six fields (it is skipped).
                malformed=len(fields) > 6,
            )
            out.append(entry)
        if len(out) >= MAX_ENTRIES:
            break
    return out


def spec_kind(spec: str) -> tuple[str, str]:
    """(what the spec names the device by, the value): ``uuid``, ``label``, ``partuuid``,
    ``partlabel``, ``lvm`` ("vg/lv"), ``device``, ``network``, ``file`` or ``other``."""
    key, sep, value = spec.partition("=")
    if sep and key.upper() in ("UUID", "LABEL", "PARTUUID", "PARTLABEL"):
        return key.lower(), value.strip("\"'")
    if spec.startswith("/dev/disk/"):
        parts = spec.split("/")
        if len(parts) >= 5 and parts[3] in _BY:
            return _BY[parts[3]], "/".join(parts[4:])
        return "device", spec
    if spec.startswith("/dev/mapper/"):
        name = spec[len("/dev/mapper/") :]
        # device-mapper doubles a hyphen inside a name: vg--data-lv--root is vg-data/lv-root.
        pieces = re.split(r"(?<!-)-(?!-)", name)
        if len(pieces) == 2:
            return "lvm", "/".join(p.replace("--", "-") for p in pieces)
        return "device", spec
    if re.match(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|md|dm-|loop|sr)", spec):
        return "device", spec
    if spec.startswith("/dev/") and spec.count("/") == 3:
        return "lvm", spec[len("/dev/") :]
    if spec.startswith("//") or (":" in spec and not spec.startswith("/")):
        return "network", spec
    if spec.startswith("/"):
        return "file", spec
    return "other", spec


def _match(kind: str, value: str, volumes: list[dict[str, Any]]) -> dict[str, Any] | None:
    for vol in volumes:
        if kind == "lvm":
            if vol.get("vg") and f"{vol['vg']}/{vol['lv']}" == value:
                return vol
            continue
        have = vol.get(kind)
        if not have:
            continue
        if kind in ("uuid", "partuuid") and str(have).lower() == value.lower():
            return vol
        if kind in ("label", "partlabel") and have == value:
            return vol
    return None


def read_fstab(ctx: GuestContext) -> None:
    found = read_text(ctx, FSTAB, MAX_FSTAB)
    if found is None:
        return
    text, real = found
    entries = parse_fstab(text)
    for entry in entries:
        _judge(ctx, entry)
        ctx.fact("fstab_entry", entry, real, f"line:{entry['line']}")
    ctx.fact(
        "fstab",
        {
            "entries": len(entries),
            "unresolved": sum(1 for e in entries if e.get("resolved") is False),
            "volume": ctx.volume_id,
        },
        real,
    )


def _judge(ctx: GuestContext, entry: dict[str, Any]) -> None:
    spec = entry.get("spec", "")
    kind, value = spec_kind(spec)
    fstype = entry.get("fstype") or ""
    options = set((entry.get("options") or "").split(","))
    entry.update(spec_kind=kind, spec_value=value, volume=ctx.volume_id)
    entry["nofail"] = "nofail" in options
    entry["noauto"] = "noauto" in options
    resolved: bool | None = None
    match = None
    if entry.get("malformed") or fstype in PSEUDO or kind in ("other",):
        resolved = None
    elif fstype in NETWORK or kind == "network":
        kind = entry["spec_kind"] = "network"
    elif kind in ("uuid", "label", "partuuid", "partlabel", "lvm"):
        match = _match(kind, value, ctx.disk_volumes)
        resolved = match is not None
    elif kind == "file" and fstype == "swap":
        resolved = resolve(ctx, spec) is not None  # a swap file on the root filesystem
    entry["resolved"] = resolved
    entry["matched_volume"] = match.get("id") if match else None
    entry["matched_filesystem"] = match.get("filesystem") if match else None
    mount_point = entry.get("mount_point") or ""
    entry["swap"] = fstype == "swap"
    entry["boot_path"] = mount_point in BOOT_PATH
    entry["wsl_default_root"] = bool(
        ctx.disk_hint.get("wsl_like") and mount_point == "/" and spec == WSL_DEFAULT_ROOT
    )
    # What an unresolved entry does at boot: systemd makes every auto mount without nofail a
    # requirement of local-fs.target (emergency mode when missing); swap only delays the boot.
    entry["blocks_boot"] = bool(
        resolved is False
        and not entry["nofail"]
        and not entry["noauto"]
        and not entry["swap"]
        and not entry["wsl_default_root"]
    )


READER = Artefact(
    name="linux-fstab",
    reads=(FSTAB,),
    run=read_fstab,
    roles=frozenset({"linux"}),
)
