"""The fleet summary as one self-contained HTML page in the triage report's look (its stylesheet
and colours, imported from :mod:`hvrescue.report.html`): the fleet's verdict first, then the
diagnoses across hosts, every host, and the hosts whose evidence could not be read."""

from __future__ import annotations

import html
from typing import Any

from hvrescue.report.html import _CSS, COLORS, severity_text
from hvrescue.report.i18n import Messages

# Hosts named in one cell of the diagnoses table before "+N more" (the JSON has them all).
MAX_HOSTS_SHOWN = 40
TOP_SHOWN = 3

_FLEET_CSS = """
td.tags{white-space:nowrap}ul.top{margin:0;padding-left:1.1em}
@media (max-width:600px){
 table.hosts thead,table.fleet-diagnoses thead,table.unreadable thead{display:none}
 table.hosts tr,table.fleet-diagnoses tr,table.unreadable tr{display:block;
  border-bottom:1px solid #e2e4e8;padding:4px 0}
 table.hosts td,table.fleet-diagnoses td,table.unreadable td{display:block;border:0;
  padding:0 6px 2px 0;text-align:left;min-width:0}
}
"""
_VERDICT_COLORS = {
    "failed": COLORS["critical"],
    "problems": COLORS["error"],
    "nothing-recognised": COLORS["warning"],
    "healthy": COLORS["ok"],
}


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def verdict_text(msg: Messages, verdict: str) -> str:
    key = "ui.fleet.verdict.failed" if verdict == "failed" else f"ui.triage.state.{verdict}"
    return msg(key) if msg.has(key) else verdict


class _Page:
    def __init__(self, summary: dict[str, Any], lang: str) -> None:
        self.s = summary
        self.msg = Messages(lang)
        self.lang = lang
        self.parts: list[str] = []
        self.titles = {d["id"]: d["title"] for d in summary["diagnoses"]}

    def add(self, *text: str) -> None:
        self.parts.extend(text)

    def tag(self, text: str, color: str) -> str:
        return f'<span class="tag" style="background:{color}">{_e(text)}</span>'

    def table(self, css: str, headers: list[str]) -> None:
        cells = "".join(f'<th scope="col">{_e(self.msg(h))}</th>' for h in headers)
        self.add(f'<div class="scroll"><table class="{css}"><thead><tr>{cells}</tr></thead><tbody>')

    def head(self) -> None:
        msg, c = self.msg, self.s["counts"]
        worst = next((v for v in _VERDICT_COLORS if c.get(v)), "healthy")
        color = _VERDICT_COLORS[worst] if c["hosts"] else COLORS["info"]
        self.add(
            f'<!DOCTYPE html><html lang="{_e(self.lang)}"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(msg('ui.fleet.title'))}</title>",
            f"<style>{_CSS}{_FLEET_CSS}</style></head><body><main>",
            f'<div class="verdict" id="verdict" style="background:{color}">',
            f"<p>{_e(msg('ui.fleet.title'))}</p>",
            f"<h1>{_e(msg('ui.fleet.banner', **self._banner_counts()))}</h1>",
            f"<p>{_e(msg('ui.fleet.banner-detail', **self._banner_counts()))}</p></div>",
        )

    def _banner_counts(self) -> dict[str, int]:
        c = self.s["counts"]
        return {
            "hosts": c["hosts"],
            "problems": c["problems"],
            "failed": c["failed"],
            "healthy": c["healthy"],
            "unrecognised": c["nothing-recognised"],
            "diagnoses": c["diagnoses"],
        }

    def diagnoses(self) -> None:
        msg = self.msg
        self.add(f"<section><h2>{_e(msg('ui.fleet.section.diagnoses'))}</h2>")
        if not self.s["diagnoses"]:
            self.add(f"<p>{_e(msg('ui.fleet.no-diagnoses'))}</p></section>")
            return
        self.table(
            "fleet-diagnoses",
            ["ui.fleet.col.diagnosis", "ui.fleet.col.severity", "ui.fleet.col.count",
             "ui.fleet.col.hosts"],
        )  # fmt: skip
        for d in self.s["diagnoses"]:
            hosts = d["hosts"]
            shown = ", ".join(hosts[:MAX_HOSTS_SHOWN])
            if len(hosts) > MAX_HOSTS_SHOWN:
                shown += " " + msg("ui.fleet.more", count=len(hosts) - MAX_HOSTS_SHOWN)
            sev = d["severity"]
            tag = self.tag(severity_text(msg, sev), COLORS.get(sev, COLORS["info"]))
            self.add(
                f"<tr><td>{_e(d['title'])}<br><code>{_e(d['id'])}</code></td>"
                f'<td class="tags">{tag}</td>'
                f'<td class="num">{d["count"]}</td><td class="text">{_e(shown)}</td></tr>'
            )
        self.add("</tbody></table></div></section>")

    def hosts(self) -> None:
        msg = self.msg
        self.add(f"<section><h2>{_e(msg('ui.fleet.section.hosts'))}</h2>")
        self.table(
            "hosts",
            ["ui.fleet.col.host", "ui.fleet.col.verdict", "ui.fleet.col.diagnoses",
             "ui.fleet.col.bundle"],
        )  # fmt: skip
        for h in self.s["hosts"]:
            color = _VERDICT_COLORS.get(h["verdict"], COLORS["info"])
            top = h["diagnoses"][:TOP_SHOWN]
            items = "".join(
                f"<li>{_e(self.titles.get(d['id'], d['id']))} "
                f'<span class="meta">({_e(d["id"])}, {d["confidence"]:.0%}, '
                f"{_e(severity_text(msg, d['severity']))})</span></li>"
                for d in top
            )
            extra = len(h["diagnoses"]) - len(top)
            if extra > 0:
                items += f'<li class="meta">{_e(msg("ui.fleet.more", count=extra))}</li>'
            cell = f'<ul class="top">{items}</ul>' if items else _e(h["title"])
            self.add(
                f"<tr><td>{_e(h['host'])}</td>"
                f'<td class="tags">{self.tag(verdict_text(msg, h["verdict"]), color)}</td>'
                f'<td class="text">{cell}</td><td class="path">{_e(h["bundle"])}</td></tr>'
            )
        self.add("</tbody></table></div></section>")

    def unreadable(self) -> None:
        msg = self.msg
        rows = [h for h in self.s["hosts"] if h["verdict"] == "failed" or h["unread"]]
        if not rows:
            return
        self.add(f"<section><h2>{_e(msg('ui.fleet.section.unreadable'))}</h2>")
        self.table(
            "unreadable", ["ui.fleet.col.host", "ui.fleet.col.reason", "ui.fleet.col.bundle"]
        )
        for h in rows:
            if h["error"]:
                reason = _e(h["error"])
            else:
                total = h.get("unread_total", len(h["unread"]))
                reason = _e(msg("ui.fleet.unread-part", count=total)) + "".join(
                    f'<br><span class="path">{_e(u["path"])}</span> ({_e(u["reason"])})'
                    for u in h["unread"]
                )
                if total > len(h["unread"]):
                    reason += f"<br>{_e(msg('ui.fleet.more', count=total - len(h['unread'])))}"
            self.add(
                f'<tr><td>{_e(h["host"])}</td><td class="text">{reason}</td>'
                f'<td class="path">{_e(h["bundle"])}</td></tr>'
            )
        self.add("</tbody></table></div></section>")

    def foot(self) -> None:
        tool = self.s["tool"]
        self.add(
            f'<p class="meta">{_e(tool["name"])} {_e(tool["version"])} · '
            f"{_e(self.s['created'])}</p></main></body></html>"
        )


def to_html(summary: dict[str, Any], lang: str) -> str:
    page = _Page(summary, lang)
    page.head()
    page.diagnoses()
    page.hosts()
    page.unreadable()
    page.foot()
    return "".join(page.parts)
