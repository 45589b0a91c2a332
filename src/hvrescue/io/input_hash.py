"""The SHA-256 of an input file as reports and case records give it: small files only, never
through a link. A module of its own so that a report imports no case-record writer."""

from __future__ import annotations

import hashlib
import os

from hvrescue.errors import HvrescueError
from hvrescue.io.files import REGULAR, file_kind, open_evidence_file

# Inputs are hashed for the record only when this small; larger ones are identified by size and
# mtime, and by the hash a preserve or verify action already recorded for the same file.
HASH_INPUTS_UP_TO = 256 * 1024 * 1024


def input_hash(path: str) -> str | None:
    """SHA-256 of a small input for the record (None for large ones, links, special files or on
    error: a link met in an evidence folder is not followed into another tree)."""
    if file_kind(path, follow=False) != REGULAR:
        return None
    try:
        with open_evidence_file(path) as f:
            if os.fstat(f.fileno()).st_size > HASH_INPUTS_UP_TO:
                return None
            return hashlib.file_digest(f, "sha256").hexdigest()
    except (HvrescueError, OSError):
        return None
