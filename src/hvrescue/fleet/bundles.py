"""Which bundles a `fleet` run reads, and the host each one names.

A bundle is one host's evidence: a zip (``hvrescue collect`` writes one, Velociraptor and
Ansible bring them back) or a folder (a bundle unpacked, or any folder of one host's outputs).
A folder given is searched by the one evidence walker (``hvrescue.evidence.Walk``, zips left
closed): each zip in it is a bundle, and so is each folder holding a bundle manifest
(``hvrescue-bundle.json``, whatever lies under it is that bundle's); a folder holding neither
is one bundle itself. Files and folders given by name are bundles as given.

The host's name comes from the bundle's manifest (``host``), read here under a size limit; the
worker falls back to the ``systeminfo`` / ``Get-ComputerInfo`` facts and then the bundle's name.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

from hvrescue.errors import InputError
from hvrescue.evidence import UNREAD, Budget, Folder, Skipped, Walk
from hvrescue.evidence.classify import BUNDLE_MANIFESTS, C_ZIP, is_bundle_manifest
from hvrescue.evidence.zips import ZIP_ERRORS, directory_size
from hvrescue.io.files import DIRECTORY, REGULAR, file_kind, open_evidence_file

MANIFEST = BUNDLE_MANIFESTS[0]
# A manifest lists a few hundred commands and files: a larger one is not read for a host name.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_HOST_CHARS = 255
# A fleet of more bundles than this is several runs (each bundle costs a process task).
MAX_BUNDLES = 100_000


@dataclass(frozen=True)
class Manifest:
    """What a bundle's manifest says of its host: ``host`` (None when absent), and why it could
    not be used (``problem``: a stable code, ``detail``) when it was there but unreadable."""

    host: str | None = None
    found: bool = False
    problem: str | None = None
    detail: str | None = None


def _is_zip_name(path: str) -> bool:
    return path.lower().endswith(".zip")


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _search(folder: str) -> list[str]:
    """The bundles under a folder given (see the module's docstring)."""
    zips: list[str] = []
    bundle_folders: list[str] = []
    # Listing only: a zip's head (4 KiB) is read to tell a zip by content, never its members.
    budget = Budget()
    for entry in Walk([folder], budget, archives=False):
        if isinstance(entry, Folder):
            continue
        path = os.path.abspath(entry.path)
        if isinstance(entry, Skipped):
            if entry.reason == "too-many-files":
                raise InputError("error.fleet.too-many-files", path=folder, limit=budget.max_files)
            # A zip or a folder that could not be read is a host whose bundle failed, never
            # one left out unseen (its triage says why); links are not followed.
            if entry.reason in UNREAD and (_is_zip_name(path) or file_kind(path) == DIRECTORY):
                zips.append(path)
        elif is_bundle_manifest(os.path.basename(path)):
            bundle_folders.append(os.path.dirname(path))
        elif entry.content == C_ZIP or _is_zip_name(path):
            zips.append(path)
        if len(zips) + len(bundle_folders) > MAX_BUNDLES:
            raise InputError("error.fleet.too-many-bundles", path=folder, limit=MAX_BUNDLES)
    root = os.path.abspath(folder)
    if root in bundle_folders:
        return [root]
    # A bundle folder's own zips (a nested archive of its evidence) belong to it.
    bundle_folders = [
        f for f in bundle_folders if not any(_inside(f, g) for g in bundle_folders if g != f)
    ]
    zips = [z for z in zips if not any(_inside(z, f) for f in bundle_folders)]
    found = sorted({*zips, *bundle_folders})
    return found or [root]


def find_bundles(paths: list[str]) -> list[str]:
    """Every bundle the paths name, absolute, each once, in a stable order; ``InputError`` for a
    path that is neither a file nor a folder."""
    out: list[str] = []
    seen: set[str] = set()
    for path in paths:
        kind = file_kind(path)
        if kind == DIRECTORY:
            found = _search(path)
        elif kind == REGULAR:
            found = [os.path.abspath(path)]
        else:
            raise InputError("error.fleet.not-a-bundle", path=path, kind=kind)
        for bundle in found:
            key = os.path.normcase(os.path.realpath(bundle))
            if key not in seen:
                seen.add(key)
                out.append(bundle)
        if len(out) > MAX_BUNDLES:
            raise InputError("error.fleet.too-many-bundles", path=path, limit=MAX_BUNDLES)
    return out


def clean_host(value: object) -> str | None:
    """A host name as a report may show it: text, one line, bounded; None for anything else."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:MAX_HOST_CHARS] or None


def _manifest_bytes(bundle: str) -> bytes | None:
    """The manifest's bytes (None: the bundle has none), at most MAX_MANIFEST_BYTES + 1."""
    if file_kind(bundle) == DIRECTORY:
        path = os.path.join(bundle, MANIFEST)
        if file_kind(path, follow=False) != REGULAR:
            return None
        with open_evidence_file(path) as f:
            return f.read(MAX_MANIFEST_BYTES + 1)
    with open_evidence_file(bundle) as fh:
        if fh.read(4) != b"PK\x03\x04":
            return None
        sizes = directory_size(fh)
        # zipfile keeps every central-directory entry: weigh it as the walker does.
        if sizes is None or not Budget().directory_fits(sizes[1]):
            return None
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            try:
                info = zf.getinfo(MANIFEST)
            except KeyError:
                return None
            with zf.open(info) as member:
                return member.read(MAX_MANIFEST_BYTES + 1)


def read_manifest(bundle: str) -> Manifest:
    """The host a bundle's manifest names. A damaged or foreign manifest is said so, never
    raised: the bundle's other evidence is still read."""
    try:
        raw = _manifest_bytes(bundle)
    except InputError as exc:
        return Manifest(found=True, problem="unreadable", detail=str(exc.params.get("reason")))
    except ZIP_ERRORS as exc:
        return Manifest(found=True, problem="unreadable", detail=f"{type(exc).__name__}: {exc}")
    if raw is None:
        return Manifest()
    if len(raw) > MAX_MANIFEST_BYTES:
        return Manifest(found=True, problem="too-large", detail=str(MAX_MANIFEST_BYTES))
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Manifest(found=True, problem="not-json", detail=str(exc)[:200])
    if not isinstance(data, dict) or data.get("format") != "hvrescue-bundle":
        return Manifest(found=True, problem="foreign", detail=None)
    host = clean_host(data.get("host"))
    if host is None:
        return Manifest(found=True, problem="no-host", detail=None)
    return Manifest(host=host, found=True)
