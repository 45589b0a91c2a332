"""SDDL (as `sc sdshow` prints it) parsed into owner, group, DACL and SACL entries."""

from __future__ import annotations

import re
from typing import Any

ACE = re.compile(r"\(([^()]*)\)")
PART = re.compile(r"(O|G|D|S):(.*?)(?=(?:O|G|D|S):|$)")
SDDL_LINE = re.compile(r"^\s*((?:O:\S+?)?(?:G:\S+?)?D:[A-Z]*\(.*)$")

ACE_TYPES = {
    "A": "allow",
    "D": "deny",
    "AU": "audit",
    "AL": "alarm",
    "OA": "object_allow",
    "OD": "object_deny",
    "OU": "object_audit",
    "ML": "mandatory_label",
}
RIGHTS = {
    "CC": "SERVICE_QUERY_CONFIG",
    "DC": "SERVICE_CHANGE_CONFIG",
    "LC": "SERVICE_QUERY_STATUS",
    "SW": "SERVICE_ENUMERATE_DEPENDENTS",
    "RP": "SERVICE_START",
    "WP": "SERVICE_STOP",
    "DT": "SERVICE_PAUSE_CONTINUE",
    "LO": "SERVICE_INTERROGATE",
    "CR": "SERVICE_USER_DEFINED_CONTROL",
    "SD": "DELETE",
    "RC": "READ_CONTROL",
    "WD": "WRITE_DAC",
    "WO": "WRITE_OWNER",
    "GA": "GENERIC_ALL",
    "GR": "GENERIC_READ",
    "GW": "GENERIC_WRITE",
    "GX": "GENERIC_EXECUTE",
}
TRUSTEES = {
    "SY": "LocalSystem",
    "BA": "Administrators",
    "IU": "Interactive Users",
    "SU": "Service Users",
    "WD": "Everyone",
    "AU": "Authenticated Users",
    "BU": "Users",
    "PU": "Power Users",
    "LS": "Local Service",
    "NS": "Network Service",
    "SO": "Server Operators",
    "AO": "Account Operators",
}


def parse_ace(text: str) -> dict[str, Any]:
    fields = (text.split(";") + [""] * 6)[:6]
    ace_type, flags, rights, obj, inherit, sid = fields
    codes = (
        [rights[i : i + 2] for i in range(0, len(rights), 2)]
        if not rights.startswith("0x")
        else [rights]
    )
    return {
        "type": ACE_TYPES.get(ace_type, ace_type),
        "flags": flags,
        "rights": rights,
        "rights_names": [RIGHTS.get(c, c) for c in codes],
        "object_guid": obj or None,
        "inherit_object_guid": inherit or None,
        "sid": sid,
        "trustee": TRUSTEES.get(sid, sid),
    }


def parse_sddl(sddl: str) -> dict[str, Any]:
    sddl = sddl.strip()
    out: dict[str, Any] = {
        "sddl": sddl,
        "owner": None,
        "group": None,
        "dacl_flags": "",
        "dacl": [],
        "sacl_flags": "",
        "sacl": [],
    }
    for m in PART.finditer(sddl):
        tag, body = m.group(1), m.group(2)
        if tag == "O":
            out["owner"] = body
        elif tag == "G":
            out["group"] = body
        else:
            flags = body.split("(", 1)[0]
            aces = [parse_ace(a) for a in ACE.findall(body)]
            key = "dacl" if tag == "D" else "sacl"
            out[key + "_flags"] = flags
            out[key] = aces
    return out
