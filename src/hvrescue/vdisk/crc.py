"""CRC-32C (Castagnoli) as MS-VHDX uses it, from google-crc32c."""

from __future__ import annotations

import google_crc32c


def crc32c(data: bytes | bytearray | memoryview) -> int:
    return int(google_crc32c.value(bytes(data)))


def crc32c_with_field_zeroed(data: bytes, field_offset: int) -> int:
    """CRC-32C of ``data`` with the 4-byte checksum field at ``field_offset`` taken as zero."""
    return crc32c(b"".join((data[:field_offset], b"\0\0\0\0", data[field_offset + 4 :])))
