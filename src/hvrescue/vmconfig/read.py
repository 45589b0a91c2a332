"""Read a configuration file into :class:`VmConfig`.

`.vmcx`/`.vmrs` go through dissect.hypervisor when the optional ``hvrescue[vmcx]`` extra is
installed (it is AGPL-3.0, so the core does not depend on it; see docs/decisions.md). XML
configurations need nothing beyond defusedxml. Files are read once, bounded in size, from a
read-only handle.
"""

from __future__ import annotations

import io
import os
from typing import Any

from hvrescue.errors import HvrescueError
from hvrescue.io.source import ReadOnlySource
from hvrescue.vmconfig.model import VmConfig, from_tree

CONFIG_SUFFIXES = (".vmcx", ".vmrs", ".xml")
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_XML_DEPTH = 64
MAX_XML_NODES = 200_000


class ConfigUnavailable(Exception):
    """The configuration could not be read; ``reason`` is a stable word, ``detail`` free text."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # "parser-missing", "damaged", "too-large", "not-a-config"
        self.detail = detail


def _read_bytes(path: str) -> bytes:
    with ReadOnlySource(path) as src:
        if src.size > MAX_CONFIG_BYTES:
            raise ConfigUnavailable("too-large", str(src.size))
        return src.read(0, src.size)


def looks_like_config(path: str) -> bool:
    """A `.vmcx`/`.vmrs` by name, or an XML file whose root is a Hyper-V ``<configuration>``."""
    lower = path.lower()
    if lower.endswith((".vmcx", ".vmrs")):
        return True
    if not lower.endswith(".xml"):
        return False
    try:
        with ReadOnlySource(path, retries=0) as src:
            head = src.read(0, 4096, tolerant=True)
    except (HvrescueError, OSError):
        return False  # unreadable: not recognised as a configuration; preserve copies it anyway
    return any(
        "<configuration" in head.decode(encoding, errors="ignore")
        for encoding in ("utf-16", "utf-8")
    )


def read_config(path: str) -> VmConfig:
    lower = path.lower()
    if lower.endswith(".xml"):
        fmt, tree = "xml", _xml_tree(_read_bytes(path))
    elif lower.endswith((".vmcx", ".vmrs")):
        fmt = "vmrs" if lower.endswith(".vmrs") else "vmcx"
        tree = _vmcx_tree(_read_bytes(path))
    else:
        raise ConfigUnavailable("not-a-config", os.path.basename(path))
    try:
        return from_tree(path, fmt, tree)
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        # A damaged store can decode into values of unexpected types.
        raise ConfigUnavailable("damaged", f"{type(exc).__name__}: {exc}"[:300]) from exc


def _vmcx_tree(data: bytes) -> dict[str, Any]:
    try:
        from dissect.hypervisor.descriptor.hyperv import HyperVFile
    except ImportError as exc:
        raise ConfigUnavailable("parser-missing", "pip install 'hvrescue[vmcx]'") from exc
    if not data:
        raise ConfigUnavailable("damaged", "empty file")
    try:
        tree = HyperVFile(io.BytesIO(data)).as_dict()
    except Exception as exc:  # the parser raises many kinds on damaged input
        raise ConfigUnavailable("damaged", f"{type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(tree, dict):
        raise ConfigUnavailable("damaged", "no configuration tree")
    return tree


def _xml_value(element: Any) -> Any:
    kind = (element.get("type") or "").lower()
    text = (element.text or "").strip()
    if kind == "integer":
        try:
            return int(text, 0)
        except ValueError:
            return text
    if kind == "bool":
        return text.lower() == "true"
    return text


def _xml_tree(data: bytes) -> dict[str, Any]:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
        # LookupError: the declaration names an encoding Python does not know.
        raise ConfigUnavailable("damaged", str(exc)[:300]) from exc
    if root.tag != "configuration":
        raise ConfigUnavailable("not-a-config", root.tag)
    count = 0

    def convert(element: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if depth > MAX_XML_DEPTH or count > MAX_XML_NODES:
            raise ConfigUnavailable("damaged", "too deep or too large")
        children = list(element)
        if not children:
            return _xml_value(element)
        node: dict[str, Any] = {}
        for child in children:
            node[child.tag] = convert(child, depth + 1)
        return node

    return {"configuration": convert(root, 0)}
