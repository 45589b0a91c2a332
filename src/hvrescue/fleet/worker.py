"""One bundle triaged, in a worker process: the host, its verdict, its diagnoses, its counts.

Everything a worker returns is plain data (it crosses a process boundary). A bundle fails alone:
whatever stops its triage (damage the walker could not get around, an error of ours, memory
running out) becomes the host's ``error`` with a stable ``error_code``, and the run goes on.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hvrescue.diagnose.engine import SEVERITY_ORDER
from hvrescue.diagnose.triage import UNREADABLE, Triage
from hvrescue.errors import HvrescueError
from hvrescue.evidence import UNREAD, Budget
from hvrescue.fleet.bundles import clean_host, read_manifest
from hvrescue.report.i18n import Messages

FAILED = "failed"
# Facts that name the host (systeminfo; Get-ComputerInfo) and the attribute that holds it.
HOST_FACTS = (
    ("system_info", "host_name"),
    ("computer_info", "host_name"),
    ("computer_info", "CsName"),
)
# What the bundle itself (not an item inside it) may be when nothing of it was evidence.
NOT_EVIDENCE = ("binary", "no-known-content", "empty")
MAX_UNREAD_LISTED = 20


@dataclass
class HostResult:
    host: str
    host_source: str  # manifest, systeminfo, file-name
    bundle: str
    verdict: str  # problems, healthy, nothing-recognised, failed
    severity: str  # of the verdict: critical, error, warning, info, ok
    title: str  # the verdict's title in the run's language
    serious: bool  # anything of warning or worse (triage's exit 1), or failed
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    unread: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_UNREAD_LISTED
    unread_total: int = 0
    error: str | None = None
    error_code: str | None = None
    manifest_problem: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(bundle: str) -> str:
    base = os.path.basename(bundle.rstrip("/\\")) or bundle
    return base[:-4] if base.lower().endswith(".zip") else base


def host_from_facts(triage: Triage) -> str | None:
    for fact in triage.facts:
        for kind, attribute in HOST_FACTS:
            if fact.kind == kind:
                host = clean_host(fact.attributes.get(attribute))
                if host is not None:
                    return host
    return None


def _same(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def bundle_failure(triage: Triage, bundle: str) -> tuple[str, str, str | None] | None:
    """(error code, reason, detail) when the bundle itself could not be read, or held nothing
    that is evidence; None when the walk got into it."""
    for u in triage.unrecognised:
        if _same(u.path, bundle):
            if u.reason in UNREADABLE:
                return "bundle-unreadable", u.reason, u.detail
            if u.reason in NOT_EVIDENCE and not triage.facts and not triage.disks:
                return "not-a-bundle", u.reason, u.detail
    for s in triage.skipped:
        if _same(s.path, bundle) and s.reason in UNREAD:
            return "bundle-unreadable", s.reason, s.detail
    return None


def _unread(triage: Triage) -> list[dict[str, Any]]:
    """Every item not read (in full): unreadable files, unread skipped items, problems."""
    out = [
        {"path": u.path, "reason": u.reason, "detail": u.detail}
        for u in triage.unrecognised
        if u.reason in UNREADABLE
    ]
    out += [s.as_dict() for s in triage.unread_skipped()]
    out += [{"path": p.path, "reason": p.code, "detail": p.locator} for p in triage.problems]
    return out


def _reason_text(lang: str, reason: str, detail: str | None) -> str:
    msg = Messages(lang)
    key = next(
        (k for k in (f"facts.reason.{reason}", f"skipped.reason.{reason}") if msg.has(k)), None
    )
    text = msg(key) if key else reason
    return f"{text}: {detail}" if detail else text


def failed(bundle: str, lang: str, code: str, detail: str, host: str | None = None) -> HostResult:
    msg = Messages(lang)
    return HostResult(
        host=host or _name(bundle),
        host_source="manifest" if host else "file-name",
        bundle=bundle,
        verdict=FAILED,
        severity="error",
        title=msg(f"ui.fleet.failed.{code}"),
        serious=True,
        error=msg("ui.fleet.error", reason=msg(f"ui.fleet.failed.{code}"), detail=detail),
        error_code=code,
    )


def _result(triage: Triage, bundle: str, lang: str, manifest_host: str | None) -> HostResult:
    from hvrescue.report.render import verdict

    msg = Messages(lang)
    diagnoses = [d.as_dict(lang, msg) for d in triage.diagnoses]
    v = verdict(triage, diagnoses, msg)
    serious = v["state"] == "problems" or any(SEVERITY_ORDER[d["severity"]] >= 1 for d in diagnoses)
    unread = _unread(triage)
    host, source = manifest_host, "manifest"
    if host is None:
        host, source = host_from_facts(triage), "systeminfo"
    if host is None:
        host, source = _name(bundle), "file-name"
    return HostResult(
        host=host,
        host_source=source,
        bundle=bundle,
        verdict=v["state"],
        severity=v["severity"],
        title=v["title"],
        serious=serious,
        diagnoses=[{k: d[k] for k in ("id", "title", "confidence", "severity")} for d in diagnoses],
        counts=dict(v["basis"]),
        unread=unread[:MAX_UNREAD_LISTED],
        unread_total=len(unread),
    )


def triage_bundle(bundle: str, lang: str, max_memory: int | None) -> HostResult:
    """Triage one bundle as `triage` would (the same walk, rules and verdict) within a memory
    budget of ``max_memory`` bytes (None: the default); never raises for a bad bundle."""
    from hvrescue.diagnose.triage import run_triage

    started = time.monotonic()
    manifest = read_manifest(bundle)
    try:
        triage = run_triage([bundle], [], Budget.of(max_memory))
        failure = bundle_failure(triage, bundle)
        if failure is not None:
            code, reason, detail = failure
            result = failed(bundle, lang, code, _reason_text(lang, reason, detail))
            result.host = manifest.host or result.host
            result.host_source = "manifest" if manifest.host else "file-name"
        else:
            result = _result(triage, bundle, lang, manifest.host)
    except HvrescueError as exc:
        result = failed(bundle, lang, "error", Messages(lang)(exc.key, **exc.params), manifest.host)
    except MemoryError:
        result = failed(bundle, lang, "out-of-memory", str(max_memory or ""), manifest.host)
    except Exception as exc:  # a bug of ours must not stop the other hosts: it is reported
        result = failed(bundle, lang, "internal", f"{type(exc).__name__}: {exc}", manifest.host)
    result.manifest_problem = manifest.problem
    result.seconds = round(time.monotonic() - started, 3)
    return result
