"""MS-VHDX 2.2 headers and region tables, and 2.3 log discovery, validated into findings."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from typing import TYPE_CHECKING

from hvrescue.findings import Severity
from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.log import MAX_LOG_IN_MEMORY, LogScan, Overlay, scan_log

if TYPE_CHECKING:
    from hvrescue.vdisk.vhdx.image import VhdxImage


def parse_headers(img: VhdxImage) -> None:
    valid: list[tuple[int, s.Header]] = []
    for index, offset in enumerate(s.HEADER_OFFSETS):
        raw = img._raw(offset, s.HEADER_SIZE)
        hdr = s.Header.parse(raw)
        problems: list[str] = []
        if hdr.signature != s.HEADER_SIGNATURE:
            problems.append("signature")
        if crc32c_with_field_zeroed(raw, 4) != hdr.checksum:
            problems.append("checksum")
        if not problems:
            if hdr.version != 1:
                problems.append("version")
            if hdr.log_version != 0:
                problems.append("log-version")
            if (
                hdr.log_offset % s.MiB
                or hdr.log_length % s.MiB
                or (hdr.log_length and hdr.log_offset < s.HEADER_AREA)
            ):
                problems.append("log-fields")
        img.headers.append((offset, hdr, problems))
        if not problems:
            valid.append((index, hdr))
    for index, (offset, _hdr, problems) in enumerate(img.headers):
        if not problems:
            continue
        sev = Severity.WARNING if valid else Severity.CRITICAL
        for problem in problems:
            code = "vhdx.header.checksum" if problem == "checksum" else "vhdx.header.invalid"
            img.sink.add(code, sev, offset, copy=index + 1, problem=problem)
    if not valid:
        img.sink.add("vhdx.header.none-valid", Severity.CRITICAL, s.HEADER_OFFSETS[0])
        return
    # 2.2.2.1: the valid header with the greatest sequence number is the current one.
    img.header_index, img.header = max(valid, key=lambda v: v[1].sequence_number)
    if len(valid) == 2 and valid[0][1].sequence_number == valid[1][1].sequence_number:
        _same_sequence(img, valid[0][1], valid[1][1])
    if len(valid) == 1:
        img.sink.add(
            "vhdx.header.using-copy",
            Severity.INFO,
            s.HEADER_OFFSETS[img.header_index],
            copy=img.header_index + 1,
        )


def _same_sequence(img: VhdxImage, one: s.Header, two: s.Header) -> None:
    """Two valid headers with one sequence number must be identical (Disk2VHD writes such
    twins); if they differ, which one is current cannot be known (qemu refuses the file). The
    first copy is used: an error when the copies disagree about the log (whether and what to
    replay changes the content), a warning otherwise (identity only)."""
    if dataclasses.replace(one, checksum=0) == dataclasses.replace(two, checksum=0):
        return
    log = (one.log_guid, one.log_offset, one.log_length) != (
        two.log_guid,
        two.log_offset,
        two.log_length,
    )
    img.sink.add(
        "vhdx.header.invalid",
        Severity.ERROR if log else Severity.WARNING,
        s.HEADER_OFFSETS[1],
        copy=2,
        problem="same-sequence-differs",
    )


def region_problems(table: s.RegionTable, raw: bytes) -> list[str]:
    problems: list[str] = []
    if table.signature != s.REGION_SIGNATURE:
        problems.append("signature")
    if crc32c_with_field_zeroed(raw, 4) != table.checksum:
        problems.append("checksum")
    if problems:
        return problems
    if table.entry_count > s.MAX_REGION_ENTRIES:
        problems.append("entry-count")
    seen: set[uuid.UUID] = set()
    spans: list[tuple[int, int, str]] = []
    for entry in table.entries:
        if entry.guid in seen:
            problems.append(f"duplicate:{entry.name}")
        seen.add(entry.guid)
        if entry.guid not in s.KNOWN_REGIONS and entry.required:
            problems.append(f"unknown-required:{entry.name}")
        if entry.file_offset % s.MiB or entry.length % s.MiB or entry.length == 0:
            problems.append(f"alignment:{entry.name}")
        if entry.file_offset < s.HEADER_AREA:
            problems.append(f"in-header-area:{entry.name}")
        spans.append((entry.file_offset, entry.file_offset + entry.length, entry.name))
    for needed in (s.BAT_GUID, s.METADATA_GUID):
        if needed not in seen:
            problems.append(f"missing:{s.KNOWN_REGIONS[needed]}")
    spans.sort()
    for (_a0, a1, an), (b0, _b1, bn) in itertools.pairwise(spans):
        if b0 < a1:
            problems.append(f"overlap:{an}:{bn}")
    return problems


def parse_region_tables(img: VhdxImage) -> None:
    usable: list[tuple[int, s.RegionTable]] = []
    for index, offset in enumerate(s.REGION_TABLE_OFFSETS):
        raw = img._raw(offset, s.REGION_TABLE_SIZE)
        table = s.RegionTable.parse(raw)
        problems = region_problems(table, raw)
        img.region_tables.append((offset, table, problems))
        if not problems:
            usable.append((index, table))
    for index, (offset, _t, problems) in enumerate(img.region_tables):
        sev = Severity.WARNING if usable else Severity.CRITICAL
        for problem in problems:
            code = (
                "vhdx.region-table.checksum"
                if problem == "checksum"
                else "vhdx.region-table.invalid"
            )
            img.sink.add(code, sev, offset, copy=index + 1, problem=problem)
    if not usable:
        img.sink.add("vhdx.region-table.none-valid", Severity.CRITICAL, s.REGION_TABLE_OFFSETS[0])
        return
    index, table = usable[0]
    if len(usable) == 2 and usable[0][1].entries != usable[1][1].entries:
        img.sink.add("vhdx.region-table.mismatch", Severity.WARNING, s.REGION_TABLE_OFFSETS[1])
    elif len(usable) == 1:
        img.sink.add(
            "vhdx.region-table.using-copy",
            Severity.INFO,
            s.REGION_TABLE_OFFSETS[index],
            copy=index + 1,
        )
    img.regions = {e.name: e for e in table.entries}
    for entry in table.entries:
        if entry.file_offset + entry.length > img.source.size:
            img.sink.add(
                "file.truncated",
                Severity.ERROR,
                entry.file_offset,
                size=img.source.size,
                expected=entry.file_offset + entry.length,
                structure=entry.name,
            )


def parse_log(img: VhdxImage) -> None:
    hdr = img.header
    assert hdr is not None
    if hdr.log_guid == s.ZERO_GUID or hdr.log_length == 0:
        return
    for entry in img.regions.values():
        if (
            entry.file_offset < hdr.log_offset + hdr.log_length
            and hdr.log_offset < entry.file_offset + entry.length
        ):
            img.sink.add(
                "vhdx.region-table.invalid",
                Severity.ERROR,
                entry.file_offset,
                copy=0,
                problem=f"overlap:log:{entry.name}",
            )
    if hdr.log_offset + hdr.log_length > img.source.size:
        img.sink.add("vhdx.log.corrupt", Severity.ERROR, hdr.log_offset, problem="beyond-eof")
        return
    if hdr.log_length > MAX_LOG_IN_MEMORY:
        img.sink.add("vhdx.log.corrupt", Severity.ERROR, hdr.log_offset, problem="too-large")
        return
    scan = scan_log(img._raw(hdr.log_offset, hdr.log_length), hdr.log_guid)
    img.log_scan = scan
    if scan.invalid_entries:
        pos, reason = scan.invalid_entries[0]
        img.sink.add(
            "vhdx.log.corrupt",
            Severity.WARNING,
            hdr.log_offset + pos,
            problem=reason,
            count=len(scan.invalid_entries),
        )
    for problem in scan.problems:
        img.sink.add("vhdx.log.corrupt", Severity.WARNING, hdr.log_offset, problem=problem)
    for problem in _misplaced_writes(scan, hdr):
        img.sink.add(
            "vhdx.log.corrupt",
            Severity.WARNING,
            hdr.log_offset,
            key=f"vhdx.log.corrupt.{problem}",
            problem=problem,
        )
    if not scan.needs_replay:
        img.sink.add(
            "vhdx.log.empty", Severity.INFO, hdr.log_offset, log_guid=s.guid_str(hdr.log_guid)
        )
        return
    head = scan.active[-1].header
    img.overlay = Overlay.from_scan(scan)
    img.sink.add(
        "vhdx.log.replay-needed",
        Severity.WARNING,
        hdr.log_offset,
        entries=len(scan.active),
        first_sequence=scan.active[0].header.sequence_number,
        last_sequence=head.sequence_number,
        sectors=len(img.overlay.touched_offsets),
    )
    if head.flushed_file_offset > img.source.size:
        img.sink.add(
            "vhdx.log.corrupt",
            Severity.ERROR,
            hdr.log_offset,
            problem="file-shorter-than-flushed-offset",
            flushed=head.flushed_file_offset,
            size=img.source.size,
        )


def _misplaced_writes(scan: LogScan, hdr: s.Header) -> list[str]:
    """Writes of the active log into the header section (headers and region tables are
    updated in place, never through the log) or into the log itself: not Hyper-V's. They are
    replayed in memory as written, but the structures were parsed as the file holds them, so
    what a replaying host would make of them is not what is read here."""
    log_end = hdr.log_offset + hdr.log_length
    found: list[str] = []
    for entry in scan.active:
        for off, length, _ in entry.ops:
            if off < s.HEADER_AREA and "write-into-header-area" not in found:
                found.append("write-into-header-area")
            if off < log_end and hdr.log_offset < off + length and "write-into-log" not in found:
                found.append("write-into-log")
    return found
