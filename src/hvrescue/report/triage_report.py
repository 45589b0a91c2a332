"""Triage from evidence to the report folder in one call: what the `triage` command does.

>>> outcome = triage_to_folder(["/evidence"], ["backup-fails"], "en")
>>> outcome.out, outcome.written, outcome.report["verdict"]["state"]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.diagnose.triage import Triage
from hvrescue.errors import InputError
from hvrescue.evidence import Budget
from hvrescue.io.atomic import atomic_output, check_output_dir, prepare_output_folder

REPORT_FILES = ("report.json", "report.md", "report.html")


@dataclass
class TriageOutcome:
    triage: Triage
    report: dict[str, Any]
    out: str
    written: list[str]

    @property
    def serious(self) -> bool:
        """Anything of warning or worse found, diagnosed or not (the command's exit 1)."""
        diagnoses = self.report["diagnoses"]
        return self.report["verdict"]["state"] == "problems" or any(
            SEVERITY_ORDER[d["severity"]] >= 1 for d in diagnoses
        )


def _write(path: str, text: str) -> None:
    with atomic_output(path) as fd:
        os.write(fd, text.encode("utf-8"))


def refuse_out_inside(out: str, paths: list[str]) -> None:
    """The report folder never goes inside an evidence folder."""
    real = os.path.realpath(out)
    for p in paths:
        if os.path.isdir(p) and real.startswith(os.path.realpath(p) + os.sep):
            raise InputError("error.triage.out-inside", out=out, path=p)


def triage_to_folder(
    paths: list[str],
    symptoms: list[str],
    lang: str,
    out_dir: str | None = None,
    on_folder: Callable[[str], None] | None = None,
    budget: Budget | None = None,
    jobs: int | None = None,
    all_events: bool = False,
) -> TriageOutcome:
    """Read the evidence, diagnose, and write report.json/.md/.html to ``out_dir`` (default: a
    new folder beside the evidence, never inside it). ``on_folder(out)`` is called once the
    folder exists, before the reports are written. Part of a report is no report: whatever
    stops the writing removes what this call wrote (and the folder it made). ``all_events``:
    keep every event in full (a whole timeline is printed), not only those rules and the
    report's window use."""
    from hvrescue.diagnose.triage import default_out_dir, run_triage
    from hvrescue.report.render import build, to_html, to_json, to_markdown

    if out_dir is not None:
        check_output_dir(out_dir)  # before the analysis, not after it
    result = run_triage(list(paths), list(symptoms), budget, jobs, all_events)
    report = build(result, lang, list(symptoms))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir or default_out_dir(list(paths), stamp)
    refuse_out_inside(out, list(paths))
    texts = {
        "report.json": to_json(report),
        "report.md": to_markdown(report, lang),
        "report.html": to_html(report, lang),
    }
    created = not os.path.isdir(out)
    prepare_output_folder(out)
    if on_folder is not None:
        on_folder(out)
    written: list[str] = []
    try:
        for name in REPORT_FILES:
            target = os.path.join(out, name)
            _write(target, texts[name])
            written.append(target)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise
    return TriageOutcome(result, report, out, written)
