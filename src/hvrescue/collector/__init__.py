"""Read-only live collection on a Windows host into one bundle (a zip and its manifest).

``commands.yaml`` is the command list, as data (reviewed in docs/collect.md); ``commands``
loads and expands it; ``process`` runs one process with a timeout and an output cap and kills
its tree; ``status`` tells what became of it (ok, failed, timeout, denied, missing, too-large,
error); ``discover`` finds the VM folders, disks and volumes in the Hyper-V outputs;
``vmfiles`` copies the configuration files and lists the disks; ``bundle`` writes the zip;
``runner`` does one collection (``hvrescue.evidence.bundle`` reads a bundle back by its manifest).

Imports: ``io``, ``errors`` and the ground floor; nothing of ``logs``, ``diagnose`` or ``cli``.
"""

from __future__ import annotations

from hvrescue.collector.runner import Options, Result, collect

__all__ = ["Options", "Result", "collect"]
