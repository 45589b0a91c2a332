"""Format views that label a column with words ("Friendly Name", "Total Size") over one rule of
dashes: Get-Disk's default table, on one header line and wrapped over two."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvrescue.logs.commands import pstable
from hvrescue.logs.textutil import Text
from tests.helpers import triage_incident

FIXTURES = Path(__file__).parent / "fixtures" / "field_hoststorage"


def _tables(lines: list[str]) -> list[pstable.Table]:
    return list(pstable.read_tables(Text(lines, "post.txt")))


@pytest.mark.parametrize("case", ["get-disk-default-en", "get-disk-header-wrapped-en"])
def test_get_disk_labels_are_its_properties(case: str) -> None:
    lines = (FIXTURES / case / "post.txt").read_text("utf-8").splitlines()
    [table] = _tables(lines)
    assert table.columns[:3] == ["Number", "FriendlyName", "SerialNumber"]
    assert table.columns[-2:] == ["TotalSize", "PartitionStyle"]
    assert [r.cells["OperationalStatus"] for r in table.rows] == ["Degraded", "Online"] or [
        r.cells["OperationalStatus"] for r in table.rows
    ] == ["Online", "Degraded"]
    assert all(r.cells["PartitionStyle"] == "GPT" for r in table.rows)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("get-disk-default-en", "host.storage.pool-degraded"),
        # The console cut the name ("Msft Stora..."): nothing says the degraded disk is a
        # storage space, so it is a disk that reports trouble.
        ("get-disk-header-wrapped-en", "host.storage.disk-failing"),
    ],
)
def test_a_degraded_disk_in_get_disk_is_diagnosed(case: str, expected: str, tmp_path: Path) -> None:
    triage_incident(FIXTURES / case, tmp_path, expected, None, "en")


@pytest.mark.parametrize(
    "header",
    [
        "Name   friendly name  State",  # not a format view's label: words in lower case
        "Name   A Very Long Label  State",  # four words: prose, not a label
    ],
)
def test_other_headers_with_spaces_are_not_tables(header: str) -> None:
    width = header.index("State")
    lines = [
        header,
        "----   " + "-" * (width - 9) + "  -----",
        "x      y" + " " * (width - 8) + "Running",
    ]
    assert _tables(lines) == []
