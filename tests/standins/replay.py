"""Stand-in for the Windows commands `hvrescue collect` runs, for tests on any OS.

Called by the small wrappers beside it (``wevtutil``, ``vssadmin``, ...) as
``replay.py NAME ARGS...``. ``$STANDIN_DIR/plan.json`` maps a key (the program's name and its
arguments; for PowerShell the name and the cmdlet the script is about, ``powershell Get-VM``,
or the file it reads, ``powershell Get-Content CBS.log``)
to what to do:

- ``file``: print this file of $STANDIN_DIR (a recorded real output) byte for byte; with
  ``subst_path`` the bytes ``%PATH%`` become the last argument (icacls prints the path it shows)
- ``export``: copy this file to the path in the arguments (``wevtutil epl CHANNEL PATH``)
- ``stdout`` / ``stderr``: print this text, in ``encoding`` (default UTF-8)
- ``exit``: the exit code (default 0)
- ``hang``: sleep this many seconds, after starting a grandchild that sleeps as long (its
  process id, and ours, appended to $STANDIN_DIR/hang.pids): a timeout must end the tree
- ``garbage``: print this many random bytes
- ``flood``: print this many bytes of text

Every call is appended to $STANDIN_DIR/calls.log (one JSON list per line).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

CMDLETS = (
    "Get-VHD",
    "Get-VMHardDiskDrive",
    "Get-VMSnapshot",
    "Get-VMHost",
    "Get-ClusterLog",
    "Get-Volume",
    "Get-HotFix",
    "Get-VM",
)


def key_of(name: str, args: list[str]) -> str:
    if name == "powershell":
        script = args[-1] if args else ""
        if "Get-Content -LiteralPath " in script:  # a log read: keyed by the file's name
            path = script.split("Get-Content -LiteralPath ", 1)[1].split('"')[1]
            return f"powershell Get-Content {path.rsplit(chr(92), 1)[-1]}"
        for cmdlet in CMDLETS:
            if cmdlet + " " in script or script.endswith(cmdlet):
                return f"powershell {cmdlet}"
        return "powershell ?"
    if name == "icacls":
        return "icacls"
    if name == "wevtutil" and len(args) >= 2:
        return f"wevtutil {args[0]} {args[1]}"
    return " ".join([name, *args])


def main() -> int:
    name, args = sys.argv[1].lower(), sys.argv[2:]
    home = os.environ["STANDIN_DIR"]
    with open(os.path.join(home, "calls.log"), "a", encoding="utf-8") as log:
        log.write(json.dumps([name, *args]) + "\n")
    plan_path = os.path.join(home, "plan.json")
    plan: dict = {}
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as fh:
            plan = json.load(fh)
    key = key_of(name, args)
    action = plan.get(key)
    if action is None:
        sys.stderr.write(f"standin: nothing planned for {key!r}\n")
        return 1
    encoding = action.get("encoding", "utf-8")
    out = sys.stdout.buffer
    if "hang" in action:
        child = subprocess.Popen(
            [sys.executable, "-c", f"import time; time.sleep({action['hang']})"]
        )
        with open(os.path.join(home, "hang.pids"), "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {child.pid}\n")
        out.write(b"started\r\n")
        out.flush()
        time.sleep(action["hang"])
    if "file" in action:
        with open(os.path.join(home, action["file"]), "rb") as fh:
            data = fh.read()
        if action.get("subst_path"):
            data = data.replace(b"%PATH%", args[-1].encode(encoding))
        out.write(data)
    if "export" in action:
        # Plain reads and writes: under the Windows simulation shutil may still try sendfile.
        with open(action["export"], "rb") as src, open(args[-1], "xb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
    if "stdout" in action:
        out.write(action["stdout"].encode(encoding))
    if "garbage" in action:
        rng = random.Random(15)
        out.write(bytes(rng.randrange(256) for _ in range(action["garbage"])))
    if "flood" in action:
        line = b"svchost.exe                   1234 Appinfo, BITS, Browser, CertPropSvc\r\n"
        left = action["flood"]
        block = line * (1024 * 1024 // len(line))
        try:
            while left > 0:
                piece = block[:left]
                out.write(piece)
                left -= len(piece)
        except BrokenPipeError:
            return 1
    out.flush()
    if "stderr" in action:
        sys.stderr.buffer.write(action["stderr"].encode(encoding))
    return int(action.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
