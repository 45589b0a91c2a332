"""Read-only input sources and (later) atomic outputs."""

from hvrescue.io.source import BadRange, ReadOnlySource

__all__ = ["BadRange", "ReadOnlySource"]
