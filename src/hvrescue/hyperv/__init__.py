"""Hyper-V beyond the disk formats: the checks an inventory of a VM storage tree runs (backup
leftovers, saved and guest state, merge headroom), the formats of the files around the disks
(VMGS guest state, VHD Sets) and the rebuilding of a VM from its surviving disks.

Each check module named in :data:`hvrescue.inventory.CHECK_MODULES` exposes
``check(inv, options) -> list[Finding]``; ``options`` holds the thresholds `audit` and
`inventory` were given (see :class:`hvrescue.inventory.CheckOptions`).
"""
