"""Evidence read only (files, source), outputs appearing only when complete (atomic), and
our own files never opened through a link (nofollow)."""

from hvrescue.io.source import BadRange, ReadOnlySource

__all__ = ["BadRange", "ReadOnlySource"]
