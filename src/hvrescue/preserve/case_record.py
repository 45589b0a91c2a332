"""Whether a path may serve as the case record (``--case``) a command appends its action to."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from hvrescue.errors import InputError

CASE_TABLES = frozenset({"meta", "actions", "files"})


def check_case_record(path: str, may_create: bool = False) -> None:
    """Refuse a --case path that is not an existing, writable case database (its folder missing,
    a file of another kind, not yet created outside preserve)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError("error.case.folder-missing", path=path, folder=folder)
    if not os.path.lexists(path):
        if not may_create:
            raise InputError("error.case.missing", path=path)
        from hvrescue.io.atomic import check_output_folder

        check_output_folder(path)
        return
    if not os.path.isfile(path):
        raise InputError("error.case.not-a-case", path=path, reason="not a regular file")
    try:
        # Read-only and never created: looking must not change the file or make one.
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True)
        try:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            tables = {str(r[0]) for r in rows}
            schema = None
            if tables >= CASE_TABLES:
                schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise InputError("error.case.not-a-case", path=path, reason=str(exc)) from exc
    if schema is None:
        raise InputError("error.case.not-a-case", path=path, reason="no case record tables")
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        raise InputError("error.case.read-only", path=path)
