"""Does every disk file of a VM's chains grant that VM its own account?

Hyper-V gives each VM an account ``NT VIRTUAL MACHINE\\<VM id>`` and grants it access to each
file of the VM's chains (parents in other folders included). A disk copied, restored or moved
with another tool loses that entry, and the VM fails to start with "General access denied
error" (0x80070005; Microsoft KB 2249906). The ACLs come from ``icacls`` outputs (given with
``--acl``, or found in the folder audited) or, on the Windows host itself, from ``icacls`` run
on each file through the collector's process runner (read-only: icacls without /grant, /reset
or /setowner only lists).
"""

from __future__ import annotations

import ntpath
import os
import struct
import tempfile
import uuid
from typing import Any

from hvrescue import platform as plat
from hvrescue.audit.given import read_given
from hvrescue.evidence.text import decode_text, looks_binary
from hvrescue.facts.model import Fact
from hvrescue.findings import Finding, Severity
from hvrescue.inventory import Inventory
from hvrescue.logs import repost
from hvrescue.logs.commands import icacls
from hvrescue.logs.textutil import Text

MAX_ACL_FILE = 16 * 1024 * 1024  # an icacls output of a whole tree stays far below this
ICACLS_TIMEOUT_S = 60
ICACLS_CAP = 1024 * 1024


def grant_command(path: str, vm_id: str) -> str:
    """The exact grant Microsoft gives for the VM's account (KB 2249906)."""
    return f'icacls "{path}" /grant "NT VIRTUAL MACHINE\\{vm_id}":(F)'


def acl_facts(data: bytes, path: str) -> list[Fact]:
    if looks_binary(data[:65536]):
        return []
    text, _ = decode_text(data)
    doc = Text.of(repost.clean(text), path)
    return [f for f in icacls.parse(doc) if f.kind == "acl"]


def read_acl_files(paths: list[str]) -> list[Fact]:
    """The ``acl`` facts of icacls outputs the user gives; a file holding none is refused (a
    wrong file must not pass for ACLs that lack nothing)."""
    return read_given(paths, MAX_ACL_FILE, acl_facts, "acl", "acl-not-icacls")


def _live_acls(files: list[str]) -> dict[str, Fact]:
    """icacls run on each file (Windows), its output read like a pasted one: the ACL of each
    file by its path (the output of one file is that file's, whatever path it prints)."""
    from hvrescue.collector import process

    found: dict[str, Fact] = {}
    with tempfile.TemporaryDirectory(prefix="hvrescue-audit-") as work:
        for n, path in enumerate(files):
            out = os.path.join(work, f"icacls-{n}.txt")
            err = os.path.join(work, f"icacls-{n}.err")
            outcome = process.run(["icacls", path], out, err, ICACLS_TIMEOUT_S, ICACLS_CAP, work)
            if outcome.state != "exited":
                continue
            with open(out, "rb") as f:
                data = f.read(ICACLS_CAP + 1)
            facts = acl_facts(data, f'icacls "{path}"')
            if len(facts) == 1:
                found[path] = facts[0]
    return found


def _components(path: str) -> list[str]:
    return [p for p in path.replace("/", "\\").lower().split("\\") if p]


def _vm_id(principal: str) -> str | None:
    m = icacls.VM_PRINCIPAL.match(principal)
    if m:
        return m.group("id").lower()
    s = icacls.VM_SID.match(principal)
    if s:
        # A VM's SID holds the VM id's 16 bytes as four sub-authorities (see icacls.py).
        parts = [int(x) for x in s.groups()]
        if all(p < 1 << 32 for p in parts):
            return str(uuid.UUID(bytes_le=struct.pack("<4I", *parts)))
    return None


def grants_vm(acl: Fact, vm_id: str) -> bool:
    """Whether the ACL allows the VM's own account anything (Hyper-V grants R,W or R)."""
    want = vm_id.lower()
    return any(
        not e.get("deny") and e.get("rights") and _vm_id(e.get("principal", "")) == want
        for e in acl.attributes.get("entries", [])
    )


def _match(expected: list[list[str]], by_path: dict[str, Fact]) -> Fact | None:
    """The ACL printed for one of the Windows paths the file may have: the path its VM's
    configuration implies, else one ending with the audited folder's name and the file's path
    under it. A path that only ends alike (the same name in another VM's folder) is never
    taken for it."""
    for want in expected:
        fact = by_path.get("\\".join(want))
        if fact is not None:
            return fact
    return None


def _suffix_match(tail: list[str], by_path: dict[str, Fact]) -> Fact | None:
    found = [f for key, f in by_path.items() if key.split("\\")[-len(tail) :] == tail]
    return found[0] if len(found) == 1 else None


def _disk_files(
    inv: Inventory,
) -> list[tuple[dict[str, Any], str, list[str] | None, list[str] | None]]:
    """(VM, local file, its path under the folder audited as components, its Windows path as
    the VM's configuration implies it) for each file of each VM's chains inside the folder."""
    real_of = {f.rel: f.path for f in inv.files}
    out = []
    for vm in inv.vms:
        if vm.get("kind") != "vm" or not vm.get("vm_id"):
            continue
        for disk in vm.get("disks", []):
            chain = list(disk.get("chain", []))
            if not chain:
                continue
            # The configuration names the leaf as the host sees it: the host's folder that
            # stands for the folder audited is what precedes the leaf's own path under it.
            leaf = _components(chain[-1])
            named = _components(str(disk.get("path") or ""))
            inside = not os.path.isabs(chain[-1])
            prefix = named[: -len(leaf)] if inside and named[-len(leaf) :] == leaf else None
            for rel in chain:
                # A parent outside the folder (found through a search): its own path only.
                parts = None if os.path.isabs(rel) else _components(rel)
                windows = [*prefix, *parts] if prefix is not None and parts else None
                out.append((vm, real_of.get(rel, rel), parts, windows))
    return out


def acl_findings(inv: Inventory, acls: list[Fact], live: bool | None) -> tuple[list[Finding], int]:
    """``audit.acl-missing-vm-grant`` for each chain file whose ACL is known (``acls``: the
    icacls outputs given and found, or icacls run here) and lacks its VM's grant; and how
    many files' ACLs were compared."""
    files = _disk_files(inv)
    if not files:
        return [], 0
    live_acls: dict[str, Fact] = {}
    if plat.on_windows() if live is None else live:
        live_acls = _live_acls(sorted({local for _, local, _, _ in files}))
    findings: list[Finding] = []
    checked = 0
    by_path: dict[str, Fact] = {}
    for fact in acls:  # a path listed twice: the later listing stands
        by_path["\\".join(_components(str(fact.attributes.get("path", ""))))] = fact
    base = os.path.basename(inv.root.rstrip(os.sep)).lower()
    seen: set[tuple[str, str]] = set()
    for vm, local, parts, windows in files:
        vm_id = str(vm["vm_id"])
        if (local, vm_id.lower()) in seen:
            continue
        seen.add((local, vm_id.lower()))
        acl = live_acls.get(local) or _match([windows] if windows else [], by_path)
        if acl is None and parts:
            acl = _suffix_match([base, *parts], by_path)
        if acl is None or acl.attributes.get("error"):
            continue
        checked += 1
        if grants_vm(acl, vm_id):
            continue
        printed = str(acl.attributes["path"])
        shown = ntpath.normpath(printed) if "\\" in printed else printed
        findings.append(
            Finding(
                "audit.acl-missing-vm-grant",
                Severity.WARNING,
                local,
                params={
                    "vm": vm.get("name") or "?",
                    "vm_id": vm_id,
                    "file": shown,
                    "grant": grant_command(shown, vm_id),
                    "source": acl.provenance.path,
                },
            )
        )
    return findings, checked
