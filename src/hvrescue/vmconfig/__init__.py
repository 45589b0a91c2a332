"""Hyper-V virtual machine configuration: `.vmcx`/`.vmrs` (2016 and later) and the older XML
files (2012 R2 `Virtual Machines/<GUID>.xml`), read into one shape, :class:`VmConfig`."""

from hvrescue.vmconfig.model import ConfigDisk, VmConfig
from hvrescue.vmconfig.read import (
    CONFIG_SUFFIXES,
    ConfigUnavailable,
    looks_like_config,
    read_config,
)

__all__ = [
    "CONFIG_SUFFIXES",
    "ConfigDisk",
    "ConfigUnavailable",
    "VmConfig",
    "looks_like_config",
    "read_config",
]
