"""Run one process with a time limit and an output cap, and kill its whole tree when needed.

Only portable ``subprocess`` APIs are used. The child's output goes straight to files in the
collector's temporary folder (never through pipes that a surviving grandchild could hold open
and hang us on); the size of its stdout is watched while it runs. On POSIX the child starts
its own session, so that a signal to the group reaches what it started; on Windows it starts
without a console window of its own, in a new process group, and ``taskkill /T`` ends the tree
(a process we started ourselves: nothing of the host's state changes). When the platform
module offers ``kill_process_tree`` it is used instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from hvrescue.io.nofollow import open_new

POLL_S = 0.05
_WINDOWS = sys.platform == "win32"
CREATE_NO_WINDOW = 0x08000000
CREATE_NEW_PROCESS_GROUP = 0x00000200


@dataclass
class Outcome:
    """What became of one process: ``state`` is ``exited``, ``timeout``, ``too-large``,
    ``missing`` (no such program) or ``not-started`` (the system refused: ``error``)."""

    state: str
    exit_code: int | None
    duration_s: float
    stdout_bytes: int
    error: str | None = None
    permission: bool = False  # not-started for lack of rights


def resolve(program: str) -> str | None:
    """The program's full path on PATH (PATHEXT on Windows), or None."""
    return shutil.which(program)


def _spawn_options() -> dict[str, object]:
    if _WINDOWS:
        return {"creationflags": CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """End ``proc`` and everything it started; never raises."""
    from hvrescue import platform as plat

    if _WINDOWS:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["taskkill", "/PID", str(proc.pid), "/T", "/F"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                creationflags=CREATE_NO_WINDOW,
            )
    else:
        # The child leads its own session and group (start_new_session): a negative id
        # signals the whole group.
        with contextlib.suppress(OSError):
            plat.kill_process_group(proc.pid)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def run(
    argv: list[str],
    stdout_path: str,
    stderr_path: str,
    timeout: float,
    cap: int,
    cwd: str,
) -> Outcome:
    """Run ``argv`` (its program looked up on PATH), stdout and stderr to new files; stop it
    when it runs past ``timeout`` seconds or its stdout passes ``cap`` bytes. A Ctrl-C kills
    the tree and is raised on."""
    start = time.monotonic()
    program = resolve(argv[0])
    if program is None:
        return Outcome("missing", None, 0.0, 0, f"{argv[0]}: not found on PATH")
    out_fd = open_new(stdout_path, os.O_WRONLY, 0o600)
    try:
        err_fd = open_new(stderr_path, os.O_WRONLY, 0o600)
    except OSError:
        os.close(out_fd)
        raise
    try:
        try:
            proc = subprocess.Popen(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=err_fd,
                cwd=cwd,
                **_spawn_options(),  # type: ignore[call-overload]
            )
        except FileNotFoundError as exc:
            return Outcome("missing", None, time.monotonic() - start, 0, str(exc))
        except PermissionError as exc:
            return Outcome("not-started", None, time.monotonic() - start, 0, str(exc), True)
        except OSError as exc:
            return Outcome("not-started", None, time.monotonic() - start, 0, str(exc))
        state = "exited"
        try:
            while True:
                try:
                    proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if os.fstat(out_fd).st_size > cap:
                    state = "too-large"
                elif time.monotonic() - start > timeout:
                    state = "timeout"
                else:
                    continue
                kill_tree(proc)
                break
        except BaseException:
            kill_tree(proc)
            raise
        size = os.fstat(out_fd).st_size
        if state == "exited" and size > cap:
            # It printed past the cap between two looks and ended: what is kept is still cut.
            state = "too-large"
        code = proc.returncode if state == "exited" else None
        return Outcome(state, code, time.monotonic() - start, size)
    finally:
        os.close(out_fd)
        os.close(err_fd)
