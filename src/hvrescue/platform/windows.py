"""The Windows twin: sparse outputs and allocated ranges through the Win32 API (ctypes), and the
user interface language.

NTFS grows a file that is not marked sparse by writing zeros up to every write beyond its valid
data length, and ``os.ftruncate`` (the C runtime's ``_chsize_s``) writes them itself: a 64 TiB
raw output would be 64 TiB on disk. So an output is marked sparse first (FSCTL_SET_SPARSE), its
end set with ``SetFileInformationByHandle(FileEndOfFileInfo)``, ranges punched with
FSCTL_SET_ZERO_DATA, and a source's data found with FSCTL_QUERY_ALLOCATED_RANGES.

Everything reaches the API through :func:`kernel32`, :func:`os_handle` and :func:`last_error`,
so the logic here runs anywhere against a stand-in (the suite's fake kernel32). ``ctypes`` is
imported by the functions that use it: a run that never calls the API never loads it (3 ms).
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Any, Protocol, cast

FSCTL_SET_SPARSE = 0x000900C4
FSCTL_SET_ZERO_DATA = 0x000980C8
FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
FILE_END_OF_FILE_INFO = 6  # FILE_INFO_BY_HANDLE_CLASS.FileEndOfFileInfo
ERROR_MORE_DATA = 234
# FILE_ALLOCATED_RANGE_BUFFER: LARGE_INTEGER FileOffset, Length.
_RANGE = struct.Struct("<qq")
RANGES_PER_CALL = 512
MAX_RANGES = 1_000_000
# Primary language ids (the low 10 bits of a LANGID) of the languages that have catalogues or
# that a user may plausibly run; others read as None (the next source of a language decides).
_PRIMARY_LANGUAGE = {0x09: "en", 0x11: "ja", 0x07: "de", 0x0C: "fr", 0x04: "zh", 0x12: "ko"}


class Kernel32(Protocol):
    """The part of kernel32.dll used here, with the Win32 signatures."""

    def DeviceIoControl(
        self,
        handle: int,
        code: int,
        inbuf: Any,
        insize: int,
        outbuf: Any,
        outsize: int,
        returned: Any,
        overlapped: Any,
    ) -> int: ...

    def SetFileInformationByHandle(
        self, handle: int, info_class: int, info: Any, size: int
    ) -> int: ...

    def GetUserDefaultUILanguage(self) -> int: ...


_loaded: list[Kernel32] = []

if sys.platform == "win32":
    import ctypes
    import msvcrt
    from ctypes import wintypes

    def _load() -> Kernel32:
        dll = ctypes.WinDLL("kernel32", use_last_error=True)
        dll.DeviceIoControl.argtypes = [
            wintypes.HANDLE,
            wintypes.DWORD,
            wintypes.LPVOID,
            wintypes.DWORD,
            wintypes.LPVOID,
            wintypes.DWORD,
            ctypes.POINTER(wintypes.DWORD),
            wintypes.LPVOID,
        ]
        dll.DeviceIoControl.restype = wintypes.BOOL
        dll.SetFileInformationByHandle.argtypes = [
            wintypes.HANDLE,
            ctypes.c_int,
            wintypes.LPVOID,
            wintypes.DWORD,
        ]
        dll.SetFileInformationByHandle.restype = wintypes.BOOL
        dll.GetUserDefaultUILanguage.argtypes = []
        dll.GetUserDefaultUILanguage.restype = wintypes.WORD
        return cast(Kernel32, dll)

    def os_handle(fd: int) -> int:
        """The Win32 HANDLE behind a C runtime descriptor."""
        return int(msvcrt.get_osfhandle(fd))

    def last_error() -> int:
        return int(ctypes.get_last_error())

else:

    def _load() -> Kernel32:
        raise OSError("kernel32 exists only on Windows")

    def os_handle(fd: int) -> int:
        raise OSError("Win32 handles exist only on Windows")

    def last_error() -> int:
        return 0


def kernel32() -> Kernel32:
    if not _loaded:
        _loaded.append(_load())
    return _loaded[0]


def _returned() -> Any:
    import ctypes

    return ctypes.pointer(ctypes.c_ulong(0))


def _failure(what: str) -> OSError:
    code = last_error()
    return OSError(5, f"{what} failed (Windows error {code})")


def make_sparse(fd: int) -> bool:
    """FSCTL_SET_SPARSE (no input buffer: "make sparse"); False where the volume cannot."""
    ok = kernel32().DeviceIoControl(
        os_handle(fd), FSCTL_SET_SPARSE, None, 0, None, 0, _returned(), None
    )
    return bool(ok)


def set_size(fd: int, size: int) -> None:
    """Set the end of file; a file that grows is marked sparse first, so nothing is written."""
    import ctypes

    if size > os.fstat(fd).st_size:
        make_sparse(fd)  # where it cannot be sparse, growing still works (slowly, as zeros)
    info = ctypes.create_string_buffer(struct.pack("<q", size), 8)
    if not kernel32().SetFileInformationByHandle(os_handle(fd), FILE_END_OF_FILE_INFO, info, 8):
        raise _failure("SetFileInformationByHandle(FileEndOfFileInfo)")


def punch(fd: int, offset: int, length: int) -> None:
    """FSCTL_SET_ZERO_DATA over ``[offset, offset+length)``: deallocated in a sparse file
    (marked sparse here), zeros written by the file system otherwise."""
    import ctypes

    make_sparse(fd)
    buf = ctypes.create_string_buffer(_RANGE.pack(offset, offset + length), _RANGE.size)
    ok = kernel32().DeviceIoControl(
        os_handle(fd), FSCTL_SET_ZERO_DATA, buf, _RANGE.size, None, 0, _returned(), None
    )
    if not ok:
        raise _failure("FSCTL_SET_ZERO_DATA")


def data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]] | None:
    """The allocated ``(start, end)`` ranges of ``[start, end)`` (FSCTL_QUERY_ALLOCATED_RANGES,
    asked again from the last range while the answer is ERROR_MORE_DATA), or None where the
    volume cannot tell. A file that is not sparse answers with one range: all of it."""
    import ctypes

    api, handle = kernel32(), os_handle(fd)
    out: list[tuple[int, int]] = []
    outbuf = ctypes.create_string_buffer(_RANGE.size * RANGES_PER_CALL)
    pos = start
    while pos < end:
        if len(out) >= MAX_RANGES:
            out.append((pos, end))
            break
        query = ctypes.create_string_buffer(_RANGE.pack(pos, end - pos), _RANGE.size)
        returned = _returned()
        ok = api.DeviceIoControl(
            handle,
            FSCTL_QUERY_ALLOCATED_RANGES,
            query,
            _RANGE.size,
            outbuf,
            len(outbuf),
            returned,
            None,
        )
        more = not ok and last_error() == ERROR_MORE_DATA
        if not ok and not more:
            return None
        count = min(int(returned.contents.value), len(outbuf)) // _RANGE.size
        if more and count == 0:
            return None  # no progress: never loop
        previous_end = -1  # a range may begin before ``pos`` (it holds it), never overlap
        for i in range(count):
            offset, length = _RANGE.unpack_from(outbuf.raw, i * _RANGE.size)
            if length < 0 or offset < previous_end:
                return None  # out of order or negative: trust none of it
            previous_end = offset + length
            lo, hi = max(offset, pos), min(previous_end, end)
            if hi > lo:
                out.append((lo, hi))
        if not more:
            break
        if previous_end <= pos:
            return None  # no progress: never loop
        pos = previous_end
    return out


def extended_path(path: str) -> str:
    """An absolute Windows path in its ``\\\\?\\`` form (``\\\\?\\UNC\\`` for a share)."""
    if path.startswith("\\\\?\\"):
        return path
    if path.startswith("\\\\"):  # \\server\share\...
        return "\\\\?\\UNC\\" + path[2:]
    return "\\\\?\\" + path


def ui_language() -> str | None:
    """The user interface language (GetUserDefaultUILanguage: 0x0411 is Japanese), as a
    two-letter code; None where it cannot be asked."""
    try:
        langid = int(kernel32().GetUserDefaultUILanguage())
    except (OSError, AttributeError, ValueError):
        return None
    return _PRIMARY_LANGUAGE.get(langid & 0x3FF)
