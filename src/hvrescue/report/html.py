"""The triage report as one self-contained HTML page: no external assets, verdict first, readable
on a 390 px phone and a 1280 px desktop.

Layout rules: commands scroll sideways and are never broken inside a token; paths and hashes may
wrap anywhere (they have no spaces) but stay inside their card; timestamps never wrap; every table
has column headers; the timeline shows each event's own text once, beside its time and source.
"""

from __future__ import annotations

import html
import os
from typing import Any

from hvrescue.report.i18n import Messages
from hvrescue.units import human_size

COLORS = {
    "critical": "#9b1c1c",
    "error": "#c62828",
    "warning": "#b26a00",
    "info": "#1565c0",
    "ok": "#2e7d32",
}

_CSS = """
*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans CJK JP",sans-serif;color:#1b1b1b;background:#f6f7f9;overflow-wrap:break-word}
main{max-width:1100px;margin:0 auto;padding:12px}
.verdict{color:#fff;padding:18px 16px;border-radius:10px;margin:0 0 14px}
.verdict h1{margin:0 0 4px;font-size:1.35em}.verdict p{margin:0;opacity:.95}
section{background:#fff;border:1px solid #e2e4e8;border-radius:10px;padding:12px 14px;margin:0 0 14px;min-width:0;overflow:hidden}
h2{font-size:1.15em;margin:.2em 0 .4em}h3{font-size:1em;margin:.8em 0 .3em}
ol,ul{padding-left:1.4em}
.meta{color:#555;font-size:.9em}.tag{display:inline-block;border-radius:6px;padding:0 6px;color:#fff;font-size:.85em}
ol.steps li{margin:0 0 10px}.pre{display:flex;gap:6px;align-items:flex-start;margin-top:4px;min-width:0}
pre{flex:1;min-width:0;margin:0;background:#0f1720;color:#e6edf3;padding:8px 10px;border-radius:6px;overflow-x:auto;white-space:pre;word-break:normal;overflow-wrap:normal;font-size:.88em}
button{flex:none;border:1px solid #bbb;background:#fafafa;border-radius:6px;padding:4px 8px;font-size:.85em}
ul.evidence li{margin-bottom:6px}
code{background:#eef0f3;padding:0 4px;border-radius:4px}
.path,.hash{font-family:ui-monospace,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere;word-break:normal}
.excerpt{display:block;overflow-wrap:anywhere}
.chain{display:flex;flex-wrap:wrap;align-items:center;gap:6px}.box{border:2px solid #607d8b;border-radius:8px;padding:4px 8px;background:#eef3f6;overflow-wrap:anywhere;max-width:100%}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.88em}
th{position:sticky;top:0;background:#f0f2f5;font-weight:600}
td,th{border-bottom:1px solid #e2e4e8;padding:4px 6px;text-align:left;vertical-align:top}
td.when,td.num{white-space:nowrap}td.num{text-align:right}
td.text{overflow-wrap:anywhere;min-width:12em}
.lvl-critical,.lvl-error{color:#c62828;font-weight:600}.lvl-warning{color:#b26a00;font-weight:600}
.avoid li{color:#8a1c1c}
@media (max-width:600px){
 main{padding:8px}section{padding:10px}
 table.timeline thead{display:none}
 table.timeline tr{display:block;border-bottom:1px solid #e2e4e8;padding:4px 0}
 table.timeline td{display:inline;border:0;padding:0 6px 0 0}
 table.timeline td.text{display:block;min-width:0}
}
"""

_JS = """
document.querySelectorAll('button[data-copy]').forEach(function(b){b.addEventListener('click',function(){
var t=document.getElementById(b.getAttribute('data-copy')).textContent;
if(navigator.clipboard){navigator.clipboard.writeText(t)}b.textContent=b.getAttribute('data-done')})});
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def when_text(iso: str | None) -> str:
    """``2024-01-05T03:04:05+00:00`` as ``2024-01-05 03:04:05`` (the zone said once, beside)."""
    if not iso:
        return ""
    text = str(iso).replace("T", " ")
    for suffix in ("+00:00", "Z"):
        text = text.removesuffix(suffix)
    return text.split(".")[0]


def severity_text(msg: Messages, severity: str) -> str:
    key = f"ui.report.severity.{severity}"
    return msg(key) if msg.has(key) else severity


def recognised_text(msg: Messages, item: dict[str, Any]) -> str:
    """What was recognised in one input, for a person: the formats read, only loose signals,
    or why nothing was (empty for a report.json of an earlier version)."""
    recognised = item.get("recognised")
    if recognised is None:
        return ""
    if item.get("signals_only"):
        return msg("ui.report.input.signals-only", facts=item.get("facts", 0))
    if recognised:
        formats = ", ".join(item.get("formats") or [])
        return msg("ui.report.input.recognised", formats=formats, facts=item.get("facts", 0))
    reason = str(item.get("reason") or "no-known-content")
    why = reason
    for key in (f"facts.reason.{reason}", f"skipped.reason.{reason}"):
        if msg.has(key):
            why = msg(key)
            break
    return msg("ui.report.input.not-recognised", reason=why)


class _Page:
    def __init__(self, report: dict[str, Any], lang: str) -> None:
        self.report = report
        self.msg = Messages(lang)
        self.lang = lang
        self.parts: list[str] = []
        self.copy_id = 0

    def add(self, *text: str) -> None:
        self.parts.extend(text)

    def head(self) -> None:
        msg, v = self.msg, self.report["verdict"]
        color = COLORS.get(v["severity"], COLORS["info"])
        self.add(
            f'<!DOCTYPE html><html lang="{_e(self.lang)}"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(msg('ui.report.title'))}</title><style>{_CSS}</style></head><body><main>",
            f'<div class="verdict" id="verdict" style="background:{color}">',
            f"<p>{_e(msg('ui.report.verdict'))} · {_e(v['state_text'])}</p>",
            f"<h1>{_e(v['title'])}</h1>",
        )
        if v["confidence"] is not None:
            self.add(
                f"<p>{_e(msg('ui.report.confidence'))}: {v['confidence']:.0%} · "
                f"{_e(severity_text(msg, v['severity']))}</p>"
            )
        self.add("</div>")

    def diagnosis(self, i: int, d: dict[str, Any]) -> None:
        msg = self.msg
        tag = COLORS.get(d["severity"], COLORS["info"])
        self.add(
            f'<section id="{_e(d["id"])}"><h2>{i}. {_e(d["title"])}</h2>',
            f'<p class="meta"><span class="tag" style="background:{tag}">'
            f"{_e(severity_text(msg, d['severity']))}</span> "
            f"<code>{_e(d['id'])}</code> · {_e(msg('ui.report.layer'))}: "
            f"{_e(msg('layer.' + d['layer']))} · {d['confidence']:.0%}</p>",
            f"<p>{_e(d['summary'])}</p>",
            f'<h3>{_e(msg("ui.report.evidence"))}</h3><ul class="evidence">',
        )
        for e in d["evidence"]:
            if not e["path"]:
                self.add(f'<li><span class="excerpt">{_e(e["excerpt"])}</span></li>')
                continue
            where = e["path"] + (f" ({e['locator']})" if e["locator"] else "")
            self.add(
                f'<li><span class="path">{_e(where)}</span>'
                f'<span class="excerpt">{_e(e["excerpt"])}</span></li>'
            )
        self.add(f'</ul><h3>{_e(msg("ui.report.steps"))}</h3><ol class="steps">')
        for s in d["steps"]:
            self.add(
                f'<li><span class="meta">[{_e(s["precondition_text"])}]</span> {_e(s["text"])}'
            )
            if s["command"]:
                self.copy_id += 1
                self.add(
                    f'<div class="pre"><pre id="cmd{self.copy_id}">{_e(s["command"])}</pre>'
                    f'<button data-copy="cmd{self.copy_id}" '
                    f'data-done="{_e(msg("ui.report.copied"))}">'
                    f"{_e(msg('ui.report.copy'))}</button></div>"
                )
            self.add("</li>")
        self.add("</ol>")
        if d["avoid"]:
            self.add(f'<h3>{_e(msg("ui.report.avoid"))}</h3><ul class="avoid">')
            self.add(*(f"<li>{_e(a)}</li>" for a in d["avoid"]))
            self.add("</ul>")
        self.add("</section>")

    def chains(self) -> None:
        if not self.report["disks"]:
            return
        self.add(f"<section><h2>{_e(self.msg('ui.report.chains'))}</h2>")
        for disk in self.report["disks"]:
            chain = disk["chain"] or [disk["path"]]
            boxes = " <span>→</span> ".join(
                f'<span class="box">{_e(os.path.basename(p))}</span>' for p in chain
            )
            status = self.msg(f"ui.report.disk-status.{disk['status']}")
            if status.startswith("ui.report."):
                status = str(disk["status"])
            self.add(f'<div class="chain">{boxes}</div><p class="meta">{_e(status)}</p>')
        self.add("</section>")

    def _table(self, css: str, headers: list[str]) -> None:
        cells = "".join(f'<th scope="col">{_e(self.msg(h))}</th>' for h in headers)
        self.add(f'<div class="scroll"><table class="{css}"><thead><tr>{cells}</tr></thead><tbody>')

    def timeline(self) -> None:
        events = self.report["timeline"]
        if not events:
            return
        self.add(f"<section><h2>{_e(self.msg('ui.report.timeline'))}</h2>")
        self._table(
            "timeline",
            [
                "ui.report.col.time",
                "ui.report.col.source",
                "ui.report.col.event",
                "ui.report.col.text",
            ],
        )
        for t in events:
            level = str(t.get("level") or "")
            label = severity_text(self.msg, level) if level else ""
            text = t.get("text")
            if text is None:  # a report.json of an earlier version
                text = t.get("excerpt", "")
            self.add(
                f'<tr><td class="when">{_e(when_text(t["time"]))}</td>'
                f"<td>{_e(t['provider'])}</td>"
                f'<td class="num"><span class="lvl-{_e(level)}">{_e(t["event_id"])}</span>'
                + (f' <span class="meta">{_e(label)}</span>' if label else "")
                + f'</td><td class="text">{_e(text or self.msg("ui.report.no-text"))}</td></tr>'
            )
        self.add("</tbody></table></div></section>")

    def unrecognised(self) -> None:
        items = self.report["unrecognised"]
        if not items:
            return
        self.add(f"<section><h2>{_e(self.msg('ui.report.unrecognised'))}</h2>")
        self._table("unrecognised", ["ui.report.col.path", "ui.report.col.reason"])
        for u in items:
            reason = u.get("reason") or ""
            key = f"facts.reason.{reason}"
            text = self.msg(key) if reason and self.msg.has(key) else reason
            self.add(f'<tr><td class="path">{_e(u["path"])}</td><td>{_e(text)}</td></tr>')
        self.add("</tbody></table></div></section>")

    def skipped(self) -> None:
        items = self.report.get("skipped") or []
        if not items:
            return
        self.add(f"<section><h2>{_e(self.msg('ui.report.skipped'))}</h2>")
        self._table("skipped", ["ui.report.col.path", "ui.report.col.reason"])
        for sk in items:
            reason = self.msg(f"skipped.reason.{sk['reason']}")
            if sk.get("detail"):
                reason += f" ({sk['detail']})"
            self.add(f'<tr><td class="path">{_e(sk["path"])}</td><td>{_e(reason)}</td></tr>')
        self.add("</tbody></table></div></section>")

    def inputs(self) -> None:
        self.add(f"<section><h2>{_e(self.msg('ui.report.inputs'))}</h2>")
        self._table(
            "inputs",
            [
                "ui.report.col.path",
                "ui.report.col.size",
                "ui.report.col.sha256",
                "ui.report.col.recognised",
            ],
        )
        for item in self.report["inputs"]:
            size = item["size"]
            shown = "-" if size is None else human_size(size)
            state = item.get("recognised")
            css = "" if state is None else ' class="lvl-warning"' if not state else ""
            if item.get("signals_only"):
                css = ' class="lvl-warning"'
            self.add(
                f'<tr><td class="path">{_e(item["path"])}</td>'
                f'<td class="num" title="{_e(size)}">{_e(shown)}</td>'
                f'<td class="hash">{_e(item["sha256"] or "-")}</td>'
                f"<td{css}>{_e(recognised_text(self.msg, item))}</td></tr>"
            )
        self.add("</tbody></table></div></section>")

    def foot(self) -> None:
        tool = self.report["tool"]
        self.add(
            f'<p class="meta">{_e(tool["name"])} {_e(tool["version"])} · '
            f"{_e(self.report['created'])}</p></main><script>{_JS}</script></body></html>"
        )


def to_html(report: dict[str, Any], lang: str) -> str:
    page = _Page(report, lang)
    page.head()
    for i, d in enumerate(report["diagnoses"], 1):
        page.diagnosis(i, d)
    page.chains()
    page.timeline()
    page.unrecognised()
    page.skipped()
    page.inputs()
    page.foot()
    return "".join(page.parts)
