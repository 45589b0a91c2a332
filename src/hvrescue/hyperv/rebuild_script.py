"""The PowerShell script of a :class:`~hvrescue.hyperv.rebuild.RebuildPlan`.

The commands are the Hyper-V module's (New-VM, Add-VMHardDiskDrive, Set-VMFirmware,
Set-VMProcessor, Set-VMMemory, Disconnect-VMNetworkAdapter, Checkpoint-VM); every comment comes
from the message catalogue in the reader's language (``msg``: a catalogue lookup, key and
parameters). Every value taken from the evidence (a path, a name) is a single-quoted string
with its quotes doubled, and no text from the evidence reaches a comment with a line break,
so nothing read can become a command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hvrescue.hyperv.rebuild import RebuildPlan

Msg = Callable[..., str]
# PowerShell ends a single-quoted string at any of these (about_Quoting_Rules).
_QUOTES = "'\u2018\u2019\u201a\u201b"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
CHECKPOINT_NAME = "hvrescue: before first boot"


def ps_quote(text: str) -> str:
    """``text`` as a PowerShell single-quoted literal."""
    return "'" + "".join(c + c if c in _QUOTES else c for c in text) + "'"


def _comment(text: str) -> list[str]:
    return ["# " + _CONTROL.sub(" ", line).rstrip() for line in text.split("\n")]


def _bytes(n: int) -> str:
    return str(int(n))


class _Script:
    def __init__(self, msg: Msg) -> None:
        self.msg = msg
        self.lines: list[str] = []

    def note(self, key: str, **params: Any) -> None:
        clean = {k: _CONTROL.sub(" ", v) if isinstance(v, str) else v for k, v in params.items()}
        self.lines.extend(_comment(self.msg(key, **clean)))

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def blank(self) -> None:
        self.lines.append("")


def _assumed(plan: RebuildPlan, msg: Msg, *names: str) -> str:
    """`` # ASSUMED ...`` at the end of a command whose value was not read."""
    if any(n in plan.assumed for n in names):
        return "  # " + _CONTROL.sub(" ", msg("ui.rebuild.script.assumed-mark"))
    return ""


def render_script(plan: RebuildPlan, msg: Msg, when: str) -> str:
    s = _Script(msg)
    vm = "$VMName"
    s.add("#Requires -RunAsAdministrator", "#Requires -Modules Hyper-V")
    s.note("ui.rebuild.script.header", source=plan.source, when=when)
    s.note("ui.rebuild.script.review")
    if plan.assumed:
        s.note("ui.rebuild.script.assumed", names=", ".join(plan.assumed))
    for key, params in plan.notes:
        s.note(key, **params)
    for key, params in plan.warnings:
        s.note("ui.rebuild.script.warning", text=msg(key, **params))
    s.add("$ErrorActionPreference = 'Stop'", f"$VMName = {ps_quote(plan.name)}")
    s.blank()

    s.note("ui.rebuild.script.check-disks")
    needed: list[str] = []
    for disk in plan.disks:
        for path in [*disk.chain, disk.path]:
            if path not in needed:
                needed.append(path)
    s.add("$RequiredFiles = @(")
    s.add(*[f"    {ps_quote(p)}" for p in needed])
    s.add(")")
    missing = ps_quote(msg("ui.rebuild.script.missing-file"))
    s.add(
        "foreach ($file in $RequiredFiles) {",
        "    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {",
        f"        throw ({missing} + $file)",
        "    }",
        "}",
    )
    exists = ps_quote(msg("ui.rebuild.script.vm-exists"))
    s.add(f"if (Get-VM -Name {vm} -ErrorAction SilentlyContinue) {{ throw ({exists} + {vm}) }}")
    s.blank()

    s.note(
        "ui.rebuild.script.create",
        generation=plan.generation,
        source=msg(f"ui.rebuild.source.{plan.generation_source}"),
    )
    where = f" -Path {ps_quote(plan.vm_path)}" if plan.vm_path else ""
    s.add(
        f"New-VM -Name {vm} -Generation {plan.generation} -MemoryStartupBytes "
        f"{_bytes(plan.memory_startup_bytes)} -NoVHD{where}"
        + _assumed(plan, msg, "memory_startup_bytes", "generation")
    )
    memory = f"Set-VMMemory -VMName {vm} -StartupBytes {_bytes(plan.memory_startup_bytes)}"
    if plan.dynamic_memory:
        memory += " -DynamicMemoryEnabled $true"
        if plan.memory_minimum_bytes:
            memory += f" -MinimumBytes {_bytes(plan.memory_minimum_bytes)}"
        if plan.memory_maximum_bytes:
            memory += f" -MaximumBytes {_bytes(plan.memory_maximum_bytes)}"
    else:
        memory += " -DynamicMemoryEnabled $false"
    s.add(memory + _assumed(plan, msg, "memory_startup_bytes", "dynamic_memory"))
    s.add(
        f"Set-VMProcessor -VMName {vm} -Count {plan.processor_count}"
        + _assumed(plan, msg, "processor_count")
    )
    s.blank()

    s.note("ui.rebuild.script.disks")
    scsi_needed = max(
        (d.controller_number + 1 for d in plan.disks if d.controller_type == "SCSI"), default=0
    )
    for _ in range(max(0, scsi_needed - (1 if plan.generation == 2 else 0))):
        s.add(f"Add-VMScsiController -VMName {vm}")
    for disk in plan.disks:
        if disk.configured_path and disk.configured_path != disk.path:
            s.note("ui.rebuild.script.configured-path", path=disk.configured_path)
        s.add(
            f"Add-VMHardDiskDrive -VMName {vm} -ControllerType {disk.controller_type} "
            f"-ControllerNumber {disk.controller_number} "
            f"-ControllerLocation {disk.controller_location} -Path {ps_quote(disk.path)}"
        )
    s.blank()

    if plan.generation == 2:
        _firmware(s, plan, vm)
    _network(s, plan, vm)
    if plan.generation == 2:
        _tpm(s, plan, vm)
    s.note("ui.rebuild.script.checkpoint")
    s.add(f"Checkpoint-VM -Name {vm} -SnapshotName {ps_quote(CHECKPOINT_NAME)}")
    s.blank()
    s.note("ui.rebuild.script.start")
    s.add(f"# Start-VM -Name {vm}")
    return "\n".join(s.lines) + "\n"


def _firmware(s: _Script, plan: RebuildPlan, vm: str) -> None:
    s.note("ui.rebuild.script.firmware")
    mark = _assumed(plan, s.msg, "secure_boot")
    if plan.secure_boot:
        if plan.secure_boot_template:
            template = f" -SecureBootTemplate {plan.secure_boot_template}"
        elif plan.secure_boot_template_id:
            template = f" -SecureBootTemplateId {ps_quote(plan.secure_boot_template_id)}"
        else:
            template = ""
        s.add(f"Set-VMFirmware -VMName {vm} -EnableSecureBoot On{template}{mark}")
    else:
        s.add(f"Set-VMFirmware -VMName {vm} -EnableSecureBoot Off{mark}")
    boot = next((d for d in plan.disks), None)
    if boot is not None:
        s.add(
            f"Set-VMFirmware -VMName {vm} -FirstBootDevice (Get-VMHardDiskDrive -VMName {vm} "
            f"-ControllerType {boot.controller_type} -ControllerNumber {boot.controller_number} "
            f"-ControllerLocation {boot.controller_location})"
        )
    s.blank()


def _network(s: _Script, plan: RebuildPlan, vm: str) -> None:
    s.note("ui.rebuild.script.network")
    for adapter in plan.network_adapters[1:]:
        name = adapter.get("name") or "Network Adapter"
        s.add(f"Add-VMNetworkAdapter -VMName {vm} -Name {ps_quote(str(name))}")
    s.add(f"Get-VMNetworkAdapter -VMName {vm} | Disconnect-VMNetworkAdapter")
    for adapter in plan.network_adapters:
        if adapter.get("switch"):
            s.note(
                "ui.rebuild.script.network-was",
                adapter=str(adapter.get("name") or "?"),
                switch=str(adapter["switch"]),
            )
        if adapter.get("static_mac"):
            s.note(
                "ui.rebuild.script.network-mac",
                adapter=str(adapter.get("name") or "?"),
                mac=str(adapter["static_mac"]),
            )
    s.note("ui.rebuild.script.reconnect")
    if plan.switch:
        s.add(f"# Connect-VMNetworkAdapter -VMName {vm} -SwitchName {ps_quote(plan.switch)}")
    else:
        s.add(f"# Connect-VMNetworkAdapter -VMName {vm} -SwitchName '<switch>'")
    s.blank()


def _tpm(s: _Script, plan: RebuildPlan, vm: str) -> None:
    if plan.tpm_enabled:
        s.note("ui.rebuild.script.tpm-was-on")
    s.note("ui.rebuild.script.tpm")
    for path in plan.guest_state_files:
        s.note("ui.rebuild.script.tpm-vmgs", path=path)
    s.add(
        f"# Set-VMKeyProtector -VMName {vm} -NewLocalKeyProtector", f"# Enable-VMTPM -VMName {vm}"
    )
    s.blank()
