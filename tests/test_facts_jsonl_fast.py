"""``facts --format jsonl`` made the fast way (records of EVTX events built without the general
steps, many lines encoded at once, records made in the worker processes, the per-input list
from counts) writes exactly what the old way wrote.

The oracle is the old way, kept here as it was: every fact of ``collect`` (the non-streaming
reader) turned into a record by the general steps (``_old_record``), each line encoded alone by
msgspec with json's \\u-escaping fallback; and, independently of msgspec, each line read back
equals ``json.dumps`` of the old record.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvrescue.diagnose.engine import excerpt
from hvrescue.evidence import Budget, Item, Walk
from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs import parallel
from hvrescue.logs.collect import collect, facts_from_item
from hvrescue.logs.evtx_item import plain_evtx, read_item
from hvrescue.logs.stream import FactStream
from hvrescue.report import records
from tests.helpers import CORPUS

REAL = CORPUS / "evtx-real"
SMALL = CORPUS / "evtx"
FIXTURES = Path(__file__).parent / "fixtures"

# ------------------------------------------------------------------ the old way, kept as it was
_UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_old_encode = msgspec.json.Encoder(enc_hook=str).encode


def _old_json(value: Any) -> bytes:
    try:
        return _old_encode(value)
    except (TypeError, ValueError, UnicodeEncodeError, msgspec.EncodeError):
        return json.dumps(value, ensure_ascii=True, default=str).encode("ascii")


def _old_parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _old_parse_time_fast_form(value: Any) -> dt.datetime | None:
    # the old parse_time: EVTX's own form first, then the general way
    if (
        type(value) is str
        and 27 <= len(value) <= 28
        and value[-1] == "Z"
        and value[19] == "."
        and value[20:-1].isdigit()
        and value[:19].isascii()
        and "Z" not in value[:19]
    ):
        try:
            return dt.datetime.fromisoformat(value[:26]).replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    return _old_parse_time(value)


def _old_fact_time(fact: Fact) -> tuple[dt.datetime, bool, str] | None:
    for name, utc, desc in records.TIME_FIELDS:
        moment = _old_parse_time_fast_form(fact.attributes.get(name))
        if moment is None:
            continue
        if moment.tzinfo is not None:
            return moment.astimezone(dt.UTC), True, desc
        return (moment.replace(tzinfo=dt.UTC) if utc else moment), utc, desc
    return None


def _old_message(fact: Fact) -> str:
    a = fact.attributes
    if fact.kind == "event":
        text = str(a.get("message") or "").strip()
        if not text:
            data = a.get("data")
            values = data.values() if isinstance(data, dict) else data or []
            text = " | ".join([str(v) for v in values if v is not None and v != ""])
            head = f"{a.get('provider') or a.get('source_name') or ''} {a.get('event_id') or ''}"
            text = f"{head.strip()}: {text}" if text else head.strip()
    else:
        text = f"{fact.kind}: {excerpt(fact)}"
    text = " ".join(text.split())
    return text if len(text) <= 4096 else text[:4095] + "…"


def _old_record(fact: Fact) -> dict[str, Any]:
    a = fact.attributes
    found = _old_fact_time(fact)
    if found is None:
        moment, zone, desc = _UTC_EPOCH, "", "Not a time"
        text = _UTC_EPOCH.isoformat()
    else:
        moment, utc, desc = found
        zone = "UTC" if utc else "local"
        text = moment.isoformat()
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    delta = aware - _UTC_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    event = fact.kind == "event"
    return {
        "datetime": text,
        "timestamp": micros,
        "timestamp_desc": desc,
        "message": _old_message(fact),
        "kind": fact.kind,
        "source": (a.get("provider") or a.get("source_name")) if event else None,
        "event_id": a.get("event_id") if event else None,
        "level": a.get("level_name") if event else None,
        "channel": a.get("channel") if event else None,
        "computer": a.get("computer") if event else None,
        "record_id": (a.get("system_record_id") or a.get("record_id")) if event else None,
        "time_zone": zone,
        "path": fact.provenance.path,
        "locator": fact.provenance.locator,
        "attributes": _old_json(a).decode("utf-8", errors="replace"),
    }


def _old_lines(facts: list[Fact]) -> bytes:
    return b"".join(_old_json(_old_record(f)) + b"\n" for f in facts)


# ------------------------------------------------------------------ the new way
def _new_lines(paths: list[str], jobs: int) -> tuple[bytes, FactStream]:
    stream = FactStream(paths, Budget(), jobs, records.facts_jsonl)
    out = io.BytesIO()
    records.write_jsonl_parts(stream.parts(), out)
    return out.getvalue(), stream


def _same_as_collect(paths: list[str], jobs: int) -> bytes:
    old = collect(paths, jobs=1)
    new, stream = _new_lines(paths, jobs)
    assert new == _old_lines(old.facts)
    assert stream.inputs() == old.inputs()
    for name in ("problems", "unrecognised", "skipped", "items"):
        assert getattr(stream.summary, name) == getattr(old, name), name
    return new


@pytest.fixture
def workers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers from the first byte of EVTX, in batches of a few files."""
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(parallel, "BATCH_FILES", 3)


@pytest.mark.parametrize("jobs", [1, 2])
def test_real_evtx_set_written_exactly_as_before(jobs: int, workers_at_once: None) -> None:
    if not REAL.is_dir():
        pytest.skip("../shared/corpus/public/evtx-real is not present")
    out = _same_as_collect([str(REAL)], jobs)
    assert out.count(b"\n") > 20_000  # the corpus was read, not an empty folder


@pytest.mark.parametrize("jobs", [1, 2])
def test_public_evtx_and_text_fixtures_written_exactly_as_before(
    jobs: int, workers_at_once: None
) -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    # EVTX among text of every kind the readers know (exports, command outputs, pasted text)
    out = _same_as_collect([str(SMALL), str(FIXTURES / "commands")], jobs)
    kinds = {json.loads(line)["kind"] for line in out.splitlines()}
    assert {"event", "vss_writer", "process", "package"} <= kinds


def test_every_line_is_the_old_record_as_json_reads_it() -> None:
    """Independent of msgspec: each line read back is json's reading of the old record."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    facts = collect([str(SMALL)], jobs=1).facts
    new, _stream = _new_lines([str(SMALL)], 1)
    lines = new.splitlines()
    assert len(lines) == len(facts) > 1000
    for line, fact in zip(lines, facts, strict=True):
        assert json.loads(line) == json.loads(json.dumps(_old_record(fact), ensure_ascii=False))


def test_services_named_from_the_evidence_after_events_read_in_workers(
    tmp_path: Path, workers_at_once: None
) -> None:
    """A saved ``sc sdshow`` named only by its file name waits for the whole evidence, with
    everything after it (event logs rendered in the workers too), in order."""
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    (tmp_path / "a_sdshow_EventSystem.txt").write_text(
        "\nD:(A;;CCLCSWRPWPDTLOCRRC;;;SY)(A;;CCLCSWLOCRRC;;;IU)\n\n"
    )
    logs = sorted(SMALL.rglob("*.evtx"))[:4]
    for i, log in enumerate(logs):
        shutil.copy(log, tmp_path / f"b{i}.evtx")
    # the service the file's name gives (EventSystem) is named again by this output, after it
    shutil.copy(FIXTURES / "commands" / "sc_qc_en.txt", tmp_path / "c_sc_qc.txt")
    out = _same_as_collect([str(tmp_path)], 2)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["kind"] == "service_security"
    assert json.loads(lines[0]["attributes"])["service_name"] == "EventSystem"
    assert lines[-1]["path"].endswith("c_sc_qc.txt")
    assert sum(1 for x in lines if x["kind"] == "event") > 100


def test_read_item_is_facts_from_item() -> None:
    if not SMALL.is_dir():
        pytest.skip("../shared/corpus/public/evtx is not present")
    budget = Budget()
    walk = Walk([str(SMALL), str(FIXTURES / "commands")], budget)
    items = [e for e in walk if isinstance(e, Item)]
    assert sum(plain_evtx(i) for i in items) >= 5
    assert any(not plain_evtx(i) for i in items)
    for item in items:
        assert read_item(item, budget) == facts_from_item(item, budget), item.path


# ------------------------------------------------------------------ odd records
def _event(time: Any, **more: Any) -> Fact:
    attributes = {
        "channel": "System",
        "provider": "Microsoft-Windows-Hyper-V-VMMS",
        "source_name": "Microsoft-Windows-Hyper-V-VMMS",
        "event_id": 16010,
        "level": 2,
        "level_name": "error",
        "time": time,
        "time_local": None,
        "record_id": 7,
        "system_record_id": 7,
        "computer": "HV01",
        "data": {"VmName": "sql01", "Path": "D:\\VMs\\sql01.avhdx"},
        "message": None,
        "format": "evtx",
    }
    attributes.update(more)
    return Fact("event", attributes, Provenance("System.evtx", "record:7"))


ODD_TIMES = [
    "2019-03-19T23:34:25.1234567Z",
    "2019-03-19T23:34:25.123456Z",
    "2019-03-19T23:34:25.0000000Z",  # no fraction in isoformat
    "2019-03-19T23:34:25.0000009Z",
    "1601-01-01T00:00:00.0000000Z",  # FILETIME zero: before 1970
    "9999-12-31T23:59:59.9999999Z",
    "2019-02-30T23:34:25.1234567Z",  # no such day
    "2019-03-19 23:34:25.1234567Z",  # a space for the T
    "2019-03-19T23:34:25.１２３４５６７Z",  # full-width digits
    "2019-03-19T23:34:25.١٢٣٤٥٦٧Z",  # Arabic-Indic digits
    "2019-03-19T23:34:25.12345678Z",  # 8 digits: not EVTX's form
    "2019-03-19T23:34:25.1234567+00:00",
    "2019-03-19T23:34:25.1234567",
    " 2019-03-19T23:34:25.123456Z",
    "2019-03-19T23Z34:25.1234567Z",
    "2019-03-19T23:34:25,1234567Z",
    "",
    None,
    12345,
    "not a time at all, 28 chars",
]


@pytest.mark.parametrize("time", ODD_TIMES)
def test_odd_times_give_the_old_record(time: Any) -> None:
    for fact in (_event(time), _event(time, time_local="2019-03-19T08:00:00")):
        assert records.fact_record(fact) == _old_record(fact)


ODD_DATA: list[Any] = [
    {"A": None, "B": "", "C": 0, "D": False, "E": "  x\t\ny  "},
    ["one", None, "", 2, ["nested"], {"k": "v"}],
    [],
    {},
    None,
    "a bare string",
    {"Long": "w " * 5000},
    {"Bad": "\udcff surrogate from a foreign file name"},
    {"Ctl": "\x00\x1f\u2028\u2029 end"},
]


@pytest.mark.parametrize("data", ODD_DATA)
def test_odd_event_data_gives_the_old_record_and_line(data: Any) -> None:
    facts = [
        _event("2019-03-19T23:34:25.1234567Z", data=data),
        _event("2019-03-19T23:34:25.1234567Z", data=data, message="  its own\r\n message "),
        _event("2019-03-19T23:34:25.1234567Z", data=data, provider=None, event_id=None),
    ]
    for fact in facts:
        assert records.fact_record(fact) == _old_record(fact)
    # in one batch with ordinary records too (a line that needs the fallback among others)
    batch = [_event("2020-01-01T00:00:00.0000000Z"), *facts, _event(None)]
    assert records.facts_jsonl(batch) == _old_lines(batch)
    out = io.BytesIO()
    assert records.write_records(records.fact_records(batch), out, "jsonl") == len(batch)
    assert out.getvalue() == _old_lines(batch)


def test_facts_of_other_kinds_give_the_old_record() -> None:
    facts = [
        Fact("vss_writer", {"name": "System Writer", "state": "[1] Stable"}, Provenance("v")),
        Fact("package", {"install_time_local": "2021-05-01T10:00:00"}, Provenance("d", "line:3")),
        Fact("crash", {"system_time": "2021-05-01T10:00:00.5+09:00"}, Provenance("c")),
        Fact("event", {"time_local": "2022-01-12T03:15:23", "message": "x"}, Provenance("t")),
    ]
    for fact in facts:
        assert records.fact_record(fact) == _old_record(fact)
    assert records.facts_jsonl(facts) == _old_lines(facts)


def test_a_record_that_fails_midway_leaves_the_lines_before_it_written() -> None:
    def made() -> Any:
        for i in range(300):
            yield records.fact_record(_event("2019-03-19T23:34:25.1234567Z", record_id=i))
        raise OSError("the disk went away")

    out = io.BytesIO()
    with pytest.raises(OSError):
        records.write_jsonl(made(), out)
    assert out.getvalue().count(b"\n") == 300


_TIMES = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    ),
    st.text(alphabet="0123456789-T:.Z+ ١", min_size=20, max_size=30),
    st.none(),
)
_VALUES = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    time=_TIMES,
    data=st.one_of(
        st.dictionaries(st.text(max_size=8), _VALUES, max_size=5),
        st.lists(_VALUES, max_size=5),
    ),
    message=st.one_of(st.none(), st.text(max_size=40)),
)
def test_any_event_gives_the_old_record_and_line(time: Any, data: Any, message: Any) -> None:
    fact = _event(time, data=data, message=message)
    assert records.fact_record(fact) == _old_record(fact)
    assert records.facts_jsonl([fact]) == _old_lines([fact])
