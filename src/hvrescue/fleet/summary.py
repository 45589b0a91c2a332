"""The fleet's summary as one data structure: per host its verdict, top diagnoses and counts;
per diagnosis the hosts that have it; the hosts whose evidence could not be read. Rendered as
JSON here and as HTML by :mod:`hvrescue.fleet.html`."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hvrescue import __version__
from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.fleet.worker import FAILED, HostResult

VERDICTS = ("failed", "problems", "nothing-recognised", "healthy")
# Worst first: failed hosts, then problems by their worst severity, then the rest.
_VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}
_SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3, "ok": 4}
TOP_DIAGNOSES = 3


def _host_key(r: HostResult) -> tuple[int, int, str, str]:
    return (
        _VERDICT_RANK.get(r.verdict, 0),
        _SEVERITY_RANK.get(r.severity, 0),
        r.host.casefold(),
        r.bundle,
    )


@dataclass
class FleetSummary:
    results: list[HostResult]
    lang: str

    @property
    def serious(self) -> bool:
        """Whether any host is not healthy (the command's exit 1): a failed host, anything of
        warning or worse, or a bundle in which nothing was recognised."""
        return any(r.serious or r.verdict != "healthy" for r in self.results)

    def hosts(self) -> list[HostResult]:
        return sorted(self.results, key=_host_key)

    def diagnoses(self) -> list[dict[str, Any]]:
        """Each diagnosis with the hosts that have it (one entry per bundle, so a host given
        twice counts twice), most hosts first."""
        found: dict[str, dict[str, Any]] = {}
        for r in self.hosts():
            for d in r.diagnoses:
                entry = found.setdefault(
                    d["id"],
                    {
                        "id": d["id"],
                        "title": d["title"],
                        "severity": d["severity"],
                        "hosts": [],
                        "bundles": [],
                    },
                )
                if SEVERITY_ORDER[d["severity"]] > SEVERITY_ORDER[entry["severity"]]:
                    entry["severity"] = d["severity"]
                entry["hosts"].append(r.host)
                entry["bundles"].append(r.bundle)
        for entry in found.values():
            entry["count"] = len(entry["hosts"])
        return sorted(
            found.values(),
            key=lambda e: (-e["count"], -SEVERITY_ORDER[e["severity"]], e["id"]),
        )

    def counts(self) -> dict[str, int]:
        verdicts = Counter(r.verdict for r in self.results)
        out = {"hosts": len(self.results)}
        out.update({v: verdicts.get(v, 0) for v in VERDICTS})
        out["with_diagnoses"] = sum(1 for r in self.results if r.diagnoses)
        out["serious"] = sum(1 for r in self.results if r.serious)
        out["diagnoses"] = len({d["id"] for r in self.results for d in r.diagnoses})
        return out

    def unreadable(self) -> list[HostResult]:
        """Hosts whose evidence could not be read: in whole (failed) or in part."""
        return [r for r in self.hosts() if r.verdict == FAILED or r.unread]

    def as_dict(self) -> dict[str, Any]:
        hosts = []
        for r in self.hosts():
            hosts.append(
                {
                    "host": r.host,
                    "bundle": r.bundle,
                    "verdict": r.verdict,
                    "diagnoses": [
                        {k: d[k] for k in ("id", "confidence", "severity")} for d in r.diagnoses
                    ],
                    "error": r.error,
                    "error_code": r.error_code,
                    "severity": r.severity,
                    "title": r.title,
                    "serious": r.serious,
                    "host_source": r.host_source,
                    "manifest_problem": r.manifest_problem,
                    "counts": r.counts,
                    "unread": r.unread,
                    "unread_total": r.unread_total,
                    "seconds": r.seconds,
                }
            )
        return {
            "hosts": hosts,
            "diagnoses": self.diagnoses(),
            "counts": self.counts(),
            "lang": self.lang,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tool": {"name": "hvrescue", "version": __version__},
        }


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False, indent=2, default=str)


def write_summary(path: str, text: str) -> None:
    """The summary under ``path``, complete or not at all, never over an existing file."""
    import os

    from hvrescue.io.atomic import atomic_output

    with atomic_output(path) as fd:
        os.write(fd, text.encode("utf-8"))
