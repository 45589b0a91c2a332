"""``facts --format jsonl`` through the command and with a file name that is no valid Unicode
writes exactly what the old way wrote (the oracle of tests/test_facts_jsonl_fast.py, which holds
the public sets); and where the workers start (``logs/parallel.py`` looks ahead in the walk).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from hvrescue.evidence import Budget, Walk
from hvrescue.logs import parallel
from hvrescue.logs.collect import collect, facts_from_item
from tests.helpers import CORPUS, run_cli
from tests.test_facts_jsonl_fast import _old_lines, _same_as_collect

SMALL = CORPUS / "evtx"
FIXTURES = Path(__file__).parent / "fixtures"


def test_the_command_writes_what_the_old_way_wrote() -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    result = run_cli("facts", SMALL, "--format", "jsonl")
    assert result.rc == 0
    expected = _old_lines(collect([str(SMALL)], jobs=1).facts).decode("utf-8")
    assert result.stdout == expected
    assert expected.count("\n") > 1000


@pytest.mark.skipif(sys.platform == "win32", reason="a file name that is no valid UTF-8")
def test_a_file_name_that_is_no_valid_unicode_is_escaped_as_before(tmp_path: Path) -> None:
    """The path of every line needs json's \\u escape."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    log = max(SMALL.rglob("*.evtx"), key=lambda p: p.stat().st_size)
    folder = os.fsencode(tmp_path)
    try:
        shutil.copyfile(log, os.path.join(folder, b"\xff-System.evtx"))
    except OSError:
        pytest.skip("this file system refuses such a name")
    out = _same_as_collect([str(tmp_path)], 1)
    assert b"\\udcff-System.evtx" in out
    assert out.count(b"\n") > 100


# ------------------------------------------------------------------ where the workers start
class _Starts:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handed: list[str] = []
        self.started = 0
        start, add = parallel._Run.start, parallel._Run.add

        def counted_start(run: Any, jobs: int) -> None:
            self.started += 1
            start(run, jobs)

        def counted_add(run: Any, item: Any) -> None:
            self.handed.append(item.path)
            add(run, item)

        monkeypatch.setattr(parallel._Run, "start", counted_start)
        monkeypatch.setattr(parallel._Run, "add", counted_add)


def _read(paths: list[str], jobs: int) -> list[Any]:
    budget = Budget()
    walk = Walk(paths, budget)
    return list(parallel.read_entries(walk, budget, facts_from_item, jobs))


def _facts(got: list[Any]) -> list[dict[str, Any]]:
    return [f.as_dict() for _e, found in got if found is not None for f in found.facts]


def test_a_small_set_is_read_here(monkeypatch: pytest.MonkeyPatch) -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    total = sum(p.stat().st_size for p in SMALL.rglob("*.evtx"))
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", total + 1)
    starts = _Starts(monkeypatch)
    got = _read([str(SMALL)], 2)
    assert starts.started == 0 and starts.handed == []
    assert _facts(got) == _facts(_read([str(SMALL)], 1))


def test_workers_take_every_log_once_the_walk_holds_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The walk is looked ahead: the logs before the threshold go to the workers too."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    logs = [e.path for e in Walk([str(SMALL)], Budget()) if parallel._parallel_item(e)]
    sizes = [os.path.getsize(p) for p in logs]
    assert len(logs) >= 3
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", sum(sizes[:3]))
    starts = _Starts(monkeypatch)
    got = _read([str(SMALL)], 2)
    assert starts.started == 1
    assert starts.handed == logs
    assert _facts(got) == _facts(_read([str(SMALL)], 1))


def test_the_look_ahead_stops_at_a_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip's members are read while it is open: the walk is not looked past it."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    logs = sorted(SMALL.rglob("*.evtx"))[:4]
    with zipfile.ZipFile(tmp_path / "a_bundle.zip", "w") as z:
        z.write(logs[0], "inner/System.evtx")
        z.write(FIXTURES / "commands" / "sc_qc_en.txt", "inner/sc_qc.txt")
    for i, log in enumerate(logs[1:]):
        shutil.copy(log, tmp_path / f"b{i}.evtx")
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", 1)
    starts = _Starts(monkeypatch)
    got = _read([str(tmp_path)], 2)
    assert starts.started == 1
    assert len(starts.handed) == 3 and all("!" not in p for p in starts.handed)
    paths = [getattr(e, "path", None) for e, _found in got]
    assert paths == [getattr(e, "path", None) for e in Walk([str(tmp_path)], Budget())]
    assert _facts(got) == _facts(_read([str(tmp_path)], 1))
    assert any("!" in f["provenance"]["path"] for f in _facts(got))
