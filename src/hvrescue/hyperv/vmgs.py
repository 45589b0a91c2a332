"""VMGS (VM guest state, `.vmgs`): the UEFI variables, the virtual TPM's state and the key
protectors of a generation 2 VM, read-only.

The layout is microsoft/openvmm's (MIT): crate ``vmgs_format`` (structures) and ``vmgs``
(``vmgs_impl.rs``: which header is active, what makes one valid); docs/formats/vmgs.md tells it
in our words. Hyper-V keeps the VMGS *inside a virtual disk* (openvmm's vmgstool opens it as a
VHD): the container is read through the project's own disk engine, and a bare VMGS image (as
openvmm writes to a raw file) is read as it is. Every read is of a fixed size (two headers, one
4 KiB file table of 64 entries), so nothing here allocates by a number read from the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.findings import Finding, Severity
from hvrescue.io.source import ReadOnlySource
from hvrescue.vdisk.check import FileCheck, dedupe
from hvrescue.vdisk.reports import CheckReport, InfoReport

SIGNATURE = b"GUESTRTS"  # vmgs_format::VMGS_SIGNATURE, also the V1 signature
VERSION_3 = 0x00030000  # the only version openvmm's validate_header accepts
HEADER_SIZE = 168  # size_of::<VmgsHeader>()
BLOCK = 4096  # VMGS_BYTES_PER_BLOCK: file offsets and allocations count these
MIN_FILE_BLOCK = 2  # VMGS_MIN_FILE_BLOCK_OFFSET: blocks 0 and 1 hold the headers
FILE_COUNT = 64  # VMGS_FILE_COUNT entries of 64 bytes: one block
ENTRY_SIZE = 64
FILE_TABLE_BLOCKS = 1
V1_GPT_OFFSET = 512  # a V1 VMGS is a GPT disk: "EFI PART" at 512
# vmgs_format::FileId
FILE_NAMES = {
    0: "FILE_TABLE",
    1: "BIOS_NVRAM",
    2: "TPM_PPI",
    3: "TPM_NVRAM",
    4: "RTC_SKEW",
    5: "ATTEST",
    6: "KEY_PROTECTOR",
    7: "VM_UNIQUE_ID",
    8: "GUEST_FIRMWARE",
    9: "CUSTOM_UEFI",
    10: "GUEST_WATCHDOG",
    11: "HW_KEY_PROTECTOR",
    13: "GUEST_SECRET_KEY",
    14: "HIBERNATION_FIRMWARE",
    15: "PLATFORM_SEED",
    16: "PROVENANCE_DOC",
    63: "EXTENDED_FILE_TABLE",
}
TPM_NVRAM = 3
KEY_PROTECTORS = (6, 11)  # KEY_PROTECTOR, HW_KEY_PROTECTOR
ENCRYPTION = {0: "none", 1: "aes-gcm"}
_HEADER = struct.Struct("<8sIIIIIIHH")  # signature .. reserved (then 2 x 64-byte keys, u32)
_ENTRY = struct.Struct("<IIQ12s16sI")  # offset, allocation, valid size, nonce, tag, attributes


@dataclass
class VmgsHeader:
    index: int
    offset: int
    signature: bytes
    version: int = 0
    checksum: int = 0
    computed_checksum: int = 0
    sequence: int = 0
    header_size: int = 0
    file_table_offset: int = 0
    file_table_size: int = 0
    encryption_algorithm: int = 0
    metadata_keys: int = 0  # how many of the two encrypted metadata keys are set
    problem: str | None = None  # why it is not valid: signature, version, size, file-table ...

    @property
    def valid(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.index + 1,
            "offset": self.offset,
            "valid": self.valid,
            "problem": self.problem,
            "signature": self.signature.decode("latin-1"),
            "version": _version(self.version),
            "sequence": self.sequence,
            "checksum": f"0x{self.checksum:08x}",
            "computed_checksum": f"0x{self.computed_checksum:08x}",
            "header_size": self.header_size,
            "file_table_offset": self.file_table_offset * BLOCK,
            "file_table_size": self.file_table_size * BLOCK,
            "encryption_algorithm": ENCRYPTION.get(
                self.encryption_algorithm, str(self.encryption_algorithm)
            ),
            "metadata_keys": self.metadata_keys,
        }


@dataclass(frozen=True)
class VmgsFile:
    id: int
    offset: int  # bytes from the start of the VMGS content
    size: int  # valid bytes
    allocated: int  # bytes
    encrypted: bool

    @property
    def name(self) -> str:
        return FILE_NAMES.get(self.id, f"FILE_{self.id}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "offset": self.offset,
            "size": self.size,
            "allocated": self.allocated,
            "encrypted": self.encrypted,
        }


@dataclass
class VmgsReport:
    path: str
    container: str  # "vhdx", "vhd" or "raw"
    capacity: int = 0
    sector_size: int = 512
    headers: list[VmgsHeader] = field(default_factory=list)
    active: int | None = None
    files: list[VmgsFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def header(self) -> VmgsHeader | None:
        return None if self.active is None else self.headers[self.active]

    @property
    def readable(self) -> bool:
        """A valid header chosen and its file table read."""
        return self.active is not None and not any(
            f.code == "vmgs.file-table.unreadable" for f in self.findings
        )

    def has_file(self, file_id: int) -> bool:
        return any(f.id == file_id for f in self.files)

    @property
    def encrypted(self) -> bool:
        header = self.header
        return bool(header and header.encryption_algorithm) or any(f.encrypted for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        header = self.header
        return {
            "format": "vmgs",
            "container": self.container,
            "capacity": self.capacity,
            "sector_size": self.sector_size,
            "active_header": None if self.active is None else self.active + 1,
            "version": _version(header.version) if header else None,
            "sequence": header.sequence if header else None,
            "encryption": ENCRYPTION.get(header.encryption_algorithm, "unknown")
            if header
            else None,
            "encrypted": self.encrypted if header else None,
            "vtpm_present": self.has_file(TPM_NVRAM) if self.readable else None,
            "key_protector_present": any(self.has_file(i) for i in KEY_PROTECTORS)
            if self.readable
            else None,
            "headers": [h.as_dict() for h in self.headers],
            "files": [f.as_dict() for f in self.files],
        }


def _version(value: int) -> str:
    return f"{value >> 16}.{value & 0xFFFF}"


class _Content:
    """The VMGS bytes: a virtual disk's content, or the file itself; reads say which ranges
    were undefined (a block the container does not hold, an unreadable sector)."""

    def __init__(self, path: str) -> None:
        from hvrescue.vdisk.detect import sniff

        self._source = ReadOnlySource(path)  # a file that cannot be opened is the caller's error
        self._disk: Any = None
        self.error: HvrescueError | None = None  # the container could not be read
        self.size = self._source.size
        self.sector_size = 512
        self.kind = sniff(self._source) or "raw"
        if self.kind != "raw":
            from hvrescue.vdisk.disk import Disk

            try:
                self._disk = Disk.open(path, search=[])
            except HvrescueError as exc:
                self.error = exc
                return
            self.size = self._disk.size
            self.sector_size = self._disk.logical_sector_size

    def read(self, offset: int, length: int) -> tuple[bytes, list[tuple[int, int]]]:
        if self._disk is not None:
            data, gaps = self._disk.read_checked(offset, length)
            return data, [(g.offset, g.length) for g in gaps]
        length = max(0, min(length, self.size - offset))
        data, bad = self._source.read_checked(offset, length, tolerant=True)
        return data, [(b.offset, b.length) for b in bad]

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        self._source.close()


def _parse_header(index: int, offset: int, raw: bytes) -> VmgsHeader:
    if len(raw) < HEADER_SIZE:
        return VmgsHeader(index, offset, raw[:8], problem="truncated")
    sig, version, checksum, sequence, size, ft_off, ft_size, algo, _r = _HEADER.unpack_from(raw)
    keys = sum(1 for k in range(2) if any(raw[36 + 64 * k + 32 : 36 + 64 * k + 64]))
    zeroed = raw[:12] + b"\0\0\0\0" + raw[16:HEADER_SIZE]
    header = VmgsHeader(
        index,
        offset,
        sig,
        version,
        checksum,
        zlib.crc32(zeroed),
        sequence,
        size,
        ft_off,
        ft_size,
        algo,
        keys,
    )
    # The order of openvmm's validate_header: the first failing check names the problem.
    if sig != SIGNATURE:
        header.problem = "signature"
    elif version != VERSION_3:
        header.problem = "version"
    elif size != HEADER_SIZE:
        header.problem = "size"
    elif ft_off < MIN_FILE_BLOCK or ft_size != FILE_TABLE_BLOCKS:
        header.problem = "file-table"
    elif checksum != header.computed_checksum:
        header.problem = "checksum"
    return header


def _active(report: VmgsReport, add: Any) -> int | None:
    """openvmm's get_active_header: of two valid headers the one whose sequence is the
    other's plus one (wrapping); any other pair is refused as corrupt."""
    h1, h2 = report.headers
    if h1.valid and h2.valid:
        if h1.sequence == (h2.sequence + 1) & 0xFFFFFFFF:
            return 0
        if h2.sequence == (h1.sequence + 1) & 0xFFFFFFFF:
            return 1
        add("vmgs.header.sequence", Severity.ERROR, None, first=h1.sequence, second=h2.sequence)
        return None
    for header in (h1, h2):
        if not header.valid:
            code = "vmgs.header.checksum" if header.problem == "checksum" else "vmgs.header.invalid"
            add(
                code, Severity.WARNING, header.offset, index=header.index + 1, reason=header.problem
            )
    if h1.valid:
        return 0
    if h2.valid:
        return 1
    add("vmgs.header.none-valid", Severity.CRITICAL, 0)
    return None


def _file_table(report: VmgsReport, content: _Content, add: Any) -> None:
    header = report.header
    assert header is not None
    blocks = report.capacity // BLOCK
    offset = header.file_table_offset * BLOCK
    if header.file_table_offset + FILE_TABLE_BLOCKS > blocks:
        add("vmgs.file-table.unreadable", Severity.ERROR, offset, reason="beyond-end")
        return
    raw, gaps = content.read(offset, FILE_COUNT * ENTRY_SIZE)
    if gaps:
        add("vmgs.file-table.unreadable", Severity.ERROR, offset, reason="undefined")
        return
    for file_id in range(FILE_COUNT):
        start, alloc, valid, _nonce, tag, attrs = _ENTRY.unpack_from(raw, file_id * ENTRY_SIZE)
        if alloc == 0:
            continue
        name = FILE_NAMES.get(file_id, f"FILE_{file_id}")
        # openvmm's initialize_file_metadata: inside the capacity, valid data within allocation.
        if start < MIN_FILE_BLOCK or start >= blocks or start + alloc > blocks:
            add("vmgs.file.out-of-range", Severity.ERROR, start * BLOCK, id=file_id, name=name)
            continue
        if valid > alloc * BLOCK:
            add(
                "vmgs.file.size-invalid",
                Severity.ERROR,
                start * BLOCK,
                id=file_id,
                name=name,
                size=valid,
                allocated=alloc * BLOCK,
            )
            continue
        encrypted = bool(attrs & 0x3) or (header.encryption_algorithm != 0 and any(tag))
        report.files.append(VmgsFile(file_id, start * BLOCK, valid, alloc * BLOCK, encrypted))


def read_vmgs(path: str) -> VmgsReport:
    """The headers, the active one and its file table; damage becomes findings. Raises only
    what opening the file raises (a container the disk engine cannot read is a finding)."""
    content = _Content(path)
    report = VmgsReport(path, content.kind, content.size, content.sector_size)
    if content.error is not None:
        content.close()
        report.findings.append(
            Finding(
                "vmgs.container.unreadable",
                Severity.ERROR,
                path,
                params={"format": content.kind, "detail": content.error.key},
            )
        )
        return report

    def add(code: str, severity: Severity, offset: int | None, **params: Any) -> None:
        report.findings.append(Finding(code, severity, path, offset, params))

    try:
        if content.size < 2 * BLOCK:
            add("vmgs.truncated", Severity.CRITICAL, 0, size=content.size, needed=2 * BLOCK)
        head, gaps = content.read(0, 2 * BLOCK)
        if gaps:
            add("vmgs.undefined", Severity.ERROR, gaps[0][0], length=sum(g[1] for g in gaps))
        if head[V1_GPT_OFFSET : V1_GPT_OFFSET + 8] == b"EFI PART" and head[:8] != SIGNATURE:
            add("vmgs.v1-format", Severity.WARNING, V1_GPT_OFFSET)
            return report
        # The second header sits one sector after the first (VmgsStorage::aligned_header_size);
        # a bare image has no sector size of its own, so 4096 is tried when 512 holds nothing.
        second = content.sector_size
        if (
            content.kind == "raw"
            and head[second : second + 8] != SIGNATURE
            and head[BLOCK : BLOCK + 8] == SIGNATURE
        ):
            second = report.sector_size = BLOCK
        report.headers = [
            _parse_header(0, 0, head[:HEADER_SIZE]),
            _parse_header(1, second, head[second : second + HEADER_SIZE]),
        ]
        if not any(head[:HEADER_SIZE]) and not any(head[second : second + HEADER_SIZE]):
            add("vmgs.empty", Severity.ERROR, 0)
            return report
        if all(h.problem in ("signature", "truncated") for h in report.headers):
            add("vmgs.not-vmgs", Severity.ERROR, 0)
            return report
        report.active = _active(report, add)
        if report.active is not None:
            _file_table(report, content, add)
    finally:
        content.close()
    return report


def info_report(path: str) -> InfoReport:
    """What `info FILE.vmgs` shows: the structures as plain data, and the findings."""
    report = read_vmgs(path)
    return InfoReport(path, report.as_dict(), report.findings)


def check_files(
    paths: list[str], search: list[str] | None = None, deep: bool = False
) -> CheckReport:
    """What `check FILE.vmgs...` reports: the damage of each guest state as findings, in the
    shape of :func:`hvrescue.vdisk.reports.check_files` (``search`` and ``deep`` do not apply)."""
    results = []
    for path in paths:
        result = FileCheck(path, format="vmgs", chain=[path])
        try:
            report = read_vmgs(path)
        except HvrescueError as exc:
            result.error = exc
        else:
            result.findings = list(report.findings)
            result.virtual_size = report.capacity
            result.complete = report.readable
        results.append(result)
    return CheckReport(results, dedupe([f for r in results for f in r.findings]))
