"""The report as people read it: in headless Chromium at 1280 px (a desktop) and 390 px (a phone),
in both languages. A script measured inside the page checks what a reader would see: nothing
overflows its card or the page, no word is broken although it would fit on a line, no command is
wrapped, every timestamp stays on one line, every table has column headers, and the timeline
shows each event's own text (an EVTX record has no rendered message: its data fields)."""

from __future__ import annotations

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CORPUS, run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "incident"
EVTX_7009 = CORPUS / "evtx" / "EVTX-to-MITRE-Attack" / "ID7009-service-timeout.evtx"

PROBE = r"""
<script>
window.addEventListener('load', function () {
  var out = {overflow: [], broken: [], wrappedCommands: [], wrappedTimes: [], headless: [],
             timelineTexts: [], pageOverflow: false, width: window.innerWidth};
  var doc = document.documentElement;
  out.pageOverflow = doc.scrollWidth > window.innerWidth + 1;
  function scroller(el) {
    for (var p = el; p; p = p.parentElement) {
      var cs = getComputedStyle(p);
      if (p.tagName === 'PRE' || cs.overflowX === 'auto' || cs.overflowX === 'scroll') return true;
    }
    return false;
  }
  document.querySelectorAll('section, .verdict').forEach(function (card) {
    var box = card.getBoundingClientRect();
    card.querySelectorAll('*').forEach(function (el) {
      if (scroller(el)) return;
      var r = el.getBoundingClientRect();
      if (r.width && (r.right > box.right + 1 || r.left < box.left - 1))
        out.overflow.push(el.tagName + '.' + el.className + ': ' + el.textContent.slice(0, 60));
    });
  });
  // a word split over two lines although the line is wide enough to hold it whole
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  var node;
  while ((node = walker.nextNode())) {
    var owner = node.parentElement;
    if (!owner || owner.closest("script,style") || scroller(owner)) continue;
    var width = owner.getBoundingClientRect().width;
    // a run of letters and digits: breaking at '-', '/', '\\' or '.' is ordinary wrapping
    var runs = node.data.matchAll(/[A-Za-z0-9_]+/g);
    for (var m of runs) {
      var range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      var rects = Array.prototype.filter.call(range.getClientRects(),
        function (r) { return r.width > 0; });
      if (rects.length < 2) continue;
      var whole = 0;
      rects.forEach(function (r) { whole += r.width; });
      if (whole < width - 2) out.broken.push(m[0].slice(0, 80));
    }
  }
  document.querySelectorAll('pre').forEach(function (pre) {
    if (getComputedStyle(pre).whiteSpace !== 'pre')
      out.wrappedCommands.push(pre.textContent.slice(0, 60));
  });
  document.querySelectorAll('td.when').forEach(function (td) {
    var lh = parseFloat(getComputedStyle(td).lineHeight) || 20;
    var range = document.createRange();
    range.selectNodeContents(td);
    var lines = {};
    Array.prototype.forEach.call(range.getClientRects(),
      function (r) { if (r.width) lines[Math.round(r.top)] = 1; });
    if (Object.keys(lines).length > 1) out.wrappedTimes.push(td.textContent);
  });
  document.querySelectorAll('table').forEach(function (t) {
    if (!t.querySelector('thead th')) out.headless.push(t.className);
  });
  document.querySelectorAll('table.timeline td.text').forEach(function (td) {
    out.timelineTexts.push(td.textContent);
  });
  var pre = document.createElement('pre');
  pre.id = 'layout-probe';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(parent.document.importNode(pre, true));
});
</script>
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed")
    return found


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled incident, a real EVTX of service timeouts (records without messages), and a
    folder with a long name, so that paths, commands and event texts are all long."""
    root = tmp_path_factory.mktemp("layout")
    folder = root / "Incident-2026-11-30_HV-HOST01_Cluster-Shared-Volume-Evidence-Collection"
    shutil.copytree(EXAMPLE, folder)
    shutil.copyfile(EVTX_7009, folder / "Host" / "System-service-timeouts.evtx")
    (folder / "Host" / "notes.bin").write_bytes(b"\x00\x01 not evidence we read")
    return folder


@pytest.fixture(scope="module")
def reports(evidence: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for lang in ("en", "ja"):
        folder = tmp_path_factory.mktemp(f"report-{lang}") / "r"
        result = run_cli("--lang", lang, "triage", evidence, "--out", folder)
        assert result.rc in (0, 1), result.stderr
        out[lang] = folder / "report.html"
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback web server for the pages, so the probe in the report's frame may write into
    the host page (file:// pages are each their own origin)."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _measure(
    chromium: str, server: tuple[str, Path], page: Path, width: int, tmp_path: Path
) -> dict[str, object]:
    """Load ``page`` in a frame ``width`` px wide (headless Chromium's window cannot be made as
    narrow as a phone) with the probe inside; the probe writes its findings into the host page,
    which Chromium prints."""
    base, root = server
    name = f"{page.parent.name}-{width}-{tmp_path.name}"
    report = page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>")
    (root / f"{name}.html").write_text(report, encoding="utf-8")
    (root / f"host-{name}.html").write_text(
        "<!DOCTYPE html><html><body style='margin:0'>"
        f"<iframe style='border:0;width:{width}px;height:900px' src='{name}.html'></iframe>"
        "</body></html>",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width + 40},1000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{base}/host-{name}.html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, "the page's probe did not run: " + proc.stderr[-1000:]
    data: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return data


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_reads_well(
    reports: dict[str, Path],
    server: tuple[str, Path],
    lang: str,
    width: int,
    tmp_path: Path,
) -> None:
    chromium = _chromium()
    m = _measure(chromium, server, reports[lang], width, tmp_path)
    assert m["width"] == width
    assert m["pageOverflow"] is False
    assert m["overflow"] == []
    assert m["broken"] == []
    assert m["wrappedCommands"] == []
    assert m["wrappedTimes"] == []
    assert m["headless"] == []
    texts = m["timelineTexts"]
    assert isinstance(texts, list) and texts, "no timeline"
    # each row its own text: the 7009 records' data (the service that timed out), never empty
    assert all(t.strip() for t in texts)
    assert any("30000" in t for t in texts), texts[:5]


def test_the_probe_sees_what_it_should(server: tuple[str, Path], tmp_path: Path) -> None:
    """The measurements can fail: a page with a broken word, a wrapped command, an overflowing
    card and a headerless table is caught on every count."""
    chromium = _chromium()
    bad = tmp_path / "bad" / "report.html"
    bad.parent.mkdir()
    bad.write_text(
        "<!DOCTYPE html><html><head><meta name='viewport' content='width=device-width'>"
        "<style>td{word-break:break-all}pre{white-space:pre-wrap}</style></head><body>"
        "<section style='width:200px'><div style='width:600px'>wide</div></section>"
        "<section><table><tr><td class='when' style='width:30px'>2026-11-30 05:00:00</td>"
        "<td style='width:70px'>CoCreateInstance failed</td></tr></table>"
        "<pre>wbadmin start backup -backupTarget:E: -include:C: -quiet</pre></section>"
        "</body></html>",
        encoding="utf-8",
    )
    m = _measure(chromium, server, bad, 390, tmp_path)
    assert m["overflow"] and m["broken"] and m["wrappedCommands"] and m["headless"]
    assert m["wrappedTimes"]
