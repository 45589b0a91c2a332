"""The triage report: one data structure, rendered as JSON, Markdown (for tickets) and a
self-contained HTML page (no external assets; readable on a phone; verdict first)."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from hvrescue import __version__
from hvrescue.diagnose.engine import SEVERITY_ORDER, excerpt
from hvrescue.diagnose.match import parse_time
from hvrescue.diagnose.triage import Triage
from hvrescue.io.input_hash import input_hash
from hvrescue.report.html import recognised_text, severity_text, to_html, when_text
from hvrescue.report.i18n import Messages
from hvrescue.units import human_size

MAX_TIMELINE = 60


def _inputs(
    paths: list[str], recognition: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every input file with its size and hash, and what was recognised in it (zip members
    follow their archive, with no size or hash of their own)."""
    status: dict[str, dict[str, Any]] = {}
    members: dict[str, list[dict[str, Any]]] = {}
    for entry in recognition or []:
        outer, sep, _ = entry["path"].partition("!/")
        if sep:
            members.setdefault(outer, []).append(entry)
        else:
            status.setdefault(entry["path"], entry)
    by_real = _RealPaths(status, members)
    out: list[dict[str, Any]] = []
    for path in paths:
        files = [path]
        if os.path.isdir(path):
            files = []
            for root, dirs, names in os.walk(path):
                dirs.sort()
                # links are not followed out of the evidence (input_hash says None for them)
                files += [os.path.join(root, n) for n in sorted(names)]
                if len(files) > 2000:
                    break
        for f in files[:2000]:
            try:
                st = os.lstat(f)
            except OSError:
                continue
            row: dict[str, Any] = {"path": f, "size": st.st_size, "sha256": input_hash(f)}
            found, inside = by_real.find(f)
            if recognition is not None:
                row.update(_recognised(found))
            out.append(row)
            for member in inside:
                out.append({"path": member["path"], "size": None, "sha256": None} | member)
    return out


class _RealPaths:
    """What was recognised of a file, and its archive members: by the path as walked (the
    walk names the files it hands to the readers as it names them here), else by the path
    the system resolves (a link, another spelling), worked out only when needed."""

    def __init__(
        self, status: dict[str, dict[str, Any]], members: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.status = status
        self.members = members
        self.real: tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]] | None = None

    def find(self, path: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        if path in self.status or path in self.members:
            return self.status.get(path), self.members.get(path, [])
        if self.real is None:
            status: dict[str, dict[str, Any]] = {}
            members: dict[str, list[dict[str, Any]]] = {}
            for key, entry in self.status.items():
                status.setdefault(os.path.realpath(key), entry)
            for key, entries in self.members.items():
                members.setdefault(os.path.realpath(key), []).extend(entries)
            self.real = status, members
        real = os.path.realpath(path)
        return self.real[0].get(real), self.real[1].get(real, [])


def _recognised(entry: dict[str, Any] | None) -> dict[str, Any]:
    if entry is None:  # a file the walk did not hand to a reader (an archive, a folder's config)
        return {"recognised": None, "formats": [], "facts": 0, "reason": None, "detail": None}
    keys = ("recognised", "formats", "facts", "reason", "detail", "signals_only")
    return {k: entry.get(k) for k in keys}


MAX_EVENT_TEXT = 400


def event_text(attributes: dict[str, Any]) -> str:
    """An event's own text: its message, or (an EVTX record carries no rendered message) its
    data fields, without the time and source the timeline shows beside it."""
    message = " ".join(str(attributes.get("message") or "").split())
    if not message:
        data = attributes.get("data")
        if isinstance(data, dict):
            fields = [f"{k}: {_flat(v)}" for k, v in data.items() if v not in (None, "", [], {})]
        elif isinstance(data, list):
            fields = [_flat(v) for v in data if v not in (None, "", [], {})]
        else:
            fields = []
        message = "; ".join(fields)
    if len(message) > MAX_EVENT_TEXT:
        message = message[: MAX_EVENT_TEXT - 1] + "…"
    return message


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("#text", value)
    return " ".join(str(value).split())


def _timeline(triage: Triage) -> list[dict[str, Any]]:
    events = []
    for fact in triage.facts:
        if fact.kind != "event":
            continue
        a = fact.attributes
        when = parse_time(a.get("time_local") or a.get("time"))
        if when is None:
            continue
        level = str(a.get("level_name") or "")
        events.append((when, level, fact))
    events.sort(key=lambda e: e[0])
    important = [e for e in events if e[1] in ("critical", "error", "warning")] or events
    return [
        {
            "time": when.isoformat(),
            "level": level,
            "provider": fact.attributes.get("provider"),
            "event_id": fact.attributes.get("event_id"),
            "excerpt": excerpt(fact),
            "text": event_text(fact.attributes),
            "path": fact.provenance.path,
            "locator": fact.provenance.locator,
        }
        for when, level, fact in important[-MAX_TIMELINE:]
    ]


# The verdict's earlier field, kept for readers of report.json: one value per state.
_STATUS = {
    "problems": "problem",
    "healthy": "no-problem-found",
    "nothing-recognised": "no-evidence-recognised",
}


def verdict(triage: Triage, diagnoses: list[dict[str, Any]], msg: Messages) -> dict[str, Any]:
    """``state`` is ``problems``, ``healthy`` or ``nothing-recognised``; a verdict is never
    green, nor "nothing recognised", while anything of warning or worse was found."""
    state = triage.verdict_state()
    basis = triage.basis()
    serious = [d for d in diagnoses if SEVERITY_ORDER[d["severity"]] >= 1]
    top = serious[0] if serious and state == "problems" else None
    if top is not None:
        title, severity = top["title"], top["severity"]
    elif state == "problems":  # a guard: every such input has a generic diagnosis
        count = sum(basis[k] for k in ("serious_findings", "problems", "unreadable", "disk_errors"))
        title, severity = msg("ui.triage.verdict.unexplained", count=count), "warning"
    elif state == "healthy":
        title, severity = msg("ui.report.no-problem"), "ok"
    else:
        title, severity = msg("ui.report.no-evidence"), "info"
    return {
        "status": _STATUS[state],
        "state": state,
        "state_text": msg(f"ui.triage.state.{state}"),
        "title": title,
        "severity": severity,
        "id": top["id"] if top else None,
        "confidence": top["confidence"] if top else None,
        "basis": basis,
    }


def build(triage: Triage, lang: str, symptoms: list[str]) -> dict[str, Any]:
    msg = Messages(lang)
    diagnoses = [d.as_dict(lang, msg) for d in triage.diagnoses]
    return {
        "verdict": verdict(triage, diagnoses, msg),
        "diagnoses": diagnoses,
        "facts_summary": triage.facts_summary(),
        "unrecognised": [u.as_dict() for u in triage.unrecognised],
        "problems": [p.as_dict() for p in triage.problems],
        "skipped": [s.as_dict() for s in triage.skipped],
        "disks": triage.disks,
        "timeline": _timeline(triage),
        "inputs": _inputs(triage.paths, triage.recognition),
        "symptoms": symptoms,
        "paths": triage.paths,
        "lang": lang,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "tool": {"name": "hvrescue", "version": __version__},
    }


# ---------------------------------------------------------------------------- Markdown
def to_markdown(report: dict[str, Any], lang: str) -> str:
    msg = Messages(lang)
    v = report["verdict"]
    lines = [
        f"# {msg('ui.report.title')}",
        "",
        f"**{msg('ui.report.verdict')} · {v['state_text']}: {v['title']}**",
        "",
    ]
    if v["confidence"] is not None:
        lines += [
            f"{msg('ui.report.confidence')}: {v['confidence']:.0%} · "
            f"{severity_text(msg, v['severity'])}",
            "",
        ]
    for i, d in enumerate(report["diagnoses"], 1):
        lines += [
            f"## {i}. {d['title']}",
            "",
            f"`{d['id']}` · {msg('ui.report.layer')}: "
            f"{msg('layer.' + d['layer'])} · {severity_text(msg, d['severity'])} · "
            f"{d['confidence']:.0%}",
            "",
            d["summary"],
            "",
            f"### {msg('ui.report.evidence')}",
            "",
        ]
        for e in d["evidence"]:
            if not e["path"]:
                lines.append(f"- {e['excerpt']}")
                continue
            where = f"{e['path']}" + (f" ({e['locator']})" if e["locator"] else "")
            lines.append(f"- `{where}`: {e['excerpt']}")
        lines += ["", f"### {msg('ui.report.steps')}", ""]
        for n, s in enumerate(d["steps"], 1):
            lines.append(f"{n}. [{s['precondition_text']}] {s['text']}")
            if s["command"]:
                lines += ["", "   ```", f"   {s['command']}", "   ```"]
        if d["avoid"]:
            lines += ["", f"### {msg('ui.report.avoid')}", ""]
            lines += [f"- {a}" for a in d["avoid"]]
        lines.append("")
    if report["timeline"]:
        lines += [f"## {msg('ui.report.timeline')}", ""]
        lines += [
            f"- {when_text(t['time'])} {t['provider']} {t['event_id']}: "
            f"{t.get('text', t['excerpt']) or msg('ui.report.no-text')}"
            for t in report["timeline"]
        ]
        lines.append("")
    if report["disks"]:
        lines += [f"## {msg('ui.report.chains')}", ""]
        for disk in report["disks"]:
            lines.append("- " + " → ".join(disk["chain"] or [disk["path"]]))
        lines.append("")
    cols = [msg(f"ui.report.col.{c}") for c in ("path", "size", "sha256", "recognised")]
    lines += [
        f"## {msg('ui.report.inputs')}",
        "",
        "| " + " | ".join(cols) + " |",
        "|---|--:|---|---|",
    ]
    lines += [
        f"| {i['path']} | {'-' if i['size'] is None else human_size(i['size'])} "
        f"| {i['sha256'] or '-'} | {recognised_text(msg, i)} |"
        for i in report["inputs"]
    ]
    if report.get("skipped"):
        lines += ["", f"## {msg('ui.report.skipped')}", ""]
        for sk in report["skipped"]:
            reason = msg(f"skipped.reason.{sk['reason']}")
            detail = f"; {sk['detail']}" if sk.get("detail") else ""
            lines.append(f"- {sk['path']} ({reason}{detail})")
    if report["unrecognised"]:
        lines += ["", f"## {msg('ui.report.unrecognised')}", ""]
        lines += [
            f"- {u['path']} ({msg('facts.reason.' + str(u['reason']))})"
            for u in report["unrecognised"]
        ]
    lines += [
        "",
        f"_{report['tool']['name']} {report['tool']['version']} · {report['created']}_",
        "",
    ]
    return "\n".join(lines)


__all__ = ["build", "to_html", "to_json", "to_markdown"]


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, default=str)
