"""`fltmc filters` as saved and as reposted: one minifilter fact per loaded filter, with its
altitude as printed, and nothing from text that only looks like a table of numbers."""

from __future__ import annotations

from pathlib import Path

from hvrescue.logs.collect import facts_from_text

FIXTURES = Path(__file__).parent / "fixtures" / "fltmc"


def _filters(text: str) -> dict[str, dict]:
    facts = facts_from_text(text, "fltmc.txt")
    return {f.attributes["name"]: f.attributes for f in facts if f.kind == "minifilter"}


def test_console_table_gives_every_filter_with_its_altitude() -> None:
    text = (FIXTURES / "fltmc_filters_en.txt").read_bytes().decode("ascii")
    filters = _filters(text)
    assert len(filters) == 12
    assert filters["UCPD"]["altitude"] == "385250.5"
    assert filters["stcvsm"]["instance_count"] == 4
    assert filters["FileInfo"]["frame"] == 0


def test_reposted_as_a_list_with_collapsed_columns() -> None:
    filters = _filters((FIXTURES / "fltmc_filters_flattened.txt").read_text(encoding="ascii"))
    assert sorted(filters) == ["BHDrvx64", "FileInfo", "SymEFASI", "storqosflt"]
    assert filters["SymEFASI"]["altitude"] == "260610"


def test_locator_is_the_row_line() -> None:
    text = (FIXTURES / "fltmc_filters_en.txt").read_bytes().decode("ascii")
    facts = [f for f in facts_from_text(text, "f.txt") if f.kind == "minifilter"]
    lines = text.split("\n")
    for fact in facts:
        line = int(fact.provenance.locator.split(":")[1])
        assert lines[line - 1].split()[0] == fact.attributes["name"]


def test_other_four_column_tables_are_not_filters() -> None:
    text = (
        "Name      Count   Size    Pages\n"
        "-------   -----   -----   -----\n"
        "alpha         1     200       3\n"
    )
    assert _filters(text) == {}
