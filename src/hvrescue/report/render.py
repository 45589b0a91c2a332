"""The triage report: one data structure, rendered as JSON, Markdown (for tickets) and a
self-contained HTML page (no external assets; readable on a phone; verdict first)."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from typing import Any

from hvrescue import __version__
from hvrescue.diagnose.engine import SEVERITY_ORDER, excerpt, parse_time
from hvrescue.diagnose.triage import Triage
from hvrescue.report.i18n import Messages

MAX_TIMELINE = 60
HASH_INPUTS_UP_TO = 256 * 1024 * 1024
COLORS = {
    "critical": "#9b1c1c",
    "error": "#c62828",
    "warning": "#b26a00",
    "info": "#1565c0",
    "ok": "#2e7d32",
}


def _inputs(paths: list[str]) -> list[dict[str, Any]]:
    from hvrescue.preserve.case import input_hash

    out: list[dict[str, Any]] = []
    for path in paths:
        files = [path]
        if os.path.isdir(path):
            files = []
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names)]
                if len(files) > 2000:
                    break
        for f in files[:2000]:
            try:
                size = os.path.getsize(f)
            except OSError:
                continue
            out.append({"path": f, "size": size, "sha256": input_hash(f)})
    return out


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
        "disks": triage.disks,
        "timeline": _timeline(triage),
        "inputs": _inputs(triage.paths),
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
        lines += [f"{msg('ui.report.confidence')}: {v['confidence']:.0%} · {v['severity']}", ""]
    for i, d in enumerate(report["diagnoses"], 1):
        lines += [
            f"## {i}. {d['title']}",
            "",
            f"`{d['id']}` · {msg('ui.report.layer')}: "
            f"{msg('layer.' + d['layer'])} · {d['severity']} · {d['confidence']:.0%}",
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
            f"- {t['time']} {t['provider']} {t['event_id']}: {t['excerpt']}"
            for t in report["timeline"]
        ]
        lines.append("")
    if report["disks"]:
        lines += [f"## {msg('ui.report.chains')}", ""]
        for disk in report["disks"]:
            lines.append("- " + " → ".join(disk["chain"] or [disk["path"]]))
        lines.append("")
    lines += [f"## {msg('ui.report.inputs')}", "", "| path | bytes | SHA-256 |", "|---|---|---|"]
    lines += [f"| {i['path']} | {i['size']} | {i['sha256'] or '-'} |" for i in report["inputs"]]
    if report["unrecognised"]:
        lines += ["", f"## {msg('ui.report.unrecognised')}", ""]
        lines += [f"- {u['path']} ({u['reason']})" for u in report["unrecognised"]]
    lines += [
        "",
        f"_{report['tool']['name']} {report['tool']['version']} · {report['created']}_",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- HTML
_CSS = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans CJK JP",sans-serif;color:#1b1b1b;background:#f6f7f9}
main{max-width:960px;margin:0 auto;padding:12px}
.verdict{color:#fff;padding:18px 16px;border-radius:10px;margin:0 0 14px}
.verdict h1{margin:0 0 4px;font-size:1.35em}.verdict p{margin:0;opacity:.95}
section{background:#fff;border:1px solid #e2e4e8;border-radius:10px;padding:12px 14px;margin:0 0 14px}
h2{font-size:1.15em;margin:.2em 0 .4em}h3{font-size:1em;margin:.8em 0 .3em}
.meta{color:#555;font-size:.9em}.tag{display:inline-block;border-radius:6px;padding:0 6px;color:#fff;font-size:.85em}
ol.steps li{margin:0 0 10px}.pre{display:flex;gap:6px;align-items:flex-start;margin-top:4px}
pre{flex:1;margin:0;background:#0f1720;color:#e6edf3;padding:8px 10px;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.88em}
button{border:1px solid #bbb;background:#fafafa;border-radius:6px;padding:4px 8px;font-size:.85em}
ul.evidence li{margin-bottom:4px}code{background:#eef0f3;padding:0 4px;border-radius:4px;word-break:break-all}
.chain{display:flex;flex-wrap:wrap;align-items:center;gap:6px}.box{border:2px solid #607d8b;border-radius:8px;padding:4px 8px;background:#eef3f6;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:.88em}td,th{border-bottom:1px solid #e2e4e8;padding:4px;text-align:left;vertical-align:top;word-break:break-all}
.avoid li{color:#8a1c1c}
"""

_JS = """
document.querySelectorAll('button[data-copy]').forEach(function(b){b.addEventListener('click',function(){
var t=document.getElementById(b.getAttribute('data-copy')).textContent;
if(navigator.clipboard){navigator.clipboard.writeText(t)}b.textContent=b.getAttribute('data-done')})});
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def to_html(report: dict[str, Any], lang: str) -> str:
    msg = Messages(lang)
    v = report["verdict"]
    color = COLORS.get(v["severity"], COLORS["info"])
    parts = [
        f'<!DOCTYPE html><html lang="{_e(lang)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(msg('ui.report.title'))}</title><style>{_CSS}</style></head><body><main>",
        f'<div class="verdict" id="verdict" style="background:{color}">',
        f"<p>{_e(msg('ui.report.verdict'))} · {_e(v['state_text'])}</p><h1>{_e(v['title'])}</h1>",
    ]
    if v["confidence"] is not None:
        parts.append(
            f"<p>{_e(msg('ui.report.confidence'))}: {v['confidence']:.0%} · {_e(v['severity'])}</p>"
        )
    parts.append("</div>")
    copy_id = 0
    for i, d in enumerate(report["diagnoses"], 1):
        tag = COLORS.get(d["severity"], COLORS["info"])
        parts += [
            f'<section id="{_e(d["id"])}"><h2>{i}. {_e(d["title"])}</h2>',
            f'<p class="meta"><span class="tag" style="background:{tag}">{_e(d["severity"])}</span> '
            f"<code>{_e(d['id'])}</code> · {_e(msg('ui.report.layer'))}: "
            f"{_e(msg('layer.' + d['layer']))} · {d['confidence']:.0%}</p>",
            f"<p>{_e(d['summary'])}</p>",
            f'<h3>{_e(msg("ui.report.evidence"))}</h3><ul class="evidence">',
        ]
        for e in d["evidence"]:
            if not e["path"]:
                parts.append(f"<li>{_e(e['excerpt'])}</li>")
                continue
            where = e["path"] + (f" ({e['locator']})" if e["locator"] else "")
            parts.append(f"<li><code>{_e(where)}</code><br>{_e(e['excerpt'])}</li>")
        parts.append(f'</ul><h3>{_e(msg("ui.report.steps"))}</h3><ol class="steps">')
        for s in d["steps"]:
            parts.append(
                f'<li><span class="meta">[{_e(s["precondition_text"])}]</span> {_e(s["text"])}'
            )
            if s["command"]:
                copy_id += 1
                parts.append(
                    f'<div class="pre"><pre id="cmd{copy_id}">{_e(s["command"])}</pre>'
                    f'<button data-copy="cmd{copy_id}" data-done="{_e(msg("ui.report.copied"))}">'
                    f"{_e(msg('ui.report.copy'))}</button></div>"
                )
            parts.append("</li>")
        parts.append("</ol>")
        if d["avoid"]:
            parts.append(f'<h3>{_e(msg("ui.report.avoid"))}</h3><ul class="avoid">')
            parts += [f"<li>{_e(a)}</li>" for a in d["avoid"]]
            parts.append("</ul>")
        parts.append("</section>")
    if report["disks"]:
        parts.append(f"<section><h2>{_e(msg('ui.report.chains'))}</h2>")
        for disk in report["disks"]:
            chain = disk["chain"] or [disk["path"]]
            boxes = " <span>→</span> ".join(
                f'<span class="box">{_e(os.path.basename(p))}</span>' for p in chain
            )
            parts.append(
                f'<div class="chain">{boxes}</div><p class="meta">{_e(disk["status"])}</p>'
            )
        parts.append("</section>")
    if report["timeline"]:
        parts.append(f"<section><h2>{_e(msg('ui.report.timeline'))}</h2><table>")
        for t in report["timeline"]:
            parts.append(
                f"<tr><td>{_e(t['time'])}</td><td>{_e(t['provider'])} {_e(t['event_id'])}</td>"
                f"<td>{_e(t['excerpt'])}</td></tr>"
            )
        parts.append("</table></section>")
    parts.append(f"<section><h2>{_e(msg('ui.report.inputs'))}</h2><table>")
    for item in report["inputs"]:
        parts.append(
            f"<tr><td>{_e(item['path'])}</td><td>{_e(item['size'])}</td>"
            f"<td><code>{_e(item['sha256'] or '-')}</code></td></tr>"
        )
    parts.append("</table></section>")
    parts.append(
        f'<p class="meta">{_e(report["tool"]["name"])} {_e(report["tool"]["version"])} · '
        f"{_e(report['created'])}</p></main><script>{_JS}</script></body></html>"
    )
    return "".join(parts)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, default=str)
