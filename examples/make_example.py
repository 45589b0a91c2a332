"""Regenerate examples/incident: a small, deterministic incident folder. The host's nightly
backup fails (VSS writers gone: what vssadmin, tasklist and the Application log say), and the
VM's storage folder has the two problems a first responder meets most: a checkpoint whose
parent was restored under another name, and a checkpoint whose log was never replayed (the
host lost power).

    python examples/make_example.py examples/incident
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

from hvrescue.vdisk.vhdx.writer import ParentSpec, VhdxSpec, write_vhdx

MiB = 1024 * 1024


def main(dest: str) -> None:
    rnd = random.Random(2026)
    folder = Path(dest) / "Virtual Hard Disks"
    folder.mkdir(parents=True, exist_ok=False)
    base_guid = uuid.UUID(int=rnd.getrandbits(128))

    def guid() -> uuid.UUID:
        return uuid.UUID(int=rnd.getrandbits(128))

    mbr = bytearray(rnd.randbytes(512))
    mbr[510:512] = b"\x55\xaa"
    base_data = {0: bytes(mbr), MiB: rnd.randbytes(MiB)}
    # The base disk was restored from backup under a new name; the checkpoint still names
    # the old one.
    write_vhdx(
        str(folder / "web01-restored.vhdx"),
        VhdxSpec(
            virtual_size=8 * MiB,
            block_size=MiB,
            data_write_guid=base_guid,
            file_write_guid=guid(),
            disk_id=guid(),
            creator="hvrescue example",
        ),
        base_data,
    )
    child = folder / "web01_6F1C0F4E-2B7A-4C55-9A61-0D2E54B1C3A7.avhdx"
    write_vhdx(
        str(child),
        VhdxSpec(
            virtual_size=8 * MiB,
            block_size=MiB,
            data_write_guid=guid(),
            file_write_guid=guid(),
            disk_id=guid(),
            log_guid=guid(),
            creator="hvrescue example",
            pending_log=True,
            parent=ParentSpec(
                base_guid,
                relative_path=".\\web01.vhdx",
                absolute_win32_path="D:\\Hyper-V\\web01\\Virtual Hard Disks\\web01.vhdx",
            ),
        ),
        {MiB + 4096: rnd.randbytes(8192), 5 * MiB: rnd.randbytes(MiB)},
    )

    host = Path(dest) / "Host"
    host.mkdir()
    for name, text in HOST_FILES.items():
        (host / name).write_bytes(text.replace("\n", "\r\n").encode("utf-8"))


HOST_FILES = {
    "vssadmin list writers.txt": (
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool\n"
        "(C) Copyright 2001-2013 Microsoft Corp.\n\n"
    ),
    "tasklist svc.txt": (
        "\nImage Name                     PID Services\n"
        "========================= ======== ============================================\n"
        "System Idle Process              0 N/A\n"
        "System                           4 N/A\n"
        "svchost.exe                    876 BrokerInfrastructure, DcomLaunch, LSM,\n"
        "                                   PlugPlay, Power, SystemEventsBroker\n"
        "svchost.exe                   1024 EventSystem, FontCache, netprofm, nsi\n"
        "svchost.exe                   1310 CryptSvc\n"
        "vmms.exe                      2840 vmms\n"
    ),
    "Application VSS events.csv": (
        "Level,Date and Time,Source,Event ID,Task Category\n"
        'Error,11/20/2026 2:00:19 AM,VSS,8193,None,"Volume Shadow Copy Service error: '
        "Unexpected error calling routine CoCreateInstance.  hr = 0x800401fb, Object is not "
        'registered.\n\nOperation:\n   Subscribing Writer"\n'
        'Error,11/20/2026 2:00:19 AM,VSS,13,None,"Volume Shadow Copy Service information: The '
        "COM Server with CLSID {4e14fba2-2e22-11d1-9964-00c04fbbb345} and name CEventSystem "
        'cannot be started. [0x800401fb, Object is not registered]"\n'
    ),
}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/incident")
