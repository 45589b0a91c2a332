"""A fault-injecting, read-only FUSE filesystem for tests: a mirror of a folder whose reads fail
with EIO wherever they touch a chosen byte range of a chosen file.

It runs in a subprocess of its own (``python tests/faultfs.py SOURCE MOUNTPOINT SPEC``), so that
libfuse's signal handlers and threads never meet pytest's, and the test process can read the
mount itself without deadlocking against it. The fault set is the JSON file SPEC,
``{"rel/path": [[offset, length], ...]}`` (paths relative to SOURCE, ``/``-separated); the
filesystem looks at it before every read, so a test changes or heals the faults between two
commands by rewriting it (atomically).

Reads bypass the page cache (``direct_io``): every read the program under test makes reaches us
with its own offset and length, so a fault can be a single 512-byte sector, and a healed range
reads at once. A read request that touches a bad byte fails whole, as a disk's would (the
kernel splits a large read into requests: one that reaches a bad range after good requests
returns short, and the next read fails, as on a real failing disk). Sizes,
modes and times (to the nanosecond) are the source files' own; every write is refused.

In tests (the module-level name makes the fixture visible to pytest; an assignment rather
than an import, so that ruff does not take the test's argument for a redefinition)::

    from tests import faultfs

    faulty = faultfs.faulty

    def test_something(faulty, tmp_path):
        mnt = faulty.mount(src_folder)  # a folder: its files appear under mnt
        faulty.set_faults({"disk.vhd": [(3 * MiB, 10 * MiB)]})
        ... run a command on mnt / "disk.vhd" ...
        faulty.clear()
        ... run it again ...
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

MOUNT_TIMEOUT = 30.0


# ------------------------------------------------------------------ the filesystem (subprocess)
def _load_spec(path: str) -> dict[str, list[tuple[int, int]]]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return {}
    out: dict[str, list[tuple[int, int]]] = {}
    for rel, ranges in raw.items():
        key = "/" + str(rel).replace(os.sep, "/").strip("/")
        out[key] = sorted((int(o), int(n)) for o, n in ranges if int(n) > 0)
    return out


def _serve(source: str, mountpoint: str, spec_path: str) -> None:
    import mfusepy as fuse

    root = os.path.abspath(source)
    lock = threading.Lock()
    state: dict[str, Any] = {"key": None, "faults": {}}

    def faults_of(path: str) -> list[tuple[int, int]]:
        try:
            st = os.stat(spec_path)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        with lock:
            if key != state["key"]:
                state["faults"] = _load_spec(spec_path) if key is not None else {}
                state["key"] = key
            return list(state["faults"].get(path, ()))

    def real(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    class FaultFS(fuse.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            try:
                st = os.lstat(real(path))
            except OSError as exc:
                raise fuse.FuseOSError(exc.errno or errno.EIO) from exc
            out = {
                key: getattr(st, key)
                for key in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_blocks")
            }
            # Nanosecond times: the programs under test compare mtimes exactly.
            out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return out

        def readdir(self, path: str, fh: int) -> list[str]:
            try:
                return [".", "..", *sorted(os.listdir(real(path)))]
            except OSError as exc:
                raise fuse.FuseOSError(exc.errno or errno.EIO) from exc

        def readlink(self, path: str) -> str:
            return os.readlink(real(path))

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT):
                raise fuse.FuseOSError(errno.EROFS)
            try:
                return os.open(real(path), os.O_RDONLY)
            except OSError as exc:
                raise fuse.FuseOSError(exc.errno or errno.EIO) from exc

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            end = offset + size
            for lo, n in faults_of(path):
                if lo < end and offset < lo + n:
                    raise fuse.FuseOSError(errno.EIO)
            return os.pread(fh, size, offset)

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            sv = os.statvfs(root)
            return {
                key: getattr(sv, key)
                for key in (
                    "f_bsize",
                    "f_frsize",
                    "f_blocks",
                    "f_bfree",
                    "f_bavail",
                    "f_files",
                    "f_ffree",
                    "f_namemax",
                )
            }

        def _refuse(self, *args: Any, **kwargs: Any) -> None:
            raise fuse.FuseOSError(errno.EROFS)

        write = create = truncate = unlink = mkdir = rmdir = rename = _refuse
        chmod = chown = utimens = symlink = link = setxattr = removexattr = _refuse

    # Let libfuse install its own handlers (it only replaces the default ones): SIGINT and
    # SIGTERM then end the loop and unmount instead of waiting for the Python interpreter.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fuse.FUSE(
        FaultFS(),
        mountpoint,
        foreground=True,
        ro=True,
        direct_io=True,
        fsname="hvrescue-faultfs",
    )


# ------------------------------------------------------------------ the harness (test process)
def fuse_unavailable() -> str | None:
    """Why FUSE cannot be used here, or None."""
    if sys.platform != "linux":
        return "the fault-injecting filesystem needs Linux FUSE"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian fuse3; tools/install-test-deps.sh)"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc.strerror}"
    os.close(fd)
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse: {exc}"
    return None


class FaultyFS:
    """Mounts of source folders whose chosen byte ranges fail with EIO; one fault set for all.

    ``set_faults`` takes effect for the next read any program makes; ``clear`` heals."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.spec = self.base / "faults.json"
        self._mounts: list[tuple[Path, subprocess.Popen[bytes], Path]] = []
        self.set_faults({})

    def mount(self, source: str | os.PathLike[str]) -> Path:
        """Mount a read-only mirror of the folder ``source``; returns the mount point."""
        src = Path(source)
        if not src.is_dir():
            raise ValueError(f"{src} is not a folder")
        n = len(self._mounts)
        mnt = self.base / f"mnt{n}"
        mnt.mkdir()
        log = self.base / f"faultfs{n}.log"
        # The filesystem is the disk under test, not code under test: it runs on the real
        # platform even when the suite runs under the Windows simulation (shared/tools/winsim).
        env = dict(os.environ)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and "winsim" not in p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(src), str(mnt), str(self.spec)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run reaches it only through us
                env=env,
            )
        self._mounts.append((mnt, proc, log))
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the fault-injecting filesystem did not mount: {text}")
            time.sleep(0.02)
        return mnt

    def set_faults(self, faults: Mapping[str, Iterable[tuple[int, int]]]) -> None:
        """Replace the fault set: ``{relative path: [(offset, length), ...]}``."""
        data = {
            str(rel).replace(os.sep, "/").strip("/"): [[int(o), int(n)] for o, n in ranges]
            for rel, ranges in faults.items()
        }
        tmp = self.spec.with_name(self.spec.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.spec)  # a new inode: the filesystem sees the change on its next read

    def clear(self) -> None:
        """No more faults: every range reads again."""
        self.set_faults({})

    def unmount_all(self) -> None:
        errors: list[str] = []
        for mnt, proc, log in reversed(self._mounts):
            self._unmount(mnt, proc)
            if os.path.ismount(mnt):
                errors.append(f"{mnt} is still mounted ({log})")
        self._mounts.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    @staticmethod
    def _unmount(mnt: Path, proc: subprocess.Popen[bytes]) -> None:
        if os.path.ismount(mnt):
            done = subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            if done.returncode != 0 and os.path.ismount(mnt):
                # Busy (a killed command's open file): detach now, free when the last user goes.
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own subprocess, by its id
            proc.wait(timeout=15)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


@contextlib.contextmanager
def faulty_fs(base: Path) -> Iterator[FaultyFS]:
    """A :class:`FaultyFS` whose mounts are gone when the block ends."""
    fs = FaultyFS(base)
    try:
        yield fs
    finally:
        fs.unmount_all()


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[FaultyFS]:
    """Fault-injecting FUSE mounts under ``tmp_path`` (skips where FUSE is unavailable),
    unmounted when the test ends, however it ends."""
    reason = fuse_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with faulty_fs(tmp_path / "faultfs") as fs:
        yield fs


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: faultfs.py SOURCE MOUNTPOINT SPEC.json")
    _serve(sys.argv[1], sys.argv[2], sys.argv[3])
