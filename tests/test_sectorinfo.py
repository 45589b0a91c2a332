"""The storage's sector sizes as people paste them: ``fsutil fsinfo sectorinfo`` (one or
several volumes, reposted), the sector lines of a Japanese ``fsutil fsinfo ntfsinfo``, and a
``Get-PhysicalDisk`` table, each into ``storage_sectors`` facts (fixtures and their sources in
tests/fixtures/field_headroom/README.md and readers/)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.hyperv.headroom import options_from_facts
from hvrescue.logs.collect import facts_from_text
from hvrescue.logs.commands.sectorinfo import SIZES

FIXTURES = Path(__file__).parent / "fixtures" / "field_headroom"


def sectors(text: str) -> list[dict]:
    return [
        f.attributes
        for f in facts_from_text(text, "/evidence/x.txt")
        if f.kind == "storage_sectors"
    ]


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_two_volumes_of_one_transcript_keep_their_drives():
    found = sectors(read("readers/sectorinfo_two_volumes_en.txt"))
    assert [(a["volume"], a["logical"], a["physical"], a["kind"]) for a in found] == [
        ("C:", 512, 4096, "512e"),
        ("E:", 4096, 4096, "4kn"),
    ]
    assert found[0]["physical_performance"] == 4096
    assert found[0]["fs_effective_physical"] == 4096
    assert {a["source"] for a in found} == {"fsutil-sectorinfo"}


def test_a_reposted_sectorinfo_with_the_prompt_in_the_quote():
    found = sectors(read("sector-4kn-en/post.txt"))
    assert [(a["volume"], a["logical"]) for a in found] == [("E:", 4096)]


def test_japanese_ntfsinfo_gives_the_sector_lines():
    (found,) = sectors(read("readers/ntfsinfo_ja.txt"))
    assert (found["volume"], found["logical"], found["physical"]) == ("E:", 4096, 4096)
    assert found["source"] == "fsutil-ntfsinfo" and found["kind"] == "4kn"


def test_get_physicaldisk_table_one_fact_per_disk():
    found = sectors(read("sector-4kn-en/get_physicaldisk.txt"))
    assert [(a["disk"], a["logical"], a["physical"]) for a in found] == [
        ("HGST HUS728T8TAL4204", 4096, 4096),
        ("HGST HUS728T8TAL4204", 4096, 4096),
        ("Samsung SSD 860 EVO 500GB", 512, 4096),
    ]
    assert all(a["volume"] is None for a in found)


def test_get_vhd_sector_columns_are_the_virtual_disks_not_the_storages():
    text = (
        "PS C:\\> Get-VHD E:\\VMs\\a.vhdx | ft Path, LogicalSectorSize, PhysicalSectorSize\n\n"
        "Path           LogicalSectorSize PhysicalSectorSize\n"
        "----           ----------------- ------------------\n"
        "E:\\VMs\\a.vhdx               512               4096\n"
    )
    assert sectors(text) == []


def test_a_fragment_without_prompt_has_no_volume_and_odd_numbers_are_refused():
    found = sectors("LogicalBytesPerSector :                                 4096\n")
    assert [(a["volume"], a["logical"]) for a in found] == [(None, 4096)]
    assert sectors("LogicalBytesPerSector : 4095\n") == []


def test_options_for_the_inventory_checks_come_from_the_facts():
    text = (
        read("readers/sectorinfo_two_volumes_en.txt") + "\n" + read("merge-full-en/get_volume.txt")
    )
    facts = facts_from_text(text, "/evidence/x.txt")
    extra = options_from_facts(facts).extra
    assert extra["volume_sectors"]["E:"] == {"logical": 4096, "physical": 4096}
    assert extra["volume_sectors"]["C:"]["logical"] == 512
    assert extra["volume_free"]["D:"] == round(48.2 * 1024 * 1024)


LINES = st.sampled_from(
    [
        "LogicalBytesPerSector :   4096",
        "PhysicalBytesPerSectorForAtomicity : 512",
        "PhysicalBytesPerSectorForPerformance : 99999999999999999999",
        "セクターあたりのバイト数 : 512",
        "C:\\>fsutil fsinfo sectorinfo Z:",
        "FriendlyName LogicalSectorSize PhysicalSectorSize",
        "------------ ----------------- ------------------",
        "disk 4096 4096",
        "",
        "> ",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(LINES, st.text(max_size=40)), max_size=40))
def test_damaged_pastes_never_raise_and_give_only_real_sector_sizes(lines: list[str]):
    for a in sectors("\n".join(lines)):
        assert a["logical"] in SIZES
        assert a["physical"] is None or a["physical"] in SIZES
