"""Output names that do not contradict their format.

Hyper-V, Windows' disk management and most tools choose how to open a disk file by its
extension: a VHDX named ``.vhd`` is refused or misread, a raw image named ``.vhdx`` is read as a
broken VHDX. A name whose extension belongs to another format is therefore refused before any
work, with a name that fits. A name without an extension, or with one no disk format uses, is
left to the user.
"""

from __future__ import annotations

import os

from hvrescue.errors import InputError

VHDX_EXTENSIONS = (".vhdx", ".avhdx")
VHD_EXTENSIONS = (".vhd", ".avhd")
RAW_EXTENSIONS = (".raw", ".img", ".bin", ".dd")
# Containers of other tools: never right for what hvrescue writes.
OTHER_DISK_EXTENSIONS = (".vmdk", ".qcow", ".qcow2", ".vdi", ".hdd", ".hds", ".e01", ".aff")

_FITTING = {"vhdx": VHDX_EXTENSIONS, "vhd": VHD_EXTENSIONS, "raw": RAW_EXTENSIONS}
_CONTRADICTING = {
    "vhdx": VHD_EXTENSIONS + RAW_EXTENSIONS + OTHER_DISK_EXTENSIONS + (".iso",),
    "vhd": VHDX_EXTENSIONS + RAW_EXTENSIONS + OTHER_DISK_EXTENSIONS + (".iso",),
    "raw": VHDX_EXTENSIONS + VHD_EXTENSIONS + OTHER_DISK_EXTENSIONS,
}


def check_output_name(path: str, fmt: str, like: str | None = None, merge: bool = False) -> None:
    """Refuse ``path`` for an output of format ``fmt`` ('vhdx', 'vhd' or 'raw') when its
    extension says another format. ``like`` (the input) picks the suggested extension: a
    differencing input's ``.avhdx`` stays ``.avhdx``."""
    stem, ext = os.path.splitext(path)
    if ext.lower() not in _CONTRADICTING[fmt]:
        return
    fitting = _FITTING[fmt]
    suggested = fitting[0]
    if like is not None:
        like_ext = os.path.splitext(like)[1].lower()
        if like_ext in fitting:
            suggested = like_ext
    key = (
        "error.output.extension.merge"
        if merge and fmt == "vhdx"
        else f"error.output.extension.{fmt}"
    )
    raise InputError(key, path=path, ext=ext, suggestion=stem + suggested)
