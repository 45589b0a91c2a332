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


# Access masks of the service rights (winsvc.h SERVICE_*, winnt.h standard and generic rights),
# and what a generic right means for a service object (the service generic mapping).
_SERVICE_BITS = {
    "CC": 0x1,
    "DC": 0x2,
    "LC": 0x4,
    "SW": 0x8,
    "RP": 0x10,
    "WP": 0x20,
    "DT": 0x40,
    "LO": 0x80,
    "CR": 0x100,
    "SD": 0x10000,
    "RC": 0x20000,
    "WD": 0x40000,
    "WO": 0x80000,
}
_ALL_SERVICE = 0xF01FF  # SERVICE_ALL_ACCESS
_GENERIC = {
    "GA": _ALL_SERVICE,
    "GR": 0x20000 | 0x1 | 0x4 | 0x80 | 0x8,
    "GW": 0x20000 | 0x2,
    "GX": 0x20000 | 0x10 | 0x20 | 0x40 | 0x100,
    # file and key rights written on a service by hand: their low bits and standard rights
    "FA": 0x1F01FF,
    "KA": 0xF003F,
}
_GENERIC_BITS = {0x10000000: "GA", 0x80000000: "GR", 0x40000000: "GW", 0x20000000: "GX"}
# Well-known SIDs by their SDDL abbreviation, so "SY" and "S-1-5-18" are one trustee.
SIDS = {
    "WD": "S-1-1-0",
    "CO": "S-1-3-0",
    "IU": "S-1-5-4",
    "SU": "S-1-5-6",
    "AU": "S-1-5-11",
    "SY": "S-1-5-18",
    "LS": "S-1-5-19",
    "NS": "S-1-5-20",
    "BA": "S-1-5-32-544",
    "BU": "S-1-5-32-545",
    "PU": "S-1-5-32-547",
    "AO": "S-1-5-32-548",
    "SO": "S-1-5-32-549",
}
_ABBREVIATION = {sid: name for name, sid in SIDS.items()}
# Groups every member of a trustee also belongs to: an entry for Everyone or Authenticated
# Users gives (or denies) the trustee's members the same rights; LocalSystem is an
# administrator.
_MEMBER_OF = {
    "S-1-5-18": ("S-1-5-32-544", "S-1-5-11", "S-1-1-0"),
    "S-1-5-32-544": ("S-1-5-11", "S-1-1-0"),
    "S-1-5-4": ("S-1-5-11", "S-1-1-0"),
    "S-1-5-6": ("S-1-5-11", "S-1-1-0"),
}


def sid_of(text: str) -> str:
    """The SID an ACE names, in full (``SY`` -> ``S-1-5-18``), upper case."""
    text = text.strip().upper()
    return SIDS.get(text, text)


def rights_mask(rights: str) -> int:
    """The access mask of an ACE's rights (``CCLCSWRPWPDTLOCRRC`` or ``0x2008d``), generic
    rights mapped to what they mean for a service."""
    rights = rights.strip()
    if rights.lower().startswith("0x"):
        try:
            mask = int(rights, 16)
        except ValueError:
            return 0
        for bit, name in _GENERIC_BITS.items():
            if mask & bit:
                mask = (mask & ~bit) | _GENERIC[name]
        return mask
    mask = 0
    for i in range(0, len(rights), 2):
        code = rights[i : i + 2].upper()
        mask |= _SERVICE_BITS.get(code, 0) | _GENERIC.get(code, 0)
    return mask


def rights_text(mask: int) -> str:
    """``mask``'s service rights as SDDL codes, in the order `sc sdshow` prints them."""
    return "".join(code for code, bit in _SERVICE_BITS.items() if mask & bit)


def missing_grants(sddl: str, needed: list[str]) -> list[dict[str, Any]]:
    """The entries of ``needed`` (allow ACEs, ``(A;;CCLCSWLOCRRC;;;SU)``) whose rights the DACL
    of ``sddl`` does not give: compared as parsed ACEs, not as text, so their order, the SACL,
    other entries and rights beyond those needed do not matter. Rights given to a group the
    trustee belongs to (Everyone, Authenticated Users) count; a deny entry for the trustee or
    such a group takes its rights away. Each gap: ``ace`` (the needed entry), ``sid`` (as
    written there), ``trustee``, ``rights`` (the missing ones), ``reason`` (``absent``: no
    entry; ``partial``: some rights missing; ``denied``: a deny entry takes them), ``denied_by``
    (those deny entries, SDDL)."""
    parsed = parse_sddl(sddl)
    dacl = [
        (ace, sid_of(ace["sid"]), rights_mask(ace["rights"]))
        for ace in parsed["dacl"]
        if "IO" not in str(ace["flags"]).upper()  # inherit-only: not for the service itself
    ]
    gaps = []
    for text in needed:
        want = parse_ace(text.strip().strip("()"))
        sid = sid_of(want["sid"])
        need = rights_mask(want["rights"])
        holders = (sid, *_MEMBER_OF.get(sid, ()))
        allowed = 0
        named = False
        for ace, who, mask in dacl:
            if who in holders and ace["type"] == "allow":
                allowed |= mask
                named = named or who == sid
        denied = [
            (ace, mask & need)
            for ace, who, mask in dacl
            if who in holders and ace["type"] == "deny" and mask & need
        ]
        taken = 0
        for _ace, mask in denied:
            taken |= mask
        lacking = (need & ~allowed) | taken
        if not lacking:
            continue
        reason = "denied" if taken else ("partial" if named else "absent")
        gaps.append(
            {
                "ace": text.strip(),
                "sid": want["sid"],
                "trustee": want["trustee"],
                "rights": rights_text(lacking),
                "reason": reason,
                "denied_by": [ace_text(ace) for ace, _mask in denied],
            }
        )
    return gaps


def ace_text(ace: dict[str, Any]) -> str:
    """A parsed ACE written back as SDDL."""
    kind = {v: k for k, v in ACE_TYPES.items()}.get(ace["type"], ace["type"])
    fields = [
        kind,
        ace["flags"],
        ace["rights"],
        ace["object_guid"] or "",
        ace["inherit_object_guid"] or "",
        ace["sid"],
    ]
    return "(" + ";".join(fields) + ")"


def with_grants(sddl: str, gaps: list[dict[str, Any]]) -> str:
    """``sddl`` with only what ``gaps`` lacks put back: each needed entry added to the DACL, the
    deny entries that took its rights removed; every other entry, the DACL's flags and the SACL
    (when the text has one) kept as they are. Owner and group are left out (`sc sdset` sets the
    DACL and SACL it is given)."""
    parsed = parse_sddl(sddl)
    drop = {d for gap in gaps for d in gap["denied_by"]}
    kept = [ace_text(a) for a in parsed["dacl"] if ace_text(a) not in drop]
    added = [gap["ace"] for gap in gaps if gap["ace"] not in kept]
    out = "D:" + str(parsed["dacl_flags"]) + "".join(kept + added)
    if parsed["sacl"] or parsed["sacl_flags"]:
        out += "S:" + str(parsed["sacl_flags"]) + "".join(ace_text(a) for a in parsed["sacl"])
    return out
