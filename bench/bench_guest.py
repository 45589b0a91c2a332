"""`guest` on a 2 GiB Windows-like test disk: the time spent per artefact. Prints figures;
asserts nothing. Needs Debian's ntfs-3g, dosfstools, mtools, fdisk, qemu-utils and FUSE (as the
tests do).

    python3 bench/bench_guest.py [--workdir DIR] [--gib 2]

The guest: GPT with an EFI system partition (a public BCD store) and an NTFS volume holding the
public SYSTEM hive, a kernel dump header, pending.xml, a public System.evtx, 1,001 Temporary
ASP.NET Files folders and filler files up to about half the disk; base VHDX by qemu-img, one
differencing child on top.
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builders import make_guest_raw, raw_to_vhdx_chain, update_ntfs  # noqa: E402
from tests.helpers import CORPUS  # noqa: E402
from tests.test_guest import ASPNET, kernel_dump  # noqa: E402

from hvrescue.guest.collect import guest_facts  # noqa: E402

MiB = 1 << 20


def build(work: Path, gib: float) -> Path:
    child = work / "child.avhdx"
    if child.exists():
        return child
    reg = CORPUS / "registry"
    filler = os.urandom(8 * MiB)
    files = {
        "Windows/System32/config/SYSTEM": lzma.decompress((reg / "regipy/SYSTEM.xz").read_bytes()),
        "Windows/WinSxS/pending.xml": b'<?xml version="1.0"?><PendingTransaction/>',
        "Windows/MEMORY.DMP": kernel_dump(0xC000021A, (1, 2, 3, 4)),
        "Windows/System32/winevt/Logs/System.evtx": (
            CORPUS / "evtx/omerbenamram-evtx/system.evtx"
        ).read_bytes(),
        **{f"{ASPNET}/{i:04x}/": b"" for i in range(1001)},
        **{
            f"Data/file{i:03d}.bin": i.to_bytes(4, "little") + filler[4:]
            for i in range(int(gib * 1024 * 0.45) // 8)
        },
    }
    esp = {"EFI/Microsoft/Boot/BCD": (reg / "windeploy-linux/BCD-efi").read_bytes()}
    raw1 = make_guest_raw(work, "gpt", files, esp_files=esp, size=int(gib * 1024) * MiB)
    raw2 = work / "v2.raw"
    update_ntfs(raw1, raw2, {"Windows/Temp/after.txt": b"x"}, work / "m2")
    raw_to_vhdx_chain(raw1, raw2, work)
    raw1.unlink()
    raw2.unlink()
    return child


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gib", type=float, default=2.0)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hvr-guest-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    child = build(work, args.gib)
    print(f"built {child} in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    result = guest_facts(str(child))
    total = time.perf_counter() - t
    print(f"guest: {len(result.facts)} facts, {len(result.problems)} problems, {total:.2f} s")
    for name, seconds in sorted(result.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {seconds:7.3f} s")
    rest = total - sum(result.timings.values())
    print(f"  {'partitions, fs open':<20} {rest:7.3f} s")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
