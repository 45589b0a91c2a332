"""Disk images written by other software, and damaged variants of them (../shared/corpus/external):
every case meets its expected.json through the CLI.

``expected.json`` gives the content SHA-256 that independent readers (qemu-img, libvhdi,
dissect.hypervisor) agree on, and what hvrescue must report: the accepted `check` statuses,
finding codes that must appear, severities that must not, whether `hash` must report undefined
content and whether `merge` must refuse. The 10 GiB-virtual cases are hashed only in the slow run.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SHARED, codes, run_cli

EXTERNAL = SHARED / "corpus" / "external"
CASES = sorted(p.parent.name for p in EXTERNAL.glob("*/expected.json"))


def _expected(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXTERNAL / case / "expected.json").read_text())
    return data


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CASES:
        pytest.skip("../shared/corpus/external is not present")
    out = tmp_path_factory.mktemp("external")
    for case in CASES:
        for src in (EXTERNAL / case).glob("*.gz"):
            (out / case).mkdir(exist_ok=True)
            with gzip.open(src, "rb") as fin, open(out / case / src.name[:-3], "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 22)
    return out


def _leaf(external: Path, case: str) -> Path:
    return external / case / _expected(case)["leaf"]


@pytest.mark.parametrize("case", CASES)
def test_check_meets_expected(external: Path, case: str) -> None:
    want = _expected(case)["hvrescue"]
    result = run_cli("check", _leaf(external, case), "--json")
    data = result.json()
    assert data["status"] in want["check_status"], data["findings"]
    found = codes(data)
    if "require_any_code" in want:
        assert found & set(want["require_any_code"]), found
    for severity in want.get("forbid_severity", []):
        assert all(f["severity"] != severity for f in data["findings"]), data["findings"]
    assert result.rc == {"clean": 0, "findings": 1, "error": 2}[data["status"]]
    if want.get("hash_must_report_unreadable"):
        # check says where the content is undefined, not only that the structure is damaged.
        assert "disk.undefined" in found
        assert data["files"][0]["undefined"]


def _hash_cases(slow: bool) -> list[Any]:
    out = []
    for case in CASES:
        exp = _expected(case)
        if exp["slow"] == slow:
            out.append(case)
        elif slow is False and exp["slow"]:
            out.append(pytest.param(case, marks=pytest.mark.slow))
    return out


@pytest.mark.parametrize("case", _hash_cases(False))
def test_hash_meets_expected(external: Path, case: str) -> None:
    exp = _expected(case)
    result = run_cli("hash", _leaf(external, case), "--json")
    data = result.json()
    assert data["size"] == exp["virtual_size"]
    if exp["hvrescue"].get("hash_must_report_unreadable"):
        # Never "complete" over content nobody can know; every range named with its cause.
        assert result.rc == 1
        assert data["complete"] is False
        assert data["undefined"]
        assert all(g["cause"] and g["length"] > 0 for g in data["undefined"])
    else:
        assert result.rc == 0, data
        assert data["complete"] is True
        assert data["undefined"] == []
        assert data["sha256"] == exp["sha256"]


@pytest.mark.parametrize(
    "case", [c for c in CASES if _expected(c)["hvrescue"].get("merge_must_flag")]
)
def test_merge_refuses_undefined_content(external: Path, case: str, tmp_path: Path) -> None:
    out = tmp_path / "merged.vhdx"
    refused = run_cli("merge", _leaf(external, case), out, "--json")
    assert refused.rc == 2
    err = refused.json()["error"]
    assert err["key"] == "error.merge.undefined"
    assert err["params"]["undefined"] and "salvage" in err["message"]
    assert not out.exists() and not list(tmp_path.iterdir())
    # With --allow-gaps: written, but said to have gaps, with the map beside it.
    allowed = run_cli("merge", _leaf(external, case), out, "--allow-gaps", "--json")
    assert allowed.rc == 1
    data = allowed.json()
    assert data["status"] == "written-with-gaps" and data["verified"] is False
    assert out.exists() and Path(data["map"]).exists()
    bad = [line.split() for line in Path(data["map"]).read_text().splitlines()]
    bad_ranges = [(int(w[0], 16), int(w[1], 16)) for w in bad if len(w) == 3 and w[2] == "-"]
    assert bad_ranges == [(g["offset"], g["length"]) for g in _merged(data["undefined"])]


def _merged(gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for g in sorted(gaps, key=lambda g: g["offset"]):
        if out and out[-1]["offset"] + out[-1]["length"] >= g["offset"]:
            end = max(out[-1]["offset"] + out[-1]["length"], g["offset"] + g["length"])
            out[-1] = {"offset": out[-1]["offset"], "length": end - out[-1]["offset"]}
        else:
            out.append({"offset": g["offset"], "length": g["length"]})
    return out


@pytest.mark.parametrize(
    "case", [c for c in CASES if _expected(c)["kind"] == "content" and not _expected(c)["slow"]]
)
def test_merge_of_intact_content_is_verified(external: Path, case: str, tmp_path: Path) -> None:
    out = tmp_path / "merged.vhdx"
    result = run_cli("merge", _leaf(external, case), out, "--json")
    assert result.rc == 0
    assert result.json()["status"] == "verified"
    again = run_cli("hash", out, "--json").json()
    assert again["sha256"] == _expected(case)["sha256"]
