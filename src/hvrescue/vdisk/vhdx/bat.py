"""MS-VHDX 2.5 BAT: read it (bounded by the file) and validate every entry into findings.

An entry whose block (or sector bitmap block) overlaps another block, the header area, a
region or the log makes that block undefined (cause ``overlap``), and so does its partner:
which of them the bytes belong to cannot be known. Such blocks are never read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hvrescue.findings import Severity
from hvrescue.vdisk.layer import MAX_OVERLAP_RECORDS, find_overlaps
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.orphans import check_orphans

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage


BAT_SCAN_CHUNK = 4096  # entries per step when scanning the BAT
# Entries compared at once before looking chunk by chunk: a 64 TiB disk's BAT (2 M entries at
# 32 MiB blocks, 64 M at 1 MiB) is mostly one pattern, all zero or qemu's empty blocks.
BAT_SCAN_RUN = 64 * BAT_SCAN_CHUNK


def parse_bat(img: VhdxImage) -> None:
    region = img.regions.get("bat")
    if region is None:
        img.readable = False
        return
    needed = img.bat_entries_needed
    if needed * 8 > region.length:
        img.sink.add(
            "vhdx.bat.too-small",
            Severity.ERROR,
            region.file_offset,
            entries=needed,
            region_length=region.length,
        )
    # Never allocate by a number read from the file: what the file holds bounds the BAT (past
    # its end only the sectors the log writes: LastFileOffset is a claim, not data); the
    # blocks of entries it cuts off are undefined, and the truncation is reported.
    held_end = max(img.source.size, img.overlay.written_end)
    held = max(0, held_end - region.file_offset) // 8
    count = min(needed, region.length // 8, held)
    if count < needed:
        # The blocks past the BAT's end have no entry: unknown, not absent.
        cause = "truncated" if count == held and held < needed else "invalid-state"
        img.bat_short = (count, cause)
    raw, bad = img.read_file_checked(region.file_offset, count * 8)
    for lo, n in bad:
        img._add("io.read-error", Severity.ERROR, lo, length=n, structure="bat")
        first = (lo - region.file_offset) // 8
        last = (lo + n - region.file_offset - 1) // 8
        img.bat_unreadable.update(range(max(0, first), min(count, last + 1)))
    img.bat = memoryview(raw).cast("Q")
    validate_bat(img, region.file_offset)


def validate_bat(img: VhdxImage, bat_offset: int) -> None:
    bat = img.bat
    assert bat is not None
    counts: dict[str, int] = {}
    spans: list[tuple[int, int, int]] = []  # (start, end, bat index)
    cr1 = img.chunk_ratio + 1
    fsize = img.file_size
    for start, stop, zeroed in scan_bat(bat, cr1, img.data_blocks, skip_zeroed=True):
        if zeroed:
            # What qemu writes for empty blocks: every payload entry ZERO at offset 0, every
            # sector bitmap entry NOT_PRESENT; each would only be counted.
            sb_entries = stop // cr1 - start // cr1
            counts["zero"] = counts.get("zero", 0) + (stop - start) - sb_entries
            continue
        for index in range(start, stop):
            entry = bat[index]
            if entry == 0:
                continue
            validate_bat_entry(img, index, int(entry), cr1, fsize, bat_offset, counts, spans)
    # Zero entries were skipped in bulk; whatever payload block is not counted is absent.
    counted = sum(v for k, v in counts.items() if not k.startswith("sb_"))
    counts["not_present"] = counts.get("not_present", 0) + max(0, img.data_blocks - counted)
    img.bat_counts = counts
    check_overlaps(img, spans)
    check_orphans(img)
    needed_end = max((end for _start, end, _i in spans), default=0)
    if needed_end > img.file_size:
        img.sink.add(
            "file.truncated",
            Severity.ERROR,
            img.source.size,
            size=img.source.size,
            expected=needed_end,
            structure="blocks",
        )


def scan_bat(
    bat: memoryview, cr1: int, data_blocks: int, skip_zeroed: bool
) -> Iterator[tuple[int, int, bool]]:
    """The BAT's entries that are not all zero, ascending, as ``(start, stop, zeroed)`` ranges
    of whole BAT_SCAN_CHUNK chunks (the last may be shorter): ``zeroed`` for a range of empty
    blocks as qemu marks them (only with ``skip_zeroed``; see :func:`all_zeroed`), to be
    counted; otherwise the entries are to be looked at one by one. Long runs are compared at
    once (BAT_SCAN_RUN entries), in place: no copy of the BAT."""
    buf = _comparable(bat)
    count = len(bat)
    zero = bytes(min(count, BAT_SCAN_RUN) * 8)
    zeroed = zeroed_pattern(cr1, min(count, BAT_SCAN_RUN)) if skip_zeroed else b""
    for run in range(0, count, BAT_SCAN_RUN):
        run_stop = min(run + BAT_SCAN_RUN, count)
        if same_bytes(buf, run * 8, zero, (run_stop - run) * 8):
            continue
        if zeroed and all_zeroed(buf, run, run_stop, cr1, zeroed, data_blocks):
            yield run, run_stop, True
            continue
        for start in range(run, run_stop, BAT_SCAN_CHUNK):
            stop = min(start + BAT_SCAN_CHUNK, run_stop)
            if same_bytes(buf, start * 8, zero, (stop - start) * 8):
                continue
            if zeroed and all_zeroed(buf, start, stop, cr1, zeroed, data_blocks):
                yield start, stop, True
                continue
            yield start, stop, False


def _comparable(bat: memoryview) -> bytes | bytearray | memoryview:
    """The BAT's bytes as the object that holds them (compared in place), or a byte view."""
    held = bat.obj
    if isinstance(held, (bytes, bytearray)) and len(held) == bat.nbytes and bat.c_contiguous:
        return held
    return bat.cast("B")


def same_bytes(
    buf: bytes | bytearray | memoryview, offset: int, pattern: bytes | memoryview, length: int
) -> bool:
    """Whether ``buf[offset:offset+length]`` equals the first ``length`` bytes of ``pattern``."""
    if isinstance(buf, (bytes, bytearray)):
        # startswith compares in place (memcmp); a memoryview compared with bytes goes
        # element by element, 100x slower, and a copy costs as much as the comparison.
        return buf.startswith(memoryview(pattern)[:length], offset)
    return bytes(buf[offset : offset + length]) == bytes(memoryview(pattern)[:length])


def zeroed_pattern(cr1: int, entries: int = BAT_SCAN_CHUNK) -> bytes:
    """BAT entries of empty blocks as qemu writes them (payload ZERO, sector bitmap
    NOT_PRESENT), for ``entries`` entries starting at any phase of the chunk ratio."""
    payload = s.PAYLOAD_ZERO.to_bytes(8, "little")
    period = payload * (cr1 - 1) + bytes(8)
    return period * ((entries + cr1) // cr1 + 1)


def all_zeroed(
    raw: bytes | bytearray | memoryview,
    start: int,
    stop: int,
    cr1: int,
    zeroed: bytes,
    data_blocks: int,
) -> bool:
    """Whether entries [start, stop) are all empty blocks inside the virtual size (a ZERO entry
    past it is reported, so such a chunk is walked entry by entry). ``raw`` is the BAT's
    bytes; ``zeroed`` a :func:`zeroed_pattern` of at least ``stop - start`` entries."""
    last = stop - 1
    if last - last // cr1 >= data_blocks:
        return False
    phase = (start % cr1) * 8
    return same_bytes(raw, start * 8, memoryview(zeroed)[phase:], (stop - start) * 8)


def validate_bat_entry(
    img: VhdxImage,
    index: int,
    entry: int,
    cr1: int,
    fsize: int,
    bat_offset: int,
    counts: dict[str, int],
    spans: list[tuple[int, int, int]],
) -> None:
    state = entry & 7
    file_offset = (entry >> 20) << 20
    where = bat_offset + index * 8
    is_sb = index % cr1 == cr1 - 1
    if is_sb:
        name = "sb_" + s.SB_STATE_NAMES.get(state, "invalid")
        counts[name] = counts.get(name, 0) + 1
        if state not in s.SB_STATE_NAMES:
            img._add(
                "vhdx.bat.invalid-state",
                Severity.ERROR,
                where,
                index=index,
                state=state,
                kind="sector-bitmap",
            )
            return
        if state == s.SB_PRESENT:
            if not img.has_parent:  # 2.5.1: only differencing disks have sector bitmaps
                img._add(
                    "vhdx.bat.invalid-state",
                    Severity.WARNING,
                    where,
                    index=index,
                    state=state,
                    kind="sector-bitmap-without-parent",
                )
            check_block_extent(img, index, file_offset, s.MiB, fsize, where, spans)
        return
    block = index - index // cr1
    name = s.PAYLOAD_STATE_NAMES.get(state, "invalid")
    counts[name] = counts.get(name, 0) + 1
    if state not in s.PAYLOAD_STATE_NAMES or (
        state == s.PAYLOAD_PARTIALLY_PRESENT and not img.has_parent
    ):
        img._add(
            "vhdx.bat.invalid-state",
            Severity.ERROR,
            where,
            index=index,
            block=block,
            state=state,
            kind="payload",
        )
        return
    if block >= img.data_blocks and state != s.PAYLOAD_NOT_PRESENT:
        img._add(
            "vhdx.bat.invalid-state",
            Severity.WARNING,
            where,
            index=index,
            block=block,
            state=state,
            kind="beyond-virtual-size",
        )
        return
    if state in (s.PAYLOAD_FULLY_PRESENT, s.PAYLOAD_PARTIALLY_PRESENT):
        check_block_extent(img, index, file_offset, img.block_size, fsize, where, spans)
    if state == s.PAYLOAD_PARTIALLY_PRESENT:
        sb = img.bat_entry((block // img.chunk_ratio) * cr1 + cr1 - 1)
        if sb & 7 != s.SB_PRESENT:
            img._add(
                "vhdx.bat.invalid-state",
                Severity.ERROR,
                where,
                index=index,
                block=block,
                state=state,
                kind="partial-without-bitmap",
            )


def check_block_extent(
    img: VhdxImage,
    index: int,
    file_offset: int,
    length: int,
    fsize: int,
    where: int,
    spans: list[tuple[int, int, int]],
) -> None:
    if file_offset < s.HEADER_AREA:
        img._add(
            "vhdx.bat.overlap",
            Severity.ERROR,
            where,
            index=index,
            file_offset=file_offset,
            other="header",
        )
        img.overlapping.add(index)
        if len(img.overlaps) < MAX_OVERLAP_RECORDS:
            img.overlaps.append((file_offset, index, "header"))
        return
    if file_offset + length > fsize:
        img._add(
            "vhdx.bat.entry-beyond-eof",
            Severity.ERROR,
            where,
            index=index,
            file_offset=file_offset,
            length=length,
            file_size=fsize,
        )
    spans.append((file_offset, file_offset + length, index))


def check_overlaps(img: VhdxImage, spans: list[tuple[int, int, int]]) -> None:
    """Blocks whose file space overlaps another block, a region, or the log: every one of them
    is undefined (see :func:`hvrescue.vdisk.layer.find_overlaps`)."""
    fixed = [(e.file_offset, e.file_offset + e.length, e.name) for e in img.regions.values()]
    if img.header is not None and img.header.log_length:
        fixed.append((img.header.log_offset, img.header.log_offset + img.header.log_length, "log"))
    items: list[tuple[int, int, int | str]] = [(a, b, n) for a, b, n in fixed]
    items += [(a, b, i) for a, b, i in spans]
    marked, pairs, count = find_overlaps(items)
    img.overlapping |= marked
    for start, index, other in pairs:
        img._add(
            "vhdx.bat.overlap",
            Severity.ERROR,
            start,
            index=index,
            file_offset=start,
            other=str(other),
        )
        if len(img.overlaps) < MAX_OVERLAP_RECORDS:
            img.overlaps.append((start, index, other))
    if count > len(pairs):
        img._counts["vhdx.bat.overlap"] = (
            img._counts.get("vhdx.bat.overlap", 0) + count - len(pairs)
        )


def suspect(img: VhdxImage) -> Iterator[tuple[int, int]]:
    """Virtual ranges that may be undefined, from the BAT alone (see ``Layer.suspect``)."""
    if not img.readable or img.bat is None:
        return
    cr1 = img.chunk_ratio + 1
    fend = img.source.size  # past it only what the log writes is defined: map says
    blocks: set[int] = set()
    for index in img.bat_unreadable | img.overlapping:
        if index % cr1 == cr1 - 1:  # a bitmap entry: all blocks of its chunk
            first = (index // cr1) * img.chunk_ratio
            blocks.update(range(first, first + img.chunk_ratio))
        else:
            blocks.add(index - index // cr1)
    defined = (s.PAYLOAD_NOT_PRESENT, s.PAYLOAD_UNDEFINED, s.PAYLOAD_ZERO, s.PAYLOAD_UNMAPPED)
    for block, _index, entry in img._payload_entries(skip_zeroed=True):
        state = entry & 7
        if state in defined:
            continue
        if state != s.PAYLOAD_FULLY_PRESENT or ((entry >> 20) << 20) + img.block_size > fend:
            blocks.add(block)  # partial (bitmap may be lost), invalid, or cut off
    # The blocks past a short BAT: one range, however many blocks the size claims.
    tail = img.data_blocks
    if img.bat_short is not None:
        tail = max(0, img.bat_short[0] - img.bat_short[0] // cr1 - 1)
    for block in sorted(b for b in blocks if b < tail):
        yield img._block_range(block)
    if tail < img.data_blocks:
        lo = tail * img.block_size
        yield lo, img.size - lo


def file_to_virtual(img: VhdxImage, file_offset: int, length: int) -> list[tuple[int, int]]:
    """The virtual ranges whose data (or sector bitmap) lies in the file range; empty for
    structures (headers, region tables, log, BAT, metadata)."""
    if not img.readable or img.bat is None:
        return []
    lo, hi = file_offset, file_offset + length
    bs, cr = img.block_size, img.chunk_ratio
    cr1 = cr + 1
    out: list[tuple[int, int]] = []
    for index in range(len(img.bat)):
        entry = int(img.bat[index])
        if entry & 7 not in (s.PAYLOAD_FULLY_PRESENT, s.PAYLOAD_PARTIALLY_PRESENT):
            continue
        start = (entry >> 20) << 20
        if index % cr1 == cr:  # a sector bitmap block: the chunk's partial blocks
            if entry & 7 == s.SB_PRESENT and start < hi and lo < start + s.MiB:
                first = (index // cr1) * cr
                for block in range(first, min(first + cr, img.data_blocks)):
                    if img.bat_entry(block + block // cr) & 7 == s.PAYLOAD_PARTIALLY_PRESENT:
                        vlo = block * bs
                        out.append((vlo, min(bs, img.size - vlo)))
            continue
        if hi <= start or lo >= start + bs:
            continue
        block = index - index // cr1
        a, b = max(lo, start), min(hi, start + bs)
        vlo = block * bs + a - start
        out.append((vlo, min(b - a, img.size - vlo)))
    return sorted((a, n) for a, n in out if n > 0)
