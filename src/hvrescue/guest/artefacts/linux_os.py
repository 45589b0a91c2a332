"""A Linux guest's distribution and kernels, and how it is equipped to run on Hyper-V.

``linux_os``: ``/etc/os-release`` (or ``/usr/lib/os-release``; os-release(5): KEY=value lines,
values optionally quoted). ``linux_kernel``: one per kernel installed, from ``/boot``
(``vmlinuz-*``, ``initrd.img-*`` / ``initramfs-*.img``) and ``/lib/modules/<version>``; a
separate /boot volume lists its kernels at its root. ``linux_hyperv``: per kernel with modules,
which Hyper-V drivers it has as modules (``kernel/drivers/hv``, ``scsi/hv_storvsc``...) or built
in (``modules.builtin``), and whether the KVP daemon (``hv_kvp_daemon``, from hyperv-daemons /
linux-cloud-tools) is installed."""

from __future__ import annotations

import re
import shlex

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.artefacts.linux_files import read_text, resolve
from hvrescue.guest.context import GuestContext

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
MODULES = ("/lib/modules", "/usr/lib/modules")
MAX_TEXT = 1024 * 1024
MAX_BUILTIN = 4 * 1024 * 1024
MAX_KERNELS = 64
MAX_MODULE_WALK = 200_000
OS_KEYS = ("ID", "ID_LIKE", "NAME", "PRETTY_NAME", "VERSION", "VERSION_ID", "VERSION_CODENAME")
IMAGE = re.compile(r"^(?:vmlinuz|vmlinux|kernel|bzImage)-(.+)$")
INITRD = re.compile(r"^(?:initrd\.img-(.+)|initramfs-(.+?)\.img|initrd-(.+))$")
# The drivers a guest needs on Hyper-V: the bus, storage, network, and the integration services.
HV_DRIVERS = ("hv_vmbus", "hv_storvsc", "hv_netvsc", "hv_utils", "hv_balloon", "hv_sock")
KVP_DAEMONS = (
    "/usr/sbin/hv_kvp_daemon",
    "/usr/bin/hv_kvp_daemon",
    "/usr/lib/linux-tools/hv_kvp_daemon",
    "/usr/libexec/hypervkvpd",
    "/usr/sbin/hypervkvpd",
)
KVP_UNITS = (
    "/lib/systemd/system/hv-kvp-daemon.service",
    "/usr/lib/systemd/system/hv-kvp-daemon.service",
    "/usr/lib/systemd/system/hypervkvpd.service",
    "/etc/systemd/system/multi-user.target.wants/hv-kvp-daemon.service",
    "/etc/systemd/system/multi-user.target.wants/hypervkvpd.service",
)


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, with shell quoting as os-release(5) allows; other lines ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            continue
        try:
            words = shlex.split(raw, posix=True)
        except ValueError:
            words = [raw.strip("\"'")]
        out[key] = " ".join(words)
    return out


def read_os(ctx: GuestContext) -> None:
    for path in OS_RELEASE:
        found = read_text(ctx, path, MAX_TEXT)
        if found is None:
            continue
        text, real = found
        values = parse_os_release(text)
        attrs = {k.lower(): values.get(k) for k in OS_KEYS}
        attrs.update(volume=ctx.volume_id, filesystem=ctx.volume.type, file=real)
        ctx.fact("linux_os", attrs, real)
        break
    kernels = _kernels(ctx, "/boot")
    modules = _module_dirs(ctx)
    for version in sorted(set(kernels) | set(modules))[:MAX_KERNELS]:
        have = kernels.get(version, {})
        ctx.fact(
            "linux_kernel",
            {
                "version": version,
                "image": have.get("image", False),
                "initrd": have.get("initrd", False),
                "modules": version in modules,
                "volume": ctx.volume_id,
            },
            modules.get(version) or str(have.get("path") or "/boot"),
        )
    for version, folder in sorted(modules.items())[:MAX_KERNELS]:
        _hyperv(ctx, version, folder)
    daemons = [p for p in KVP_DAEMONS if resolve(ctx, p) is not None]
    units = [p for p in KVP_UNITS if ctx.exists(p)]
    ctx.fact(
        "linux_hyperv_daemons",
        {"kvp_daemon": bool(daemons), "paths": daemons, "units": units},
        daemons[0] if daemons else "/usr/sbin",
    )


def read_boot_volume(ctx: GuestContext) -> None:
    """A separate /boot volume: the kernels at its root."""
    for version, have in sorted(_kernels(ctx, "/").items())[:MAX_KERNELS]:
        ctx.fact(
            "linux_kernel",
            {
                "version": version,
                "image": have.get("image", False),
                "initrd": have.get("initrd", False),
                "modules": None,
                "volume": ctx.volume_id,
            },
            str(have.get("path") or "/"),
        )


def _kernels(ctx: GuestContext, folder: str) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for entry in ctx.listdir(folder)[: MAX_KERNELS * 8]:
        if entry.is_dir:
            continue
        image = IMAGE.match(entry.name)
        if image:
            found.setdefault(image.group(1), {}).update(image=True, path=entry.path)
            continue
        initrd = INITRD.match(entry.name)
        if initrd:
            version = next(g for g in initrd.groups() if g)
            found.setdefault(version, {})["initrd"] = True
    return found


def _module_dirs(ctx: GuestContext) -> dict[str, str]:
    for base in MODULES:
        folder = resolve(ctx, base)
        if folder is None or not folder.is_dir:
            continue
        return {e.name: e.path for e in ctx.listdir(folder.path)[:MAX_KERNELS] if e.is_dir}
    return {}


def _hyperv(ctx: GuestContext, version: str, folder: str) -> None:
    as_modules: set[str] = set()
    seen = 0
    for sub in (
        "kernel/drivers/hv",
        "kernel/drivers/scsi",
        "kernel/drivers/net/hyperv",
        "kernel/net/vmw_vsock",
    ):
        for entry in ctx.listdir(f"{folder}/{sub}"):
            seen += 1
            if seen > MAX_MODULE_WALK:
                break
            name = entry.name.split(".ko", 1)[0]
            if name in HV_DRIVERS:
                as_modules.add(name)
    builtin: set[str] = set()
    found = read_text(ctx, f"{folder}/modules.builtin", MAX_BUILTIN)
    if found is not None:
        for line in found[0].splitlines():
            name = line.rsplit("/", 1)[-1].split(".ko", 1)[0]
            if name in HV_DRIVERS:
                builtin.add(name)
    have = as_modules | builtin
    ctx.fact(
        "linux_hyperv",
        {
            "kernel": version,
            "modules": sorted(as_modules),
            "builtin": sorted(builtin),
            "builtin_list_read": found is not None,
            "missing": [d for d in HV_DRIVERS[:3] if d not in have],
            "storage_driver": "hv_storvsc" in have,
            "volume": ctx.volume_id,
        },
        folder,
    )


READER = Artefact(
    name="linux-os",
    reads=(*OS_RELEASE, "/boot/vmlinuz-*", "/lib/modules/*", *KVP_DAEMONS[:1]),
    run=read_os,
    roles=frozenset({"linux"}),
)

BOOT_READER = Artefact(
    name="linux-boot",
    reads=("/vmlinuz-*", "/initrd.img-*"),
    run=read_boot_volume,
    roles=frozenset({"linux-boot"}),
)
