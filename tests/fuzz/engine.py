"""A small mutation fuzzer for hvrescue's parsers: seeded, repeatable, bounded in time and memory.

Each family (``targets.FAMILIES``) has seeds (real or hand-built files of that kind) and a target
that hands one input to hvrescue as a file, the way a user would, and returns normally when
hvrescue handled it: a result, a finding, or one of hvrescue's own errors. Any other exception is
a crash. This module is the loop that runs in the worker process (``tests.fuzz.worker``); the
supervisor (``python -m tests.fuzz``) watches it from outside, so that what no Python code can
catch (an endless loop in native code, an abort, the process killed for memory) is reported too,
with the input, through the :class:`Slot` the loop writes each input to before running it.

Crashers are minimised (chunks removed, then zeroed, while the same exception at the same place
persists) and written to ``crashers/<family>/``, from where ``tests/test_fuzz.py`` replays them.
"""

from __future__ import annotations

import hashlib
import lzma
import mmap
import os
import random
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x80",
    b"\x01\x00\x00\x00",
    b"\x00\x10\x00\x00",
    b"\x00\x00\x10\x00",
    b"\x00\x02\x00\x00",
]
MAX_INPUT = 8 << 20
HANG_SECONDS = 60
PAGE = 4096
# A crasher larger than this is stored xz-compressed (disk images are mostly zeros).
COMPRESS_ABOVE = 16 * 1024


@dataclass
class Crash:
    family: str
    signature: str
    data: bytes
    text: str


@dataclass
class Stats:
    family: str
    runs: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    crashes: dict[str, Crash] = field(default_factory=dict)
    hangs: int = 0
    saved: list[str] = field(default_factory=list)


def signature(exc: BaseException) -> str:
    """The exception's type and the innermost hvrescue frame: one signature per bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "hvrescue" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}@{where}"


# ---------------------------------------------------------------------------- the slot
class Slot:
    """The input being run, in a small shared file the supervisor can read when the worker dies
    or stops answering: (index, start time, length) and the bytes. Written before each run, so
    a run that never returns leaves its input behind."""

    HEAD = struct.Struct("<QdQ")
    NOTHING_YET = 2**64 - 1  # the index before the first input: the worker did not get so far

    def __init__(self, path: str, create: bool = False) -> None:
        size = self.HEAD.size + MAX_INPUT
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        if create:
            self.HEAD.pack_into(self.map, 0, self.NOTHING_YET, 0.0, 0)

    def begin(self, index: int, data: bytes) -> None:
        n = min(len(data), MAX_INPUT)
        self.map[self.HEAD.size : self.HEAD.size + n] = data[:n]
        self.HEAD.pack_into(self.map, 0, index, time.time(), n)

    def end(self, index: int) -> None:
        self.HEAD.pack_into(self.map, 0, index, 0.0, 0)

    def read(self) -> tuple[int, float, bytes]:
        index, started, n = self.HEAD.unpack_from(self.map, 0)
        n = min(n, MAX_INPUT)
        return index, started, bytes(self.map[self.HEAD.size : self.HEAD.size + n])

    def close(self) -> None:
        self.map.close()


# ---------------------------------------------------------------------------- mutation
def _hot_spots(data: bytes) -> list[int]:
    """Offsets of the 512-byte sectors that hold anything but zeros: where a format keeps its
    structures (a disk image is mostly zeros, and a change there rarely reaches a parser)."""
    zero = bytes(512)
    spots = [i for i in range(0, len(data), 512) if data[i : i + 512] != zero]
    return spots or [0]


class Mutator:
    def __init__(self, seeds: list[bytes], rng: random.Random) -> None:
        self.seeds = [s[:MAX_INPUT] for s in seeds if s] or [b"\x00"]
        self.hot = [_hot_spots(s) for s in self.seeds]
        self.rng = rng

    def __call__(self) -> bytes:
        rng = self.rng
        which = rng.randrange(len(self.seeds))
        data = bytearray(self.seeds[which])
        hot = self.hot[which]
        for _ in range(rng.choice((1, 1, 2, 3, 4, 8, 16))):
            self._one(data, hot)
        if len(data) > MAX_INPUT:
            del data[MAX_INPUT:]
        # No copy into bytes: a disk image is megabytes, and the targets only read it.
        return data  # type: ignore[return-value]

    def _one(self, data: bytearray, hot: list[int]) -> None:
        rng = self.rng
        if not data:
            data.extend(rng.choice(INTERESTING))
            return
        op = rng.randrange(9)
        pos = self._position(len(data), hot)
        if op == 0:  # flip a bit
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # a random byte
            data[pos] = rng.randrange(256)
        elif op == 2:  # an interesting value (sizes, offsets, counts)
            value = rng.choice(INTERESTING)
            data[pos : pos + len(value)] = value
        elif op == 3:  # cut the file (truncation is the commonest real damage)
            del data[rng.randrange(len(data)) :]
        elif op == 4:  # remove a chunk
            n = rng.randrange(1, min(len(data), 4096) + 1)
            del data[pos : pos + n]
        elif op == 5:  # duplicate a chunk
            n = rng.randrange(1, min(len(data), 4096) + 1)
            data[pos:pos] = data[pos : pos + n]
        elif op == 6:  # splice from another seed
            other = rng.choice(self.seeds)
            start = rng.randrange(len(other))
            data[pos:] = other[start : start + rng.randrange(1, 65536)]
        elif op == 7:  # a little-endian integer near a boundary
            width = rng.choice((2, 4, 8))
            near = rng.choice((0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2 ** (8 * width) - 1))
            number = (near + rng.randrange(-2, 3)) % (2 ** (8 * width))
            data[pos : pos + width] = number.to_bytes(width, "little")
        else:  # zero a sector-sized run (a read error filled with zeros)
            n = rng.choice((512, 4096))
            data[pos : pos + n] = bytes(min(n, len(data) - pos))

    def _position(self, size: int, hot: list[int]) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:  # headers and tables live near the start: favour it
            return rng.randrange(min(size, 4096))
        if roll < 0.8:  # anywhere a structure of the seed lies
            pos = rng.choice(hot) + rng.randrange(512)
            if pos < size:
                return pos
        return rng.randrange(size)


def minimise(data: bytes, crashes_same: Callable[[bytes], bool], budget: float = 30.0) -> bytes:
    """Remove chunks, large to small, while the same crash persists; then zero what can be
    zeroed (offsets stay where they were, and the stored crasher compresses). Bounded in time."""
    end = time.monotonic() + budget
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < end:
        i = 0
        changed = False
        while i < len(data) and time.monotonic() < end:
            candidate = data[:i] + data[i + chunk :]
            if candidate and crashes_same(candidate):
                data = candidate
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    chunk = PAGE
    while chunk >= 64 and time.monotonic() < end:
        for i in range(0, len(data), chunk):
            if time.monotonic() >= end:
                break
            piece = data[i : i + chunk]
            if piece.count(0) == len(piece):
                continue
            candidate = data[:i] + bytes(len(piece)) + data[i + chunk :]
            if crashes_same(candidate):
                data = candidate
        chunk //= 4
    return data


# ---------------------------------------------------------------------------- the loop
def run(
    family: str,
    target: Callable[[bytes], None],
    seeds: list[bytes],
    runs: int,
    seconds: float,
    seed: int = 0,
    crash_dir: Path | None = None,
    include_seeds: bool = True,
    slot: Slot | None = None,
    memory_mb: int | None = None,
) -> Stats:
    """Run ``target`` on every seed, then on mutations of them for ``seconds`` (counted from
    the last seed, so that a growing set of seeds never leaves no time to mutate), until
    ``runs`` in all. Exceptions are crashes, minimised once per signature. ``memory_mb``: the
    first input after which the process's peak RSS passes it is a crash."""
    stats = Stats(family)
    start = time.monotonic()
    index = 0
    replayed = max(1, sum(1 for s in seeds if s)) if include_seeds else 0  # as Mutator keeps them
    mutating_from = start if not replayed else None

    def execute(data: bytes) -> None:
        if slot is not None:
            slot.begin(index, data)
        try:
            target(data)
        finally:
            if slot is not None:
                slot.end(index)

    over_budget = memory_mb is None
    for data in _inputs(seeds, seed, include_seeds):
        if index == replayed and mutating_from is None:
            mutating_from = time.monotonic()
        if stats.runs >= runs or (
            mutating_from is not None and time.monotonic() - mutating_from >= seconds
        ):
            break
        t0 = time.monotonic()
        try:
            execute(data)
        except Exception as exc:  # anything hvrescue did not turn into a result or its own error
            took = time.monotonic() - t0  # the run, not the minimising that follows
            _crashed(stats, family, exc, data, execute, crash_dir)
        else:
            took = time.monotonic() - t0
        stats.slowest = max(stats.slowest, took)
        if took > HANG_SECONDS:
            stats.hangs += 1
            if crash_dir is not None:
                stats.saved.append(str(save(crash_dir / family, data)))
        if not over_budget and memory_mb is not None and peak_rss_mb() > memory_mb:
            over_budget = True
            text = f"peak RSS {peak_rss_mb():.0f} MiB passed the budget of {memory_mb} MiB"
            sig = "MemoryBudget@" + family
            stats.crashes[sig] = Crash(family, sig, data, text)
            if crash_dir is not None:
                stats.saved.append(str(save(crash_dir / family, data)))
        stats.runs += 1
        index += 1
    stats.seconds = time.monotonic() - start
    return stats


def _inputs(seeds: list[bytes], seed: int, include_seeds: bool) -> Iterator[bytes]:
    mutate = Mutator(seeds, random.Random(seed))
    if include_seeds:
        yield from mutate.seeds
    while True:
        yield mutate()


def _crashed(
    stats: Stats,
    family: str,
    exc: Exception,
    data: bytes,
    execute: Callable[[bytes], None],
    crash_dir: Path | None,
) -> None:
    sig = signature(exc)
    if sig in stats.crashes:
        return
    text = "".join(traceback.format_exception(exc))[-4000:]

    def same(candidate: bytes) -> bool:
        try:
            execute(candidate)
        except Exception as again:
            return signature(again) == sig
        return False

    small = minimise(data, same)
    stats.crashes[sig] = Crash(family, sig, small, text)
    if crash_dir is not None:
        stats.saved.append(str(save(crash_dir / family, small)))


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux gives KiB, macOS bytes.
    return peak / (1 << 20) if os.uname().sysname == "Darwin" else peak / 1024


# ---------------------------------------------------------------------------- crashers
def save(folder: Path, data: bytes) -> Path:
    """Store a crasher under its hash: ``.bin``, or ``.bin.xz`` when large."""
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(data).hexdigest()[:16] + ".bin"
    if len(data) > COMPRESS_ABOVE:
        path = folder / (name + ".xz")
        payload = lzma.compress(data, preset=9)
    else:
        path, payload = folder / name, data
    if not path.exists():
        path.write_bytes(payload)
    return path


def load(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def crashers(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith((".bin", ".bin.xz")))
