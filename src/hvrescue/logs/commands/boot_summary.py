"""What a VM's firmware says when it finds nothing to boot, as people copy it off the VM
Connection window: a generation 2 VM's "Virtual Machine Boot Summary" (one line per boot
device, "1. SCSI Disk (0,0)  The signed image's hash is not allowed (DB).", then "No operating
system was loaded. ..."), the older "Boot Failed. EFI SCSI Device." lines, and a generation 1
VM's BIOS ("Boot failure. Reboot and select proper Boot device", "No bootable device").

One ``boot_failure`` fact per screen: ``firmware`` ("uefi" or "bios"), ``entries`` (each
``device``, ``kind`` disk/dvd/network/file/other, ``message``, ``reason``), ``reasons`` (the
distinct reasons: ``secure-boot`` (the image's signature is not allowed by the Secure Boot
template), ``no-os`` (the device's boot loader loaded no operating system), ``no-uefi-fs`` (no
EFI system partition the firmware can read), ``no-image`` (nothing to boot on it: an empty
DVD drive, no PXE answer), ``other``) and ``no_os_loaded`` (the closing sentence was seen).
The firmware writes English only."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

HEAD = re.compile(r"Virtual Machine Boot Summary", re.I)
NO_OS = re.compile(r"No operating system was loaded", re.I)
# "1. SCSI Disk (0,0)  The boot loader did not load an operating system."
ENTRY = re.compile(
    r"^\s*(?:>\s*)*(?:(?P<n>\d{1,2})\.\s+)?"
    r"(?:(?P<device>(?:SCSI|IDE)\s+(?:Disk|DVD)(?:\s*\(\s*\d+\s*,\s*\d+\s*\))?"
    r"|Network\s+Adapter(?:\s*\([0-9A-Fa-f:.-]*\))?)\s+"
    # another device: only numbered, and two spaces before its message
    r"|(?P<other>[A-Za-z][\w .-]{0,40}?(?:\([^()]{0,40}\))?)\s{2,})"
    r"(?P<message>\S.*?)\s*$"
)
EFI_FAILED = re.compile(
    r"^\s*(?:>\s*)*Boot Failed\.\s*EFI\s+(?P<device>SCSI Device|Network|DVD/CDROM|Hard Drive)\b",
    re.I,
)
BIOS = re.compile(
    r"Boot failure\.\s*Reboot and select proper Boot device|No bootable device\b"
    r"|Reboot and Select proper Boot device|A disk read error occurred|BOOTMGR is missing",
    re.I,
)
REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "secure-boot",
        re.compile(
            r"not allowed \(DB\)|hash and certificate are not allowed|signature (?:is )?not"
            r" allowed|failed Secure Boot Verification|Secure Boot",
            re.I,
        ),
    ),
    ("no-uefi-fs", re.compile(r"No UEFI-compatible file system", re.I)),
    ("no-os", re.compile(r"did not load an operating system|boot loader failed", re.I)),
    (
        "no-image",
        re.compile(
            r"boot image was not found|No bootable image|PXE-E\w+|DHCP failed|no media|not ready",
            re.I,
        ),
    ),
)
# Any of the screens at all: most texts are none, and are passed over in one search.
ANY = re.compile(
    r"Boot Summary|Boot Failed\.|Boot failure\.|No bootable device|select proper Boot device"
    r"|A disk read error occurred|BOOTMGR is missing",
    re.I,
)
MAX_ENTRIES = 16
# Retyped on a Japanese IME, a screen keeps its full-width brackets and a full-width quote
# marker ("＞ Boot Failed."): the cleaning of posts leaves them (they belong to prose there).
WIDE = str.maketrans({"＞": ">", "（": "(", "）": ")"})
WIDE_CHARS = re.compile("[＞（）]")
# Lines after the head that a summary may span (blank lines of a repost included).
SPAN = 40


def parse(text: Text) -> list[Fact]:
    joined = "\n".join(text.lines)
    if not ANY.search(joined):
        return []
    if WIDE_CHARS.search(joined):
        text = Text([line.translate(WIDE) for line in text.lines], text.path)
    lines = text.lines
    facts: list[Fact] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if HEAD.search(line):
            fact, i = _summary(text, i)
            facts.append(fact)
            continue
        m = EFI_FAILED.match(line)
        if m:
            fact, i = _efi_lines(text, i)
            facts.append(fact)
            continue
        if BIOS.search(line):
            facts.append(_fact(text, i, "bios", [_entry("", line.strip())], False))
        i += 1
    return facts


def _summary(text: Text, start: int) -> tuple[Fact, int]:
    entries: list[dict[str, Any]] = []
    no_os = False
    i = start + 1
    end = min(len(text.lines), start + 1 + SPAN)
    while i < end:
        line = text.lines[i]
        if HEAD.search(line):
            break
        m = ENTRY.match(line)
        if m and (m.group("device") or m.group("n")) and len(entries) < MAX_ENTRIES:
            entries.append(_entry(m.group("device") or m.group("other"), m.group("message")))
        elif NO_OS.search(line):
            no_os = True
            i += 1
            break
        i += 1
    return _fact(text, start, "uefi", entries, no_os), i


def _efi_lines(text: Text, start: int) -> tuple[Fact, int]:
    """ "Boot Failed. EFI SCSI Device." lines in a row (older generation 2 firmware)."""
    entries: list[dict[str, Any]] = []
    no_os = False
    i = start
    while i < len(text.lines) and i - start < SPAN:
        line = text.lines[i]
        m = EFI_FAILED.match(line)
        if m:
            if len(entries) < MAX_ENTRIES:
                entry = _entry(m.group("device"), line.strip())
                # The older firmware names no cause: a SCSI device (the disk, as a rule) or a
                # hard drive that it tried and could not boot loaded no operating system.
                if entry["kind"] == "disk":
                    entry["reason"] = "no-os"
                entries.append(entry)
        elif NO_OS.search(line):
            no_os = True
        elif line.strip() and not re.match(r"^\s*(?:>\s*)*(?:Boot|PXE|Station|>>)", line, re.I):
            break
        i += 1
    return _fact(text, start, "uefi", entries, no_os), i


def _entry(device: str, message: str) -> dict[str, Any]:
    low = device.lower()
    kind = (
        "dvd"
        if "dvd" in low or "cdrom" in low
        else "network"
        if "network" in low
        else "disk"
        if "disk" in low or "scsi" in low or "ide" in low or "hard drive" in low
        else "file"
        if "file" in low
        else "other"
    )
    reason = next((name for name, p in REASONS if p.search(message)), "other")
    return {"device": " ".join(device.split()), "kind": kind, "message": message, "reason": reason}


def _fact(text: Text, i: int, firmware: str, entries: list[dict[str, Any]], no_os: bool) -> Fact:
    reasons: list[str] = []
    for e in entries:
        if e["reason"] not in reasons:
            reasons.append(e["reason"])
    attrs: dict[str, Any] = {
        "firmware": firmware,
        "entries": entries,
        "reasons": reasons,
        "disk_reasons": sorted({e["reason"] for e in entries if e["kind"] == "disk"}),
        "no_os_loaded": no_os,
    }
    return Fact("boot_failure", attrs, Provenance(text.path, text.locator(i)))
