"""File space that holds data although no BAT entry, region or the log refers to it.

A BAT page zeroed by a storage failure (or a bit flip in an entry's offset) turns the blocks
it described into "not present": every reader, qemu and Hyper-V included, then reads zeros
there and nothing in the BAT itself looks wrong. What betrays it is the data left behind in
the file. Each 1 MiB unit of the file that nothing refers to is probed (its first 4 KiB, the
cost bounded by MAX_PROBES); units holding data are reported, not read as the lost blocks:
which virtual block they belonged to is not known.

The finding is informational: a crash between writing a new block and logging its BAT entry
leaves the same trace (qemu's iotest 070 image holds 2 MiB of it), and what every reader sees
is the same either way. It names where the leftover data lies, for whoever recovers by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hvrescue.findings import Severity
from hvrescue.vdisk.vhdx import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage

PROBE = 4096
MAX_PROBES = 65536  # 64 GiB of unreferenced file space looked at, at most


def check_orphans(img: VhdxImage) -> None:
    from hvrescue.vdisk.vhdx.bat import scan_bat

    bat = img.bat
    if bat is None:
        return
    fsize = img.source.size
    units = -(-fsize // s.MiB)
    held = bytearray(units)  # one byte per MiB of the file: referred to by something

    def hold(lo: int, hi: int) -> None:
        a, b = lo // s.MiB, min(units, -(-hi // s.MiB))
        if a < b:
            held[a:b] = b"\x01" * (b - a)

    hold(0, s.HEADER_AREA)
    for e in img.regions.values():
        hold(e.file_offset, e.file_offset + e.length)
    if img.header is not None and img.header.log_length:
        hold(img.header.log_offset, img.header.log_offset + img.header.log_length)
    cr1 = img.chunk_ratio + 1
    for start, stop, zeroed in scan_bat(bat, cr1, img.data_blocks, skip_zeroed=True):
        if zeroed:
            continue
        for index in range(start, stop):
            offset = (int(bat[index]) >> 20) << 20  # any state: an unmapped block keeps space
            if offset:
                hold(offset, offset + (s.MiB if index % cr1 == cr1 - 1 else img.block_size))
    found, first, probes = 0, -1, 0
    unit = held.find(0)
    while 0 <= unit < units and probes < MAX_PROBES:
        probes += 1
        offset = unit * s.MiB
        if img.read_file(offset, min(PROBE, fsize - offset)).strip(b"\0"):
            found += 1
            first = offset if first < 0 else first
        unit = held.find(0, unit + 1)
    if found:
        img.sink.add(
            "vhdx.bat.orphan-data",
            Severity.INFO,
            first,
            units=found,
            file_offset=first,
        )
