"""Write ``src/hvrescue/diagnose/rules.snapshot.json`` and ``codes.snapshot.json``: the rules as
decoded and validated from their YAML, and the code tables as loaded from ``codes.yaml``, each
with the digest of its YAML (``load_rules`` and ``codes.tables`` read them while the digest
matches). Run after changing a rule file or codes.yaml:

    python3 tools/rules_snapshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import msgspec

from hvrescue.diagnose import codes
from hvrescue.diagnose.rules import (
    SNAPSHOT,
    Snapshot,
    rule_sources,
    rules_from_yaml,
    sources_digest,
)

TARGET = Path(__file__).resolve().parents[1] / "src" / "hvrescue" / "diagnose" / SNAPSHOT


def _write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".snapshot-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    print(f"{target}: {len(data)} bytes")


def main() -> int:
    sources = rule_sources()
    rules = rules_from_yaml(sources)
    data = msgspec.json.encode(Snapshot(sources_digest(sources), rules)) + b"\n"
    if msgspec.json.decode(data, type=Snapshot).rules != rules:
        print("the rules do not survive JSON (a date or a non-string key?): no snapshot written")
        return 1
    source, digest = codes.yaml_source()
    tables = codes.tables_from_yaml(source)
    table_data = msgspec.json.encode({"digest": digest, "tables": tables}) + b"\n"
    if msgspec.json.decode(table_data)["tables"] != tables:
        print("codes.yaml does not survive JSON: no snapshot written")
        return 1
    _write(TARGET, data)
    _write(TARGET.parent / codes.SNAPSHOT, table_data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
