"""Parse and validate a VHD file's footer (and its copy), geometry, dynamic header and parent
locators into an image's fields and findings (Virtual Hard Disk Image Format Specification,
Oct 2006). The BAT is :mod:`hvrescue.vdisk.vhd.bat`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hvrescue.findings import Severity
from hvrescue.vdisk.vhd import bat
from hvrescue.vdisk.vhd import structures as s

if TYPE_CHECKING:
    from hvrescue.vdisk.vhd.image import VhdImage

# Hyper-V and Virtual PC make VHDs of at most 2040 GiB; larger is not one of theirs. Past the
# largest disk any Hyper-V format describes (VHDX: 64 TiB) the size field is damage.
MAX_VHD_SIZE = 2040 * 1024**3
MAX_READABLE_SIZE = 64 * 1024**4


def parse(img: VhdImage) -> None:
    size = img.source.size
    if size == 0:
        img.sink.add("file.empty", Severity.CRITICAL, 0)
        return
    if size < s.FOOTER_SIZE:
        img.sink.add("file.truncated", Severity.CRITICAL, size, size=size, expected=s.FOOTER_SIZE)
        return
    parse_footers(img)
    footer = img.footer
    if footer is None:
        return
    if footer.disk_type not in s.DISK_TYPES:
        img.sink.add(
            "vhd.footer.invalid",
            Severity.CRITICAL,
            img.footer_offset,
            problem="disk-type",
            value=footer.disk_type,
        )
        return
    if not check_size(img, footer):
        return
    img.size = footer.current_size
    check_geometry(img, footer)
    if footer.disk_type == 2:
        needed = footer.current_size
        limit = img.footer_offset if img.footer_offset is not None else size
        if needed > limit:
            img.sink.add(
                "file.truncated",
                Severity.ERROR,
                limit,
                size=size,
                expected=needed + s.FOOTER_SIZE,
            )
        img.readable = True
        return
    parse_dynamic(img, footer)
    img._summarise()


def check_size(img: VhdImage, footer: s.Footer) -> bool:
    """A disk of 0 bytes has no content to read, and one past 64 TiB none that any Hyper-V
    format holds (the size field is damaged: Hyper-V makes neither), so the file is not
    readable; a size that is not whole sectors, or past what Hyper-V makes, is reported and
    read as given."""
    current = footer.current_size
    if current == 0 or current > MAX_READABLE_SIZE:
        img.sink.add(
            "vhd.footer.invalid",
            Severity.CRITICAL,
            img.footer_offset,
            problem="current-size",
            value=current,
        )
        return False
    if current % s.SECTOR or current > MAX_VHD_SIZE:
        img.sink.add(
            "vhd.footer.invalid",
            Severity.ERROR if current % s.SECTOR else Severity.WARNING,
            img.footer_offset,
            problem="current-size",
            value=current,
        )
    return True


def _footer_at(img: VhdImage, offset: int) -> s.Footer | None:
    raw = img._raw(offset, s.FOOTER_SIZE)
    if raw[:8] != s.FOOTER_COOKIE:
        return None
    return s.Footer.parse(raw)


def parse_footers(img: VhdImage) -> None:
    size = img.source.size
    end = _footer_at(img, size - s.FOOTER_SIZE)
    end_offset = size - s.FOOTER_SIZE
    if end is None and size >= 511:
        # Virtual PC once wrote a 511-byte footer; accept it where the cookie says so.
        end = _footer_at(img, size - 511)
        end_offset = size - 511 if end else end_offset
    copy = _footer_at(img, 0) if size >= 2 * s.FOOTER_SIZE else None
    img.footer_copy = copy
    if end is not None:
        img.footer_offset = end_offset
        if not end.checksum_ok:
            img.sink.add(
                "vhd.footer.checksum",
                Severity.WARNING if (copy and copy.checksum_ok) else Severity.ERROR,
                end_offset,
                stored=f"0x{end.checksum:08x}",
            )
    if copy is not None and not copy.checksum_ok:
        img.sink.add(
            "vhd.footer.checksum",
            Severity.WARNING,
            0,
            copy=True,
            stored=f"0x{copy.checksum:08x}",
        )
    if end is None and copy is None:
        img.sink.add("vhd.footer.missing", Severity.CRITICAL, end_offset)
        return
    if end is None:
        assert copy is not None
        # The footer at the end is gone (truncated or overwritten); the copy stands in.
        img.sink.add("vhd.footer.missing", Severity.ERROR, end_offset, using_copy=True)
        img.footer = copy
        _saved_state(img, 0)
        return
    if copy is None and end.disk_type in (3, 4):
        # Dynamic and differencing disks keep a copy at offset 0; zeroed or overwritten, it
        # is the first damage a reader of the file start (qemu) sees.
        img.sink.add("vhd.footer.copy-missing", Severity.WARNING, 0)
    if not end.checksum_ok and copy is not None and copy.checksum_ok:
        img.footer = copy
    else:
        img.footer = end
    if copy is not None and copy.disk_type != 2:
        fields_differ = [
            name
            for name in s.Footer.__dataclass_fields__
            if name not in ("checksum_ok",) and getattr(copy, name) != getattr(end, name)
        ]
        if fields_differ:
            # Which of the two the disk is read by is said: readers that start at the copy
            # (qemu) see another disk when the fields that shape it differ.
            used = "copy-used" if img.footer is copy else "end-used"
            img.sink.add(
                "vhd.footer.mismatch",
                Severity.WARNING,
                0,
                key=f"vhd.footer.mismatch.{used}",
                fields=",".join(fields_differ),
            )
    _saved_state(img, 0 if img.footer is copy else end_offset)
    if img.footer.version != 0x00010000:
        img.sink.add(
            "vhd.footer.invalid",
            Severity.WARNING,
            img.footer_offset,
            problem="version",
            value=f"0x{img.footer.version:08x}",
        )


def _saved_state(img: VhdImage, footer_offset: int) -> None:
    """The footer's Saved State byte: Virtual PC sets it while its VM is saved with the disk
    attached (the specification forbids compacting or expanding such a disk). What the disk
    holds is as of the save, the rest may be in the saved memory: not damage, but no state to
    merge or repair from as if it were shut down."""
    assert img.footer is not None
    if img.footer.saved_state:
        img.sink.add(
            "vhd.footer.saved-state",
            Severity.WARNING,
            footer_offset + 84,
            value=img.footer.saved_state,
        )


def check_geometry(img: VhdImage, footer: s.Footer) -> None:
    chs = footer.chs_size
    if chs == footer.current_size:
        return
    expected = s.geometry_for(footer.current_size)
    actual = (footer.cylinders, footer.heads, footer.sectors_per_track)
    # The specification's rounding leaves CHS slightly below the size, and large disks carry
    # the capped geometry: both normal. Virtual PC (and qemu for its images) size the disk
    # by CHS instead, so there the two sizes mean the guest saw a different disk.
    capped = actual == (65535, 16, 255)
    standard = (capped or (actual == expected and chs <= footer.current_size)) and (
        footer.creator_app != "vpc "
    )
    img.sink.add(
        "vhd.geometry.size-mismatch",
        Severity.INFO if standard else Severity.WARNING,
        img.footer_offset,
        current_size=footer.current_size,
        chs_size=chs,
        geometry=f"{actual[0]}/{actual[1]}/{actual[2]}",
        creator=footer.creator_app.strip(),
    )


def parse_dynamic(img: VhdImage, footer: s.Footer) -> None:
    size = img.source.size
    doff = footer.data_offset
    if doff == s.FIXED_DATA_OFFSET or doff + s.DYNAMIC_HEADER_SIZE > size:
        img.sink.add(
            "vhd.header.invalid",
            Severity.CRITICAL,
            img.footer_offset,
            problem="data-offset",
            value=doff,
        )
        return
    raw = img._raw(doff, s.DYNAMIC_HEADER_SIZE)
    hdr = s.DynamicHeader.parse(raw)
    img.header = hdr
    if hdr.cookie != s.DYNAMIC_COOKIE:
        img.sink.add("vhd.header.invalid", Severity.CRITICAL, doff, problem="cookie")
        return
    if not hdr.checksum_ok:
        img.sink.add("vhd.header.checksum", Severity.ERROR, doff, stored=f"0x{hdr.checksum:08x}")
    bsize = hdr.block_size
    if bsize < s.SECTOR or bsize > s.MAX_BLOCK_SIZE or bsize & (bsize - 1):
        img.sink.add(
            "vhd.header.invalid", Severity.CRITICAL, doff, problem="block-size", value=bsize
        )
        return
    img.block_size = bsize
    img.bitmap_size = -(-(bsize // s.SECTOR // 8) // s.SECTOR) * s.SECTOR
    bat.parse_bat(img, hdr)
    if footer.disk_type == 4:
        if "\ufffd" in hdr.parent_name:
            img.sink.add("vhd.header.parent-name-undecodable", Severity.WARNING, doff + 64)
        parse_locators(img, hdr)
    img.readable = True


def parse_locators(img: VhdImage, hdr: s.DynamicHeader) -> None:
    size = img.source.size
    for loc in hdr.locators:
        entry: dict[str, Any] = {
            "index": loc.index,
            "platform": loc.platform_code,
            "offset": loc.data_offset,
            "length": loc.data_length,
        }
        if (
            loc.data_length > s.MAX_LOCATOR_DATA
            or loc.data_offset + loc.data_length > size
            or loc.data_length == 0
        ):
            img.sink.add(
                "vhd.locator.invalid",
                Severity.WARNING,
                loc.data_offset,
                index=loc.index,
                platform=loc.platform_code,
            )
            img.locators.append(entry)
            continue
        data = img._raw(loc.data_offset, loc.data_length)
        if loc.platform_code in ("W2ku", "W2ru"):
            text = data.decode("utf-16-le", errors="replace")
            if "\ufffd" in text.split("\0", 1)[0]:
                # Not UTF-16 (overwritten, or another field's bytes): no path to follow.
                img.sink.add(
                    "vhd.locator.undecodable",
                    Severity.WARNING,
                    loc.data_offset,
                    index=loc.index,
                    platform=loc.platform_code,
                )
                img.locators.append(entry)
                continue
        elif loc.platform_code == "MacX":
            text = data.decode("utf-8", errors="replace")
        else:
            text = data.decode("latin-1")
        entry["path"] = text.split("\0", 1)[0]
        img.locators.append(entry)
