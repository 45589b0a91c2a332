"""The files a report lists as its inputs, and their SHA-256 (``io.input_hash``), hashed on a
thread of their own while the evidence is read (:class:`InputHashes`): reading the inputs again
for their digests then costs another core's time, not the command's. ``hashlib`` leaves the GIL
while it hashes and while the file is read, so the thread runs beside the readers."""

from __future__ import annotations

import os
import threading

from hvrescue.io.input_hash import input_hash

# The files of one folder listed (and hashed) at most: the report lists the first ones walked.
MAX_INPUT_FILES = 2000


def input_files(path: str) -> list[str]:
    """``path`` itself, or the files under the folder ``path`` in walking order (sorted, links
    not followed out of the evidence), at most ``MAX_INPUT_FILES``."""
    if not os.path.isdir(path):
        return [path]
    files: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names)]
        if len(files) > MAX_INPUT_FILES:
            break
    return files[:MAX_INPUT_FILES]


class InputHashes:
    """The SHA-256 of the input files of ``paths``, made on a thread started at once. ``get``
    waits for it; a file it did not hash (the thread stopped or failed, or a path it did not
    list) is hashed then, so what ``get`` gives is ``input_hash(path)`` in every case."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = list(paths)
        self._done: dict[str, str | None] = {}
        self._stop = threading.Event()
        # A daemon: a command that fails does not wait at exit for digests no one will read.
        self._thread = threading.Thread(target=self._run, name="input-hashes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        done = self._done
        try:
            for path in self._paths:
                for f in input_files(path):
                    if self._stop.is_set():
                        return
                    done[f] = input_hash(f)
        except Exception:  # get() hashes what is missing itself, and raises what it meets
            return

    def get(self, path: str) -> str | None:
        self._thread.join()
        if path in self._done:
            return self._done[path]
        return input_hash(path)

    def cancel(self) -> None:
        """No more files are started (the one being hashed is finished)."""
        self._stop.set()
