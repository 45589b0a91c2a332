"""Failures in the job logs of third-party backup products, as people paste them: one
``backup_error`` fact per failure (the same shape as ``backup_logs``: ``tool``, ``path``,
``code``, ``message``, ``time``, ``codes``).

- Veeam Backup & Replication session lines (``28.11.2026 22:02:13 :: Failed to create VM
  recovery checkpoint ... Details: Job failed ('Checkpoint operation for 'X' failed. ...').``,
  the message often wrapped over several lines) ending with ``Error code: '32768'.``, or a
  Hyper-V WMI job result leading its reason (``Error code: '32775'. More than one VM claimed
  ...``): the WMI job's result code (decimal, kept as written), every HRESULT the message names
  in ``codes``;
- Backup Exec job logs: ``Final error: 0xa000971e - <message>`` (``最終エラー:`` on a Japanese
  install) continued on the next lines up to ``Final error category`` or a blank line, and the
  per-resource lines of the job log's errors section (``VHDX -Error 0xa000971e - <message>``).
  A message that names the virtual machine and the checkpoint to delete (``... on the virtual
  machine 'FS01'. ... delete the recovery checkpoint 'BE_Snapshot_... - (date)' manually``) gives
  them as ``vm_name`` and ``checkpoint``.

What is recognised is the code's own label; a number alone (a block size of 32768) is not.
"""

from __future__ import annotations

import re

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.pserror import codes_in, join_lines
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.textutil import Text

ERROR_CODE = re.compile(r"\bError code:\s*'?(?P<code>0x[0-9A-Fa-f]{8}|\d{1,6})'?\s*\.?\s*$")
# The same label leading its reason ("Error code: '32775'. More than one VM claimed to be the
# owner of shared VHDX in VM group ..."): only a Hyper-V WMI job result (327xx, quoted), so that
# an "Error code: 0x..." line of another program is not taken for a backup job's.
ERROR_CODE_FIRST = re.compile(r"\bError code:\s*'(?P<code>327\d\d)'\.\s+(?P<rest>\S.*?)\s*$")
SESSION = re.compile(r"^\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\s+\d{1,2}:\d{2}:\d{2}(?:\s*[AP]M)?\s+::")
BE_FINAL = re.compile(
    r"^\s*(?:Final error|最終エラー|\S*\s*-Error)\s*[:：]?\s*(?P<code>0x[0-9A-Fa-f]{8})\s*-\s*"
    r"(?P<msg>.*?)\s*$",
    re.I,
)
BE_END = re.compile(
    r"^\s*(?:Final error category|最終エラーのカテゴリ|For additional information|Job ended)", re.I
)
# What a Backup Exec message names: the VM, and the checkpoint it asks to delete by hand.
BE_VM = re.compile(r"\bvirtual machine\s+'(?P<vm>[^'\r\n]{1,120})'", re.I)
BE_CHECKPOINT = re.compile(r"\brecovery checkpoint\s+'(?P<cp>[^'\r\n]{1,200})'\s+manually", re.I)
PATH = re.compile(
    r"(?:[A-Za-z]:\\|\\\\)[^\"'<>|?*\r\n]*?\.(?:a?vhdx?|vhds|vmcx|vmrs|vmgs|iso)\b", re.I
)
MAX_BLOCK = 10  # lines a wrapped job message spans, at most


def parse(text: Text) -> list[Fact]:
    lines = cleaned(text)
    facts: list[Fact] = []
    for i, line in enumerate(lines):
        m = ERROR_CODE.search(line) or ERROR_CODE_FIRST.search(line)
        if m:
            start = _block_start(lines, i)
            message = join_lines([s.strip() for s in lines[start : i + 1]])
            message = SESSION.sub("", message, count=1).strip()
            facts.append(_fact(text, start, "veeam", m.group("code"), message))
            continue
        b = BE_FINAL.match(line)
        if b:
            parts = [b.group("msg")]
            for nxt in lines[i + 1 : i + MAX_BLOCK]:
                if not nxt.strip() or BE_END.match(nxt) or BE_FINAL.match(nxt):
                    break
                parts.append(nxt.strip())
            message = join_lines(parts)
            named: dict[str, str] = {}
            vm, cp = BE_VM.search(message), BE_CHECKPOINT.search(message)
            if vm:
                named["vm_name"] = vm.group("vm").strip()
            if cp:
                named["checkpoint"] = cp.group("cp").strip()
            facts.append(_fact(text, i, "backup-exec", b.group("code"), message, named))
    return facts


def _block_start(lines: list[str], end: int) -> int:
    """The first line of the message that ends at ``end``: back to a blank line or to the
    session line it continues (included), at most MAX_BLOCK lines."""
    start = end
    while start > 0 and end - start < MAX_BLOCK:
        if SESSION.match(lines[start]):
            return start
        above = lines[start - 1]
        if not above.strip() or ERROR_CODE.search(above) or ERROR_CODE_FIRST.search(above):
            return start
        start -= 1
    return start


def _fact(
    text: Text, index: int, tool: str, code: str, message: str, named: dict[str, str] | None = None
) -> Fact:
    normal = code.lower()
    codes = codes_in(message)
    path = PATH.search(message)
    attrs = {
        "tool": tool,
        "path": path.group(0) if path else None,
        "code": normal,
        "message": message,
        "time": None,
        "codes": [normal] + [c for c in codes if c != normal],
        **(named or {}),
    }
    return Fact("backup_error", attrs, Provenance(text.path, text.locator(index)))
