"""``acl_gap``: a disk file of a VM whose access list (``icacls`` output, an ``acl`` fact) does
not give that VM's own account (``NT VIRTUAL MACHINE\\<VM id>``, or its SID S-1-5-83-1-...)
what Hyper-V needs to open it. No single source says this: the VMs and their disks come from
the VM configurations (``vm_config``: each disk with its whole chain, parents in other folders
included), ``Get-VM`` (``vm``), ``Get-VMHardDiskDrive`` (``vm_disk``) and ``Get-VHD`` (``vhd``,
whose ``parent_path`` extends a chain), the access lists from ``acl``.

Attributes: ``path`` (the file as icacls or the configuration names it), ``vm_id`` (lowercase),
``vm_name``, ``missing``, ``disk`` (the disk the VM attaches, whose chain holds ``path``),
``role`` (``disk`` or ``parent``), ``grant`` (the exact ``icacls ... /grant`` command),
``save`` (the ``icacls ... /save`` that keeps the current list first), ``match`` (``path`` or
``name``: how the access list was tied to the file). ``missing`` is

- ``vm-grant``: no entry for the VM that applies to the file (none at all, or only
  inherit-only (IO) entries, which apply to what a folder holds, not to the folder's file);
- ``denied``: a (DENY) entry for the VM;
- ``read-only``: the VM may read but not write the file;
- ``inheritance-only``: the VM's access comes only from entries inherited (I) from the folder:
  it works where the file lies now and is lost when the file is moved or restored elsewhere;
- ``not-shown``: the access list of this file of the chain was not in the evidence while
  another file of the same chain lacks the VM's grant (the grant is harmless where it exists).

An ``acl_gap`` keeps the provenance of the ``acl`` fact it comes from (of the disk's source for
``not-shown``), so a diagnosis cites the icacls output itself.

``service_sd_gap``: a ``service_security`` fact (`sc sdshow`, or a guest registry's
``Services\\<name>\\Security``) of CryptSvc or EventSystem whose DACL does not give what the
System Writer needs: the allow entries of the documented default (source 004 of the knowledge
digest, Windows Server 2008 / 2008 R2), compared as parsed ACEs. A later Windows's default
(Windows 10 adds Server Operators and AppContainer entries) holds them all and gives no gap, nor
does a descriptor without a SACL (a registry copy never shows one). Attributes:
``service_name``, ``missing`` (each gap: ``ace``, ``sid``, ``trustee``, ``rights``, ``reason``,
``denied_by``, see ``logs.commands.sddl.missing_grants``), ``missing_aces`` (the needed entries,
SDDL, joined), ``missing_rights`` (``SU: CCLCSWLOCRRC``, joined), ``denied_by``, ``sddl`` (as
read), ``repaired_sddl`` (the same descriptor with only those entries put back, for `sc
sdset`), with the provenance of the ``service_security`` fact.
"""

from __future__ import annotations

import ntpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hvrescue.diagnose.derive_denied import denied_disks
from hvrescue.facts.model import Fact, Provenance

# What the System Writer needs on the services it depends on: the allow entries of the default
# descriptor of CryptSvc and EventSystem (knowledge digest 004; the SACL part of that default is
# audit only and is not looked at).
SYSTEM_WRITER_SERVICES = ("cryptsvc", "eventsystem")
SYSTEM_WRITER_NEEDS = [
    "(A;;CCLCSWRPWPDTLOCRRC;;;SY)",
    "(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)",
    "(A;;CCLCSWLOCRRC;;;IU)",
    "(A;;CCLCSWLOCRRC;;;SU)",
]
MAX_CHAIN = 64  # parent links followed through Get-VHD output
MAX_VMS = 10_000
WRITE_RIGHTS = {"F", "M", "W", "GW", "GA", "WD", "AD", "MA"}
READ_RIGHTS = {"R", "RX", "GR", "GE", "RD", "RA", "REA", "X", "RC", "S"}
DISK_NAME = re.compile(r"\.(?:a?vhdx?|vhds|iso)$", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")


def _key(path: str) -> str:
    return path.strip().strip('"').replace("/", "\\").casefold()


def _name(path: str) -> str:
    return ntpath.basename(_key(path))


@dataclass
class _Vm:
    vm_id: str
    name: str | None = None
    # (file, role, leaf disk, provenance of what named it), chain order, leaf first
    files: list[tuple[str, str, str, Provenance]] = field(default_factory=list)

    def add(self, path: str, role: str, disk: str, where: Provenance) -> None:
        if path and all(_key(path) != _key(f[0]) for f in self.files):
            self.files.append((path, role, disk, where))


def _vms(facts: list[Fact]) -> dict[str, _Vm]:
    vms: dict[str, _Vm] = {}
    by_name: dict[str, str] = {}

    def vm(vm_id: Any, name: Any) -> _Vm | None:
        if not isinstance(vm_id, str) or not vm_id.strip():
            return None
        key = vm_id.strip().strip("{}").lower()
        if key not in vms:
            if len(vms) >= MAX_VMS:
                return None
            vms[key] = _Vm(key)
        entry = vms[key]
        if isinstance(name, str) and name:
            entry.name = entry.name or name
            by_name.setdefault(name.casefold(), key)
        return entry

    for fact in facts:
        a = fact.attributes
        if fact.kind == "vm_config" and a.get("kind", "vm") == "vm":
            entry = vm(a.get("vm_id"), a.get("name"))
            if entry is None:
                continue
            for disk in a.get("disks") or []:
                if not isinstance(disk, dict):
                    continue
                leaf = str(disk.get("path") or disk.get("local") or "")
                if not DISK_NAME.search(leaf):
                    continue
                entry.add(leaf, "disk", leaf, fact.provenance)
                chain = [str(c) for c in disk.get("chain") or [] if isinstance(c, str)]
                # The chain is listed base first and ends with the disk itself.
                for parent in reversed(chain[:-1] if len(chain) > 1 else []):
                    entry.add(parent, "parent", leaf, fact.provenance)
        elif fact.kind == "vm":
            vm(a.get("vm_id"), a.get("name"))
        elif fact.kind == "denied_disk":
            # The failure names the VM and the disk it could not open: that disk is the VM's.
            entry = vm(a.get("vm_id"), a.get("vm_name"))
            path = str(a.get("path") or "")
            if entry is not None and DISK_NAME.search(path):
                entry.add(path, "disk", path, fact.provenance)
    vhd_parent = {
        _key(str(f.attributes["path"])): str(f.attributes["parent_path"])
        for f in facts
        if f.kind == "vhd" and f.attributes.get("path") and f.attributes.get("parent_path")
    }
    for fact in facts:
        if fact.kind != "vm_disk":
            continue
        a = fact.attributes
        key = by_name.get(str(a.get("vm_name") or "").casefold())
        path = str(a.get("path") or "")
        if key is None or not DISK_NAME.search(path):
            continue
        vms[key].add(path, "disk", path, fact.provenance)
    for entry in vms.values():
        for path, role, disk, where in list(entry.files):
            if role != "disk":
                continue
            step, seen = vhd_parent.get(_key(path)), {_key(path)}
            while step and _key(step) not in seen and len(seen) < MAX_CHAIN:
                seen.add(_key(step))
                entry.add(step, "parent", disk, where)
                step = vhd_parent.get(_key(step))
    return vms


def _missing(acl: Fact, vm_id: str) -> str | None:
    entries = [
        e
        for e in acl.attributes.get("entries") or []
        if isinstance(e, dict) and _entry_vm(e) == vm_id
    ]
    if any(e.get("deny") for e in entries):
        return "denied"
    applying = [e for e in entries if "IO" not in (e.get("flags") or [])]
    if not applying:
        return "vm-grant"
    rights = {str(r).upper() for e in applying for r in e.get("rights") or []}
    if not rights & WRITE_RIGHTS:
        return "read-only" if rights & READ_RIGHTS else "vm-grant"
    if all(e.get("inherited") for e in applying):
        return "inheritance-only"
    return None


def _entry_vm(entry: dict[str, Any]) -> str | None:
    # imported here, as below: the engine runs on every triage, most of which hold no listing
    from hvrescue.logs.commands.icacls import vm_id_of

    return vm_id_of(str(entry.get("principal") or ""))


def _command_path(acl_path: str, config_path: str) -> str:
    """The path to give icacls: the one icacls printed when it is absolute (that is where the
    file lies on the host), else the configuration's."""
    if _ABSOLUTE.match(acl_path):
        return acl_path
    return config_path


def grant_command(path: str, vm_id: str) -> str:
    return f'icacls "{path}" /grant "NT VIRTUAL MACHINE\\{vm_id.upper()}":(F)'


def save_command(path: str) -> str:
    stem = ntpath.basename(path.replace("/", "\\")) or "disk"
    return f'icacls "{path}" /save "{stem}.acl.txt"'


def derived_facts(facts: Iterable[Fact]) -> list[Fact]:
    """``denied_disk`` facts (the disk and VM an access-denied failure names), ``acl_gap``
    facts, and the change-tracking findings of file listings."""
    facts = list(facts)
    denied = denied_disks(facts)
    return denied + acl_gaps(facts + denied) + listing_findings(facts) + service_sd_gaps(facts)


def service_sd_gaps(facts: Iterable[Fact]) -> list[Fact]:
    """One ``service_sd_gap`` per CryptSvc / EventSystem descriptor that lacks an entry the
    System Writer needs."""
    out = []
    for fact in facts:
        a = fact.attributes
        name, sddl = a.get("service_name"), a.get("sddl")
        if fact.kind != "service_security" or not isinstance(sddl, str) or "D:" not in sddl:
            continue
        if not isinstance(name, str) or name.casefold() not in SYSTEM_WRITER_SERVICES:
            continue
        from hvrescue.logs.commands.sddl import missing_grants, with_grants

        gaps = missing_grants(sddl, SYSTEM_WRITER_NEEDS)
        if not gaps:
            continue
        attrs: dict[str, Any] = {
            "service_name": name,
            "missing": gaps,
            "missing_aces": "".join(g["ace"] for g in gaps),
            "missing_rights": ", ".join(f"{g['sid']}: {g['rights']}" for g in gaps),
            "denied_by": sorted({d for g in gaps for d in g["denied_by"]}),
            "sddl": sddl,
            "repaired_sddl": with_grants(sddl, gaps),
        }
        out.append(Fact("service_sd_gap", attrs, fact.provenance))
    return out


def listing_findings(facts: Iterable[Fact]) -> list[Fact]:
    """``finding`` facts (``inventory.rct-orphan``, ``inventory.rct-oversized``) for the
    change-tracking files of a ``dir`` or Get-ChildItem listing (``file_entry`` facts), each
    with the provenance of its listing line; the same checks `inventory` makes on files."""
    entries = [
        f for f in facts if f.kind == "file_entry" and isinstance(f.attributes.get("path"), str)
    ]
    if not entries:
        return []
    from hvrescue.hyperv.leftovers import listed_leftovers

    where = {str(f.attributes["path"]).casefold(): f.provenance for f in entries}
    listed = [(str(f.attributes["path"]), _size(f.attributes.get("size"))) for f in entries]
    out = []
    for code, path, params in listed_leftovers(listed):
        attrs: dict[str, Any] = {"code": code, "severity": "warning", "path": path, "offset": None}
        attrs.update({f"param_{k}": v for k, v in params.items()})
        attrs["param_folder"] = ntpath.dirname(path)
        out.append(Fact("finding", attrs, where[path.casefold()]))
    return out


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def acl_gaps(facts: Iterable[Fact]) -> list[Fact]:
    """One ``acl_gap`` per (file, VM) whose access list lacks what the VM needs."""
    facts = list(facts)
    acls = [f for f in facts if f.kind == "acl" and f.attributes.get("path")]
    if not acls:
        return []
    by_path: dict[str, Fact] = {}
    by_name: dict[str, list[Fact]] = {}
    for acl in acls:
        if acl.attributes.get("error"):
            continue  # an access list icacls could not read says nothing of the grants
        path = str(acl.attributes["path"])
        by_path.setdefault(_key(path), acl)
        by_name.setdefault(_name(path), []).append(acl)
    out: list[Fact] = []
    for vm in _vms(facts).values():
        chains: dict[str, list[tuple[str, str, Fact | None, str, Provenance]]] = {}
        for path, role, disk, where in vm.files:
            found = by_path.get(_key(path))
            how = "path"
            if found is None:
                named = by_name.get(_name(path), [])
                # A name alone ties the list to the file only when one list has that name.
                found, how = (named[0], "name") if len(named) == 1 else (None, "")
            chains.setdefault(_key(disk), []).append((path, role, found, how, where))
        for files in chains.values():
            gaps: list[Fact] = []
            unshown: list[tuple[str, str, Provenance]] = []
            disk = files[0][0]
            for path, role, listed, how, where in files:
                if listed is None:
                    unshown.append((path, role, where))
                    continue
                missing = _missing(listed, vm.vm_id)
                if missing is None:
                    continue
                target = _command_path(str(listed.attributes["path"]), path)
                gaps.append(_gap(vm, target, role, disk, missing, how, listed.provenance))
            if any(g.attributes["missing"] != "inheritance-only" for g in gaps):
                for path, role, where in unshown:
                    if _ABSOLUTE.match(path):
                        gaps.append(_gap(vm, path, role, disk, "not-shown", "", where))
            out += gaps
    return out


def _gap(
    vm: _Vm, path: str, role: str, disk: str, missing: str, how: str, where: Provenance
) -> Fact:
    return Fact(
        "acl_gap",
        {
            "path": path,
            "vm_id": vm.vm_id,
            "vm_name": vm.name,
            "missing": missing,
            "disk": disk,
            "role": role,
            "grant": grant_command(path, vm.vm_id),
            "save": save_command(path),
            "match": how or None,
        },
        where,
    )
