"""MS-VHDX: structures, validation, log replay and reading."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage

__all__ = ["VhdxImage"]


def __getattr__(name: str) -> Any:
    """``VhdxImage`` imported on first use: a submodule (``structures``, say) can be imported
    without the whole reader, and opening a VHD never imports it."""
    if name == "VhdxImage":
        from hvrescue.vdisk.vhdx.image import VhdxImage

        return VhdxImage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
