"""Registry hives of the guest through regipy: copied into a private folder, their transaction
logs applied there (never in the image), then read with every damage the hive raises recorded as
a problem of that hive while the reading goes on. Values come out as JSON types: a value regipy
could not decode (it then gives bytes) becomes hex text and a ``guest.hive-value-binary`` problem.

regipy logs its parse warnings through :mod:`logging`; they go to the ``hvrescue.guest.regipy``
logger (and from there to wherever the ``hvrescue`` logger is sent), never to stderr by default.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hvrescue.deps import require
from hvrescue.guest.values import json_safe

if TYPE_CHECKING:
    from hvrescue.guest.context import GuestContext

MAX_HIVE = 512 * 1024 * 1024
FEATURE = "guest"
LOG = logging.getLogger("hvrescue.guest.regipy")


class _ToHvrescue(logging.Handler):
    """Hands regipy's records to the hvrescue logger tree."""

    def emit(self, record: logging.LogRecord) -> None:
        LOG.handle(record)


_FORWARD = _ToHvrescue()


def route_library_logging() -> None:
    """regipy's records go to ``hvrescue.guest.regipy`` (at the level the ``hvrescue`` logger is
    set to), not to Python's last-resort stderr handler. Called at the start of every run, so a
    level set later (``-v``) applies."""
    top = logging.getLogger("hvrescue")
    if not any(isinstance(h, logging.NullHandler) for h in top.handlers):
        top.addHandler(logging.NullHandler())  # nothing configured: keep quiet, as a library
    regipy_log = logging.getLogger("regipy")
    if _FORWARD not in regipy_log.handlers:
        regipy_log.addHandler(_FORWARD)
    regipy_log.propagate = False
    regipy_log.setLevel(LOG.getEffectiveLevel())


def regipy_modules() -> tuple[Any, Any, Any]:
    """regipy's ``registry``, ``recovery`` and ``exceptions`` modules, or MissingDependencyError."""
    registry = require("regipy.registry", FEATURE)
    recovery = require("regipy.recovery", FEATURE)
    exceptions = require("regipy.exceptions", FEATURE)
    return registry, recovery, exceptions


def skip_reading_inline_values() -> None:
    """regipy (6.5) reads ``data_size`` bytes for every value before looking at the "stored
    inline" bit (0x80000000) of that size, so each inline value copies the rest of the hive, and
    then does not use what it read (the data is in the record). Reading nothing for those values
    gives the same results ~20x faster; a test compares every value of a public hive both ways.
    regipy is pinned to the versions this was checked on; should the method not have the shape
    it had there, nothing is replaced (slower, still right)."""
    registry = require("regipy.registry", FEATURE)
    original = getattr(registry.NKRecord, "read_value", None)
    if original is None or getattr(original, "hvrescue_inline", False):
        return
    try:
        params = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return
    if params != ["vk", "stream"] or not hasattr(registry, "VKRecord"):
        LOG.debug("regipy NKRecord.read_value has another shape; inline values read as shipped")
        return

    def read_value(vk: Any, stream: Any) -> Any:
        if vk.data_size >= 0x80000000:
            return registry.VKRecord(
                value_type=vk.data_type,
                value_type_str=str(vk.data_type),
                value=b"",
                size=vk.data_size,
            )
        return original(vk, stream)

    read_value.hvrescue_inline = True  # type: ignore[attr-defined]
    read_value.original = original  # type: ignore[attr-defined]
    registry.NKRecord.read_value = staticmethod(read_value)


def _copy_out(ctx: GuestContext, path: str, tmp: str) -> tuple[str, list[str]] | None:
    """The hive and its .LOG1/.LOG2 copied from the guest into ``tmp``."""
    data = ctx.read(path, MAX_HIVE)
    if data is None:
        return None
    hive_path = os.path.join(tmp, os.path.basename(path) or "hive")
    with open(hive_path, "xb") as f:
        f.write(data)
    logs = []
    for suffix in (".LOG1", ".LOG2"):
        log = ctx.read(path + suffix, MAX_HIVE)
        if log:
            with open(hive_path + suffix, "xb") as f:
                f.write(log)
            logs.append(hive_path + suffix)
    return hive_path, logs


def open_hive(ctx: GuestContext, path: str, tmp: str) -> Hive | None:
    """The hive at ``path`` in the guest with its transaction logs applied (in a private copy);
    None when it is absent or cannot be parsed (a ``guest.hive-damaged`` problem)."""
    registry, recovery, exceptions = regipy_modules()
    route_library_logging()
    skip_reading_inline_values()
    copied = _copy_out(ctx, path, tmp)
    if copied is None:
        return None
    hive_path, logs = copied
    name = os.path.basename(hive_path)
    try:
        hive = registry.RegistryHive(hive_path)
    except Exception as exc:  # a damaged hive raises many kinds
        ctx.problem(path, "guest.hive-damaged", f"{type(exc).__name__}: {exc}")
        return None
    dirty = hive.header.primary_sequence_num != hive.header.secondary_sequence_num
    if dirty and logs:
        try:
            restored, pages = recovery.apply_transaction_logs(
                hive_path,
                logs[0],
                logs[1] if len(logs) > 1 else None,
                restored_hive_path=hive_path + ".restored",
            )
            hive = registry.RegistryHive(restored)
            ctx.fact(
                "hive_replay",
                {"hive": name, "dirty": True, "logs": len(logs), "recovered_pages": pages},
                path,
            )
        except Exception as exc:  # regipy raises its own and plain errors alike
            ctx.problem(path, "guest.hive-log-replay-failed", f"{type(exc).__name__}: {exc}")
    elif dirty:
        ctx.problem(path, "guest.hive-dirty-no-logs", name)
    return Hive(ctx, path, hive, exceptions)


class Hive:
    """A parsed hive. A key that is not there is normal (None / nothing); anything else the hive
    raises is a ``guest.hive-damaged`` problem and the reading goes on with what was read."""

    def __init__(self, ctx: GuestContext, path: str, hive: Any, exceptions: Any = None) -> None:
        self.ctx = ctx
        self.path = path
        self.regipy = hive
        if exceptions is None:
            exceptions = require("regipy.exceptions", FEATURE)
        self._not_found: tuple[type[Exception], ...] = (
            exceptions.RegistryKeyNotFoundException,
            exceptions.NoRegistrySubkeysException,
            exceptions.NoRegistryValuesException,
        )

    def _damage(self, exc: Exception, where: str | None = None) -> None:
        detail = f"{type(exc).__name__}: {exc}"
        self.ctx.problem(self.path, "guest.hive-damaged", detail, where)

    def key(self, path: str) -> Any:
        try:
            return self.regipy.get_key(path)
        except self._not_found:
            return None
        except Exception as exc:  # damaged key path
            self._damage(exc, f"key:{path}")
            return None

    def subkey(self, key: Any, name: str) -> Any:
        if key is None:
            return None
        try:
            return key.get_subkey(name)
        except self._not_found:
            return None
        except Exception as exc:  # damaged key
            self._damage(exc, f"key:{key.name}\\{name}")
            return None

    def subkeys(self, key: Any) -> Iterator[Any]:
        if key is None:
            return
        try:
            yield from key.iter_subkeys()
        except self._not_found:
            return
        except Exception as exc:  # damaged subkey list
            self._damage(exc, f"key:{key.name}")
            return

    def values(self, key: Any, whole: bool = False, where: str | None = None) -> Values:
        """Values of ``key`` as JSON types. regipy trims long values unless ``whole``; ``whole``
        keeps binary data as bytes for the caller to decode (security descriptors)."""
        where = where or (f"key:{key.name}" if key is not None else "")
        out = Values(self, where)
        if key is None:
            return out
        try:
            for v in key.iter_values(trim_values=not whole):
                name = str(v.name)
                if whole:
                    out[name] = v.value
                elif isinstance(v.value, (bytes, bytearray, memoryview)):
                    # regipy could not decode text it expected (odd length, not UTF-16/UTF-8)
                    out[name] = bytes(v.value).hex()
                    out.binary.add(name)
                else:
                    out[name] = json_safe(v.value)
        except self._not_found:
            return out
        except Exception as exc:  # damaged value list: keep what was read, say so
            self._damage(exc, where)
        return out


class Values(dict[str, Any]):
    """The values of one key. A value that should have been text but was not decodable is hex
    text here, and the reader that uses it (``get``) leaves a ``guest.hive-value-binary`` problem
    saying so; values nobody reads leave nothing."""

    def __init__(self, hive: Hive, where: str) -> None:
        super().__init__()
        self.hive = hive
        self.where = where
        self.binary: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.binary:
            self.binary.discard(name)
            self.hive.ctx.problem(self.hive.path, "guest.hive-value-binary", name, self.where)
        return super().get(name, default)
