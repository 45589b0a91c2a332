"""The virtual hardware a configuration describes: generation, memory, processors, firmware
(Secure Boot and its template), a virtual TPM, network adapters.

Where each value sits in the configuration tree (the same tree in `.vmcx` and the 2012 R2 XML;
see docs/rebuild.md for the public samples and projects this was checked against):

- generation: ``properties/subtype``, 0 for generation 1 and 1 for generation 2 (WMI's
  ``VirtualSystemSubType`` "Microsoft:Hyper-V:SubType:1"/"...:2"; HashiCorp Packer's Hyper-V
  builder writes ``subtype`` as ``Generation - 1``);
- memory: ``settings/memory/bank``: ``size`` (startup, MB), ``dynamic_memory_enabled``,
  ``reservation`` (minimum, MB), ``limit`` (maximum, MB);
- processors: ``settings/processors/count``;
- firmware: the firmware device's node holds ``secure_boot_enabled`` and
  ``secure_boot_template_id`` (a GUID; all zeros when none is set);
- network adapters: one device node per adapter with ``FriendlyName``, ``SwitchName``,
  ``IsConnected``, ``MacAddress`` and ``MacAddressIsStatic``;
- virtual TPM: a device of the ``manifest`` whose name mentions a TPM. No public sample with a
  vTPM was available, so its absence is never read as "no TPM": the value stays unknown.

A value that is not there, or not of the expected type, is None: never a default presented as
read.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.vmconfig.values import boolean as _bool
from hvrescue.vmconfig.values import integer as _int
from hvrescue.vmconfig.values import text as _str

# Set-VMFirmware -SecureBootTemplate names and the template GUIDs the configuration stores
# (the same GUIDs appear in Msvm_VirtualSystemSettingData.SecureBootTemplateId).
SECURE_BOOT_TEMPLATES = {
    "1734c6e8-3154-4dda-ba5f-a874cc483422": "MicrosoftWindows",
    "272e7447-90a4-4563-a4b9-8e4ab00526ce": "MicrosoftUEFICertificateAuthority",
    "4292ae2b-ee2c-42b5-a969-dd8f8689f6f3": "OpenSourceShieldedVM",
}
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
MAX_ADAPTERS = 64
MAX_MANIFEST = 4096
_GUID = re.compile(
    r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$"
)


def _node(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _devices(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for k, v in config.items() if str(k).startswith("_") and isinstance(v, dict)]


def generation(config: dict[str, Any]) -> int | None:
    subtype = _int(_node(config, "properties", "subtype"))
    return {0: 1, 1: 2}.get(subtype) if subtype is not None else None


def memory(config: dict[str, Any]) -> dict[str, Any]:
    bank = _node(config, "settings", "memory", "bank")
    size = _int(_node(bank, "size"))
    minimum = _int(_node(bank, "reservation"))
    maximum = _int(_node(bank, "limit"))
    return {
        "memory_startup_mb": size if size and size > 0 else None,
        "dynamic_memory": _bool(_node(bank, "dynamic_memory_enabled")),
        "memory_minimum_mb": minimum if minimum and minimum > 0 else None,
        "memory_maximum_mb": maximum if maximum and maximum > 0 else None,
    }


def processor_count(config: dict[str, Any]) -> int | None:
    count = _int(_node(config, "settings", "processors", "count"))
    return count if count is not None and 0 < count <= 2048 else None


def template_guid(value: Any) -> str | None:
    """The template GUID as lower-case text; None for none set (all zeros) or no GUID."""
    text = _str(value)
    match = _GUID.match(text or "")
    if match is None:
        return None
    guid = match.group(1).lower()
    return None if guid == ZERO_GUID else guid


def firmware(config: dict[str, Any]) -> dict[str, Any]:
    for device in _devices(config):
        if "secure_boot_enabled" in device or "secure_boot_template_id" in device:
            guid = template_guid(device.get("secure_boot_template_id"))
            return {
                "secure_boot": _bool(device.get("secure_boot_enabled")),
                "secure_boot_template_id": guid,
                "secure_boot_template": SECURE_BOOT_TEMPLATES.get(guid or ""),
            }
    return {"secure_boot": None, "secure_boot_template_id": None, "secure_boot_template": None}


def tpm_enabled(config: dict[str, Any]) -> bool | None:
    """True when the manifest lists a TPM device; otherwise unknown (see the module's note)."""
    manifest = config.get("manifest")
    if not isinstance(manifest, dict):
        return None
    for i, entry in enumerate(manifest.values()):
        if i >= MAX_MANIFEST:
            break
        name = _str(_node(entry, "name")) or ""
        if re.search(r"\bTPM\b", name, re.I):
            return True
    return None


def network_adapters(config: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for device in _devices(config):
        if "SwitchName" not in device and "FriendlyName" not in device:
            continue
        if "MacAddress" not in device and "SwitchName" not in device:
            continue  # a device with a friendly name that is no network adapter
        switch = _str(device.get("SwitchName")) or _str(
            _node(device, "Connection", "AltSwitchName")
        )
        static = _bool(device.get("MacAddressIsStatic"))
        out.append(
            {
                "name": _str(device.get("FriendlyName")),
                "switch": switch,
                "connected": _bool(device.get("IsConnected")),
                "static_mac": _str(device.get("MacAddress")) if static else None,
            }
        )
        if len(out) >= MAX_ADAPTERS:
            break
    return out


def hardware(config: dict[str, Any]) -> dict[str, Any]:
    """Every value above, by the names VmConfig and `inventory --json` use."""
    return {
        "generation": generation(config),
        **memory(config),
        "processor_count": processor_count(config),
        **firmware(config),
        "tpm_enabled": tpm_enabled(config),
        "network_adapters": network_adapters(config),
    }
