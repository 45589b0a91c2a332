"""`fleet` end to end through the CLI on 200 generated bundles (healthy hosts, the VSS-writers
incident in English, Japanese and reposted, a hypervisor that did not start, hosts named only by
systeminfo, unpacked bundle folders, broken zips), checked against `triage --json` run on a
sample of the same bundles; the summary's files, the bundle search, and the Velociraptor
artifact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from hvrescue.report.i18n import catalogue
from tests.fleet_world import BROKEN, CYCLE, FLEET, bundle_files, write_bundle, write_fleet
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "contrib" / "velociraptor" / "Windows.Triage.Hvrescue.yaml"
COUNT = 200


@pytest.fixture(scope="module")
def fleet200(tmp_path_factory: pytest.TempPathFactory):
    """The 200 bundles, one `fleet` run over their folder (JSON on stdout, HTML to a file)."""
    base = tmp_path_factory.mktemp("fleet")
    bundles = write_fleet(base / "bundles", COUNT)
    out = base / "out"
    out.mkdir()
    html = out / "summary.html"
    r = run_cli("fleet", base / "bundles", "--jobs", "2", "--json", "-o", html)
    return bundles, r, html, base


def _by_bundle(data):
    return {h["bundle"]: h for h in data["hosts"]}


def _oracle(bundle: Path, out: Path):
    """`triage --json` of one bundle, run on its own: the independent answer."""
    r = run_cli("triage", bundle, "--out", out / f"{bundle.name}-report", "--json")
    assert r.rc in (0, 1), r.stderr
    return r.rc, r.json()


def _names_the_bundle(report, bundle: Path) -> bool:
    entries = report["unrecognised"] + report["skipped"]
    return any(Path(e["path"]) == bundle for e in entries)


@pytest.mark.slow  # 200 bundles; bench/bench_fleet.py times them
def test_fleet_of_200_matches_triage_of_each_bundle(fleet200):
    bundles, r, _, base = fleet200
    assert r.rc == 1, r.stderr  # broken bundles and incidents: not all healthy
    data = r.json()
    hosts = _by_bundle(data)
    assert sorted(hosts) == sorted(str(p) for p, _, _ in bundles)
    # The oracle: `triage` on one bundle of every kind and a few more at random.
    rng = random.Random(15)
    sample = {kind: next(b for b in bundles if b[1] == kind) for kind in set(CYCLE)}
    extra = rng.sample(bundles, 2)
    answers = {}
    for path, kind, _ in [*sample.values(), *extra]:
        rc, report = _oracle(path, base)
        h = hosts[str(path)]
        if kind in BROKEN:
            # Nothing of the bundle could be read: triage says so of the bundle itself.
            assert _names_the_bundle(report, path), report
            assert set(report["facts_summary"]) <= {"evidence_problem"}
            assert h["verdict"] == "failed" and h["error"] and h["error_code"]
            answers[kind] = ("failed", [])
            continue
        got = [(d["id"], d["confidence"], d["severity"]) for d in h["diagnoses"]]
        want = [(d["id"], d["confidence"], d["severity"]) for d in report["diagnoses"]]
        assert got == want, path
        assert h["verdict"] == report["verdict"]["state"], path
        assert h["counts"] == report["verdict"]["basis"], path
        assert h["serious"] == (rc == 1), path
        assert h["error"] is None
        answers[kind] = (h["verdict"], [d[0] for d in want])
    # Bundles of one kind hold the same outputs (only the host differs): the same answer.
    for path, kind, _ in bundles:
        h = hosts[str(path)]
        assert (h["verdict"], [d["id"] for d in h["diagnoses"]]) == answers[kind], path
    # Where an incident was planted, triage found it (the oracle is not vacuous).
    assert "vss.writers-missing.eventsystem-shared-host" in answers["vss-en"][1]
    assert "vss.writers-missing.eventsystem-shared-host" in answers["vss-ja"][1]
    assert answers["healthy"] == ("healthy", [])


def test_summary_counts_are_the_hosts_counted(fleet200):
    bundles, r, _, _ = fleet200
    data = r.json()
    verdicts = Counter(h["verdict"] for h in data["hosts"])
    counts = data["counts"]
    assert counts["hosts"] == COUNT == sum(verdicts.values())
    for v in ("failed", "problems", "healthy", "nothing-recognised"):
        assert counts[v] == verdicts.get(v, 0), v
    assert counts["failed"] == sum(1 for _, kind, _ in bundles if kind in BROKEN)
    # Per diagnosis: exactly the hosts that have it, once per bundle.
    for d in data["diagnoses"]:
        having = [h["host"] for h in data["hosts"] if d["id"] in {x["id"] for x in h["diagnoses"]}]
        assert sorted(d["hosts"]) == sorted(having) and d["count"] == len(having)
        assert d["title"] and d["severity"] in ("info", "warning", "error", "critical")
    ids = {x["id"] for h in data["hosts"] for x in h["diagnoses"]}
    assert {d["id"] for d in data["diagnoses"]} == ids and counts["diagnoses"] == len(ids)


def test_host_names_come_from_manifest_then_systeminfo_then_file_name(fleet200):
    bundles, r, _, _ = fleet200
    hosts = _by_bundle(r.json())
    for path, kind, expected in bundles:
        h = hosts[str(path)]
        assert h["host"] == expected, (path, h["host"])
        source = {"sysinfo-en": "systeminfo", "sysinfo-ja": "systeminfo"}.get(kind, "manifest")
        assert h["host_source"] == ("file-name" if kind in BROKEN else source)


def test_broken_bundle_is_a_failed_host_with_its_reason(fleet200):
    bundles, r, _, _ = fleet200
    hosts = _by_bundle(r.json())
    reasons = {}
    for path, kind, _ in bundles:
        if kind in BROKEN:
            h = hosts[str(path)]
            assert h["verdict"] == "failed" and h["serious"] and h["diagnoses"] == []
            reasons[kind] = (h["error_code"], h["error"])
    assert reasons["truncated"][0] == "bundle-unreadable"
    assert "BadZipFile" in reasons["truncated"][1]
    assert reasons["garbage"][0] == reasons["empty"][0] == "not-a-bundle"


def test_html_summary_is_complete_and_self_contained(fleet200):
    bundles, _, html, _ = fleet200
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<html lang="en">' in text
    for _, _, host in bundles:
        assert host in text
    en = catalogue("en")
    assert en["ui.fleet.section.unreadable"] in text
    assert not re.search(r"<(?:link|img|script)[^>]+(?:src|href)=", text)  # no outside assets
    assert not re.search(r"\{[a-z_]+\}", text)  # every template filled
    assert [p.name for p in html.parent.iterdir()] == ["summary.html"]  # no temporary left


def test_summary_never_overwrites(fleet200):
    _, _, html, base = fleet200
    before = hashlib.sha256(html.read_bytes()).hexdigest()
    folder = base / "small"
    write_bundle(folder, 0, "healthy")
    r = run_cli("fleet", folder, "-o", html)
    assert r.rc == 2
    assert hashlib.sha256(html.read_bytes()).hexdigest() == before


def test_summary_is_refused_inside_the_bundles(tmp_path: Path):
    folder = tmp_path / "bundles"
    write_bundle(folder, 0, "healthy")
    r = run_cli("fleet", folder, "-o", folder / "summary.html")
    assert r.rc == 2 and not (folder / "summary.html").exists()


def test_all_healthy_exits_0_and_json_file(tmp_path: Path):
    folder = tmp_path / "bundles"
    for i in range(3):
        write_bundle(folder, i, "healthy")
    out = tmp_path / "summary.json"
    r = run_cli("fleet", folder, "--jobs", "1", "-o", out)
    assert r.rc == 0, r.stdout + r.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["counts"]["healthy"] == 3 and data["diagnoses"] == []
    # A bundle in which nothing was recognised is not "all healthy".
    odd = folder / "odd.zip"
    with zipfile.ZipFile(odd, "w") as zf:
        zf.writestr("notes.txt", "nothing a parser knows\n")
    r = run_cli("fleet", folder, "--json")
    assert r.rc == 1
    assert _by_bundle(r.json())[str(odd)]["verdict"] == "nothing-recognised"


def test_japanese_summary(tmp_path: Path):
    folder = tmp_path / "bundles"
    write_bundle(folder, 0, "vss-ja")
    write_bundle(folder, 1, "garbage")
    html = tmp_path / "summary.html"
    r = run_cli("--lang", "ja", "fleet", folder, "-o", html, "--json")
    assert r.rc == 1, r.stderr
    text = html.read_text(encoding="utf-8")
    ja = catalogue("ja")
    assert '<html lang="ja">' in text and ja["ui.fleet.title"] in text
    assert ja["ui.fleet.verdict.failed"] in text
    title = r.json()["diagnoses"][0]["title"]
    assert re.search("[ぁ-んァ-ン一-龯]", title) and title in text


def test_bundle_over_the_memory_budget_fails_alone(tmp_path: Path):
    folder = tmp_path / "bundles"
    good, _ = write_bundle(folder, 0, "vss-en")
    # A central directory of ~1.6 MiB: zipfile would hold ~16 times that, more than a 16M budget.
    big = folder / "bundle-001-huge.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zf:
        for i in range(14_000):
            zf.writestr(f"listings/{'x' * 60}-{i:06d}.txt", b"")
    # A bundle read in part: an event log too large to hold whole within the budget.
    part = folder / "bundle-002-part.zip"
    files, _ = bundle_files("healthy", "HV-PART-002")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("logs/System.evtx", b"ElfFile\0" + bytes(20 * 1024 * 1024))
    html = tmp_path / "summary.html"
    r = run_cli("fleet", folder, "--json", "--max-memory", "16M", "--jobs", "2", "-o", html)
    assert r.rc == 1, r.stderr
    hosts = _by_bundle(r.json())
    h = hosts[str(big)]
    assert h["verdict"] == "failed" and h["error_code"] == "bundle-unreadable"
    assert "memory" in h["error"]
    assert hosts[str(good)]["verdict"] == "problems"
    p = hosts[str(part)]
    assert p["verdict"] == "problems" and p["error"] is None and p["host"] == "HV-PART-002"
    assert p["unread_total"] >= 1
    assert any(u["path"].endswith("logs/System.evtx") for u in p["unread"])
    text = html.read_text(encoding="utf-8")
    section = text.split(catalogue("en")["ui.fleet.section.unreadable"], 1)[1]
    assert "logs/System.evtx" in section and "HV-PART-002" in section


@pytest.mark.slow  # several pools of workers
def test_a_worker_that_dies_costs_only_its_bundle(tmp_path: Path, monkeypatch):
    from hvrescue.fleet import run, run_fleet
    from tests.fleet_world import crashing_worker

    folder = tmp_path / "bundles"
    paths = [str(write_bundle(folder, i, kind)[0]) for i, kind in enumerate(CYCLE[:8])]
    crash = folder / "bundle-099-crash.zip"
    crash.write_bytes(Path(paths[0]).read_bytes())
    # First in line: the pool breaks while most bundles wait, and they must still be answered;
    # workers replaced every 3 bundles each: batches of 6, the last one short.
    with monkeypatch.context() as m:
        m.setattr(run, "TASKS_PER_WORKER", 3)
        summary = run_fleet([str(crash), *paths], "en", jobs=2, worker=crashing_worker)
    by_bundle = {r.bundle: r for r in summary.results}
    assert [r.bundle for r in summary.results] == [str(crash), *paths]  # each once, in order
    dead = by_bundle[str(crash)]
    assert dead.verdict == "failed" and dead.error_code == "worker-died" and dead.error
    # Every other bundle has its own answer, as a run without the crash gives it.
    alone = {r.bundle: r for r in run_fleet(paths, "en", jobs=2).results}
    for p in paths:
        assert (by_bundle[p].verdict, by_bundle[p].diagnoses) == (
            alone[p].verdict,
            alone[p].diagnoses,
        )
    assert summary.counts()["failed"] == 1 + sum(1 for r in alone.values() if r.verdict == "failed")


def test_missing_path_cannot_run(tmp_path: Path):
    r = run_cli("fleet", tmp_path / "nowhere", "--json")
    assert r.rc == 2


# ---------------------------------------------------------------- finding the bundles
def test_bundles_are_found_in_a_hunt_download(tmp_path: Path):
    from hvrescue.fleet import find_bundles

    # A Velociraptor hunt download, unpacked: each client's uploads under its own folder.
    hunt = tmp_path / "H.CJ8Q2"
    paths = []
    for i, client in enumerate(("C.1a2b3c4d5e6f7a8b", "C.9f8e7d6c5b4a3f2e")):
        up = hunt / "clients" / client / "collections" / "F.CJ8Q2" / "uploads" / "auto"
        path, _ = write_bundle(up / "C%3A" / "Windows" / "Temp", i, "healthy")
        paths.append(str(path))
    # An unpacked bundle folder: the zip inside it is its own evidence, not another host.
    folder, _ = write_bundle(hunt / "unpacked", 5, "folder")
    write_bundle(folder / "nested", 6, "healthy")
    (hunt / "hunt_results.json").write_text("{}", encoding="utf-8")
    outside, _ = write_bundle(tmp_path / "elsewhere", 7, "healthy")
    with contextlib.suppress(OSError):  # no links on this system: nothing to check there
        (hunt / "link.zip").symlink_to(outside)
    found = find_bundles([str(hunt)])
    assert sorted(found) == sorted([*paths, str(folder)])
    # A folder with neither zips nor a manifest is one host's folder.
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "vssadmin.txt").write_bytes((FLEET / "systeminfo_en.txt").read_bytes())
    assert find_bundles([str(loose)]) == [str(loose)]


def test_manifest_problems_leave_the_host_to_the_other_sources(tmp_path: Path):
    from hvrescue.fleet import read_manifest

    def bundle(name: str, manifest: bytes) -> str:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("hvrescue-bundle.json", manifest)
        return str(path)

    good = json.loads((FLEET / "hvrescue-bundle.json").read_text(encoding="utf-8"))
    assert read_manifest(bundle("a.zip", json.dumps(good).encode())).host == good["host"]
    assert read_manifest(bundle("b.zip", b"{not json")).problem == "not-json"
    assert read_manifest(bundle("c.zip", b'{"format": "other", "host": "X"}')).problem == "foreign"
    spoofed = {**good, "host": "\x1b[2J\nHV\u200b01"}
    # Control and invisible characters never reach a terminal or the page.
    assert read_manifest(bundle("d.zip", json.dumps(spoofed).encode())).host == "[2JHV01"
    assert read_manifest(bundle("e.zip", b"\xff\xfe\x00")).problem == "not-json"
    assert read_manifest(str(tmp_path)).found is False


# ---------------------------------------------------------------- the Velociraptor artifact
def _vql_list(query: str, after: str) -> list[str]:
    """The items of the VQL list literal that follows ``after``, split at its own commas
    (not those inside brackets, parentheses or strings)."""
    start = query.index(after) + len(after)
    assert query[start] == "["
    items, depth, quote, current = [], 0, None, ""
    for ch in query[start + 1 :]:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
            continue
        current += ch
    return [*items, current.strip()]


def test_velociraptor_artifact_has_the_required_fields():
    import yaml

    art = yaml.safe_load(ARTIFACT.read_text(encoding="utf-8"))
    assert art["name"] == ARTIFACT.stem and art["name"].startswith("Windows.")
    assert art["type"] == "CLIENT" and art["description"].strip()
    assert "windows" in art["precondition"].lower() and "info()" in art["precondition"]
    assert "EXECVE" in art["required_permissions"]
    tools = art["tools"]
    assert tools and all(t["name"] and ("url" in t or t.get("serve_locally")) for t in tools)
    for p in art["parameters"]:
        assert p["name"] and "default" in p
        if p.get("type") == "choices":
            assert p["default"] in p["choices"]
    (source,) = art["sources"]
    query = source["query"]
    tool = tools[0]["name"]
    assert f'Artifact.Generic.Utils.FetchBinary(ToolName="{tool}")' in query
    argv = _vql_list(query, "execve(argv=")
    # The fetched binary runs `collect` into the bundle that upload() then sends.
    assert argv[0] == "Tool[0].OSPath" and '"collect"' in argv
    target = argv[argv.index('"collect"') + 1]
    assert re.search(rf"upload\(file={target}\b", query)
    assert re.search(rf"LET {target} <= path_join\(components=\[TempDir", query)
    assert "LET TempDir <= tempdir()" in query
    assert not query.rstrip().endswith(";")  # VQL has no statement terminator
    langs = next(p for p in art["parameters"] if p["name"] == "Language")["choices"]
    assert set(langs) <= {"en", "ja"}
