"""No POSIX-only call outside the platform package: CPython on Windows lacks these names, and a
command that reaches one there ends in "Internal error (AttributeError ...)". The scan reads the
syntax tree (a docstring that names SEEK_HOLE is no call), follows ``import os as o`` aliases,
and counts ``getattr(os, "pread")`` and ``hasattr(os, "SEEK_DATA")`` as uses too."""

from __future__ import annotations

import ast
from pathlib import Path

import hvrescue

PACKAGE = Path(hvrescue.__file__).parent
ALLOWED = PACKAGE / "platform"

POSIX_ONLY = {
    "os": {
        "pread",
        "preadv",
        "pwrite",
        "pwritev",
        "getuid",
        "getgid",
        "geteuid",
        "getegid",
        "SEEK_DATA",
        "SEEK_HOLE",
        "O_NOATIME",
        "posix_fadvise",
        "posix_fallocate",
        "POSIX_FADV_DONTNEED",
        "POSIX_FADV_SEQUENTIAL",
        "copy_file_range",
        "sendfile",
        "fork",
        "killpg",
        "forkpty",
        "getpwuid",
        "readv",
        "writev",
    },
    "signal": {"SIGKILL", "SIGALRM", "alarm", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"},
}
POSIX_MODULES = {"fcntl", "resource", "pwd", "grp", "termios", "posix"}


def posix_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every use of a POSIX-only name in ``source``, as ``file:line name``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module (os, signal)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top in POSIX_MODULES:
                    found.append((node.lineno, f"import {a.name}"))
                if a.name in POSIX_ONLY:
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in POSIX_MODULES and not node.level:
                found.append((node.lineno, f"from {node.module} import"))
            for a in node.names:
                if node.module in POSIX_ONLY and a.name in POSIX_ONLY[node.module]:
                    found.append((node.lineno, f"{node.module}.{a.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in POSIX_ONLY[module]:
                found.append((node.lineno, f"{module}.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            module = aliases.get(node.args[0].id)
            if module and node.args[1].value in POSIX_ONLY[module]:
                found.append((node.lineno, f"{module}.{node.args[1].value}"))
    return [f"{filename}:{line} {name}" for line, name in sorted(set(found))]


def test_the_scan_finds_every_form_of_a_posix_only_call():
    planted = (
        '"""A docstring naming os.pread and SEEK_HOLE is no call."""\n'
        "import os\n"
        "import os as o\n"
        "import fcntl\n"
        "from os import pwrite\n"
        "import signal\n"
        "o.pread(3, 1, 0)\n"
        "x = getattr(os, 'SEEK_DATA', None)\n"
        "hasattr(os, 'O_NOATIME')\n"
        "signal.SIGKILL\n"
        "os.lseek(3, 0, os.SEEK_SET)\n"
    )
    assert posix_calls(planted, "f.py") == [
        "f.py:4 import fcntl",
        "f.py:5 os.pwrite",
        "f.py:7 os.pread",
        "f.py:8 os.SEEK_DATA",
        "f.py:9 os.O_NOATIME",
        "f.py:10 signal.SIGKILL",
    ]


def test_the_scan_leaves_portable_calls_alone():
    portable = (
        "import os, signal\n"
        "os.lseek(3, 0, os.SEEK_SET)\n"
        "os.utime('x')\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "getattr(os, 'O_BINARY', 0)\n"
    )
    assert posix_calls(portable) == []


def test_no_posix_only_call_outside_the_platform_package():
    offending: list[str] = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50  # the package is really read
    for path in files:
        if ALLOWED in path.parents:
            continue
        rel = path.relative_to(PACKAGE.parent).as_posix()
        offending += posix_calls(path.read_text(encoding="utf-8"), rel)
    assert offending == [], "POSIX-only calls outside hvrescue/platform:\n" + "\n".join(offending)


def test_the_platform_package_is_where_they_live():
    """The scan is not blind: the platform package itself uses them (its POSIX twin)."""
    inside = [
        hit
        for path in sorted(ALLOWED.rglob("*.py"))
        for hit in posix_calls(path.read_text(encoding="utf-8"), path.name)
    ]
    assert any("SEEK_DATA" in hit for hit in inside)
    assert any("os.pread" in hit for hit in inside)
