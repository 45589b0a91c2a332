"""Small registry hives (regf) written from a key tree, for fuzz seeds: every structure guest
reads (nk, vk, lh/lf/li/ri subkey lists, value lists, inline, plain and big-data (db) values, one
shared sk security cell), in 4 KiB hive bins, a few tens of KiB in all, and new-format (HvLE)
transaction logs for a dirty copy.

Layout (the regf format as documented by libyal's "Windows NT Registry File" notes): a 4096-byte
base block, then hive bins; every offset in a cell is relative to the first bin (file offset
minus 4096); a cell starts with its size as a negative 32-bit integer when in use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

BASE = 4096
BIN = 4096
FILETIME = 133_520_000_000_000_000  # 2024-02-14
BIG_SEGMENT = 16344
NONE = 0xFFFFFFFF
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11


@dataclass
class Value:
    name: str
    kind: int
    data: bytes


@dataclass
class Key:
    name: str
    values: list[Value] = field(default_factory=list)
    subkeys: list[Key] = field(default_factory=list)
    list_kind: str = "lh"  # how the subkeys are listed: lh, lf, li or ri (over an li and an lh)


def sz(name: str, text: str, kind: int = REG_SZ) -> Value:
    return Value(name, kind, (text + "\0").encode("utf-16-le"))


def multi(name: str, items: list[str]) -> Value:
    return Value(name, REG_MULTI_SZ, ("\0".join(items) + "\0\0").encode("utf-16-le"))


def dword(name: str, number: int) -> Value:
    return Value(name, REG_DWORD, struct.pack("<I", number & 0xFFFFFFFF))


def qword(name: str, number: int) -> Value:
    return Value(name, REG_QWORD, struct.pack("<Q", number))


def binary(name: str, data: bytes) -> Value:
    return Value(name, REG_BINARY, data)


def _lh_hash(name: str) -> int:
    h = 0
    for ch in name.upper():
        h = (h * 37 + ord(ch)) & 0xFFFFFFFF
    return h


def security_descriptor() -> bytes:
    """A self-relative descriptor: owner and group SYSTEM, one ACE granting Everyone read."""
    system = bytes([1, 1, 0, 0, 0, 0, 0, 5]) + struct.pack("<I", 18)
    everyone = bytes([1, 1, 0, 0, 0, 0, 0, 1]) + struct.pack("<I", 0)
    ace = struct.pack("<BBHI", 0, 0, 8 + len(everyone), 0x20019) + everyone
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(ace), 1, 0) + ace
    owner = 20
    group = owner + len(system)
    dacl = group + len(system)
    head = struct.pack("<BBHIIII", 1, 0, 0x8004, owner, group, 0, dacl)
    return head + system + system + acl


class HiveWriter:
    def __init__(self) -> None:
        self.bins = bytearray()
        self.free_at = 0  # where the current bin's free space starts (relative)
        self.bin_end = 0

    def cell(self, payload: bytes) -> int:
        size = -(-(len(payload) + 4) // 8) * 8
        if self.free_at + size > self.bin_end:
            self._new_bin(size)
        at = self.free_at
        struct.pack_into("<i", self.bins, at, -size)
        self.bins[at + 4 : at + 4 + len(payload)] = payload
        self.free_at += size
        self._close_bin()
        return at

    def patch(self, at: int, payload: bytes) -> None:
        self.bins[at + 4 : at + 4 + len(payload)] = payload

    def _new_bin(self, need: int) -> None:
        size = -(-(need + 32) // BIN) * BIN
        start = len(self.bins)
        self.bins += bytes(size)
        struct.pack_into("<4sIIIIQI", self.bins, start, b"hbin", start, size, 0, 0, FILETIME, 0)
        self.free_at = start + 32
        self.bin_end = start + size
        self._close_bin()

    def _close_bin(self) -> None:
        """The rest of the bin is one free cell (a positive size)."""
        if self.free_at < self.bin_end:
            struct.pack_into("<i", self.bins, self.free_at, self.bin_end - self.free_at)


def _nk(key: Key, parent: int, subkeys: int, subkey_list: int, values: int, value_list: int,
        security: int, root: bool) -> bytes:  # fmt: skip
    ascii_name = key.name.isascii()
    name = key.name.encode("ascii" if ascii_name else "utf-16-le")
    flags = (0x0C if root else 0) | (0x20 if ascii_name else 0)  # hive entry, no delete, ASCII
    largest_name = max((len(k.name) * 2 for k in key.subkeys), default=0)
    largest_value = max((len(v.name) * 2 for v in key.values), default=0)
    largest_data = max((len(v.data) for v in key.values), default=0)
    return (
        struct.pack(
            "<2sHQIIIIIIIIIIIIIIIHH",
            b"nk",
            flags,
            FILETIME,
            0,
            parent,
            subkeys,
            0,
            subkey_list,
            NONE,
            values,
            value_list,
            security,
            NONE,
            largest_name,
            0,
            largest_value,
            largest_data,
            0,
            len(name),
            0,
        )
        + name
    )


def _subkey_list(w: HiveWriter, kind: str, children: list[tuple[str, int]]) -> int:
    if kind == "ri" and len(children) > 1:
        half = len(children) // 2
        first = _subkey_list(w, "li", children[:half])
        second = _subkey_list(w, "lh", children[half:])
        return w.cell(struct.pack("<2sHII", b"ri", 2, first, second))
    if kind == "li":
        body = b"".join(struct.pack("<I", off) for _name, off in children)
        return w.cell(struct.pack("<2sH", b"li", len(children)) + body)
    if kind == "lf":
        body = b"".join(
            struct.pack("<I", off) + name.encode("latin-1")[:4].ljust(4, b"\0")
            for name, off in children
        )
        return w.cell(struct.pack("<2sH", b"lf", len(children)) + body)
    body = b"".join(struct.pack("<II", off, _lh_hash(name)) for name, off in children)
    return w.cell(struct.pack("<2sH", b"lh", len(children)) + body)


def _value(w: HiveWriter, value: Value) -> int:
    data = value.data
    if len(data) <= 4:
        size, offset = len(data) | 0x80000000, int.from_bytes(data.ljust(4, b"\0"), "little")
    elif len(data) > BIG_SEGMENT:
        segments = [w.cell(data[i : i + BIG_SEGMENT]) for i in range(0, len(data), BIG_SEGMENT)]
        table = w.cell(b"".join(struct.pack("<I", s) for s in segments))
        size, offset = len(data), w.cell(struct.pack("<2sHI", b"db", len(segments), table))
    else:
        size, offset = len(data), w.cell(data)
    ascii_name = value.name.isascii()
    name = value.name.encode("ascii" if ascii_name else "utf-16-le")
    flags = 1 if ascii_name else 0  # ASCII name
    vk = struct.pack("<2sHIIIHH", b"vk", len(name), size, offset, value.kind, flags, 0) + name
    return w.cell(vk)


def _key(
    w: HiveWriter, key: Key, parent: int, security: int, root: bool = False, sk: bytes = b""
) -> int:
    at = w.cell(_nk(key, parent, 0, NONE, 0, NONE, security, root))
    if sk:  # the security cell right after the root (regipy takes the first cell as the root)
        w.cell(sk)
    children = sorted(key.subkeys, key=lambda k: k.name.upper())
    offsets = [(k.name, _key(w, k, at, security)) for k in children]
    subkey_list = _subkey_list(w, key.list_kind, offsets) if offsets else NONE
    vks = [_value(w, v) for v in key.values]
    value_list = w.cell(b"".join(struct.pack("<I", v) for v in vks)) if vks else NONE
    w.patch(at, _nk(key, parent, len(offsets), subkey_list, len(vks), value_list, security, root))
    return at


def _count(key: Key) -> int:
    return 1 + sum(_count(k) for k in key.subkeys)


def base_block(root: int, bins_size: int, primary: int, secondary: int, name: str,
               file_type: int = 0) -> bytes:  # fmt: skip
    raw = bytearray(BASE)
    struct.pack_into(
        "<4sIIQIIIIIII",
        raw,
        0,
        b"regf",
        primary,
        secondary,
        FILETIME,
        1,
        5,
        file_type,
        1,
        root,
        bins_size,
        1,
    )
    encoded = name.encode("utf-16-le")[:62]
    raw[48 : 48 + len(encoded)] = encoded
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(raw[:508])):
        checksum ^= word
    checksum = {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(checksum, checksum)
    struct.pack_into("<I", raw, 508, checksum)
    return bytes(raw)


def build_hive(root: Key, name: str = "SYSTEM", sequence: tuple[int, int] = (7, 7)) -> bytes:
    w = HiveWriter()
    sd = security_descriptor()
    # The one security cell, its links pointing at itself, follows the root's cell.
    security = 32 + -(-(len(_nk(root, 0, 0, 0, 0, 0, 0, True)) + 4) // 8) * 8
    sk = struct.pack("<2sHIIII", b"sk", 0, security, security, _count(root), len(sd)) + sd
    top = _key(w, root, NONE, security, root=True, sk=sk)
    return base_block(top, len(w.bins), *sequence, name) + bytes(w.bins)


def hvle_log(hive: bytes, dirty: list[tuple[int, bytes]], sequence: int) -> bytes:
    """A new-format transaction log of one entry writing ``dirty`` ((offset in the bins, page
    data) pairs) at sequence number ``sequence`` (the hive's secondary one, the log's first)."""
    refs = b"".join(struct.pack("<II", off, len(page)) for off, page in dirty)
    pages = b"".join(page for _off, page in dirty)
    size = 40 + len(refs) + len(pages)
    size = -(-size // 512) * 512
    bins_size = struct.unpack_from("<I", hive, 40)[0]
    entry = struct.pack("<4sIIIIIQQ", b"HvLE", size, 0, sequence, bins_size, len(dirty), 0, 0)
    entry = (entry + refs + pages).ljust(size, b"\0")
    root = struct.unpack_from("<I", hive, 36)[0]
    header = base_block(root, bins_size, sequence, sequence, "SYSTEM.LOG1", file_type=6)[:512]
    return header + entry
