"""The library functions the commands are thin layers over, called directly: the reparent
decision and its locator paths, merge, salvage, rewrite, preserve and verify, ls and extract;
and every example of docs/api.md, run as written."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import hvrescue
from hvrescue.errors import HvrescueError, InputError
from hvrescue.fs.listing import FilesystemError, extract_files, list_folder, list_partitions
from hvrescue.preserve.api import preserve_to, verify_copy
from hvrescue.preserve.case import CaseRecord
from hvrescue.recover.api import (
    locator_paths,
    merge_chain,
    plan_reparent,
    repair,
    reparent,
    replay_log,
    salvage_chain,
)
from hvrescue.vdisk.vhdx.writer import VhdxSpec, write_vhdx
from tests.builders import MiB, make_chain, set_data_write_guid
from tests.helpers import CORPUS, Evidence
from tests.oracle import pyvhdi_chain_sha256

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
DOCS_CORPUS = "/work/shared/corpus/public"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bad_in_map(path: Path) -> int:
    """Bytes marked bad (``-``) in a GNU ddrescue map, read by hand: comments, then the status
    line, then ``pos size status`` lines in hex."""
    lines = [ln.split("#", 1)[0].split() for ln in path.read_text().splitlines()]
    rows = [words for words in lines if words][1:]
    return sum(int(size, 0) for _pos, size, status in rows if status == "-")


# ---------------------------------------------------------------- reparent: the decision
def test_plan_refuses_a_parent_of_another_identity_unless_told(tmp_path: Path) -> None:
    base, child = make_chain(tmp_path / "vm", depth=2)
    other, _ = make_chain(tmp_path / "other", depth=2, seed=9)
    stranger = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    set_data_write_guid(other, stranger)
    out = tmp_path / "out.avhdx"
    snap = Evidence([child, other])

    with pytest.raises(InputError) as refused:
        plan_reparent(str(child), str(other), str(out))
    assert refused.value.key == "error.reparent.id-mismatch"
    assert uuid.UUID(refused.value.params["found"]) == stranger
    right = plan_reparent(str(child), str(base), str(out))
    assert right.identity_ignored is False and right.warnings == []
    assert uuid.UUID(refused.value.params["expected"]) == uuid.UUID(right.parent_identity)

    plan = plan_reparent(str(child), str(other), str(out), ignore_id_mismatch=True)
    assert plan.identity_ignored is True
    assert uuid.UUID(plan.parent_identity) == stranger
    assert [w.key for w in plan.warnings] == ["ui.reparent.ignore-id-warning"]
    assert uuid.UUID(plan.warnings[0].params["found"]) == stranger
    assert not out.exists()  # deciding writes nothing
    snap.assert_untouched()


def test_plan_refuses_another_size_even_when_identity_is_ignored(tmp_path: Path) -> None:
    _base, child = make_chain(tmp_path / "vm", depth=2, size=64 * MiB)
    small = tmp_path / "small.vhdx"
    write_vhdx(str(small), VhdxSpec(virtual_size=32 * MiB), {})
    with pytest.raises(InputError) as refused:
        plan_reparent(str(child), str(small), str(tmp_path / "o.avhdx"), ignore_id_mismatch=True)
    assert refused.value.key == "error.reparent.geometry"
    assert refused.value.params["parent_size"] == 32 * MiB
    assert refused.value.params["child_size"] == 64 * MiB


def test_plan_refuses_another_sector_size_even_when_identity_is_ignored(tmp_path: Path) -> None:
    _base, child = make_chain(tmp_path / "vm", depth=2, lss=512)
    big_sectors, _ = make_chain(tmp_path / "4k", depth=2, lss=4096)
    with pytest.raises(InputError) as refused:
        plan_reparent(
            str(child), str(big_sectors), str(tmp_path / "o.avhdx"), ignore_id_mismatch=True
        )
    assert refused.value.key == "error.reparent.geometry"
    assert (refused.value.params["parent_sector"], refused.value.params["child_sector"]) == (
        4096,
        512,
    )


def test_plan_refuses_another_format_and_a_child_that_is_not_differencing(
    tmp_path: Path,
) -> None:
    base, child = make_chain(tmp_path / "vm", depth=2)
    vhd = tmp_path / "image.vhd"
    shutil.copyfile(CORPUS / "dfvfs" / "image.vhd", vhd)
    with pytest.raises(InputError) as refused:
        plan_reparent(str(child), str(vhd), str(tmp_path / "o.avhdx"), ignore_id_mismatch=True)
    assert refused.value.key == "error.reparent.format"
    assert refused.value.params["parent_format"] == "vhd"
    with pytest.raises(InputError) as refused:
        plan_reparent(str(base), str(base), str(tmp_path / "o.vhdx"))
    assert refused.value.key == "error.reparent.not-differencing"


# ---------------------------------------------------------------- reparent: locator paths
def test_locator_paths_relative_to_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "a" / "child.avhdx"
    assert locator_paths(str(out), str(tmp_path / "a" / "base.vhdx")).relative == ".\\base.vhdx"
    assert (
        locator_paths(str(out), str(tmp_path / "a" / "sub" / "p.vhdx")).relative == ".\\sub\\p.vhdx"
    )
    assert (
        locator_paths(str(out), str(tmp_path / "b" / "c" / "base.vhdx")).relative
        == "..\\b\\c\\base.vhdx"
    )


def test_locator_paths_absolute(tmp_path: Path) -> None:
    out, parent = str(tmp_path / "child.avhdx"), str(tmp_path / "renamed.vhdx")
    given = locator_paths(out, parent, parent_windows_path="E:\\Hyper-V\\base.vhdx")
    assert given.absolute == "E:\\Hyper-V\\base.vhdx"
    if os.sep == "\\":  # on Windows the parent's own path is the absolute one
        assert locator_paths(out, parent).absolute == os.path.abspath(parent)
        return
    # Elsewhere: where the child's parent lived, with the new parent's name.
    moved = locator_paths(out, parent, old_absolute="D:\\VMs\\old\\base.vhdx")
    assert moved.absolute == "D:\\VMs\\old\\renamed.vhdx"
    assert locator_paths(out, parent).absolute is None


# ---------------------------------------------------------------- reparent: end to end
def test_reparent_onto_a_moved_parent_through_the_api(tmp_path: Path) -> None:
    base, child = make_chain(tmp_path / "vm", depth=2)
    expected = pyvhdi_chain_sha256([child, base])
    moved = tmp_path / "elsewhere" / "renamed-base.vhdx"
    moved.parent.mkdir()
    base.rename(moved)
    out = tmp_path / "fixed" / "child.avhdx"
    out.parent.mkdir()
    snap = Evidence([child, moved])
    result = reparent(str(child), str(moved), str(out))
    snap.assert_untouched()
    assert result.ok and result.linked and result.status == "clean"
    assert result.parent_found == str(moved)
    assert result.plan.locators.relative == "..\\elsewhere\\renamed-base.vhdx"
    assert result.plan.locators.absolute == "D:\\VMs\\old\\renamed-base.vhdx"
    assert "rewrite.parent-locator" in [c.code for c in result.changes]
    assert result.as_dict()["parent_found"] == str(moved)
    assert pyvhdi_chain_sha256([out, moved]) == expected


# ---------------------------------------------------------------- merge, rewrite, salvage
def test_merge_through_the_api_equals_the_chain(tmp_path: Path) -> None:
    base, middle, child = make_chain(tmp_path / "vm", depth=3)
    expected = pyvhdi_chain_sha256([child, middle, base])
    out = tmp_path / "merged.vhdx"
    seen: list[tuple[int, int]] = []
    result = merge_chain(str(child), str(out), progress=lambda d, t: seen.append((d, t)))
    assert result.verified and result.status == "verified"
    assert len(result.chain) == 3
    assert pyvhdi_chain_sha256([out]) == expected
    assert seen and seen[-1][0] == seen[-1][1]


def test_merge_refuses_a_name_of_another_format_before_any_work(tmp_path: Path) -> None:
    _base, child = make_chain(tmp_path / "vm", depth=2)
    with pytest.raises(InputError) as refused:
        merge_chain(str(child), str(tmp_path / "merged.vhd"))
    assert refused.value.key == "error.output.extension.merge"
    assert list(tmp_path.iterdir()) == [tmp_path / "vm"]


def test_replay_log_refuses_a_vhd_and_repair_fixes_one(tmp_path: Path) -> None:
    vhd = tmp_path / "image.vhd"
    shutil.copyfile(CORPUS / "dfvfs" / "image.vhd", vhd)
    with pytest.raises(InputError) as refused:
        replay_log(str(vhd), str(tmp_path / "out.vhd"))
    assert refused.value.key == "error.rewrite.not-vhdx"
    result = repair(str(vhd), str(tmp_path / "fixed.vhd"))
    assert result.status == "clean" and result.map is None
    assert result.changes  # the corpus image's footer checksum is wrong: said and fixed
    assert (tmp_path / "fixed.vhd").stat().st_size == vhd.stat().st_size


def test_salvage_through_the_api(tmp_path: Path) -> None:
    base, child = make_chain(tmp_path / "vm", depth=2)
    expected = pyvhdi_chain_sha256([child, base])
    out, map_path = tmp_path / "disk.raw", tmp_path / "disk.map"
    started: list[int] = []
    result = salvage_chain(str(child), str(out), str(map_path), on_start=lambda: started.append(1))
    assert started == [1]
    assert result.status == "complete" and result.bad == []
    assert sha256_of(out) == expected
    # The parent gone: what the child leaves to it is bad, in the result and in the map.
    base.unlink()
    out2, map2 = tmp_path / "gone.raw", tmp_path / "gone.map"
    result = salvage_chain(str(child), str(out2), str(map2))
    assert result.status == "bad-ranges" and result.bad_bytes > 0
    assert {g.cause for g in result.gaps} == {"parent-missing"}
    assert bad_in_map(map2) == result.bad_bytes


def test_salvage_refuses_an_image_named_as_a_disk_format_before_starting(tmp_path: Path) -> None:
    _base, child = make_chain(tmp_path / "vm", depth=2)
    started: list[int] = []
    with pytest.raises(HvrescueError):
        salvage_chain(
            str(child),
            str(tmp_path / "x.vhdx"),
            str(tmp_path / "m"),
            on_start=lambda: started.append(1),
        )
    assert started == []


# ---------------------------------------------------------------- preserve, verify
def test_preserve_and_verify_through_the_api(tmp_path: Path) -> None:
    base, child = make_chain(tmp_path / "vm", depth=2)
    dest = tmp_path / "dest"
    snap = Evidence([tmp_path / "vm"])
    done = preserve_to([str(child)], str(dest), allow_same_storage=True)
    snap.assert_untouched()
    assert done.status == "complete" and done.complete
    files = {f["path"]: f for f in done.manifest["files"]}
    assert set(files) == {"base.vhdx", "c1.avhdx"}
    for name, src in (("base.vhdx", base), ("c1.avhdx", child)):
        assert files[name]["sha256"] == sha256_of(src) == sha256_of(dest / name)
    assert done.total_bytes == base.stat().st_size + child.stat().st_size
    assert done.as_dict()["manifest_path"] == str(dest / "manifest.json")

    case = dest / "case.sqlite"
    before = case.read_bytes()
    seen: list[tuple[int, int]] = []
    report = verify_copy(str(dest), progress=lambda d, t: seen.append((d, t)))
    assert report.ok and report.status == "ok"
    assert sorted(r.status for r in report.files) == ["ok", "ok"]
    assert seen[-1] == (done.total_bytes, done.total_bytes)
    assert case.read_bytes() == before  # without argv nothing is recorded

    copy = dest / "c1.avhdx"
    middle = copy.stat().st_size // 2
    with open(copy, "r+b") as f:
        f.seek(middle)
        byte = f.read(1)
        f.seek(middle)
        f.write(bytes([byte[0] ^ 0xFF]))
    report = verify_copy(str(dest), argv=["hvrescue", "verify", str(dest)])
    assert report.status == "mismatch" and not report.ok
    assert [r.path for r in report.failed] == ["c1.avhdx"]
    record = CaseRecord(str(case))
    try:
        actions = record.actions()
    finally:
        record.close()
    assert actions[-1]["command"] == "verify" and actions[-1]["exit_code"] == 1


# ---------------------------------------------------------------- ls, extract
def test_list_and_extract_through_the_api(tmp_path: Path) -> None:
    disk = tmp_path / "ext2.vhd"
    shutil.copyfile(CORPUS / "dfvfs" / "ext2.vhd", disk)
    parts = list_partitions(str(disk))
    assert parts.ok and [p["index"] for p in parts.partitions] == [1]
    folder = list_folder(str(disk), "/")
    sizes = {e.name: e.size for e in folder.entries}
    assert folder.ok and sizes["passwords.txt"] == 116
    with pytest.raises(FilesystemError) as refused:
        list_folder(str(disk), "9:/")
    assert refused.value.key == "error.fs.no-partition" and refused.value.met == []
    started: list[int] = []
    out = extract_files(
        str(disk), ["/passwords.txt"], str(tmp_path / "out"), on_start=lambda: started.append(1)
    )
    assert started == [1] and out.ok
    copied = tmp_path / "out" / out.files[0]["path"]
    assert copied.stat().st_size == 116
    assert out.files[0]["sha256"] == sha256_of(copied)


# ---------------------------------------------------------------- the CLI decides nothing
def test_the_recovery_and_preservation_commands_do_not_reach_into_the_engine() -> None:
    cli = Path(hvrescue.__file__).parent / "cli"
    for name in ("recover_cmds.py", "fs_cmds.py", "preserve_cmds.py"):
        tree = ast.parse((cli / name).read_text(encoding="utf-8"))
        imported = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert not {m for m in imported if m.startswith("hvrescue.vdisk")}, name


# ---------------------------------------------------------------- docs/api.md
def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)


def test_the_api_page_has_an_example_per_capability() -> None:
    text = "\n".join(_doc_blocks())
    for name in (
        "Disk.open",
        "check_files",
        "hash_disk",
        "chain_report",
        "merge_chain",
        "plan_reparent",
        "locator_paths",
        "reparent(",
        "replay_log",
        "repair(",
        "salvage_chain",
        "preserve_to",
        "verify_copy",
        "build_inventory",
        "list_folder",
        "extract_files",
        "collect(",
        "run_triage",
        "guest_facts",
    ):
        assert name in text, name


@pytest.mark.parametrize("index", range(len(_doc_blocks())))
def test_every_example_of_the_api_page_runs(index: int, tmp_path: Path) -> None:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present beside the project")
    code = _doc_blocks()[index]
    assert DOCS_CORPUS in code, "every example names the corpus it runs against"
    code = code.replace(DOCS_CORPUS, CORPUS.as_posix())
    script = tmp_path / f"example_{index + 1}.py"
    script.write_text(code, encoding="utf-8")
    snap = Evidence([CORPUS / "dfvfs"])
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=600,
    )
    snap.assert_untouched()
    if "MissingDependencyError" in proc.stderr:  # an optional package this example needs
        pytest.skip("optional dependency missing: " + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()  # every example shows its result
