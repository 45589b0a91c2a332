"""The state files a VM configuration names: `.vmrs` (runtime and saved state) and `.vmgs`
(guest state: UEFI variables, the virtual TPM, key protectors). A check of
:data:`hvrescue.inventory.CHECK_MODULES`.

For each configuration of the inventory, each state file it names (a Windows path) is mapped to
the local copy the way disks are (the path's tail under the folders above the configuration),
then:

- ``vm.state-file.missing``: named, not there;
- ``vm.state-file.damaged``: there, but empty, or its headers unreadable (a `.vmgs` with no valid
  VMGS header or file table; a `.vmrs` whose key store does not parse);
- ``vm.state-file.mismatch``: it belongs to another VM: the VM id a `.vmrs` holds differs from
  the configuration's, the file is named after another VM's id, or two configurations of
  different VMs name the same file.

- ``vm.guest-state.no-vtpm`` (info): the configuration enables the virtual TPM
  (``tpm_enabled`` of the configuration reader) and the readable `.vmgs` holds no TPM_NVRAM
  file. Only then is the absence meaningful: a VMGS without TPM state is normal for a VM that
  never had a vTPM, and a configuration that does not say is not guessed about.
"""

from __future__ import annotations

import ntpath
import os
import re
from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.hyperv.vmgs import TPM_NVRAM, read_vmgs
from hvrescue.vdisk.locate import candidate_paths

if TYPE_CHECKING:
    from hvrescue.inventory import CheckOptions, Inventory

KINDS = {".vmrs": "vmrs", ".vmgs": "vmgs"}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _local(config_path: str, windows_path: str) -> str | None:
    for candidate in candidate_paths(config_path, "absolute_win32_path", windows_path):
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
    return None


def _config_path(inv: Inventory, vm: dict[str, Any]) -> str:
    path = str(vm.get("path") or "")
    return path if os.path.isabs(path) else os.path.join(inv.root, path)


def _damage(kind: str, local: str) -> str | None:
    """Why the file cannot serve, or None."""
    if os.path.getsize(local) == 0:
        return "empty"
    if kind == "vmgs":
        report = read_vmgs(local)
        if not report.readable:
            codes = [f.code for f in report.findings if f.severity >= Severity.ERROR]
            return ", ".join(codes) or "no valid header"
        return None
    from hvrescue.vmconfig import ConfigUnavailable, read_config

    try:
        read_config(local)
    except ConfigUnavailable as exc:
        if exc.reason == "parser-missing":
            return None  # cannot tell; the inventory already says the parser is missing
        return f"{exc.reason}: {exc.detail}"[:200]
    except HvrescueError as exc:
        return exc.key
    return None


def _vmrs_vm_id(local: str) -> str | None:
    from hvrescue.vmconfig import ConfigUnavailable, read_config

    try:
        return read_config(local).vm_id
    except (ConfigUnavailable, HvrescueError):
        return None


def check(inv: Inventory, options: CheckOptions) -> list[Finding]:
    findings: list[Finding] = []
    owners: dict[str, list[tuple[str, str]]] = {}  # local file -> [(config, vm id)]
    for vm in inv.vms:
        config = _config_path(inv, vm)
        vm_id = str(vm.get("vm_id") or "").strip("{}").lower()
        name = str(vm.get("name") or "")
        for named in vm.get("state_files") or []:
            kind = KINDS.get(ntpath.splitext(str(named))[1].lower())
            if kind is None:
                continue
            local = _local(config, str(named))
            if local is None:
                findings.append(
                    Finding(
                        "vm.state-file.missing",
                        Severity.ERROR,
                        config,
                        params={
                            "file": named,
                            "kind": kind,
                            "vm": name,
                            "config_kind": vm.get("kind"),
                        },
                    )
                )
                continue
            detail = _damage(kind, local)
            if detail is not None:
                findings.append(
                    Finding(
                        "vm.state-file.damaged",
                        Severity.ERROR,
                        local,
                        params={
                            "file": named,
                            "kind": kind,
                            "detail": detail,
                            "config": config,
                            "vm": name,
                            "config_kind": vm.get("kind"),
                        },
                    )
                )
                continue
            if kind == "vmgs" and vm.get("tpm_enabled") is True:
                report = read_vmgs(local)
                if report.readable and not report.has_file(TPM_NVRAM):
                    findings.append(
                        Finding(
                            "vm.guest-state.no-vtpm", Severity.INFO, local, params={"file": named}
                        )
                    )
            if vm.get("kind") != "vm" or not vm_id:
                continue
            owners.setdefault(local, []).append((config, vm_id))
            stem = ntpath.splitext(ntpath.basename(str(named)))[0].strip("{}").lower()
            inside = _vmrs_vm_id(local) if kind == "vmrs" else None
            other = None
            if inside and inside.strip("{}").lower() != vm_id:
                other = inside
            elif _GUID.match(stem) and stem != vm_id:
                other = stem.upper()
            if other is not None:
                findings.append(
                    Finding(
                        "vm.state-file.mismatch",
                        Severity.ERROR,
                        local,
                        params={
                            "file": named,
                            "kind": kind,
                            "vm_id": vm_id,
                            "other": other,
                            "vm": name,
                        },
                    )
                )
    for local, names in owners.items():
        ids = {vm_id for _config, vm_id in names}
        if len(ids) > 1:
            for config, vm_id in names:
                others = ", ".join(sorted(i.upper() for i in ids - {vm_id}))
                findings.append(
                    Finding(
                        "vm.state-file.mismatch",
                        Severity.ERROR,
                        local,
                        params={
                            "file": local,
                            "kind": KINDS.get(os.path.splitext(local)[1].lower(), "vmrs"),
                            "vm_id": vm_id,
                            "other": others,
                            "config": config,
                        },
                    )
                )
    return findings
