"""hvrescue: first response and recovery for Hyper-V and Windows Server failures."""

__version__ = "0.1.0"
