"""The one evidence walker: files, folders and zips, walked once, each item classified once.

What it owns
    Turning the paths a user gives (files, folders, zip bundles, a collector's bundle) into a
    stream of items, each classified once by name and first bytes (``classify``): a virtual
    disk, a VM configuration, a VM runtime file, an event log (EVTX; XML and CSV exports are
    told from other text on their first decoded piece by ``classify.text_format``), text
    (command outputs, pasted events), an archive, a collected bundle, binary, empty. A folder
    given comes back once walked as a ``Folder`` (a VM folder when it holds disks or
    configurations). The walker is the only code that lists folders and opens zips for
    ``facts``, ``triage`` and ``inventory``: they consume one walk and hand each item to its
    reader (``hvrescue.logs.collect.facts_from_item`` for facts; ``hvrescue.inventory`` for VM
    files; the disk engine for disks).

What it guarantees
    Only regular files are opened, through ``hvrescue.io.files`` (read-only, no access time
    where the kernel allows, never blocking); FIFOs, sockets and devices are skipped unopened;
    links met in a walk are not followed (``link-outside``, ``link-inside``, ``link-broken``),
    and a folder met twice is walked once. One ``Budget`` (``--max-memory``) bounds what is
    held at once: zip central directories, members read whole (EVTX, nested zips), text parsed
    in pieces (``text``), with the expanded size counted as read (headers lie), the ratio, the
    depth, the member count, the archive's total. An item that is damaged or meets a limit
    fails alone: it becomes a ``Skipped`` entry (path, reason, detail) and the walk goes on.

Where to add a new input kind
    Give it a kind and a test in ``classify.classify`` (by name and first bytes), then a reader
    where the consumers dispatch on ``Item.kind`` / ``Item.content`` (``logs.collect`` for facts,
    ``diagnose.triage`` for what triage does beyond facts). A collector's bundle is recognised by
    its manifest (``classify.BUNDLE_MANIFESTS``): the items of kind ``bundle`` are where its
    reader starts. Nothing else walks folders or opens archives.

Imports: ``io``, ``facts`` (the plain records), ``vdisk.detect`` (disk signatures); never
``logs``, ``diagnose`` or ``inventory``, which import it.
"""

from __future__ import annotations

from hvrescue.evidence.budget import Budget, LimitExceeded, parse_size
from hvrescue.evidence.items import Item, ItemError
from hvrescue.evidence.walk import Folder, Walk, file_item, items_from_bytes
from hvrescue.facts.model import Skipped

# Skipped reasons that mean evidence was there and was not read (in full): triage counts them
# as unread evidence. The others (not a regular file, a link not followed) held no evidence of
# their own.
UNREAD = (
    "unreadable",
    "too-large",
    "too-many-files",
    "memory-budget",
    "damaged-zip",
    "zip-too-deep",
    "zip-too-many-members",
    "zip-ratio",
    "zip-total",
    "zip-member-unreadable",
)
NOT_EVIDENCE = ("not-regular", "link-outside", "link-inside", "link-broken")

__all__ = [
    "NOT_EVIDENCE",
    "UNREAD",
    "Budget",
    "Folder",
    "Item",
    "ItemError",
    "LimitExceeded",
    "Skipped",
    "Walk",
    "file_item",
    "items_from_bytes",
    "parse_size",
]
