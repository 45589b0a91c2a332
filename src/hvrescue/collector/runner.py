"""One collection: the command list run in two phases, the VM files, the bundle.

Phase 1 runs the list's fixed commands; phase 2 the commands about the VM folders, disk files
and volumes that the Hyper-V outputs of phase 1 named; then each VM's configuration files are
copied and every file of its folders and every disk listed. Each command fails alone: a
missing program, a refusal, a hang (killed at its timeout), an output past the cap (the first
part kept), garbage, all are recorded with their status and the run goes on. Everything is
written to a temporary folder first and into the zip at the end; whatever stops the run
(Ctrl-C included) removes the temporary folder and leaves no bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hvrescue import __version__
from hvrescue.collector import bundle, host, process
from hvrescue.collector.commands import Command, Template, load_templates, phase1, phase2
from hvrescue.collector.discover import discover
from hvrescue.collector.status import SNIFF, status_of
from hvrescue.collector.vmfiles import collect_vm_files
from hvrescue.errors import InputError
from hvrescue.io.atomic import check_output_folder

MAX_OUTPUT = 64 * 1024 * 1024
MAX_FILE = 1024 * 1024 * 1024
# The outputs phase 2 reads to find the VM folders and disks.
DISCOVERY = ("get-vm", "get-vmsnapshot", "get-vmharddiskdrive", "get-vhd")
JSON_CHECK_LIMIT = 16 * 1024 * 1024
# What is read of each of them at most (thousands of VMs fit in far less).
DISCOVERY_LIMIT = 32 * 1024 * 1024
OUTPUT_SUFFIX = {"txt": "txt", "json": "json", "xml": "xml", "folder": "json", "evtx": "txt"}

Progress = Callable[[int, int, str], None]


@dataclass
class Options:
    max_output: int = MAX_OUTPUT
    max_file: int = MAX_FILE
    max_time: float | None = None  # caps every command's own timeout
    skip: tuple[str, ...] = ()  # ids (or id prefixes: "evtx") not to run
    temp_dir: str | None = None


@dataclass
class Record:
    """One command's entry of the manifest, and where its output is in the temporary folder."""

    command: Command
    status: str
    detail: str | None
    exit_code: int | None
    duration_s: float
    output: str | None = None
    stderr: str | None = None
    members: list[bundle.Member] = field(default_factory=list)

    @property
    def collected(self) -> bool:
        """Ended well, or the program said that what it was asked for is not on this host (a
        log channel, a service); a program that is not there at all is not collected."""
        return self.status == "ok" or (self.status == "missing" and self.exit_code is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.command.id,
            "argv": list(self.command.argv),
            "output": self.output,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class Result:
    out: str
    manifest: dict[str, Any]
    records: list[Record]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def complete(self) -> bool:
        return all(r.collected for r in self.records)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _head(path: str, n: int = SNIFF) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _skipped(cmd: Command, skip: tuple[str, ...]) -> bool:
    return any(cmd.id == s or cmd.id.startswith(s + "-") for s in skip)


class Collector:
    def __init__(self, options: Options, temp: str, progress: Progress | None) -> None:
        self.options = options
        self.temp = temp
        self.progress = progress
        self.records: list[Record] = []
        for sub in ("commands", "logs", "folders", "vmfiles"):
            os.mkdir(os.path.join(temp, sub))

    def run_all(self, commands: list[Command], done: int, total: int) -> int:
        for cmd in commands:
            if _skipped(cmd, self.options.skip):
                continue
            if self.progress is not None:
                self.progress(done, total, cmd.id)
            self.records.append(self.run_one(cmd))
            done += 1
        return done

    def run_one(self, cmd: Command) -> Record:
        base = os.path.join(self.temp, "commands", cmd.id)
        export = os.path.join(self.temp, "logs", cmd.member or f"{cmd.id}.evtx")
        outdir = os.path.join(self.temp, "folders", cmd.id)
        if cmd.kind == "folder":
            os.mkdir(outdir)
        argv = [a.replace("{out}", export).replace("{outdir}", outdir) for a in cmd.argv]
        cmd = dataclasses.replace(cmd, argv=tuple(argv))  # recorded as run
        timeout = cmd.timeout
        if self.options.max_time is not None:
            timeout = min(timeout, self.options.max_time)
        cap = self.options.max_output
        outcome = process.run(argv, base + ".out", base + ".err", timeout, cap, self.temp)
        out_head, err_head = _head(base + ".out"), _head(base + ".err")
        stdout = out_head
        if cmd.kind == "json" and SNIFF < outcome.stdout_bytes <= JSON_CHECK_LIMIT:
            stdout = _head(base + ".out", JSON_CHECK_LIMIT)
        status, detail = status_of(outcome, cmd.kind, stdout, err_head)
        record = Record(cmd, status, detail, outcome.exit_code, outcome.duration_s)
        self._members(record, base, export, outdir, outcome.stdout_bytes)
        return record

    def _members(self, r: Record, base: str, export: str, outdir: str, size: int) -> None:
        cmd = r.command
        kept = min(size, self.options.max_output)
        if cmd.kind == "evtx":
            if os.path.isfile(export) and os.path.getsize(export) > 0:
                r.output = f"logs/{os.path.basename(export)}"
                r.members.append(bundle.Member(r.output, export))
            elif r.status == "ok":
                r.status, r.detail = "error", "no export was written"
        if kept and (cmd.kind != "evtx" or r.output is None):
            name = f"commands/{cmd.id}.{OUTPUT_SUFFIX[cmd.kind]}"
            r.members.append(bundle.Member(name, base + ".out", limit=kept))
            if r.output is None:
                r.output = name
        if os.path.isfile(base + ".err") and os.path.getsize(base + ".err") > 0:
            r.stderr = f"commands/{cmd.id}.stderr.txt"
            r.members.append(bundle.Member(r.stderr, base + ".err", limit=self.options.max_output))
        if cmd.kind == "folder" and os.path.isdir(outdir):
            for name in sorted(os.listdir(outdir)):
                path = os.path.join(outdir, name)
                if os.path.isfile(path):
                    r.members.append(bundle.Member(f"logs/cluster/{name}", path, source=name))

    def discovered_outputs(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for r in self.records:
            if r.command.id in DISCOVERY and r.status in ("ok", "failed"):
                path = os.path.join(self.temp, "commands", r.command.id + ".out")
                out[r.command.id] = _head(path, min(self.options.max_output, DISCOVERY_LIMIT))
        return out


def collect(
    out: str,
    options: Options | None = None,
    templates: list[Template] | None = None,
    progress: Progress | None = None,
) -> Result:
    """Run the collection and write the bundle ``out`` (a new file). Raises InputError when
    ``out`` exists, OutputError when it cannot be written; KeyboardInterrupt is raised on after
    the processes and the temporary files are gone."""
    options = options or Options()
    if os.path.lexists(out):
        raise InputError("error.output.exists", path=out)
    check_output_folder(out)
    templates = templates if templates is not None else load_templates()
    started = _now()
    temp = tempfile.mkdtemp(prefix="hvrescue-collect-", dir=options.temp_dir)
    try:
        c = Collector(options, temp, progress)
        first = phase1(templates)
        done = c.run_all(first, 0, len(first))
        found = discover(c.discovered_outputs())
        second = phase2(templates, found.as_phase2())
        c.run_all(second, done, done + len(second))
        vm = collect_vm_files(
            found.vm_folders, found.disks, os.path.join(temp, "vmfiles"), options.max_file
        )
        listing = os.path.join(temp, "listings.json")
        with open(listing, "x", encoding="utf-8") as fh:
            json.dump({"truncated": vm.truncated, "files": vm.listing}, fh, indent=1)
        members = [m for r in c.records for m in r.members]
        members += [bundle.Member(v.member, v.temp, v.source) for v in vm.copied]
        members.append(bundle.Member("listings/vm-files.json", listing))
        manifest = {
            "format": bundle.FORMAT,
            "version": bundle.VERSION,
            "tool_version": __version__,
            "host": host.host_name(),
            "user": host.user_name(),
            "elevated": host.elevated(),
            "started": started,
            "finished": _now(),
            "lang": host.ui_language(),
            "commands": [r.as_dict() for r in c.records],
        }
        if progress is not None:
            progress(len(c.records), len(c.records), "")
        complete = bundle.write_bundle(out, manifest, members)
        return Result(out, complete, c.records)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(temp)
