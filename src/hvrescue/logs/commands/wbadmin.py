"""wbadmin (Windows Server Backup) console output, English and Japanese: ``wbadmin start
backup`` (also ``-hyperv:``), ``wbadmin get versions``, ``wbadmin get status``, ``wbadmin get
items``, pasted whole or in pieces.

One ``wbadmin_result`` per run: from its banner (``wbadmin 1.0 - ...``) or its prompt
(``C:\\>wbadmin ...``) to the next of either, or from a summary line met without them.
Attributes: ``product`` ("Windows Server Backup"), ``command`` (as typed, None when the prompt
was not pasted), ``subcommand`` (``start backup``, ``get versions`` ...), ``outcome``
(``completed``, ``completed_with_warnings``, ``failed``, ``no_versions``, ``versions``,
``unknown``), ``ok`` (True, False, or None when the output says neither), ``error`` (the
``Detailed error:`` text, else the first ``ERROR - ...`` message, wrapped lines joined),
``hresult`` (the first code printed with it), ``codes`` (every code of the run's errors),
``vms`` (the virtual machines named by ``-hyperv:`` or listed as components), ``skipped`` (the
components the run names as skipped or failed: ``name``, ``error``) and ``skipped_names``,
``versions`` (how many
backup versions ``get versions`` listed), ``target``, ``lang``.

``backup_logs`` gives the same run's errors as ``backup_error`` facts, one per line, as it did
before this reader: the two do not replace each other.
"""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.pserror import codes_in, join_lines
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

PRODUCT = "Windows Server Backup"
BANNER = re.compile(r"^\s*wbadmin \d+\.\d+\b", re.I)
WBADMIN_CMD = re.compile(r"^\s*(?:\S*[\\/])?wbadmin(?:\.exe)?\s+(?P<verb>\w+)\s+(?P<obj>\w+)", re.I)
HYPERV = re.compile(r"-hyperv\s*:\s*(?:\"(?P<q>[^\"]*)\"|(?P<bare>\S+))", re.I)
TARGET = re.compile(r"-backupTarget\s*:\s*(?:\"(?P<q>[^\"]*)\"|(?P<bare>\S+))", re.I)
COMPLETED = re.compile(
    r"^\s*(?:The backup operation successfully completed|バックアップ操作が正常に完了しました)",
    re.I,
)
WARNINGS = re.compile(
    r"^\s*(?:The backup operation completed with warnings|The backup operation completed, but some"
    r"|バックアップ操作は警告付きで完了しました|バックアップ操作は完了しましたが)",
    re.I,
)
STOPPED = re.compile(
    r"^\s*(?:The backup operation stopped before completing|The backup operation (?:to \S+ )?failed"
    r"|バックアップ操作は完了前に停止しました|バックアップ操作は失敗しました)",
    re.I,
)
DETAILED = re.compile(
    r"^\s*(?:Detailed error|詳細なエラー|詳細エラー)\s*[:：]\s*(?P<msg>\S.*?)\s*$", re.I
)
ERROR = re.compile(r"^\s*(?:ERROR|エラー)\s*[-–—]\s*(?P<msg>\S.*?)\s*$")
NO_VERSIONS = re.compile(r"(?:No backup was found|バックアップが見つかりませんでした)", re.I)
VERSION_ID = re.compile(r"^\s*(?:Version identifier|バージョン識別子)\s*[:：]\s*\S", re.I)
SKIPPED = re.compile(
    r"^\s*(?:The component (?P<en>.+?) was skipped during the snapshot and will not be available"
    r" for recovery\.?"
    r"|コンポーネント\s*(?P<ja>.+?)\s*は、?スナップショット中にスキップされ[^。]*。)"
    r"\s*(?:(?:Error|エラー)\s*[:：]\s*(?P<err>.*))?$",
    re.I,
)
VM_FAILED = re.compile(
    r"^\s*(?:Failed to back up (?:the )?virtual machine\s+['\"]?(?P<en>[^'\"]+?)['\"]?"
    r"|仮想マシン\s*['\"「]?(?P<ja>[^'\"」]+?)['\"」]?\s*のバックアップに失敗しました)"
    r"\s*(?:[.。:：]\s*(?P<err>.*))?$",
    re.I,
)
# `get items` / the run's list of what it backs up: "Component = SRV01 (Online)".
COMPONENT = re.compile(r"^\s*(?:Component|コンポーネント)\s*=\s*(?P<name>.+?)\s*$", re.I)
HOST_COMPONENT = re.compile(r"^(?:Host Component|ホスト コンポーネント)$", re.I)
# Summary lines that are not part of the error above them.
VOLUME_LINE = re.compile(
    r"^\s*(?:The backup of volume|Log of files|Creating a (?:backup|shadow copy)|Summary of the"
    r"|Retrieving volume|-{4,}|ボリューム .+ のバックアップ|正常にバックアップ"
    r"|バックアップ操作の概要"
    r"|.*(?:を作成しています|を取得しています)\.{0,3}$)",
    re.I,
)
MAX_CONTINUATION = 6
# What any wbadmin output holds at least one of (a quick test before the line by line read).
MARKERS = re.compile(
    r"wbadmin|backup operation|Detailed error|Version identifier|skipped during the snapshot"
    r"|Failed to back up|バックアップ操作|詳細なエラー|詳細エラー|バージョン識別子|スキップされ"
    r"|のバックアップに失敗",
    re.I,
)
MAX_ITEMS = 512  # VMs or components kept per run
MAX_FIELD = 2048


def _vm_name(component: str) -> str:
    """'SRV01 (Online)' / 'SRV01(Offline)' -> 'SRV01'."""
    return re.sub(
        r"\s*\((?:Online|Offline|オンライン|オフライン)\)\s*$", "", component, flags=re.I
    ).strip()


def _continued(lines: list[str], i: int, first: str, sentence: bool = False) -> tuple[str, int]:
    """``first`` and the lines that continue it (up to a blank line or another of wbadmin's
    own lines); with ``sentence``, only while the text so far ends inside a sentence (a
    ``Detailed error:`` is one sentence, wrapped or not)."""
    parts = [first]
    j = i + 1
    while j < len(lines) and j - i <= MAX_CONTINUATION:
        line = lines[j].strip()
        if not line or BANNER.match(line) or ERROR.match(line) or DETAILED.match(line):
            break
        if sentence and parts[-1].rstrip().endswith((".", "。")):
            break
        if VOLUME_LINE.match(line) or COMPLETED.match(line):
            break
        if SKIPPED.match(line) or VM_FAILED.match(line) or STOPPED.match(line):
            break
        if WBADMIN_CMD.match(line) or line.endswith(">"):
            break
        parts.append(line)
        j += 1
    return join_lines(parts)[:MAX_FIELD], j


def _arg(pattern: re.Pattern[str], command: str | None) -> str | None:
    m = pattern.search(command or "")
    return (m.group("q") or m.group("bare") or "").strip() if m else None


def _new(command: str | None) -> dict[str, Any]:
    m = WBADMIN_CMD.match(command or "")
    hyperv = _arg(HYPERV, command)
    vms = [v.strip() for v in (hyperv or "").split(",") if v.strip()][:MAX_ITEMS]
    return {
        "product": PRODUCT,
        "command": command,
        "subcommand": f"{m.group('verb').lower()} {m.group('obj').lower()}" if m else None,
        "outcome": "unknown",
        "ok": None,
        "error": None,
        "hresult": None,
        "codes": [],
        "vms": vms,
        "skipped": [],
        "skipped_names": [],
        "versions": 0,
        "target": _arg(TARGET, command),
        "lang": "en",
        "_seen": False,  # whether anything of wbadmin's own was read
    }


def _add_codes(run: dict[str, Any], message: str) -> None:
    for code in codes_in(message):
        if code not in run["codes"]:
            run["codes"].append(code)
    if run["hresult"] is None and run["codes"]:
        run["hresult"] = run["codes"][0]


def _fail(run: dict[str, Any], message: str, detailed: bool) -> None:
    run["ok"] = False
    if run["outcome"] not in ("failed",):
        run["outcome"] = "failed"
    if message and (detailed or run["error"] is None):
        if detailed and run["error"] is not None and run.get("_detailed"):
            pass  # the first Detailed error stands
        else:
            run["error"] = message
            run["_detailed"] = detailed or run.get("_detailed", False)
    _add_codes(run, message)


def _command_at(text: Text, lines: list[str], i: int) -> str | None:
    """The wbadmin command typed on line ``i`` (at a prompt), if any."""
    if not text.is_prompt(i):
        return None
    cmd = text.command_at(i)
    return cmd if cmd and WBADMIN_CMD.match(cmd) else None


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    if not any(MARKERS.search(line) for line in lines if line):
        return []  # cheap exit: most texts hold no wbadmin output
    facts: list[Fact] = []
    run: dict[str, Any] | None = None
    run_at = 0

    def close() -> None:
        nonlocal run
        if run is not None and (run.pop("_seen") or run["command"]):
            run.pop("_detailed", None)
            if run["subcommand"] is None and (run["versions"] or run["outcome"] == "no_versions"):
                run["subcommand"] = "get versions"
            facts.append(Fact("wbadmin_result", run, Provenance(text.path, text.locator(run_at))))
        run = None

    def current(i: int) -> dict[str, Any]:
        nonlocal run, run_at
        if run is None:
            run, run_at = _new(None), i
        return run

    i = 0
    while i < len(lines):
        line = lines[i]
        typed = _command_at(text, lines, i)
        if typed is not None or (text.is_prompt(i) and run is not None):
            close()
            if typed is not None:
                run, run_at = _new(typed), i
            i += 1
            continue
        if BANNER.match(line):
            if run is None or run["_seen"]:
                close()
                run, run_at = _new(None), i
            run["_seen"] = True
            run["lang"] = "en" if line.isascii() else "ja"
            i += 1
            continue
        if COMPLETED.match(line) or WARNINGS.match(line):
            r = current(i)
            r["_seen"] = True
            r["lang"] = "en" if line.isascii() else "ja"
            r["subcommand"] = r["subcommand"] or "start backup"
            if r["ok"] is not False:
                r["ok"] = True
                r["outcome"] = "completed_with_warnings" if WARNINGS.match(line) else "completed"
            elif r["skipped"] and r["outcome"] != "failed":
                r["outcome"] = "completed_with_warnings"
            i += 1
            continue
        if STOPPED.match(line):
            r = current(i)
            r["_seen"] = True
            r["lang"] = "en" if line.isascii() else "ja"
            r["subcommand"] = r["subcommand"] or "start backup"
            _fail(r, "", False)
            i += 1
            continue
        d = DETAILED.match(line)
        e = ERROR.match(line) if d is None else None
        # An "ERROR - " line is wbadmin's only inside a run (other tools print the same label).
        found = d or (e if e and (run is not None or "wbadmin" in line.lower()) else None)
        if found is not None:
            r = current(i)
            message, nxt = _continued(lines, i, found.group("msg"), sentence=d is not None)
            if NO_VERSIONS.search(message) and not d:
                r["ok"] = False
                r["outcome"] = "no_versions"
                r["error"] = r["error"] or message
            else:
                _fail(r, message, d is not None)
            r["_seen"] = True
            r["lang"] = "en" if line.isascii() else "ja"
            i = max(nxt, i + 1)
            continue
        s = SKIPPED.match(line) or VM_FAILED.match(line)
        if s:
            r = current(i)
            message, nxt = (
                _continued(lines, i, s.group("err") or "") if s.group("err") else ("", i + 1)
            )
            name = _vm_name(s.group("en") or s.group("ja") or "")
            if len(r["skipped"]) < MAX_ITEMS:
                r["skipped"].append({"name": name, "error": message or None})
                r["skipped_names"].append(name)
            if name and name not in r["vms"] and len(r["vms"]) < MAX_ITEMS:
                r["vms"].append(name)
            _add_codes(r, message)
            # A VM left out is a failure of that VM's backup, whatever the summary says.
            if r["ok"] is True:
                r["outcome"] = "completed_with_warnings"
            r["ok"] = False
            if r["error"] is None:
                r["error"] = message or None
            r["_seen"] = True
            i = max(nxt, i + 1)
            continue
        if run is not None:
            if VERSION_ID.match(line):
                run["versions"] += 1
                run["_seen"] = True
                if run["ok"] is None:
                    run["ok"], run["outcome"] = True, "versions"
            c = COMPONENT.match(line)
            if c:
                name = _vm_name(c.group("name"))
                known = HOST_COMPONENT.match(name) or name in run["vms"]
                if not known and len(run["vms"]) < MAX_ITEMS:
                    run["vms"].append(name)
                run["_seen"] = True
        i += 1
    close()
    return facts
