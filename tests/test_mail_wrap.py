"""An incident mailed or posted through a client that hard-wraps at 72 or 76 columns (at the
last space before the width, long words left whole) gives the diagnosis the original gives:
messages split over lines still read as their sentences (a rule's expression sees a line break
as a space), a DISM list value moved under its name and a verdict wrapped after the progress
bar are read whole.

A Format-Table whose rows the client cut is put back together (``pstable_wrap``), and so is a
Format-List value continued at column 0. Left, in TABLES: a table where the cut leaves two
readings of a row (``Standard`` + ``10/1/2026 9:12:00 AM`` may be one wider value or two
columns), whose unsure fields are dropped; checked to still be what it was, so a fix shows."""

from __future__ import annotations

import importlib
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.test_repost_transport import _top

SOURCES = {
    "test_field_rules": ("FIELD", "INCIDENTS"),
    "test_field_cluster": ("FIXTURES", "INCIDENTS"),
    "test_field_checkpoint": ("FIXTURES", "CASES"),
    "test_field_migration": ("FIXTURES", "CASES"),
    "test_windbg": ("FIXTURES", "CASES"),
    "test_cbs_log": ("FIXTURES", "CASES"),
}
# Whole Format-Table layouts the wrap destroys (header, dashes and rows cut at 72 columns).
TABLES = {"recovery-checkpoint"}


def _incidents() -> list[tuple[Path, str | None]]:
    out: dict[str, tuple[Path, str | None]] = {}
    for module, (folder, cases) in SOURCES.items():
        mod = importlib.import_module(f"tests.{module}")
        base = getattr(mod, folder)
        for case in getattr(mod, cases):
            out.setdefault(f"{module}:{case[0]}", (base / case[0], case[1]))
    return sorted(out.values(), key=lambda c: str(c[0]))


def mail_wrapped(text: str, width: int) -> str:
    lines = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        pieces = textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
        lines.extend(pieces or [""])
    return "\n".join(lines)


INCIDENTS = _incidents()


@pytest.mark.parametrize("width", [72, 76])
@pytest.mark.parametrize(
    ("source", "expected"), INCIDENTS, ids=[f"{s.parent.name}/{s.name}" for s, _ in INCIDENTS]
)
def test_a_mail_wrapped_incident_keeps_its_diagnosis(
    source: Path, expected: str | None, width: int, tmp_path: Path
) -> None:
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    changed = False
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                continue
            wrapped = mail_wrapped(text, width)
            changed |= wrapped != text
            path.write_text(wrapped, encoding="utf-8")
    got = _top(folder)
    if source.name in TABLES:
        assert changed and got != expected, "a wrapped table now reads: move it out of TABLES"
    else:
        assert got == expected


def test_the_wrap_is_a_mail_clients():
    line = "Checkpoint-VM : 'SQL01' could not initiate a checkpoint operation: The file exists."
    assert mail_wrapped(line, 72).split("\n") == [
        "Checkpoint-VM : 'SQL01' could not initiate a checkpoint operation: The",
        "file exists.",
    ]
