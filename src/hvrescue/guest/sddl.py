"""Binary self-relative security descriptors (a service's ``Security`` value) as SDDL, in the
form `sc sdshow` prints (``D:...S:...``), so the registry of a guest compares with the defaults
exactly as a collected `sc sdshow` output does. Bounded: a malformed descriptor gives None."""

from __future__ import annotations

import struct

ACE_TYPES = {0: "A", 1: "D", 2: "AU", 3: "AL"}
ACE_FLAGS = [
    (0x01, "OI"),
    (0x02, "CI"),
    (0x04, "NP"),
    (0x08, "IO"),
    (0x10, "ID"),
    (0x40, "SA"),
    (0x80, "FA"),
]
RIGHTS = [
    (0x1, "CC"),
    (0x2, "DC"),
    (0x4, "LC"),
    (0x8, "SW"),
    (0x10, "RP"),
    (0x20, "WP"),
    (0x40, "DT"),
    (0x80, "LO"),
    (0x100, "CR"),
    (0x10000, "SD"),
    (0x20000, "RC"),
    (0x40000, "WD"),
    (0x80000, "WO"),
    (0x10000000, "GA"),
    (0x20000000, "GX"),
    (0x40000000, "GW"),
    (0x80000000, "GR"),
]
KNOWN_SIDS = {
    "S-1-1-0": "WD",
    "S-1-3-0": "CO",
    "S-1-5-4": "IU",
    "S-1-5-6": "SU",
    "S-1-5-9": "ED",
    "S-1-5-11": "AU",
    "S-1-5-12": "RC",
    "S-1-5-18": "SY",
    "S-1-5-19": "LS",
    "S-1-5-20": "NS",
    "S-1-5-32-544": "BA",
    "S-1-5-32-545": "BU",
    "S-1-5-32-546": "BG",
    "S-1-5-32-547": "PU",
    "S-1-5-32-549": "SO",
    "S-1-5-32-551": "BO",
    "S-1-5-32-555": "RD",
}
MAX_ACES = 1024


def _sid(data: bytes, offset: int) -> tuple[str, int] | None:
    if offset + 8 > len(data):
        return None
    revision, count = data[offset], data[offset + 1]
    if count > 15 or offset + 8 + 4 * count > len(data):
        return None
    authority = int.from_bytes(data[offset + 2 : offset + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, offset + 8)
    text = f"S-{revision}-{authority}" + "".join(f"-{s}" for s in subs)
    return text, 8 + 4 * count


def _rights(mask: int) -> str:
    known = 0
    out = []
    for bit, name in RIGHTS:
        if mask & bit:
            out.append(name)
            known |= bit
    return "".join(out) if known == mask else f"0x{mask:x}"


def _acl(data: bytes, offset: int) -> str | None:
    if offset + 8 > len(data):
        return None
    _rev, _sbz, size, count = struct.unpack_from("<BBHH", data, offset)
    if count > MAX_ACES or offset + size > len(data):
        return None
    pos = offset + 8
    aces = []
    for _ in range(count):
        if pos + 8 > offset + size:
            return None
        ace_type, ace_flags, ace_size = struct.unpack_from("<BBH", data, pos)
        if ace_size < 8 or pos + ace_size > offset + size:
            return None
        (mask,) = struct.unpack_from("<I", data, pos + 4)
        sid = _sid(data, pos + 8)
        if sid is None or ace_type not in ACE_TYPES:
            return None
        flags = "".join(name for bit, name in ACE_FLAGS if ace_flags & bit)
        account = KNOWN_SIDS.get(sid[0], sid[0])
        aces.append(f"({ACE_TYPES[ace_type]};{flags};{_rights(mask)};;;{account})")
        pos += ace_size
    return "".join(aces)


def to_sddl(data: bytes) -> dict[str, str | None] | None:
    """{"sddl": "D:...S:...", "owner", "group"} or None when the bytes are no descriptor."""
    if len(data) < 20 or data[0] != 1:
        return None
    control = struct.unpack_from("<H", data, 2)[0]
    owner_off, group_off, sacl_off, dacl_off = struct.unpack_from("<IIII", data, 4)
    parts = []
    if control & 0x0004 and dacl_off:
        flags = ("P" if control & 0x1000 else "") + ("AI" if control & 0x0400 else "")
        acl = _acl(data, dacl_off)
        if acl is None:
            return None
        parts.append(f"D:{flags}{acl}")
    if control & 0x0010 and sacl_off:
        flags = ("P" if control & 0x2000 else "") + ("AI" if control & 0x0800 else "")
        acl = _acl(data, sacl_off)
        if acl is None:
            return None
        parts.append(f"S:{flags}{acl}")
    owner = _sid(data, owner_off) if owner_off else None
    group = _sid(data, group_off) if group_off else None
    return {
        "sddl": "".join(parts),
        "owner": KNOWN_SIDS.get(owner[0], owner[0]) if owner else None,
        "group": KNOWN_SIDS.get(group[0], group[0]) if group else None,
    }
