"""The audit as node_exporter's textfile collector reads it (the Prometheus text exposition
format, version 0.0.4): one ``# HELP`` and ``# TYPE`` line per metric, then its samples.

The collector reads every ``*.prom`` file of its folder at each scrape, so the file must never be
seen half written: it is written under a hidden temporary name in the same folder (not ending
in ``.prom``) and renamed over the previous one. Replacing is what monitoring expects (the same
file is rewritten every run), so unlike hvrescue's other outputs this one replaces an existing
file, but only one that an earlier audit wrote (its first line says so), and never an input.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from hvrescue.errors import InputError
from hvrescue.io.atomic import atomic_output, check_output_folder, output_error
from hvrescue.io.nofollow import lstat_or_none, open_existing, refuse_link

MARKER = "# Written by hvrescue audit; replaced on every run."
PREFIX = "hvrescue_audit_"
# metric name (without the prefix) -> its labels; all are gauges (each run states the present).
METRICS: dict[str, tuple[str, ...]] = {
    "success": (),
    "last_run_timestamp_seconds": (),
    "checkpoint_age_days": ("vm", "chain"),
    "chain_depth": ("vm", "chain"),
    "merge_bytes_needed": ("vm", "chain"),
    "free_bytes": ("vm", "chain"),
    "findings": ("code", "severity"),
    "orphaned_files": (),
    "acl_files_checked": (),
    "threshold_checkpoint_age_days": (),
    "threshold_chain_depth": (),
}


def escape_label(value: str) -> str:
    """A label value as the exposition format quotes it: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _samples(data: dict[str, Any] | None, success: bool, now: float) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {name: [] for name in METRICS}
    out["success"].append(((), 1 if success else 0))
    out["last_run_timestamp_seconds"].append(((), now))
    if data is None:
        return out
    for chain in data["chains"]:
        labels = (chain["vm"] or "", chain["leaf"])
        out["chain_depth"].append((labels, chain["depth"]))
        for metric, key in (
            ("checkpoint_age_days", "oldest_checkpoint_days"),
            ("merge_bytes_needed", "merge_bytes"),
            ("free_bytes", "free_bytes"),
        ):
            if chain[key] is not None:  # unknown is left out, never shown as 0
                out[metric].append((labels, chain[key]))
    counts = Counter((f["code"], f["severity"]) for f in data["findings"])
    for (code, severity), n in sorted(counts.items()):
        out["findings"].append(((code, severity), n))
    out["orphaned_files"].append(((), data["orphaned_files"]))
    out["acl_files_checked"].append(((), data["acl_checked"]))
    out["threshold_checkpoint_age_days"].append(((), data["thresholds"]["older_than_days"]))
    out["threshold_chain_depth"].append(((), data["thresholds"]["max_depth"]))
    return out


def render(
    data: dict[str, Any] | None, help_text: Callable[[str], str], now: float, success: bool = True
) -> str:
    """The textfile of an audit's ``data`` (``AuditResult.as_dict()``), or of a run that could
    not audit (``data`` None, ``success`` False): its success and time only."""
    lines = [MARKER]
    samples = _samples(data, success, now)
    for name, label_names in METRICS.items():
        full = PREFIX + name
        rows = samples[name]
        if not rows and data is None:
            continue
        lines.append(f"# HELP {full} {escape_help(help_text(name))}")
        lines.append(f"# TYPE {full} gauge")
        for labels, value in rows:
            if label_names:
                pairs = ",".join(
                    f'{k}="{escape_label(str(v))}"'
                    for k, v in zip(label_names, labels, strict=True)
                )
                lines.append(f"{full}{{{pairs}}} {_number(value)}")
            else:
                lines.append(f"{full} {_number(value)}")
    return "\n".join(lines) + "\n"


def check_path(path: str, inputs: list[str]) -> None:
    """Refuse, before the audit runs, a textfile that is one of the inputs or lies inside one
    of the audited folders, that is not a regular file, or that an audit did not write."""
    check_output_folder(path)
    target = os.path.normcase(os.path.realpath(path))
    for other in inputs:
        real = os.path.normcase(os.path.realpath(other))
        if target == real:
            raise InputError("error.output.is-input", path=path, input=other)
        if os.path.isdir(real) and target.startswith(real.rstrip(os.sep) + os.sep):
            raise InputError("error.output.inside-input", path=path, input=other)
    st = lstat_or_none(path)
    if st is None:
        return
    fd = open_existing(path)  # refuses a link, a folder, a device
    try:
        head = os.read(fd, len(MARKER.encode()))
    except OSError as exc:
        raise InputError("error.input.open", path=path, reason=exc.strerror) from exc
    finally:
        os.close(fd)
    if not head.decode("utf-8", errors="replace").startswith(MARKER):
        raise InputError("error.audit.prometheus-not-ours", path=path)


def write(path: str, text: str, inputs: list[str]) -> None:
    """Put ``text`` in place at ``path`` at once (checked again, as at the start)."""
    check_path(path, inputs)
    folder = os.path.dirname(os.path.abspath(path))
    staged = os.path.join(folder, "." + os.path.basename(path) + ".hvrescue-audit.part")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staged)  # left by a killed earlier run (a link there is removed itself)
    try:
        with atomic_output(staged) as fd:
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(fd, view) :]
        refuse_link(path)  # a rename would replace a link, not write through it: refused
        try:
            os.replace(staged, path)
        except OSError as exc:
            raise output_error(exc, path) from exc
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.unlink(staged)
