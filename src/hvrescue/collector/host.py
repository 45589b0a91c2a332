"""Who and where the collector runs: host name, user, elevation, UI language, the OS."""

from __future__ import annotations

import getpass
import os
import socket
import sys

# The test hook: run `collect` on a host that is not Windows (tests/standins replay the
# Windows commands). Documented in docs/collect.md; never needed on a Windows host.
ANY_OS_ENV = "HVRESCUE_COLLECT_ANY_OS"


def on_windows() -> bool:
    return sys.platform == "win32"


def may_run_here() -> bool:
    return on_windows() or os.environ.get(ANY_OS_ENV) == "1"


def host_name() -> str:
    return os.environ.get("COMPUTERNAME") or socket.gethostname()


def user_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return os.environ.get("USERNAME") or None


def elevated() -> bool:
    """An elevated (administrator) token on Windows; root elsewhere (the test hook)."""
    if on_windows():
        import ctypes

        windll = getattr(ctypes, "windll", None)  # only on Windows
        try:
            return bool(windll.shell32.IsUserAnAdmin()) if windll is not None else False
        except (AttributeError, OSError):
            return False
    from hvrescue import platform as plat

    try:
        return plat.user_ids()[0] == 0
    except (AttributeError, OSError):
        return False


def ui_language() -> str | None:
    from hvrescue import platform as plat

    helper = getattr(plat, "ui_language", None)
    lang = helper() if callable(helper) else None
    if lang:
        return str(lang)
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = (os.environ.get(name) or "").split(".")[0].split("_")[0]
        if value and value not in ("C", "POSIX"):
            return value
    return None
