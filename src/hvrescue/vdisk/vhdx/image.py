"""A VHDX/AVHDX file: parse, validate every structure into findings, replay the log in memory,
and map virtual ranges to this file's data (MS-VHDX v1.0).

Damage is data: nothing here raises on a bad file. Problems become findings; the structure's
second copy is used where one exists; ``readable`` says whether reading can go on at all.
"""

from __future__ import annotations

import itertools
import struct
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from hvrescue.errors import UnreadableRangeError
from hvrescue.findings import FindingSink, Severity
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.crc import crc32c_with_field_zeroed
from hvrescue.vdisk.layer import ParentRef, Run, RunKind, bitmap_runs
from hvrescue.vdisk.vhdx import structures as s
from hvrescue.vdisk.vhdx.log import MAX_LOG_IN_MEMORY, LogScan, Overlay, scan_log

# More findings of one kind than this in one file are summarised, not listed one by one.
MAX_FINDINGS_PER_CODE = 20
MAX_METADATA_REGION = 64 * s.MiB
BAT_SCAN_CHUNK = 4096  # entries per step when scanning the BAT


class VhdxImage:
    format = "vhdx"

    def __init__(self, source: ReadOnlySource) -> None:
        self.source = source
        self.path = source.path
        self.sink = FindingSink(self.path)
        self.findings = self.sink.items
        self.readable = False
        self.overlay = Overlay()
        self.identifier: s.FileIdentifier | None = None
        self.headers: list[tuple[int, s.Header | None, list[str]]] = []
        self.header: s.Header | None = None
        self.header_index: int | None = None
        self.region_tables: list[tuple[int, s.RegionTable | None, list[str]]] = []
        self.regions: dict[str, s.RegionEntry] = {}
        self.log_scan: LogScan | None = None
        self.metadata_table: s.MetadataTable | None = None
        self.metadata: dict[str, Any] = {}
        self.parent_locator: s.ParentLocator | None = None
        self.size = 0
        self.block_size = 0
        self.logical_sector_size = 512
        self.physical_sector_size = 4096
        self.has_parent = False
        self.leave_blocks_allocated = False
        self.chunk_ratio = 0
        self.data_blocks = 0
        self.bat: memoryview | None = None
        self.bat_counts: dict[str, int] = {}
        self._bitmap_cache: OrderedDict[int, bytes] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._parse()

    # ------------------------------------------------------------------ reading the file
    @classmethod
    def open(cls, path: str) -> VhdxImage:
        return cls(ReadOnlySource(path))

    def close(self) -> None:
        self.source.close()

    @property
    def file_size(self) -> int:
        # After replay the file is as long as the log says it must be (LastFileOffset).
        return max(self.source.size, self.overlay.extent)

    def _raw(self, offset: int, length: int) -> bytes:
        """Structure read: unreadable ranges become a finding and zeros, short reads zeros."""
        try:
            data = self.source.read(offset, length)
        except UnreadableRangeError as exc:
            self._add(
                "io.read-error",
                Severity.ERROR,
                exc.offset,
                length=exc.length,
                errno=exc.params.get("errno"),
            )
            data = self.source.read(offset, length, tolerant=True)
        if len(data) < length:
            data += bytes(length - len(data))
        return data

    def read_file(self, file_offset: int, length: int) -> bytes:
        """File bytes as they are after log replay; beyond the end of file reads as zeros."""
        data = self.source.read(file_offset, length, tolerant=True)
        if self.overlay.empty and len(data) == length:
            return data
        buf = bytearray(data)
        if len(buf) < length:
            buf += bytes(length - len(buf))
        self.overlay.patch(file_offset, buf)
        return bytes(buf)

    def _add(self, code: str, severity: Severity, offset: int | None = None, **params: Any) -> None:
        n = self._counts.get(code, 0) + 1
        self._counts[code] = n
        if n <= MAX_FINDINGS_PER_CODE:
            self.sink.add(code, severity, offset, **params)

    def _summarise(self) -> None:
        for code, n in self._counts.items():
            if n > MAX_FINDINGS_PER_CODE:
                sev = max(f.severity for f in self.findings if f.code == code)
                self.sink.add(
                    code, sev, None, key="finding.more", count=n - MAX_FINDINGS_PER_CODE, of=code
                )

    # ------------------------------------------------------------------ parsing
    def _parse(self) -> None:
        size = self.source.size
        if size == 0:
            self.sink.add("file.empty", Severity.CRITICAL, 0)
            return
        if size < s.REGION_TABLE_OFFSETS[1] + s.REGION_TABLE_SIZE:
            self.sink.add(
                "file.truncated", Severity.CRITICAL, size, size=size, expected=s.HEADER_AREA
            )
        ident = self._raw(0, 64 * s.KiB)
        self.identifier = s.FileIdentifier.parse(ident)
        if self.identifier.signature != s.FILE_SIGNATURE:
            self.sink.add(
                "vhdx.identifier.signature",
                Severity.ERROR,
                0,
                found=self.identifier.signature.hex(),
            )
        self._parse_headers()
        self._parse_region_tables()
        if self.header is not None:
            self._parse_log()
        if not self._parse_metadata():
            self._summarise()
            return
        self._parse_bat()
        self._summarise()

    def _parse_headers(self) -> None:
        valid: list[tuple[int, s.Header]] = []
        for index, offset in enumerate(s.HEADER_OFFSETS):
            raw = self._raw(offset, s.HEADER_SIZE)
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
            self.headers.append((offset, hdr, problems))
            if not problems:
                valid.append((index, hdr))
        for index, (offset, _hdr, problems) in enumerate(self.headers):
            if not problems:
                continue
            sev = Severity.WARNING if valid else Severity.CRITICAL
            for problem in problems:
                code = "vhdx.header.checksum" if problem == "checksum" else "vhdx.header.invalid"
                self.sink.add(code, sev, offset, copy=index + 1, problem=problem)
        if not valid:
            self.sink.add("vhdx.header.none-valid", Severity.CRITICAL, s.HEADER_OFFSETS[0])
            return
        # 2.2.2.1: the valid header with the greatest sequence number is the current one.
        self.header_index, self.header = max(valid, key=lambda v: v[1].sequence_number)
        if len(valid) == 1:
            self.sink.add(
                "vhdx.header.using-copy",
                Severity.INFO,
                s.HEADER_OFFSETS[self.header_index],
                copy=self.header_index + 1,
            )

    def _region_problems(self, table: s.RegionTable, raw: bytes) -> list[str]:
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

    def _parse_region_tables(self) -> None:
        usable: list[tuple[int, s.RegionTable]] = []
        for index, offset in enumerate(s.REGION_TABLE_OFFSETS):
            raw = self._raw(offset, s.REGION_TABLE_SIZE)
            table = s.RegionTable.parse(raw)
            problems = self._region_problems(table, raw)
            self.region_tables.append((offset, table, problems))
            if not problems:
                usable.append((index, table))
        for index, (offset, _t, problems) in enumerate(self.region_tables):
            sev = Severity.WARNING if usable else Severity.CRITICAL
            for problem in problems:
                code = (
                    "vhdx.region-table.checksum"
                    if problem == "checksum"
                    else "vhdx.region-table.invalid"
                )
                self.sink.add(code, sev, offset, copy=index + 1, problem=problem)
        if not usable:
            self.sink.add(
                "vhdx.region-table.none-valid", Severity.CRITICAL, s.REGION_TABLE_OFFSETS[0]
            )
            return
        index, table = usable[0]
        if len(usable) == 2 and usable[0][1].entries != usable[1][1].entries:
            self.sink.add("vhdx.region-table.mismatch", Severity.WARNING, s.REGION_TABLE_OFFSETS[1])
        elif len(usable) == 1:
            self.sink.add(
                "vhdx.region-table.using-copy",
                Severity.INFO,
                s.REGION_TABLE_OFFSETS[index],
                copy=index + 1,
            )
        self.regions = {e.name: e for e in table.entries}
        for entry in table.entries:
            if entry.file_offset + entry.length > self.source.size:
                self.sink.add(
                    "file.truncated",
                    Severity.ERROR,
                    entry.file_offset,
                    size=self.source.size,
                    expected=entry.file_offset + entry.length,
                    structure=entry.name,
                )

    def _parse_log(self) -> None:
        hdr = self.header
        assert hdr is not None
        if hdr.log_guid == s.ZERO_GUID or hdr.log_length == 0:
            return
        for entry in self.regions.values():
            if (
                entry.file_offset < hdr.log_offset + hdr.log_length
                and hdr.log_offset < entry.file_offset + entry.length
            ):
                self.sink.add(
                    "vhdx.region-table.invalid",
                    Severity.ERROR,
                    entry.file_offset,
                    copy=0,
                    problem=f"overlap:log:{entry.name}",
                )
        if hdr.log_offset + hdr.log_length > self.source.size:
            self.sink.add("vhdx.log.corrupt", Severity.ERROR, hdr.log_offset, problem="beyond-eof")
            return
        if hdr.log_length > MAX_LOG_IN_MEMORY:
            self.sink.add("vhdx.log.corrupt", Severity.ERROR, hdr.log_offset, problem="too-large")
            return
        scan = scan_log(self._raw(hdr.log_offset, hdr.log_length), hdr.log_guid)
        self.log_scan = scan
        if scan.invalid_entries:
            pos, reason = scan.invalid_entries[0]
            self.sink.add(
                "vhdx.log.corrupt",
                Severity.WARNING,
                hdr.log_offset + pos,
                problem=reason,
                count=len(scan.invalid_entries),
            )
        for problem in scan.problems:
            self.sink.add("vhdx.log.corrupt", Severity.WARNING, hdr.log_offset, problem=problem)
        if not scan.needs_replay:
            self.sink.add(
                "vhdx.log.empty", Severity.INFO, hdr.log_offset, log_guid=s.guid_str(hdr.log_guid)
            )
            return
        head = scan.active[-1].header
        self.overlay = Overlay.from_scan(scan)
        self.sink.add(
            "vhdx.log.replay-needed",
            Severity.WARNING,
            hdr.log_offset,
            entries=len(scan.active),
            first_sequence=scan.active[0].header.sequence_number,
            last_sequence=head.sequence_number,
            sectors=len(self.overlay.touched_offsets),
        )
        if head.flushed_file_offset > self.source.size:
            self.sink.add(
                "vhdx.log.corrupt",
                Severity.ERROR,
                hdr.log_offset,
                problem="file-shorter-than-flushed-offset",
                flushed=head.flushed_file_offset,
                size=self.source.size,
            )

    # ------------------------------------------------------------------ metadata (2.6)
    def _parse_metadata(self) -> bool:
        region = self.regions.get("metadata")
        if region is None:
            return False
        length = min(
            region.length, MAX_METADATA_REGION, max(0, self.file_size - region.file_offset)
        )
        raw = self.read_file(region.file_offset, length)
        if len(raw) < 64 * s.KiB:
            raw += bytes(64 * s.KiB - len(raw))  # the table itself; a short file reads as zeros
        table = s.MetadataTable.parse(raw)
        self.metadata_table = table
        base = region.file_offset
        if table.signature != s.METADATA_SIGNATURE:
            self.sink.add("vhdx.metadata.invalid", Severity.CRITICAL, base, problem="signature")
            return False
        if table.entry_count > s.MAX_METADATA_ENTRIES:
            self.sink.add(
                "vhdx.metadata.invalid",
                Severity.ERROR,
                base,
                problem="entry-count",
                count=table.entry_count,
            )
        items: dict[uuid.UUID, bytes] = {}
        for entry in table.entries:
            if entry.item_id in items:
                self.sink.add(
                    "vhdx.metadata.invalid", Severity.ERROR, base, problem=f"duplicate:{entry.name}"
                )
                continue
            if entry.length and (entry.offset < 64 * s.KiB or entry.offset + entry.length > length):
                self.sink.add(
                    "vhdx.metadata.invalid",
                    Severity.ERROR,
                    base + entry.offset,
                    problem=f"out-of-region:{entry.name}",
                )
                continue
            if entry.item_id not in s.KNOWN_METADATA:
                if entry.is_required:
                    self.sink.add(
                        "vhdx.metadata.invalid",
                        Severity.ERROR,
                        base + entry.offset,
                        problem=f"unknown-required:{entry.name}",
                    )
                continue
            items[entry.item_id] = raw[entry.offset : entry.offset + entry.length]
        return self._metadata_items(items, base, table)

    def _item_offset(self, table: s.MetadataTable, base: int, item: uuid.UUID) -> int:
        for entry in table.entries:
            if entry.item_id == item:
                return base + entry.offset
        return base

    def _metadata_items(
        self, items: dict[uuid.UUID, bytes], base: int, table: s.MetadataTable
    ) -> bool:
        def bad(
            item: uuid.UUID, problem: str, sev: Severity = Severity.CRITICAL, **params: Any
        ) -> None:
            self.sink.add(
                "vhdx.metadata.invalid",
                sev,
                self._item_offset(table, base, item),
                item=s.KNOWN_METADATA[item],
                problem=problem,
                **params,
            )

        essential_ok = True
        for item in (s.FILE_PARAMETERS, s.VIRTUAL_DISK_SIZE, s.LOGICAL_SECTOR_SIZE):
            if item not in items:
                self.sink.add(
                    "vhdx.metadata.missing-item",
                    Severity.CRITICAL,
                    base,
                    item=s.KNOWN_METADATA[item],
                )
                essential_ok = False
        for item in (s.PHYSICAL_SECTOR_SIZE, s.PAGE83_DATA):
            if item not in items:
                self.sink.add(
                    "vhdx.metadata.missing-item", Severity.ERROR, base, item=s.KNOWN_METADATA[item]
                )
        if s.FILE_PARAMETERS in items:
            data = items[s.FILE_PARAMETERS]
            if len(data) < 8:
                bad(s.FILE_PARAMETERS, "length")
                essential_ok = False
            else:
                bsize, flags = struct.unpack_from("<II", data)
                self.leave_blocks_allocated = bool(flags & 1)
                self.has_parent = bool(flags & 2)
                self.metadata["block_size"] = bsize
                self.metadata["leave_blocks_allocated"] = self.leave_blocks_allocated
                self.metadata["has_parent"] = self.has_parent
                if bsize < s.MiB or bsize > 256 * s.MiB or bsize & (bsize - 1):
                    bad(s.FILE_PARAMETERS, "block-size", value=bsize)
                    essential_ok = False
                else:
                    self.block_size = bsize
        if s.LOGICAL_SECTOR_SIZE in items:
            data = items[s.LOGICAL_SECTOR_SIZE]
            value = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
            self.metadata["logical_sector_size"] = value
            if value not in (512, 4096):
                bad(s.LOGICAL_SECTOR_SIZE, "value", value=value)
                essential_ok = False
            else:
                self.logical_sector_size = value
        if s.PHYSICAL_SECTOR_SIZE in items:
            data = items[s.PHYSICAL_SECTOR_SIZE]
            value = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
            self.metadata["physical_sector_size"] = value
            if value not in (512, 4096):
                bad(s.PHYSICAL_SECTOR_SIZE, "value", Severity.ERROR, value=value)
            else:
                self.physical_sector_size = value
        if s.VIRTUAL_DISK_SIZE in items:
            data = items[s.VIRTUAL_DISK_SIZE]
            value = struct.unpack_from("<Q", data)[0] if len(data) >= 8 else 0
            self.metadata["virtual_disk_size"] = value
            if value == 0 or value > s.MAX_VIRTUAL_SIZE or value % self.logical_sector_size:
                bad(s.VIRTUAL_DISK_SIZE, "value", value=value)
                essential_ok = False
            else:
                self.size = value
        if s.PAGE83_DATA in items:
            data = items[s.PAGE83_DATA]
            if len(data) < 16:
                bad(s.PAGE83_DATA, "length", Severity.ERROR)
            else:
                self.metadata["virtual_disk_id"] = s.guid_str(s.guid(data))
        if self.has_parent:
            if s.PARENT_LOCATOR not in items:
                self.sink.add(
                    "vhdx.metadata.missing-item", Severity.ERROR, base, item="parent_locator"
                )
            else:
                self._parse_parent_locator(items[s.PARENT_LOCATOR], base, table)
        elif s.PARENT_LOCATOR in items:
            self.sink.add(
                "vhdx.metadata.invalid",
                Severity.WARNING,
                self._item_offset(table, base, s.PARENT_LOCATOR),
                item="parent_locator",
                problem="without-has-parent",
            )
        if not essential_ok:
            return False
        self.chunk_ratio = s.chunk_ratio(self.logical_sector_size, self.block_size)
        self.data_blocks = -(-self.size // self.block_size)
        self.readable = True
        return True

    def _parse_parent_locator(self, data: bytes, base: int, table: s.MetadataTable) -> None:
        loc = s.ParentLocator.parse(data)
        self.parent_locator = loc
        offset = self._item_offset(table, base, s.PARENT_LOCATOR)
        for problem in loc.problems:
            self.sink.add(
                "vhdx.metadata.invalid",
                Severity.ERROR,
                offset,
                item="parent_locator",
                problem=problem,
            )
        if loc.locator_type != s.VHDX_PARENT_LOCATOR_TYPE:
            self.sink.add(
                "vhdx.metadata.invalid",
                Severity.ERROR,
                offset,
                item="parent_locator",
                problem="locator-type",
                value=s.guid_str(loc.locator_type),
            )
        linkage = loc.entries.get("parent_linkage")
        if linkage is None:
            self.sink.add(
                "vhdx.metadata.missing-item",
                Severity.ERROR,
                offset,
                item="parent_locator.parent_linkage",
            )
        elif _parse_guid_text(linkage) is None:
            self.sink.add(
                "vhdx.metadata.invalid",
                Severity.ERROR,
                offset,
                item="parent_locator",
                problem="parent_linkage",
                value=linkage,
            )
        if not any(
            k in loc.entries for k in ("relative_path", "volume_path", "absolute_win32_path")
        ):
            self.sink.add(
                "vhdx.metadata.missing-item", Severity.ERROR, offset, item="parent_locator.path"
            )

    # ------------------------------------------------------------------ BAT (2.5)
    @property
    def sector_bitmap_blocks(self) -> int:
        return -(-self.data_blocks // self.chunk_ratio) if self.chunk_ratio else 0

    @property
    def bat_entries_needed(self) -> int:
        if self.has_parent:
            return self.sector_bitmap_blocks * (self.chunk_ratio + 1)
        return self.data_blocks + (self.data_blocks - 1) // self.chunk_ratio

    def _parse_bat(self) -> None:
        region = self.regions.get("bat")
        if region is None:
            self.readable = False
            return
        needed = self.bat_entries_needed
        if needed * 8 > region.length:
            self.sink.add(
                "vhdx.bat.too-small",
                Severity.ERROR,
                region.file_offset,
                entries=needed,
                region_length=region.length,
            )
        # Never allocate by a number read from the file: what the file holds bounds the BAT;
        # entries past the end read as NOT_PRESENT (and the truncation is reported).
        held = max(0, self.file_size - region.file_offset) // 8
        count = min(needed, region.length // 8, held)
        raw = self.read_file(region.file_offset, count * 8)
        self.bat = memoryview(raw).cast("Q")
        self._validate_bat(region.file_offset)

    def bat_entry(self, index: int) -> int:
        bat = self.bat
        if bat is None or index >= len(bat):
            return 0
        return int(bat[index])

    def _validate_bat(self, bat_offset: int) -> None:
        bat = self.bat
        assert bat is not None
        counts: dict[str, int] = {}
        spans: list[tuple[int, int, int]] = []  # (start, end, bat index)
        cr1 = self.chunk_ratio + 1
        fsize = self.file_size
        zero_chunk = bytes(BAT_SCAN_CHUNK * 8)
        raw = bat.cast("B")
        for start in range(0, len(bat), BAT_SCAN_CHUNK):
            stop = min(start + BAT_SCAN_CHUNK, len(bat))
            if raw[start * 8 : stop * 8] == zero_chunk[: (stop - start) * 8]:
                continue
            for index in range(start, stop):
                entry = bat[index]
                if entry == 0:
                    continue
                self._validate_bat_entry(index, int(entry), cr1, fsize, bat_offset, counts, spans)
        # Zero entries were skipped in bulk; whatever payload block is not counted is absent.
        counted = sum(v for k, v in counts.items() if not k.startswith("sb_"))
        counts["not_present"] = counts.get("not_present", 0) + max(0, self.data_blocks - counted)
        self.bat_counts = counts
        self._check_overlaps(spans)
        needed_end = max((end for _start, end, _i in spans), default=0)
        if needed_end > self.file_size:
            self.sink.add(
                "file.truncated",
                Severity.ERROR,
                self.source.size,
                size=self.source.size,
                expected=needed_end,
                structure="blocks",
            )

    def _validate_bat_entry(
        self,
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
                self._add(
                    "vhdx.bat.invalid-state",
                    Severity.ERROR,
                    where,
                    index=index,
                    state=state,
                    kind="sector-bitmap",
                )
                return
            if state == s.SB_PRESENT:
                self._check_block_extent(index, file_offset, s.MiB, fsize, where, spans)
            return
        block = index - index // cr1
        name = s.PAYLOAD_STATE_NAMES.get(state, "invalid")
        counts[name] = counts.get(name, 0) + 1
        if state not in s.PAYLOAD_STATE_NAMES or (
            state == s.PAYLOAD_PARTIALLY_PRESENT and not self.has_parent
        ):
            self._add(
                "vhdx.bat.invalid-state",
                Severity.ERROR,
                where,
                index=index,
                block=block,
                state=state,
                kind="payload",
            )
            return
        if block >= self.data_blocks and state != s.PAYLOAD_NOT_PRESENT:
            self._add(
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
            self._check_block_extent(index, file_offset, self.block_size, fsize, where, spans)
        if state == s.PAYLOAD_PARTIALLY_PRESENT:
            sb = self.bat_entry((block // self.chunk_ratio) * cr1 + cr1 - 1)
            if sb & 7 != s.SB_PRESENT:
                self._add(
                    "vhdx.bat.invalid-state",
                    Severity.ERROR,
                    where,
                    index=index,
                    block=block,
                    state=state,
                    kind="partial-without-bitmap",
                )

    def _check_block_extent(
        self,
        index: int,
        file_offset: int,
        length: int,
        fsize: int,
        where: int,
        spans: list[tuple[int, int, int]],
    ) -> None:
        if file_offset < s.HEADER_AREA:
            self._add(
                "vhdx.bat.overlap",
                Severity.ERROR,
                where,
                index=index,
                file_offset=file_offset,
                other="header",
            )
            return
        if file_offset + length > fsize:
            self._add(
                "vhdx.bat.entry-beyond-eof",
                Severity.ERROR,
                where,
                index=index,
                file_offset=file_offset,
                length=length,
                file_size=fsize,
            )
        spans.append((file_offset, file_offset + length, index))

    def _check_overlaps(self, spans: list[tuple[int, int, int]]) -> None:
        fixed = [(e.file_offset, e.file_offset + e.length, e.name) for e in self.regions.values()]
        if self.header is not None and self.header.log_length:
            fixed.append(
                (self.header.log_offset, self.header.log_offset + self.header.log_length, "log")
            )
        items: list[tuple[int, int, str | int]] = [(a, b, n) for a, b, n in fixed]
        items += [(a, b, i) for a, b, i in spans]
        items.sort(key=lambda t: (t[0], t[1]))
        reach_end, reach_who = -1, None
        for start, end, who in items:
            if start < reach_end and isinstance(who, int) | isinstance(reach_who, int):
                index = who if isinstance(who, int) else reach_who
                other = reach_who if isinstance(who, int) else who
                self._add(
                    "vhdx.bat.overlap",
                    Severity.ERROR,
                    start,
                    index=index,
                    file_offset=start,
                    other=str(other),
                )
            if end > reach_end:
                reach_end, reach_who = end, who

    # ------------------------------------------------------------------ the layer API
    @property
    def is_differencing(self) -> bool:
        return self.has_parent

    @property
    def identity(self) -> str | None:
        return s.guid_str(self.header.data_write_guid) if self.header else None

    @property
    def timestamp(self) -> int | None:
        return None

    @property
    def parent_ref(self) -> ParentRef | None:
        if not self.has_parent:
            return None
        entries = self.parent_locator.entries if self.parent_locator else {}
        linkage = _parse_guid_text(entries.get("parent_linkage", ""))
        alternate = _parse_guid_text(entries.get("parent_linkage2", ""))
        paths = tuple(
            (k, entries[k])
            for k in ("relative_path", "volume_path", "absolute_win32_path")
            if entries.get(k)
        )
        return ParentRef(
            linkage=s.guid_str(linkage) if linkage else None,
            linkage_alternate=s.guid_str(alternate) if alternate else None,
            paths=paths,
        )

    def map(self, offset: int, length: int) -> Iterator[Run]:
        if not self.readable:
            raise ValueError("layer is not readable")
        end = min(offset + length, self.size)
        pos = offset
        bs = self.block_size
        cr = self.chunk_ratio
        while pos < end:
            block = pos // bs
            within = pos - block * bs
            n = min(bs - within, end - pos)
            entry = self.bat_entry(block + block // cr)
            state = entry & 7
            if state == s.PAYLOAD_FULLY_PRESENT:
                yield Run(pos, n, RunKind.DATA, ((entry >> 20) << 20) + within)
            elif state == s.PAYLOAD_PARTIALLY_PRESENT and self.has_parent:
                yield from self._partial_runs(block, entry, pos, within, n)
            elif state in (s.PAYLOAD_NOT_PRESENT, s.PAYLOAD_UNDEFINED) and self.has_parent:
                yield Run(pos, n, RunKind.PARENT)
            else:
                # ZERO, UNMAPPED, invalid states, and absent blocks of a disk without parent.
                yield Run(pos, n, RunKind.ZERO)
            pos += n

    def _block_bitmap(self, block: int) -> bytes:
        cached = self._bitmap_cache.get(block)
        if cached is not None:
            self._bitmap_cache.move_to_end(block)
            return cached
        cr = self.chunk_ratio
        sb_entry = self.bat_entry((block // cr) * (cr + 1) + cr)
        sectors = self.block_size // self.logical_sector_size
        nbytes = sectors // 8
        if sb_entry & 7 != s.SB_PRESENT:
            bitmap = bytes(nbytes)  # no bitmap: nothing of this block is in this file
        else:
            sb_offset = (sb_entry >> 20) << 20
            bitmap = self.read_file(sb_offset + (block % cr) * nbytes, nbytes)
        self._bitmap_cache[block] = bitmap
        if len(self._bitmap_cache) > 256:
            self._bitmap_cache.popitem(last=False)
        return bitmap

    def _partial_runs(self, block: int, entry: int, pos: int, within: int, n: int) -> Iterator[Run]:
        lss = self.logical_sector_size
        bitmap = self._block_bitmap(block)
        first = within // lss
        last = (within + n + lss - 1) // lss
        block_file = (entry >> 20) << 20
        block_start = pos - within
        for start_bit, count, present in bitmap_runs(bitmap, first, last - first, True):
            lo = max(block_start + (first + start_bit) * lss, pos)
            hi = min(block_start + (first + start_bit + count) * lss, pos + n)
            if hi <= lo:
                continue
            if present:
                yield Run(lo, hi - lo, RunKind.DATA, block_file + (lo - block_start))
            else:
                yield Run(lo, hi - lo, RunKind.PARENT)

    def allocated(self) -> Iterator[tuple[int, int]]:
        if not self.readable or self.bat is None:
            return
        bat = self.bat
        raw = bat.cast("B")
        cr1 = self.chunk_ratio + 1
        bs = self.block_size
        zero_chunk = bytes(BAT_SCAN_CHUNK * 8)
        for start in range(0, len(bat), BAT_SCAN_CHUNK):
            stop = min(start + BAT_SCAN_CHUNK, len(bat))
            if raw[start * 8 : stop * 8] == zero_chunk[: (stop - start) * 8]:
                continue
            for index in range(start, stop):
                state = bat[index] & 7
                if index % cr1 == cr1 - 1 or state not in (
                    s.PAYLOAD_FULLY_PRESENT,
                    s.PAYLOAD_PARTIALLY_PRESENT,
                ):
                    continue
                block = index - index // cr1
                if block < self.data_blocks:
                    lo = block * bs
                    yield lo, min(bs, self.size - lo)

    def describe(self) -> dict[str, Any]:
        hdrs = []
        for offset, hdr, problems in self.headers:
            hdrs.append(
                {
                    "offset": offset,
                    "valid": not problems,
                    "problems": problems,
                    "current": self.header is hdr and hdr is not None,
                    **(
                        {}
                        if hdr is None
                        else {
                            "sequence_number": hdr.sequence_number,
                            "file_write_guid": s.guid_str(hdr.file_write_guid),
                            "data_write_guid": s.guid_str(hdr.data_write_guid),
                            "log_guid": s.guid_str(hdr.log_guid),
                            "log_version": hdr.log_version,
                            "version": hdr.version,
                            "log_offset": hdr.log_offset,
                            "log_length": hdr.log_length,
                            "checksum": f"0x{hdr.checksum:08x}",
                        }
                    ),
                }
            )
        tables = []
        for offset, table, problems in self.region_tables:
            tables.append(
                {
                    "offset": offset,
                    "valid": not problems,
                    "problems": problems,
                    "entries": []
                    if table is None
                    else [
                        {
                            "guid": s.guid_str(e.guid),
                            "name": e.name,
                            "file_offset": e.file_offset,
                            "length": e.length,
                            "required": e.required,
                        }
                        for e in table.entries
                    ],
                }
            )
        meta_entries = []
        if self.metadata_table is not None:
            meta_entries = [
                {
                    "item": e.name,
                    "offset": e.offset,
                    "length": e.length,
                    "is_user": e.is_user,
                    "is_virtual_disk": e.is_virtual_disk,
                    "is_required": e.is_required,
                }
                for e in self.metadata_table.entries
            ]
        log: dict[str, Any] = {"present": False}
        if self.log_scan is not None:
            log = {
                "present": True,
                "valid_entries": len(self.log_scan.entries),
                "invalid_entries": len(self.log_scan.invalid_entries),
                "active_sequence": [
                    {
                        "position": e.position,
                        "sequence_number": e.header.sequence_number,
                        "entry_length": e.header.entry_length,
                        "tail": e.header.tail,
                        "descriptors": e.header.descriptor_count,
                        "flushed_file_offset": e.header.flushed_file_offset,
                        "last_file_offset": e.header.last_file_offset,
                    }
                    for e in self.log_scan.active
                ],
                "replayed_sectors": len(self.overlay.touched_offsets),
            }
        return {
            "format": "vhdx",
            "file_size": self.source.size,
            "creator": self.identifier.creator if self.identifier else None,
            "identifier_valid": bool(
                self.identifier and self.identifier.signature == s.FILE_SIGNATURE
            ),
            "headers": hdrs,
            "current_header": None if self.header_index is None else self.header_index + 1,
            "region_tables": tables,
            "log": log,
            "metadata": {"entries": meta_entries, "items": dict(self.metadata)},
            "parent_locator": None
            if self.parent_locator is None
            else {
                "type": s.guid_str(self.parent_locator.locator_type),
                "entries": dict(self.parent_locator.entries),
            },
            "virtual_size": self.size,
            "block_size": self.block_size,
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "chunk_ratio": self.chunk_ratio,
            "differencing": self.has_parent,
            "bat": {
                "entries": 0 if self.bat is None else len(self.bat),
                "entries_needed": self.bat_entries_needed if self.chunk_ratio else None,
                "states": dict(sorted(self.bat_counts.items())),
            },
        }


def _parse_guid_text(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip().strip("{}"))
    except ValueError:
        return None
