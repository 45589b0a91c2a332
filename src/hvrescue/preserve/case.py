"""The case record: an SQLite audit trail of every hvrescue action on one body of evidence.

One row per action (command line, start and end, exit code, who and where, tool version) and
one row per file it read or wrote (path, size, mtime, SHA-256 when known). The database lives
beside the preservation manifest by default, or wherever ``--case`` says; later commands given
the same case append to it. It is never placed among the evidence by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from typing import Any

from hvrescue import __version__
from hvrescue.io.files import NotRegularFileError, mode_kind
from hvrescue.io.input_hash import input_hash
from hvrescue.io.nofollow import lstat_or_none, refuse_link
from hvrescue.preserve.manifest import iso_ns, utc_now, who

CASE_FILE = "case.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    argv TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    exit_code INTEGER,
    host TEXT,
    user TEXT,
    cwd TEXT,
    tool_version TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS files (
    action_id INTEGER NOT NULL REFERENCES actions(id),
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    path TEXT NOT NULL,
    size INTEGER,
    mtime TEXT,
    sha256 TEXT,
    role TEXT
);
CREATE INDEX IF NOT EXISTS files_path ON files(path);
"""


# The files SQLite opens by name beside the database (rollback journal, WAL and its index).
_SIDE_FILES = ("", "-journal", "-wal", "-shm")


def check_case_files(path: str) -> None:
    """SQLite opens the database and its side files by name, following links: each must be
    missing or a regular file that is not a link (a link would be written through, a FIFO
    would block the open). Checked before and after the database is opened."""
    for suffix in _SIDE_FILES:
        name = path + suffix
        refuse_link(name)
        st = lstat_or_none(name)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(name, mode_kind(st.st_mode))


class CaseRecord:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        check_case_files(self.path)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            # One transaction: each statement on its own would be a commit, and each commit
            # waits for the disk several times (the rollback journal made, synced, removed).
            self.db.executescript(f"BEGIN;{_SCHEMA}")
            check_case_files(self.path)  # replaced by a link while it was being opened
            self.db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
            self.db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (utc_now(),)
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Record what is done inside as one transaction: all of it or, on failure, none (an
        action is never left half recorded), at the cost of one commit instead of one each."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def begin(self, command: str, argv: list[str]) -> int:
        ident = who()
        cur = self.db.execute(
            "INSERT INTO actions(command, argv, started, host, user, cwd, tool_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                command,
                json.dumps(argv, ensure_ascii=False),
                utc_now(),
                ident["host"],
                ident["user"],
                os.getcwd(),
                __version__,
            ),
        )
        return int(cur.lastrowid or 0)

    def add_file(
        self,
        action: int,
        direction: str,
        path: str,
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
        sha256: str | None = None,
        role: str | None = None,
    ) -> None:
        path = os.path.abspath(path)
        if size is None or mtime_ns is None:
            try:
                st = os.stat(path)
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                pass
        mtime = iso_ns(mtime_ns) if mtime_ns is not None else None
        if sha256 is None:
            sha256 = self.known_hash(path, size, mtime)
        self.db.execute(
            "INSERT INTO files(action_id, direction, path, size, mtime, sha256, role)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (action, direction, path, size, mtime, sha256, role),
        )

    def known_hash(self, path: str, size: int | None, mtime: str | None) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM files WHERE path = ? AND size IS ? AND mtime IS ?"
            " AND sha256 IS NOT NULL ORDER BY rowid DESC LIMIT 1",
            (path, size, mtime),
        ).fetchone()
        return str(row[0]) if row else None

    def finish(self, action: int, exit_code: int, summary: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "UPDATE actions SET finished = ?, exit_code = ?, summary = ? WHERE id = ?",
            (utc_now(), exit_code, json.dumps(summary or {}, ensure_ascii=False), action),
        )

    def actions(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, command, argv, started, finished, exit_code FROM actions ORDER BY id"
        ).fetchall()
        return [
            {
                "id": r[0],
                "command": r[1],
                "argv": json.loads(r[2]),
                "started": r[3],
                "finished": r[4],
                "exit_code": r[5],
            }
            for r in rows
        ]


def record_command(
    case_path: str, command: str, argv: list[str], inputs: list[str], exit_code: int
) -> None:
    """Append one finished command, with its input files (folders walked), to the case."""
    case = CaseRecord(case_path)
    try:
        action = case.begin(command, ["hvrescue", *argv[1:]])
        files: list[str] = []
        for path in inputs:
            if os.path.isdir(path):
                for root, dirs, names in os.walk(path):
                    dirs.sort()
                    files.extend(
                        os.path.join(root, n)
                        for n in sorted(names)
                        if not os.path.islink(os.path.join(root, n))
                    )
                    if len(files) > 10_000:
                        break
            else:
                files.append(path)
        for path in files[:10_000]:
            known = None
            try:
                st = os.stat(path)
                known = case.known_hash(os.path.abspath(path), st.st_size, iso_ns(st.st_mtime_ns))
            except OSError:
                pass
            case.add_file(action, "input", path, sha256=known or input_hash(path))
        case.finish(action, exit_code)
    finally:
        case.close()
