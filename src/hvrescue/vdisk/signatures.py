"""The signatures that tell a VHDX or VHD file apart, and where they lie: all that recognising
a disk (:mod:`hvrescue.vdisk.detect`) needs, without importing either format's structures
(``vhdx.structures`` and ``vhd.structures`` take them from here)."""

from __future__ import annotations

KiB = 1024

# MS-VHDX 2.2: the file type identifier, the two headers and the two region tables.
VHDX_FILE_SIGNATURE = b"vhdxfile"
VHDX_HEADER_SIGNATURE = b"head"
VHDX_REGION_SIGNATURE = b"regi"
VHDX_METADATA_SIGNATURE = b"metadata"
VHDX_LOG_ENTRY_SIGNATURE = b"loge"
VHDX_HEADER_OFFSETS = (64 * KiB, 128 * KiB)
VHDX_REGION_TABLE_OFFSETS = (192 * KiB, 256 * KiB)
VHDX_HEADER_SIZE = 4 * KiB

# VHD 1.0: the footer (last 512 bytes, its copy first in dynamic disks), the dynamic header.
VHD_FOOTER_SIZE = 512
VHD_FOOTER_COOKIE = b"conectix"
VHD_DYNAMIC_COOKIE = b"cxsparse"
