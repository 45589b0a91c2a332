"""Write ``src/hvrescue/diagnose/rules.snapshot.json``: the rules as decoded and validated from
their YAML, with the digest of that YAML (``hvrescue.diagnose.rules.load_rules`` reads it while
the digest matches). Run after changing a rule file:

    python3 tools/rules_snapshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import msgspec

from hvrescue.diagnose.rules import (
    SNAPSHOT,
    Snapshot,
    rule_sources,
    rules_from_yaml,
    sources_digest,
)

TARGET = Path(__file__).resolve().parents[1] / "src" / "hvrescue" / "diagnose" / SNAPSHOT


def main() -> int:
    sources = rule_sources()
    rules = rules_from_yaml(sources)
    data = msgspec.json.encode(Snapshot(sources_digest(sources), rules)) + b"\n"
    if msgspec.json.decode(data, type=Snapshot).rules != rules:
        print("the rules do not survive JSON (a date or a non-string key?): no snapshot written")
        return 1
    fd, tmp = tempfile.mkstemp(dir=TARGET.parent, prefix=".snapshot-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, TARGET)
    print(f"{TARGET}: {len(rules)} rules, {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
