"""Test harness: run the real CLI and prove that every input is left byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARED = Path(
    os.environ.get("HVRESCUE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared"
)
CORPUS = SHARED / "corpus" / "public"


def file_state(path: Path) -> tuple[str, int, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    st = os.stat(path)
    return h.hexdigest(), st.st_size, st.st_mtime_ns


class Evidence:
    """Snapshot of files (directories are walked): content hash, size and mtime."""

    def __init__(self, paths: list[Path]) -> None:
        self.files: list[Path] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                self.files += sorted(x for x in p.rglob("*") if x.is_file())
            elif p.is_file():
                self.files.append(p)
        self.before = {p: file_state(p) for p in self.files}

    def assert_untouched(self) -> None:
        for p, state in self.before.items():
            assert p.exists(), f"{p} disappeared"
            assert file_state(p) == state, f"{p} was modified"
        # Nothing new may appear beside the evidence either.
        for p in self.files:
            siblings = {x for x in p.parent.iterdir()}
            assert all(not x.name.endswith(".part") for x in siblings), f"temp file near {p}"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(
    *args: str | Path, evidence: list[Path] | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run ``python -m hvrescue ARGS`` and assert the evidence is unchanged afterwards."""
    snap = Evidence(evidence or [Path(a) for a in args if isinstance(a, Path)])
    full_env = dict(os.environ)
    full_env.pop("HVRESCUE_LANG", None)
    full_env.update({"LANG": "C.UTF-8", "LC_ALL": "", "COLUMNS": "200"})
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "hvrescue", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )
    snap.assert_untouched()
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


def codes(result_json: dict[str, Any]) -> set[str]:
    return {f["code"] for f in result_json["findings"]}


# Any hiragana, katakana or kanji: text that was written in Japanese.
JAPANESE = re.compile("[ぁ-んァ-ン一-龯]")


def triage_incident(
    source: Path,
    tmp_path: Path,
    expected: str | None,
    command: str | None,
    lang: str,
    healthy: bool = False,
) -> dict[str, Any]:
    """``hvrescue triage`` of a copy of an incident folder, checked: with ``expected`` None,
    nothing of warning or worse and exit 0 (``healthy``: a healthy verdict too); else that
    rule leads the report and the verdict, exit 1, its evidence inside the folder, a step
    whose command holds ``command``, and Japanese title and first step in ``ja``."""
    from hvrescue.diagnose.engine import SEVERITY_ORDER

    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    out = tmp_path / f"{source.name}-report"
    r = run_cli("--lang", lang, "triage", folder, "--out", out, "--json", evidence=[folder])
    assert r.rc in (0, 1), r.stdout[-2000:] + r.stderr[-2000:]
    data: dict[str, Any] = r.json()
    worst = [
        d for d in data["diagnoses"] if SEVERITY_ORDER[d["severity"]] >= SEVERITY_ORDER["warning"]
    ]
    if expected is None:
        assert worst == [], [d["id"] for d in worst]
        assert r.rc == 0 and data["verdict"]["state"] != "problems"
        if healthy:
            assert data["verdict"]["state"] == "healthy", data["verdict"]
        return data
    top = data["diagnoses"][0]
    assert top["id"] == expected, [d["id"] for d in data["diagnoses"]]
    assert r.rc == 1 and data["verdict"]["id"] == expected
    assert top["evidence"] and all(e["path"].startswith(str(folder)) for e in top["evidence"])
    commands = [s["command"] for s in top["steps"]]
    assert command is None or any(command in c for c in commands), commands
    if lang == "ja":
        assert JAPANESE.search(top["title"]) and JAPANESE.search(top["steps"][0]["text"])
    return data
