"""What an artefact reader works with: one volume of the guest, read-only, and the result it adds
facts and problems to. Every fact's attributes are made JSON-safe here, the one place facts of the
guest are made, so a damaged value can never stop the JSON output."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hvrescue.errors import HvrescueError
from hvrescue.facts.model import Fact, Problem, Provenance
from hvrescue.fs.linuxfs import LinuxVolume
from hvrescue.fs.volume import Entry, Volume
from hvrescue.guest.result import GuestResult
from hvrescue.guest.values import json_safe

if TYPE_CHECKING:
    from hvrescue.guest.hive import Hive


class GuestContext:
    """One volume of the guest as the artefact readers see it. ``roles`` says what the volume is
    (``windows``, ``boot``, ``linux``: it holds /etc/os-release, ``linuxfs``: ext or XFS,
    ``linux-boot``: a separate /boot). ``volume_id`` is its address (``1``, ``3/vg0/root``);
    ``volume_info`` what fs.addressing and the superblock say of it (``uuid``, ``label``...);
    ``disk_volumes`` the same for every volume of the disk (what /etc/fstab is checked
    against); ``disk_hint`` what the disk's file name says (guest.disk_kind);
    ``raw_superblock`` an ext superblock as on the disk, before any journal replay."""

    def __init__(
        self,
        volume: Volume | LinuxVolume,
        label: str,
        result: GuestResult,
        tmp: str = "",
        partition: int = 0,
    ) -> None:
        self.volume = volume
        self.label = label
        self.result = result
        self.tmp = tmp  # a private folder for hive copies (regipy reads paths)
        self.partition = partition
        self.roles: list[str] = []
        self.volume_id = str(partition)
        self.volume_info: dict[str, Any] = {}
        self.disk_volumes: list[dict[str, Any]] = []
        self.disk_hint: dict[str, Any] = {}
        self.raw_superblock = b""
        self._hives: dict[str, Hive | None] = {}
        self._opened = 0

    # ------------------------------------------------------------------ facts and problems
    def where(self, path: str) -> str:
        return f"{self.label}:{path}"

    def fact(self, kind: str, attrs: dict[str, Any], path: str, locator: str | None = None) -> None:
        safe = json_safe(attrs)
        self.result.facts.append(Fact(kind, safe, Provenance(self.where(path), locator)))

    def problem(
        self, path: str, code: str, detail: str = "", locator: str | None = None, **params: Any
    ) -> None:
        fields = {"detail": detail[:300], **json_safe(params)}
        self.result.problems.append(Problem(self.where(path), code, locator, fields))

    # ------------------------------------------------------------------ files
    def stat(self, path: str) -> Entry | None:
        try:
            return self.volume.stat(path)
        except HvrescueError:
            return None

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def read(self, path: str, limit: int) -> bytes | None:
        """The whole file, or None when it is absent, over ``limit``, unreadable or touches
        ranges of the disk with no defined content (each but the first said as a problem)."""
        entry = self.stat(path)
        if entry is None or entry.is_dir:
            return None
        if entry.size > limit:
            self.problem(path, "guest.too-large", str(entry.size))
            return None
        mark = len(self.volume.disk.touched)
        try:
            data = b"".join(self.volume.read(entry))
        except HvrescueError as exc:
            self.problem(path, "guest.unreadable", exc.key)
            return None
        gaps = self.volume.file_gaps(entry, since=mark)
        if gaps:
            # Zeros standing for unknown bytes are not evidence: the artefact is not read.
            causes = ", ".join(sorted({g.cause for g in gaps}))
            self.problem(path, "guest.undefined-content", causes)
            return None
        return data

    def head(self, entry: Entry, size: int) -> bytes:
        """The first ``size`` bytes of a file (its first chunk at most)."""
        for chunk in self.volume.read(entry):
            return chunk[:size]
        return b""

    def listdir(self, path: str) -> list[Entry]:
        try:
            return self.volume.listdir(path)
        except HvrescueError:
            return []

    # ------------------------------------------------------------------ registry hives
    def set_hive(self, path: str, hive: Hive | None) -> None:
        """Use ``hive`` for ``path`` (one opened elsewhere, or a stand-in in tests)."""
        self._hives[path] = hive

    def hive(self, path: str) -> Hive | None:
        """The hive at ``path`` with its transaction logs applied, opened once per volume (several
        artefacts read SYSTEM and SOFTWARE); None when absent or unusable (said as problems)."""
        if path not in self._hives:
            from hvrescue.guest.hive import open_hive

            # One folder per hive: /Boot/BCD and /EFI/Microsoft/Boot/BCD share a name.
            self._opened += 1
            sub = os.path.join(self.tmp, f"p{self.partition}-{self._opened}")
            os.makedirs(sub, exist_ok=True)
            self._hives[path] = open_hive(self, path, sub)
        return self._hives[path]
