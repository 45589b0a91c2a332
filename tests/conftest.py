from __future__ import annotations

import bz2
import gzip
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import CORPUS

# The suite runs `python -m hvrescue` a few thousand times. Where the environment forbids
# bytecode caching (PYTHONDONTWRITEBYTECODE, set on some CI images), every one of them would
# compile the package again; an installed package has its bytecode, so let the runs keep it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Property tests draw the same examples on every run (the suite is a gate: it passes or fails
# for the code, not for the draw); HVRESCUE_HYPOTHESIS_RANDOM=1 explores new ones.
if not os.environ.get("HVRESCUE_HYPOTHESIS_RANDOM"):
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
    _hypothesis_settings.load_profile("repeatable")

# Under ../shared/tools/winsim (os without sendfile, as on Windows) shutil, imported before the
# simulation, would still try sendfile for the tests' own copies: make it copy as on Windows.
if not hasattr(os, "sendfile") and hasattr(shutil, "_USE_CP_SENDFILE"):
    shutil._USE_CP_SENDFILE = False


def _decompress(src: Path, dest: Path) -> None:
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(src.suffix)
    if opener is None:
        shutil.copyfile(src, dest)
        return
    with opener(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 22)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public disk images, decompressed into a temporary folder (never beside originals)."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present beside the project")
    out = tmp_path_factory.mktemp("corpus")
    for folder in ("dissect-hypervisor", "discutils", "qemu-iotests", "dfvfs"):
        for src in sorted((CORPUS / folder).iterdir()):
            name = src.name
            for suffix in (".gz", ".bz2"):
                name = name.removesuffix(suffix)
            if name.lower().endswith((".vhd", ".vhdx", ".avhdx")):
                target = out / folder / name
                target.parent.mkdir(exist_ok=True)
                _decompress(src, target)
    return out


@pytest.fixture
def corpus_file(corpus_dir: Path, tmp_path: Path):
    """A private copy of one corpus image, so that tests may place files beside it."""

    def get(rel: str) -> Path:
        src = corpus_dir / rel
        dest = tmp_path / src.name
        shutil.copyfile(src, dest)
        return dest

    return get
