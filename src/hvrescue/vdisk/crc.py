"""CRC-32C (Castagnoli) as MS-VHDX uses it, from google-crc32c."""

from __future__ import annotations

import google_crc32c


def crc32c(data: bytes | bytearray | memoryview) -> int:
    return int(google_crc32c.value(bytes(data)))


# Larger inputs (a log entry may be as long as its log: 256 MiB) are checksummed piece by
# piece: joining them whole would hold two more copies of the entry at once.
_PIECE = 4 * 1024 * 1024


def crc32c_with_field_zeroed(data: bytes | memoryview, field_offset: int) -> int:
    """CRC-32C of ``data`` with the 4-byte checksum field at ``field_offset`` taken as zero."""
    if len(data) <= _PIECE:
        return crc32c(b"".join((data[:field_offset], b"\0\0\0\0", data[field_offset + 4 :])))
    view = memoryview(data)
    crc = google_crc32c.extend(0, bytes(view[:field_offset]) + b"\0\0\0\0")
    for pos in range(field_offset + 4, len(view), _PIECE):
        crc = google_crc32c.extend(crc, bytes(view[pos : pos + _PIECE]))
    return int(crc)
