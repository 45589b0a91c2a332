"""Digests of one stream under several algorithms in one pass, fed by a read-ahead thread.

Every digest hvrescue records (``hash``, ``preserve``, ``verify``, the manifests) is made here:
the algorithms of :mod:`hashlib` that forensic tools exchange, and BLAKE3 (the ``blake3``
package: several times SHA-256's speed per core). SHA-256 stays the default everywhere.

:func:`digest_segments` hashes a stream described as segments (data to read, or zeros that are
never read) while a second thread reads ahead into the slots of one page-aligned buffer, so the
read of the next chunk overlaps the hashing of this one (``pread`` and the hash functions both
release the GIL on large buffers) and no chunk allocates: the digests see memoryviews of that
one buffer.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Protocol

from hvrescue.errors import InputError

# The order is the manifest's column order; new names go at the end.
ALGORITHMS = ("sha256", "sha1", "md5", "sha512", "blake2b", "sha3_256", "blake3")
DEFAULT = ("sha256",)
CHUNK = 4 * 1024 * 1024
DEPTH = 4  # slots of the read-ahead buffer: one being hashed, the others being read


class Hash(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


class UnknownAlgorithmError(InputError):
    """An algorithm name hvrescue does not know (``--hash``, a manifest)."""

    def __init__(self, name: str) -> None:
        super().__init__("error.preserve.algorithm", name=name, known=", ".join(ALGORITHMS))


def parse_algorithms(values: Iterable[str], default: tuple[str, ...] = DEFAULT) -> tuple[str, ...]:
    """``--hash`` values (repeatable, each may list several: ``sha256,blake3``) as known names
    in the order given, each once; ``default`` when none is given."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in ALGORITHMS:
                raise UnknownAlgorithmError(part.strip())
            names.append(name)
    return tuple(dict.fromkeys(names)) or default


def new(name: str) -> Hash:
    """A fresh hash object for ``name`` (one of :data:`ALGORITHMS`)."""
    if name == "blake3":
        from blake3 import blake3  # a compiled package: imported only when asked for

        return blake3()
    if name not in ALGORITHMS:
        raise UnknownAlgorithmError(name)
    return hashlib.new(name)


class MultiHash:
    """Several digests of the same bytes, fed together."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self.algorithms = tuple(algorithms)
        self._hashes = [new(a) for a in self.algorithms]

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for h in self._hashes:
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in zip(self.algorithms, self._hashes, strict=True)}


def aligned_buffer(size: int) -> memoryview:
    """``size`` bytes, page-aligned, zeroed, from anonymous memory (no allocator churn)."""
    return memoryview(mmap.mmap(-1, max(size, 1)))


# A segment of a stream: (offset, length, is_data). Data is read by ``fill(offset, view)``,
# which fills all of ``view`` (zeros where it cannot, recording why itself); the rest is zeros.
Segment = tuple[int, int, bool]


def read_ahead(
    segments: Iterable[Segment],
    fill: Callable[[int, memoryview], None],
    chunk: int = CHUNK,
    depth: int = DEPTH,
) -> Generator[memoryview, None, None]:
    """The stream's bytes in order, in pieces of at most ``chunk`` bytes. Each piece is valid
    until the next is asked for; a reader thread fills the next ones meanwhile."""
    buffer = aligned_buffer(chunk * depth)
    zeros = memoryview(bytes(chunk))
    free: queue.Queue[int] = queue.Queue()
    for slot in range(depth):
        free.put(slot)
    ready: queue.Queue[tuple[memoryview | None, int, BaseException | None]] = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        try:
            for offset, length, is_data in segments:
                pos, end = offset, offset + length
                while pos < end:
                    n = min(chunk, end - pos)
                    # Zeros take a slot too: what is queued stays bounded by ``depth``.
                    slot = free.get()
                    if stop.is_set():
                        return
                    if is_data:
                        view = buffer[slot * chunk : slot * chunk + n]
                        fill(pos, view)
                        ready.put((view, slot, None))
                    else:
                        ready.put((zeros[:n], slot, None))
                    pos += n
                    if stop.is_set():
                        return
            ready.put((None, -1, None))
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put((None, -1, exc))

    thread = threading.Thread(target=reader, name="hvrescue-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            view, slot, error = ready.get()
            if error is not None:
                raise error
            if view is None:
                return
            yield view
            free.put(slot)
    finally:
        stop.set()
        free.put(0)  # wakes a reader waiting for a slot, which then sees ``stop``
        thread.join()


def digest_segments(
    segments: Iterable[Segment],
    fill: Callable[[int, memoryview], None],
    algorithms: Iterable[str] = DEFAULT,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> dict[str, str]:
    """The digests (``{algorithm: hex}``) of the stream ``segments`` describe, in one pass."""
    hashes = MultiHash(algorithms)
    # closing(): a failing hash or progress callback (Ctrl-C) ends the reader thread at once
    with contextlib.closing(read_ahead(segments, fill, chunk)) as pieces:
        for piece in pieces:
            hashes.update(piece)
            if progress is not None:
                progress(len(piece))
    return hashes.hexdigests()
