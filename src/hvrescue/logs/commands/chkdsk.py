"""`chkdsk` on a volume (English and Japanese), as people paste it: one ``chkdsk_result`` fact per
run, saying whether it found errors, whether it could fix them (read-only without /F), the bad
sectors, and the problems it printed with the file names in them, a virtual disk's above all.

A run starts at chkdsk's first line ("The type of the file system is NTFS.", "ファイル システム
の種類は NTFS です。") and ends at its verdict or at the next prompt. The problem lines kept are
bounded (:data:`MAX_PROBLEMS`); the count of all of them is given."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.textutil import Text

START = re.compile(
    r"The type of the file system is (?P<fs>\w+)|ファイル ?システムの種類は (?P<fs_ja>\w+) です"
)
VOLUME = re.compile(
    r"^\s*(?:PS [^>]*>|[A-Za-z]:\\[^>]*>)?\s*chkdsk(?:\.exe)?\s+(?P<vol>[A-Za-z]:)", re.I
)
READ_ONLY = re.compile(
    r"/F parameter not specified|read-only mode|"
    r"/F パラメーターが指定されていません|読み取り専用モード"
)
# (pattern, verdict): the first that matches a line of the run decides, latest line wins
VERDICTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"found no problems|No further action is required|"
            r"問題は見つかりませんでした|これ以上の操作は必要ありません"
        ),
        "clean",
    ),
    (
        re.compile(
            r"made corrections to the file system|"
            r"ファイル ?システムに修正を加えました|ファイル ?システムを修正しました"
        ),
        "fixed",
    ),
    (
        re.compile(
            r"Errors found\.\s+CHKDSK cannot continue|found problems with the file ?system|"
            r"エラーが見つかりました。?\s*CHKDSK|ファイル ?システムのエラーが見つかりました|"
            r"ファイル ?システムに問題が見つかりました"
        ),
        "errors",
    ),
)
PROBLEM = re.compile(
    r"\bis incorrect\b|\bcorrupt|\bcorruption\b|\bbad (?:file record|cluster|sector)|"
    r"\borphan|\bnot (?:valid|consistent)|\berror detected\b|\bmismatch|"
    r"deleting .*(?:index|file)|Windows replaced bad clusters|正しくありません|破損|不良|孤立|"
    r"一致しません|エラーが検出されました",
    re.I,
)
BAD_SECTORS = re.compile(r"(?P<kb>[\d,. ]+)\s*KB (?:in bad sectors|は不良セクター)", re.I)
FILE_NAME = re.compile(r"[^\s\"'<>|()]+\.(?:a?vhdx?|vhds|vmcx|vmrs|vmgs|avhd)\b", re.I)
MAX_PROBLEMS = 40
MAX_RUN_LINES = 200_000


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        m = START.search(lines[i])
        if m is None:
            i += 1
            continue
        fact, i = _run(text, i, m.group("fs") or m.group("fs_ja"))
        facts.append(fact)
    return facts


def _run(text: Text, start: int, filesystem: str) -> tuple[Fact, int]:
    lines = text.lines
    volume = None
    for k in range(max(0, start - 3), start):  # the command typed above it
        v = VOLUME.match(lines[k])
        if v:
            volume = v.group("vol").upper()
    verdict: str | None = None
    read_only = False
    problems: list[str] = []
    count = 0
    bad_kb = 0
    files: list[str] = []
    i = start + 1
    while i < len(lines) and i - start < MAX_RUN_LINES:
        line = lines[i]
        if text.is_prompt(i) or START.search(line):
            break
        read_only = read_only or READ_ONLY.search(line) is not None
        for pattern, word in VERDICTS:
            if pattern.search(line):
                verdict = word
                break
        bad = BAD_SECTORS.search(line)
        if bad:
            digits = re.sub(r"\D", "", bad.group("kb"))
            bad_kb = max(bad_kb, int(digits or 0))
        if PROBLEM.search(line) and not line.strip().startswith(("0 ", "０")):
            count += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(" ".join(line.split())[:300])
            for name in FILE_NAME.findall(line):
                if name not in files and len(files) < MAX_PROBLEMS:
                    files.append(name)
        i += 1
    if verdict is None and (count or bad_kb):
        verdict = "errors"
    attrs: dict[str, Any] = {
        "volume": volume,
        "filesystem": filesystem,
        "verdict": verdict or "unknown",
        "read_only": read_only,
        "errors": verdict == "errors" or (verdict is None and count > 0),
        "problems": problems,
        "problem_count": count,
        "bad_sectors_kb": bad_kb,
        "virtual_disk_files": files,
        "format": "chkdsk",
    }
    return Fact("chkdsk_result", attrs, Provenance(text.path, text.locator(start))), i
