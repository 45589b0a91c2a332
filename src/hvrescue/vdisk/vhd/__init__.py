"""Legacy VHD (Virtual Hard Disk Image Format Specification 1.0), also .avhd."""

from hvrescue.vdisk.vhd.image import VhdImage

__all__ = ["VhdImage"]
