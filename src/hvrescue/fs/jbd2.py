"""The ext3/4 journal (jbd2) replayed in memory, never written: the blocks that committed
transactions hold are laid over the volume's reads (``MappedSource.overlay``), so the
filesystem reads as the kernel or ``e2fsck`` would leave it after recovery.

This follows the kernel's recovery (fs/jbd2/recovery.c): a scan pass finds the last committed
transaction from ``s_start``/``s_sequence``, a revoke pass gathers revoked blocks with their
transaction, a replay pass copies each tagged block to its home unless a later or equal
transaction revoked it; escaped blocks get their magic back. Transactions without a commit
block, or whose commit block fails its checksum (journal_checksum_v2/v3), end the replay, as
they end the kernel's. Fast commits (ext4 ``fast_commit``) are not
replayed: such a volume is refused by the reader with that reason. Every count is bounded by
the journal's own size, and the blocks kept in memory by ``source.MAX_OVERLAY``.
"""

from __future__ import annotations

import struct
from typing import Any

from hvrescue.fs.source import MAX_OVERLAY, MappedSource

MAGIC = 0xC03B3998
DESCRIPTOR, COMMIT, SB_V1, SB_V2, REVOKE = 1, 2, 3, 4, 5
INCOMPAT_REVOKE, INCOMPAT_64BIT, INCOMPAT_CSUM_V2, INCOMPAT_CSUM_V3 = 0x1, 0x2, 0x8, 0x10
FLAG_ESCAPE, FLAG_SAME_UUID, FLAG_LAST_TAG = 0x1, 0x2, 0x8
EXT_RECOVER = 0x4  # s_feature_incompat: the journal needs recovery
EXT_JOURNAL_DEV = 0x8
EXT_HAS_JOURNAL = 0x4  # s_feature_compat


class JournalError(ValueError):
    pass


class Journal:
    def __init__(self, read_block: Any, sb: bytes) -> None:
        magic, btype = struct.unpack_from(">II", sb, 0)
        if magic != MAGIC or btype not in (SB_V1, SB_V2):
            raise JournalError("no journal superblock")
        self.bs, self.maxlen, self.first, self.sequence, self.start = struct.unpack_from(
            ">IIIII", sb, 12
        )
        self.incompat = struct.unpack_from(">I", sb, 40)[0] if btype == SB_V2 else 0
        if self.bs < 1024 or self.bs > 65536 or not 0 < self.first < self.maxlen:
            raise JournalError("journal geometry")
        self.read_block = read_block
        wide = bool(self.incompat & INCOMPAT_64BIT)
        self.wide = wide
        if self.incompat & INCOMPAT_CSUM_V3:
            self.tag_size = 16
        else:
            self.tag_size = 12 + (2 if self.incompat & INCOMPAT_CSUM_V2 else 0) - (0 if wide else 4)
        self.tail = 4 if self.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) else 0
        # jbd2's checksums are crc32c seeded with that of the journal's UUID, kept un-inverted.
        self.seed = _raw_crc(0xFFFFFFFF, sb[48:64]) if self.tail else 0

    def commit_ok(self, block: bytes) -> bool:
        """A commit block's own checksum holds (always, without v2/v3 checksums)."""
        if not self.tail:
            return True
        data = block[:16] + bytes(4) + block[20 : self.bs]
        stored: int = struct.unpack_from(">I", block, 16)[0]
        return _raw_crc(self.seed, data) == stored

    def _wrap(self, block: int) -> int:
        return block - (self.maxlen - self.first) if block >= self.maxlen else block

    def _tags(self, block: bytes) -> list[tuple[int, int]]:
        """(filesystem block, flags) of each tag of a descriptor block."""
        out = []
        pos, end = 12, self.bs - self.tail
        while pos + self.tag_size <= end:
            if self.incompat & INCOMPAT_CSUM_V3:
                low, flags, high = struct.unpack_from(">III", block, pos)
            else:
                low, flags = struct.unpack_from(">I2xH", block, pos)
                high = struct.unpack_from(">I", block, pos + 8)[0] if self.wide else 0
            target = low | (high << 32 if self.wide else 0)
            out.append((target, flags))
            pos += self.tag_size
            if not flags & FLAG_SAME_UUID:
                pos += 16
            if flags & FLAG_LAST_TAG:
                break
        return out

    def _passes(self) -> tuple[int, dict[int, int], list[tuple[int, int, int]]]:
        """One walk from ``s_start``: the transactions committed, the revoked blocks (with
        the newest revoking transaction) and every (transaction, log block, home block,
        flags) of the committed transactions."""
        tid, block = self.sequence, self.start
        revoked: dict[int, int] = {}
        pending_revokes: dict[int, int] = {}
        writes: list[tuple[int, int, int]] = []  # (tid, journal block, flags<<64 | target)
        pending: list[tuple[int, int, int]] = []
        committed = 0
        steps = 0
        while steps <= self.maxlen:
            data = self.read_block(block)
            if len(data) < 12:
                break
            magic, btype, seq = struct.unpack_from(">III", data, 0)
            if magic != MAGIC or seq != tid:
                break
            steps += 1
            if btype == DESCRIPTOR:
                for target, flags in self._tags(data):
                    block = self._wrap(block + 1)
                    steps += 1
                    pending.append((tid, block, (flags << 64) | target))
                block = self._wrap(block + 1)
            elif btype == COMMIT:
                if not self.commit_ok(data):
                    break  # a torn commit: this transaction and what follows are not replayed
                writes += pending
                for home, t in pending_revokes.items():
                    revoked[home] = max(revoked.get(home, -1), t)
                pending, pending_revokes = [], {}
                committed += 1
                tid = (tid + 1) & 0xFFFFFFFF
                block = self._wrap(block + 1)
            elif btype == REVOKE:
                (used,) = struct.unpack_from(">I", data, 12)
                width = 8 if self.wide else 4
                for pos in range(16, min(used, self.bs) - width + 1, width):
                    home = int.from_bytes(data[pos : pos + width], "big")
                    pending_revokes[home] = tid
                block = self._wrap(block + 1)
            else:
                break
        return committed, revoked, writes


def replay_if_needed(fs: Any, source: MappedSource) -> dict[str, Any] | None:
    """Lay the journal's committed blocks over ``source`` when the superblock says the
    journal needs recovery; a note for the listing saying what was done (None: clean)."""
    sb = source.read(1024, 1024)
    if len(sb) < 1024:
        return None
    compat, incompat = struct.unpack_from("<II", sb, 0x5C)
    if not incompat & EXT_RECOVER:
        return None
    if not compat & EXT_HAS_JOURNAL or incompat & EXT_JOURNAL_DEV:
        return _note("ui.fs.journal-external", "warning")
    (inum,) = struct.unpack_from("<I", sb, 0xE0)
    try:
        jfile = fs.get_file_entry_by_inode(inum or 8)
        jsize = int(jfile.size)
        head = jfile.read_buffer_at_offset(1024, 0)
        journal = Journal(None, head)
    except (OSError, JournalError, struct.error) as exc:
        return _note("ui.fs.journal-unreadable", "warning", reason=str(exc)[:200])
    bs = journal.bs
    if journal.maxlen * bs > jsize + bs:
        return _note("ui.fs.journal-unreadable", "warning", reason="journal larger than its inode")

    def read_block(n: int) -> bytes:
        return bytes(jfile.read_buffer_at_offset(bs, n * bs))

    journal.read_block = read_block
    if journal.start == 0:
        return _note("ui.fs.journal-empty", "info")
    try:
        committed, revoked, writes = journal._passes()
    except (OSError, struct.error) as exc:
        return _note("ui.fs.journal-unreadable", "warning", reason=str(exc)[:200])
    overlay: dict[int, bytes] = {}
    for tid, jblock, packed in writes:
        target, flags = packed & ((1 << 64) - 1), packed >> 64
        if target in revoked and _not_after(tid, revoked[target]):
            continue
        data = read_block(jblock)
        if flags & FLAG_ESCAPE:
            data = struct.pack(">I", MAGIC) + data[4:]
        overlay[target] = data
        if len(overlay) * bs > MAX_OVERLAY:
            return _note("ui.fs.journal-unreadable", "warning", reason="more than 1 GiB to replay")
    source.overlay_block = bs
    source.overlay = overlay
    return _note("ui.fs.journal-replayed", "info", transactions=committed, blocks=len(overlay))


def _note(key: str, severity: str, **params: Any) -> dict[str, Any]:
    """What the listing says about the journal; "warning": the view is before recovery."""
    return {"key": key, "severity": severity, "params": params}


def _raw_crc(seed: int, data: bytes) -> int:
    """crc32c continued from ``seed`` without the final inversion (the kernel's jbd2_chksum)."""
    import google_crc32c

    return ~int(google_crc32c.extend(~seed & 0xFFFFFFFF, data)) & 0xFFFFFFFF


def _not_after(tid: int, revoked_in: int) -> bool:
    """A block written in ``tid`` is revoked by a revoke record of the same or a later one."""
    return ((revoked_in - tid) & 0xFFFFFFFF) < 0x80000000
