"""What kind of Linux disk this is: a WSL 2 distribution's ``ext4.vhdx``, Docker Desktop's data
disk (``docker_data.vhdx``, or ``ext4.vhdx`` of the former ``docker-desktop-data``
distribution) or its own distribution, or the disk of a Linux VM. WSL and Docker Desktop create
their disks without a partition table (one ext4 filesystem over the whole disk) and boot them
with WSL's own kernel, so a partitionless ext4 root with no kernel in ``/boot`` is a WSL disk
whatever its file is called now.

Where the files live (Microsoft's WSL documentation, Docker Desktop's settings and the issues
cited in tests/fixtures/guest_linux/README.md):

- a WSL distribution: %LOCALAPPDATA%\\Packages\\<distro package>\\LocalState\\ext4.vhdx
  (or %LOCALAPPDATA%\\wsl\\{<GUID>}\\ext4.vhdx for one installed by newer WSL);
- Docker Desktop 4.30+ data: %LOCALAPPDATA%\\Docker\\wsl\\disk\\docker_data.vhdx;
- docker-desktop-data before 4.30: %LOCALAPPDATA%\\Docker\\wsl\\data\\ext4.vhdx;
- the docker-desktop distribution: %LOCALAPPDATA%\\Docker\\wsl\\main\\ext4.vhdx (before:
  ...\\wsl\\distro\\ext4.vhdx);
- the Hyper-V back end's VM: C:\\ProgramData\\DockerDesktop\\vm-data\\DockerDesktop.vhdx.
"""

from __future__ import annotations

import re
from typing import Any

WSL_DISTRO = "wsl-distro"
DOCKER_DATA = "docker-desktop-data"
DOCKER_DISTRO = "docker-desktop-distro"
DOCKER_VM = "docker-desktop-vm"
LINUX_VM = "linux-vm"
LINUX_DATA = "linux-data-disk"
WSL_KINDS = (WSL_DISTRO, DOCKER_DATA, DOCKER_DISTRO)
LOCATIONS = {
    WSL_DISTRO: "%LOCALAPPDATA%\\Packages\\<distro package>\\LocalState\\ext4.vhdx",
    DOCKER_DATA: "%LOCALAPPDATA%\\Docker\\wsl\\disk\\docker_data.vhdx",
    DOCKER_DISTRO: "%LOCALAPPDATA%\\Docker\\wsl\\main\\ext4.vhdx",
    DOCKER_VM: "C:\\ProgramData\\DockerDesktop\\vm-data\\DockerDesktop.vhdx",
}
_PACKAGE = re.compile(r"[\\/]Packages[\\/]([^\\/]+)[\\/]LocalState[\\/]", re.I)
# Docker's data disks hold the engine's tree at their root (docker_data.vhdx) or under /data.
DOCKER_TREES = ("/docker/overlay2", "/docker/image", "/data/docker/overlay2", "/data/docker/image")
WSL_MARKERS = ("/etc/wsl.conf", "/etc/wsl-distribution.conf")


def from_name(path: str, scheme: str) -> dict[str, Any]:
    """What the file's name and folder say, before anything is read inside it."""
    norm = path.replace("/", "\\").lower()
    name = norm.rsplit("\\", 1)[-1]
    signals: list[str] = []
    kind: str | None = None
    if name == "docker_data.vhdx":
        kind = DOCKER_DATA
    elif name == "dockerdesktop.vhdx":
        kind = DOCKER_VM
    elif name == "ext4.vhdx":
        if "\\docker\\wsl\\data\\" in norm:
            kind = DOCKER_DATA
        elif "\\docker\\wsl\\" in norm:
            kind = DOCKER_DISTRO
        else:
            kind = WSL_DISTRO
    if kind is not None:
        signals.append(f"file-name:{name}")
    package = _PACKAGE.search(path)
    if package:
        signals.append("folder:Packages\\...\\LocalState")
    return {
        "disk_kind": kind,
        "signals": signals,
        "partition_table": scheme,
        "partitionless": scheme == "none",
        "distro_package": package.group(1) if package else None,
        "wsl_like": kind in WSL_KINDS or scheme == "none",
    }


def settle(hint: dict[str, Any], root: Any | None, volumes: list[Any]) -> dict[str, Any]:
    """The kind, once the volumes were read: ``root`` is the context of the volume holding
    /etc/os-release (None when there is none), ``volumes`` the contexts of every Linux
    filesystem of the disk."""
    out = dict(hint)
    signals = list(hint["signals"])
    kind = hint["disk_kind"]
    first = volumes[0].volume.type if volumes else None
    partitionless_ext = hint["partitionless"] and first == "ext4"
    if partitionless_ext:
        signals.append("partitionless-ext4")
    docker_tree = any(ctx.exists(t) for ctx in volumes for t in DOCKER_TREES)
    if docker_tree:
        signals.append("docker-engine-tree")
    if root is not None:
        markers = [m for m in WSL_MARKERS if root.exists(m)]
        signals += [f"file:{m}" for m in markers]
        kernels = [e for e in root.listdir("/boot") if e.name.startswith(("vmlinuz", "vmlinux"))]
        if not kernels:
            signals.append("no-kernel-in-/boot")
        if kind is None:
            kind = WSL_DISTRO if markers or (partitionless_ext and not kernels) else LINUX_VM
    elif kind is None and docker_tree:
        kind = DOCKER_DATA
    elif kind is None and volumes:
        kind = LINUX_DATA
    out.update(disk_kind=kind, signals=signals, wsl_like=kind in WSL_KINDS or hint["wsl_like"])
    out["expected_location"] = LOCATIONS.get(kind or "")
    out["wsl"] = kind in WSL_KINDS
    out["docker"] = bool(kind and kind.startswith("docker"))
    out["root_volume"] = root.volume_id if root is not None else None
    return out
