"""A command's status from how it ended and what it printed, in English and Japanese.

Statuses (the bundle contract): ``ok``, ``failed`` (it ran and reported an error),
``timeout``, ``denied`` (it was refused for lack of rights), ``missing`` (the program, or the
event log channel it was asked for, does not exist on this host), ``too-large`` (its output
passed the cap: the first part is kept), ``error`` (it could not be started for another
reason, or what it printed is not what it prints: binary garbage where text is due, no JSON
where JSON is due).
"""

from __future__ import annotations

import json

from hvrescue.collector.process import Outcome

# Exit codes that mean "refused": ERROR_ACCESS_DENIED, ERROR_ELEVATION_REQUIRED, and
# E_ACCESSDENIED as an unsigned and a signed 32-bit number.
DENIED_CODES = frozenset({5, 740, 0x80070005, 0x80070005 - 2**32})
# wevtutil: ERROR_EVT_CHANNEL_NOT_FOUND (15007); sc: ERROR_SERVICE_DOES_NOT_EXIST (1060).
ABSENT_CODES = frozenset({15007, 1060})
# What the commands print when they are refused (vssadmin, DISM, bcdedit, sc, wevtutil,
# fltmc, manage-bde, the Hyper-V cmdlets), in the languages Windows prints them in.
DENIED_TEXTS = (
    "Access is denied",
    "access denied",
    "You don't have the correct permissions",
    "Elevated permissions are required",
    "elevated administrator privileges",
    "requires elevation",
    "You do not have the required permission",
    "PermissionDenied",
    "0x80070005",
    "アクセスが拒否されました",
    "アクセス許可がありません",
    "管理者特権",
    "管理者権限",
)
ABSENT_TEXTS = (
    "The specified channel could not be found",
    "チャネルが見つかりません",
    "指定されたチャネルが見つかりませんでした",
    "The specified service does not exist",
    "指定されたサービスはインストールされたサービスとして存在しません",
)
SNIFF = 64 * 1024


def _contains(data: bytes, texts: tuple[str, ...]) -> bool:
    """Whether any of ``texts`` is in ``data`` as UTF-8, the Japanese OEM code page or UTF-16
    (how the console commands and PowerShell write, redirected)."""
    lower = data.lower()
    for text in texts:
        for encoding in ("utf-8", "cp932", "utf-16-le"):
            try:
                needle = text.encode(encoding)
            except UnicodeEncodeError:
                continue
            if needle.lower() in lower:
                return True
    return False


def looks_binary(head: bytes) -> bool:
    """Garbage, not text: control bytes that neither ASCII-family text nor UTF-16 has."""
    if not head:
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[1:2] == b"\x00" == head[3:4]:
        return False  # UTF-16 (PowerShell 5.1 redirected; wevtutil qe /f:text)
    bad = sum(1 for b in head if b < 9 or 13 < b < 27 or b == 0x7F)
    return bad > max(4, len(head) // 100)


def _json_ok(data: bytes) -> bool:
    text = None
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        return False
    stripped = text.strip()
    if not stripped:
        return True  # no objects at all (no VMs): ConvertTo-Json prints nothing
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def status_of(
    outcome: Outcome, kind: str, stdout_head: bytes, stderr_head: bytes
) -> tuple[str, str | None]:
    """(status, detail) of one finished command; ``*_head``: the first bytes it printed."""
    if outcome.state == "missing":
        return "missing", outcome.error
    if outcome.state == "not-started":
        return ("denied" if outcome.permission else "error"), outcome.error
    if outcome.state == "timeout":
        return "timeout", f"killed after {outcome.duration_s:.1f} s"
    if outcome.state == "too-large":
        return "too-large", f"{outcome.stdout_bytes} bytes printed, past the cap; its start kept"
    said = stdout_head[:SNIFF] + b"\n" + stderr_head[:SNIFF]
    code = outcome.exit_code
    if code:
        if code in DENIED_CODES or _contains(said, DENIED_TEXTS):
            return "denied", f"exit code {code}"
        if code in ABSENT_CODES or _contains(said, ABSENT_TEXTS):
            return "missing", f"exit code {code}: not present on this host"
        return "failed", f"exit code {code}"
    if kind in ("txt", "xml") and looks_binary(stdout_head[:SNIFF]):
        return "error", "the output is not text"
    if kind == "json" and not _json_ok(stdout_head):
        return "error", "the output is not JSON"
    return "ok", None
