"""Crafted NTFS images for the name and walk tests: what ntfs-3g cannot create (names holding
``/``, NUL, lone surrogates, entries named ``.`` and ``..``, a folder that lists its ancestor)
is made by patching a built image, record by record, with the update sequence fixups undone
before and redone after (NTFS documentation: "FILE" records of 1,024 bytes and "INDX" records
of 4,096 bytes carry, in the last two bytes of each 512-byte sector, the update sequence
number, the original bytes being kept in the update sequence array).

Only the names' own places change: the $FILE_NAME attribute of the file's MFT record and the
key of its entry in the folder's index (resident $INDEX_ROOT or an INDX record).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

SECTOR = 512
_MASK48 = (1 << 48) - 1


def _unfix(rec: bytearray) -> bool:
    usa_ofs, usa_cnt = struct.unpack_from("<HH", rec, 4)
    if usa_ofs + 2 * usa_cnt > len(rec) or usa_cnt < 2:
        return False
    usn = bytes(rec[usa_ofs : usa_ofs + 2])
    for i in range(1, usa_cnt):
        end = i * SECTOR
        if end > len(rec) or bytes(rec[end - 2 : end]) != usn:
            return False
    for i in range(1, usa_cnt):
        end = i * SECTOR
        rec[end - 2 : end] = rec[usa_ofs + 2 * i : usa_ofs + 2 * i + 2]
    return True


def _fix(rec: bytearray) -> None:
    usa_ofs, usa_cnt = struct.unpack_from("<HH", rec, 4)
    usn = bytes(rec[usa_ofs : usa_ofs + 2])
    for i in range(1, usa_cnt):
        end = i * SECTOR
        rec[usa_ofs + 2 * i : usa_ofs + 2 * i + 2] = rec[end - 2 : end]
        rec[end - 2 : end] = usn


def _records(data: bytearray):
    for off in range(0, len(data) - 4, SECTOR):
        sig = bytes(data[off : off + 4])
        size = 1024 if sig == b"FILE" else 4096 if sig == b"INDX" else 0
        if not size:
            continue
        rec = bytearray(data[off : off + size])
        if _unfix(rec):
            yield off, rec


def _name_pattern(name: str) -> re.Pattern[bytes]:
    """A $FILE_NAME's name length, namespace and name (wherever the structure is)."""
    raw = name.encode("utf-16-le", errors="surrogatepass")
    return re.compile(re.escape(bytes([len(name)])) + b"[\x00-\x03]" + re.escape(raw), re.S)


def patch_names(image: Path, renames: dict[str, str]) -> dict[str, int]:
    """Give every file named like a key of ``renames`` the value as its name (same length in
    UTF-16 units); the number of places changed per name (2 or more when all went well)."""
    patterns = []
    for old, new in renames.items():
        assert len(old.encode("utf-16-le")) == len(new.encode("utf-16-le", "surrogatepass"))
        patterns.append((old, _name_pattern(old), new.encode("utf-16-le", "surrogatepass")))
    done = dict.fromkeys(renames, 0)
    data = bytearray(image.read_bytes())
    for off, rec in _records(data):
        changed = False
        for old, pattern, new in patterns:
            for m in pattern.finditer(rec):
                fname = m.start() - 0x40  # the $FILE_NAME structure the name ends
                if fname < 0:
                    continue
                parent = struct.unpack_from("<Q", rec, fname)[0] & _MASK48
                if not 0 < parent < 1_000_000:
                    continue
                rec[m.start() + 2 : m.start() + 2 + len(new)] = new
                done[old] += 1
                changed = True
        if changed:
            _fix(rec)
            data[off : off + len(rec)] = rec
    image.write_bytes(bytes(data))
    return done


def repoint_entry(image: Path, name: str, inode: int, seq: int) -> int:
    """Make the folder index entries named ``name`` point at the file record ``inode``
    (sequence ``seq``); the number of entries changed."""
    pattern = _name_pattern(name)
    changed_entries = 0
    data = bytearray(image.read_bytes())
    for off, rec in _records(data):
        changed = False
        for m in pattern.finditer(rec):
            entry = m.start() - 0x40 - 16  # an index entry: 16 bytes, then its key
            if entry < 0:
                continue
            key_length = struct.unpack_from("<H", rec, entry + 10)[0]
            if key_length != 0x42 + 2 * len(name):
                continue  # the $FILE_NAME attribute of a file record, not an index entry
            struct.pack_into("<Q", rec, entry, inode | (seq << 48))
            changed_entries += 1
            changed = True
        if changed:
            _fix(rec)
            data[off : off + len(rec)] = rec
    image.write_bytes(bytes(data))
    return changed_entries
