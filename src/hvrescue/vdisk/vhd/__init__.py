"""Legacy VHD (Virtual Hard Disk Image Format Specification 1.0), also .avhd."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd.image import VhdImage

__all__ = ["VhdImage"]


def __getattr__(name: str) -> Any:
    """``VhdImage`` imported on first use: opening a VHDX never imports the VHD reader."""
    if name == "VhdImage":
        from hvrescue.vdisk.vhd.image import VhdImage

        return VhdImage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
