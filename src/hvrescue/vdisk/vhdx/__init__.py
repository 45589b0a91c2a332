"""MS-VHDX: structures, validation, log replay and reading."""

from hvrescue.vdisk.vhdx.image import VhdxImage

__all__ = ["VhdxImage"]
