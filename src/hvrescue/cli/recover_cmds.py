"""`merge`, `reparent`, `replay-log`, `repair`, `salvage`: recovery that writes only new files."""

from __future__ import annotations

import ntpath
import os
import sys
from typing import Any

import click
from rich.text import Text

from hvrescue.cli.main import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    Ctx,
    audited,
    cli,
    fail,
    json_option,
    pass_ctx,
    search_option,
)
from hvrescue.cli.output import (
    console,
    emit_json,
    finding_json,
    findings_table,
    gaps_table,
    transfer_progress,
)
from hvrescue.errors import HvrescueError, InputError, UndefinedContentError
from hvrescue.findings import Severity
from hvrescue.vdisk.disk import merge_gaps

out_argument = click.argument("out", type=click.Path(dir_okay=False))


def _changes_text(c: Ctx, changes: list[dict[str, Any]]) -> Text:
    text = Text()
    for change in changes:
        text.append("  - " + c.msg(change["code"], **change["params"]) + "\n")
    return text


def _with_gaps(changes: list[Any]) -> dict[str, Any] | None:
    """The written-with-gaps record among a rewrite's changes, if it wrote any gap."""
    for change in changes:
        if change.code == "rewrite.written-with-gaps":
            params: dict[str, Any] = change.params
            return params
    return None


def _check_after(path: str, search: list[str] | None = None) -> list[Any]:
    from hvrescue.vdisk.check import check_file

    result = check_file(path, search)
    return [f for f in result.findings if f.severity >= Severity.WARNING]


# ---------------------------------------------------------------- merge
@cli.command()
@click.argument("leaf", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--format", "fmt", type=click.Choice(["vhdx", "raw"]), default="vhdx", show_default=True
)
@click.option(
    "--block-size",
    "block_mib",
    type=click.IntRange(1, 256),
    default=None,
    help="Block size of the VHDX output in MiB (default: the base disk's).",
)
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Write zeros where the chain's content is undefined, with a ddrescue map beside OUT.",
)
@search_option
@json_option
@pass_ctx
@audited("leaf")
def merge(
    c: Ctx,
    leaf: str,
    out: str,
    fmt: str,
    block_mib: int | None,
    allow_gaps: bool,
    search: tuple[str, ...],
    as_json: bool,
) -> None:
    """Flatten a whole chain into one new standalone disk, then verify it.

    Exit 0 written and verified, 1 written with gaps (--allow-gaps) or its content differs
    from the chain, 2 not done (a chain with undefined ranges is refused)."""
    from hvrescue.io.atomic import check_output_folder
    from hvrescue.recover.merge import merge as run
    from hvrescue.recover.names import check_output_name

    bar = transfer_progress(as_json)
    block = block_mib * 1024 * 1024 if block_mib else None
    try:
        check_output_name(out, fmt, like=leaf, merge=True)
        check_output_folder(out)
        if bar is not None:
            with bar:
                task = bar.add_task(c.msg("ui.merge.progress"), total=None)
                result = run(
                    leaf,
                    out,
                    fmt,
                    block,
                    list(search),
                    lambda d, t: bar.update(task, completed=d, total=t),
                    allow_gaps=allow_gaps,
                    argv=sys.argv,
                )
        else:
            result = run(leaf, out, fmt, block, list(search), allow_gaps=allow_gaps, argv=sys.argv)
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.verified else EXIT_FINDINGS
    if as_json:
        emit_json(result.as_dict())
        sys.exit(code)
    out_con = console()
    out_con.print(
        Text(
            c.msg(
                "ui.merge.done",
                layers=len(result.chain),
                out=result.out,
                format=result.format,
                blocks=result.blocks_written,
                bytes=result.data_bytes,
            ),
            style="bold",
        )
    )
    if result.status == "written-with-gaps":
        out_con.print(
            Text(
                c.msg(
                    "ui.merge.with-gaps",
                    count=len(result.gaps),
                    bytes=sum(g.length for g in result.gaps),
                    map=result.map,
                ),
                style="yellow",
            )
        )
        out_con.print(gaps_table(result.gaps, c.msg))
    else:
        key = "ui.merge.verified" if result.verified else "ui.merge.mismatch"
        style = "green" if result.verified else "red"
        out_con.print(Text(c.msg(key, digest=result.output_digest), style=style))
    sys.exit(code)


def fail_undefined(c: Ctx, exc: UndefinedContentError, as_json: bool) -> None:
    """Refused because the source has undefined ranges: say which, and the way on (salvage)."""
    if not as_json:
        err = console(stderr=True)
        err.print(Text(c.msg(exc.key, **exc.params), style="red"))
        err.print(gaps_table(exc.gaps, c.msg))
        sys.exit(EXIT_ERROR)
    fail(c, exc, as_json)


# ---------------------------------------------------------------- replay-log
@cli.command("replay-log")
@click.argument("disk", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Go ahead where content is undefined (zeros in the copy, a ddrescue map beside it).",
)
@json_option
@pass_ctx
@audited("disk")
def replay_log(c: Ctx, disk: str, out: str, allow_gaps: bool, as_json: bool) -> None:
    """A copy of a VHDX with its log applied and cleared, as Hyper-V would leave it.

    Exit 0 written (and the copy checks clean), 1 written with findings left, 2 not done."""
    _rewrite(c, disk, out, as_json, repair=False, allow_gaps=allow_gaps)


# ---------------------------------------------------------------- repair
@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Go ahead where content is undefined (zeros in the copy, a ddrescue map beside it).",
)
@json_option
@pass_ctx
@audited("disk")
def repair(c: Ctx, disk: str, out: str, allow_gaps: bool, as_json: bool) -> None:
    """A copy with damaged headers and region tables rebuilt from their valid twins, the log
    applied, and blocks past the end of file given room; says what changed.

    Exit 0 written and clean, 1 written with findings left, 2 not done."""
    _rewrite(c, disk, out, as_json, repair=True, allow_gaps=allow_gaps)


def _rewrite(
    c: Ctx, disk: str, out: str, as_json: bool, repair: bool, allow_gaps: bool = False
) -> None:
    from hvrescue.io.atomic import check_output_folder
    from hvrescue.recover.names import check_output_name
    from hvrescue.recover.rewrite import rewrite_vhdx
    from hvrescue.vdisk.detect import open_image

    try:
        image = open_image(disk)
        fmt = image.format
        image.close()
        check_output_name(out, fmt, like=disk)
        check_output_folder(out)
        if fmt != "vhdx":
            if repair:
                from hvrescue.recover.vhd_fix import repair_vhd

                changes = repair_vhd(disk, out, allow_gaps, sys.argv)
            else:
                raise InputError("error.rewrite.not-vhdx", path=disk)
        else:
            changes = rewrite_vhdx(disk, out, repair=repair, allow_gaps=allow_gaps, argv=sys.argv)
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    left = _check_after(out)
    gaps = _with_gaps(changes)
    code = EXIT_FINDINGS if left or gaps else EXIT_OK
    if as_json:
        emit_json(
            {
                "status": "written-with-gaps" if gaps else "clean" if not left else "findings",
                "map": gaps["map"] if gaps else None,
                "out": out,
                "changes": [ch.as_dict() for ch in changes],
                "findings": [finding_json(f, c.msg) for f in left],
            }
        )
        sys.exit(code)
    con = console()
    con.print(Text(c.msg("ui.rewrite.done", out=out, count=len(changes)), style="bold"))
    con.print(_changes_text(c, [ch.as_dict() for ch in changes]))
    if left:
        con.print(findings_table(left, c.msg))
    else:
        con.print(Text(c.msg("ui.rewrite.clean", out=out), style="green"))
    sys.exit(code)


# ---------------------------------------------------------------- reparent
@cli.command()
@click.argument("child", type=click.Path(dir_okay=False))
@click.option(
    "--parent", "parent", required=True, type=click.Path(dir_okay=False), help="The new parent."
)
@out_argument
@click.option(
    "--ignore-id-mismatch",
    is_flag=True,
    help="Accept a parent whose identity differs (only valid if it holds exactly the data the "
    "child was written against).",
)
@click.option(
    "--parent-windows-path",
    default=None,
    help="Absolute Windows path of the parent where the disk will be used (C:\\...\\base.vhdx).",
)
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Go ahead where content is undefined (zeros in the copy, a ddrescue map beside it).",
)
@json_option
@pass_ctx
@audited("child", "parent")
def reparent(
    c: Ctx,
    child: str,
    parent: str,
    out: str,
    ignore_id_mismatch: bool,
    parent_windows_path: str | None,
    allow_gaps: bool,
    as_json: bool,
) -> None:
    """A copy of CHILD whose parent locator points at PARENT (relative to OUT, and absolute).

    Exit 0 written and the new chain checks clean, 1 written with findings, 2 refused."""
    from hvrescue.io.atomic import check_output_folder
    from hvrescue.recover.names import check_output_name
    from hvrescue.recover.rewrite import NewParent, relative_windows_path, rewrite_vhdx
    from hvrescue.vdisk.chain import resolve_chain
    from hvrescue.vdisk.detect import open_image
    from hvrescue.vdisk.vhd.image import VhdImage
    from hvrescue.vdisk.vhdx.image import VhdxImage

    warnings: list[str] = []
    try:
        kid = open_image(child)
        try:
            if not kid.readable or not kid.is_differencing or kid.parent_ref is None:
                raise InputError("error.reparent.not-differencing", path=child)
            ref = kid.parent_ref
            kid_format = kid.format
            old_abs = None
            if isinstance(kid, VhdxImage) and kid.parent_locator:
                old_abs = dict(kid.parent_locator.entries).get("absolute_win32_path")
            elif isinstance(kid, VhdImage):
                old_abs = next(
                    (e.get("path") for e in kid.locators if e["platform"] in ("W2ku", "Wi2k")),
                    None,
                )
            size, sector = kid.size, kid.logical_sector_size
        finally:
            kid.close()
        check_output_name(out, kid_format, like=child)
        check_output_folder(out)
        par = open_image(parent)
        try:
            if not par.readable or par.identity is None:
                raise InputError("error.reparent.parent-unreadable", path=parent)
            identity = par.identity
            parent_time = par.timestamp or 0
            if par.format != kid_format:
                raise InputError(
                    "error.reparent.format",
                    parent=parent,
                    parent_format=par.format,
                    child_format=kid_format,
                )
            if par.size != size or par.logical_sector_size != sector:
                raise InputError(
                    "error.reparent.geometry",
                    parent=parent,
                    parent_size=par.size,
                    child_size=size,
                    parent_sector=par.logical_sector_size,
                    child_sector=sector,
                )
        finally:
            par.close()
        wanted = {x.lower() for x in (ref.linkage, ref.linkage_alternate) if x}
        if identity.lower() not in wanted:
            if not ignore_id_mismatch:
                raise InputError(
                    "error.reparent.id-mismatch",
                    parent=parent,
                    found=identity,
                    expected=ref.linkage or "",
                )
            warnings.append(
                c.msg("ui.reparent.ignore-id-warning", expected=ref.linkage or "", found=identity)
            )
        out_dir = os.path.dirname(os.path.abspath(out))
        relative = relative_windows_path(out_dir, os.path.abspath(parent))
        absolute = parent_windows_path
        if absolute is None and os.sep == "\\":
            absolute = os.path.abspath(parent)
        elif absolute is None and old_abs:
            absolute = ntpath.join(ntpath.dirname(old_abs), os.path.basename(parent))
        if kid_format == "vhd":
            from hvrescue.recover.vhd_reparent import reparent_vhd

            changes = reparent_vhd(
                child,
                out,
                parent_identity=identity,
                parent_timestamp=parent_time,
                relative=relative,
                absolute=absolute,
                allow_gaps=allow_gaps,
                argv=sys.argv,
            )
        else:
            changes = rewrite_vhdx(
                child,
                out,
                parent=NewParent(identity, relative, absolute or ""),
                allow_gaps=allow_gaps,
                argv=sys.argv,
            )
    except UndefinedContentError as exc:
        fail_undefined(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    chain = resolve_chain(out)
    try:
        link = chain.links[0] if chain.links else None
        found = link.parent.path if link is not None and link.parent is not None else None
        linked = found is not None and os.path.realpath(found) == os.path.realpath(parent)
    finally:
        chain.close()
    left = _check_after(out)
    if not linked:
        left = left or []
    gaps = _with_gaps(changes)
    code = EXIT_OK if linked and not left and not gaps else EXIT_FINDINGS
    if as_json:
        emit_json(
            {
                "status": "written-with-gaps"
                if gaps
                else "clean"
                if code == EXIT_OK
                else "findings",
                "map": gaps["map"] if gaps else None,
                "out": out,
                "parent": parent,
                "parent_found": found,
                "identity_ignored": bool(warnings),
                "warnings": warnings,
                "changes": [ch.as_dict() for ch in changes],
                "findings": [finding_json(f, c.msg) for f in left],
            }
        )
        sys.exit(code)
    con = console()
    for w in warnings:
        console(stderr=True).print(Text(w, style="bold red"))
    con.print(Text(c.msg("ui.rewrite.done", out=out, count=len(changes)), style="bold"))
    con.print(_changes_text(c, [ch.as_dict() for ch in changes]))
    if linked:
        con.print(Text(c.msg("ui.reparent.linked", out=out, parent=parent), style="green"))
    else:
        con.print(Text(c.msg("ui.reparent.not-linked", out=out, parent=parent), style="red"))
    if left:
        con.print(findings_table(left, c.msg))
    sys.exit(code)


# ---------------------------------------------------------------- salvage
@cli.command()
@click.argument("leaf", type=click.Path(dir_okay=False))
@out_argument
@click.option(
    "--map",
    "map_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="GNU ddrescue map file: written on the first run, read and updated on later runs.",
)
@search_option
@json_option
@pass_ctx
@audited("leaf")
def salvage(
    c: Ctx, leaf: str, out: str, map_path: str, search: tuple[str, ...], as_json: bool
) -> None:
    """Read a damaged chain with error tolerance into a raw image OUT; what cannot be read is
    zeros in OUT and listed in the map. Run again with the same map to retry only those ranges.

    Exit 0 everything read, 1 bad ranges remain, 2 not done."""
    from hvrescue.cli.main import on_interrupt
    from hvrescue.io.atomic import check_output_folder
    from hvrescue.recover.names import check_output_name
    from hvrescue.recover.salvage import salvage as run

    bar = transfer_progress(as_json)
    try:
        # Both the image and its map must be writable before hours of reading begin.
        check_output_name(out, "raw")
        check_output_folder(out)
        check_output_folder(map_path)
        on_interrupt("ui.interrupted.salvage", out=out, map=map_path)
        if bar is not None:
            with bar:
                task = bar.add_task(c.msg("ui.salvage.progress"), total=None)
                result = run(
                    leaf, out, map_path, sys.argv, list(search), lambda n: bar.advance(task, n)
                )
        else:
            result = run(leaf, out, map_path, sys.argv, list(search))
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_FINDINGS if result.bad else EXIT_OK
    if as_json:
        emit_json({"status": "complete" if not result.bad else "bad-ranges", **result.as_dict()})
        sys.exit(code)
    con = console()
    con.print(
        Text(
            c.msg(
                "ui.salvage.done",
                out=out,
                map=map_path,
                size=result.size,
                bad=len(result.bad),
                bad_bytes=result.bad_bytes,
            ),
            style="bold",
        )
    )
    if result.resumed:
        con.print(Text(c.msg("ui.salvage.resumed")))
    if result.retried:
        con.print(Text(c.msg("ui.salvage.recovered", bytes=result.recovered)))
    if result.gaps:
        con.print(gaps_table(result.gaps, c.msg))
    sys.exit(code)


# ---------------------------------------------------------------- ls / extract
@cli.command("ls")
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("path", required=False)
@search_option
@json_option
@pass_ctx
@audited("disk")
def ls_(c: Ctx, disk: str, path: str | None, search: tuple[str, ...], as_json: bool) -> None:
    """Partitions of a disk or chain, or the files under PATH ('2:/Windows', or '/Windows' when
    one partition holds a filesystem). Read-only: no journal replay, no repair."""
    from rich.table import Table

    from hvrescue.fs import open_path, probe
    from hvrescue.vdisk.disk import Disk

    try:
        with Disk.open(disk, list(search)) as d:
            if path is None:
                found = probe(d)
                rows = [{**p.as_dict(), "filesystem": fs} for p, fs in found]
                met = merge_gaps(d.touched)  # a partition table or boot sector not defined
                if as_json:
                    emit_json(
                        {
                            "disk": disk,
                            "size": d.size,
                            "partitions": rows,
                            "undefined_met": [g.as_dict() for g in met[:1000]],
                        }
                    )
                    sys.exit(EXIT_FINDINGS if met else EXIT_OK)
                table = Table(show_header=True)
                for col in ("index", "scheme", "offset", "size", "type", "filesystem", "name"):
                    table.add_column(c.msg(f"ui.col.part-{col}"))
                for r in rows:
                    table.add_row(
                        *(
                            Text("" if r[k] is None else str(r[k]))
                            for k in (
                                "index",
                                "scheme",
                                "offset",
                                "size",
                                "type",
                                "filesystem",
                                "name",
                            )
                        )
                    )
                console().print(table)
                if met:
                    _say_met(c, met, console(stderr=True))
                sys.exit(EXIT_FINDINGS if met else EXIT_OK)
            try:
                volume, inner = open_path(d, path)
                entries = volume.listdir(inner)
            except HvrescueError as exc:
                _fail_with_met(c, exc, as_json, d)
                return
            met = merge_gaps(d.touched)  # met reading the filesystem's own structures
            # Files whose data touches undefined ranges of the disk are said to be so.
            undefined = d.undefined()
            touched: dict[str, list[Any]] = {}
            if undefined:
                for e in entries:
                    if not e.is_dir:
                        gaps = volume.file_gaps(e)
                        if gaps:
                            touched[e.path] = gaps
            code = EXIT_FINDINGS if touched or met else EXIT_OK
            if as_json:
                rows = []
                for e in entries:
                    row = e.as_dict()
                    if not e.is_dir:
                        gaps = touched.get(e.path, [])
                        row["complete"] = not gaps
                        row["undefined"] = [g.as_dict() for g in gaps[:100]]
                    rows.append(row)
                emit_json(
                    {
                        "disk": disk,
                        "partition": volume.partition.index,
                        "filesystem": volume.type,
                        "path": inner,
                        "entries": rows,
                        "disk_undefined": [g.as_dict() for g in undefined[:1000]],
                        "undefined_met": [g.as_dict() for g in met[:1000]],
                    }
                )
                sys.exit(code)
            table = Table(show_header=True)
            for col in ("type", "bytes", "mtime", "name"):
                table.add_column(c.msg(f"ui.col.{col}" if col != "type" else "ui.col.kind"))
            for e in entries:
                kind = c.msg("ui.ls.dir") if e.is_dir else ""
                names = e.name + "".join(f"  [:{s.name}]" for s in e.streams if s.name)
                style = ""
                if e.path in touched:
                    names += "  " + c.msg("ui.ls.incomplete")
                    style = "red"
                table.add_row(
                    Text(kind), str(e.size), Text(e.modified or ""), Text(names, style=style)
                )
            console().print(table)
            if met:
                _say_met(c, met, console(stderr=True))
            if undefined:
                console(stderr=True).print(
                    Text(
                        c.msg(
                            "ui.ls.disk-undefined",
                            count=len(undefined),
                            bytes=sum(g.length for g in undefined),
                        ),
                        style="yellow",
                    )
                )
            sys.exit(code)
    except HvrescueError as exc:
        fail(c, exc, as_json)


@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1, required=True)
@click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False))
@click.option("--streams", is_flag=True, help="Also write NTFS alternate data streams.")
@search_option
@json_option
@pass_ctx
@audited("disk")
def extract(
    c: Ctx,
    disk: str,
    paths: tuple[str, ...],
    to_dir: str,
    streams: bool,
    search: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy files and folders out of a disk or chain into DIR (names made safe, times kept,
    never overwriting), with a manifest of hashes. Exit 0 all copied, 1 some skipped, 2 error."""
    from hvrescue.cli.main import on_interrupt
    from hvrescue.fs import open_path
    from hvrescue.fs.extract import Extractor
    from hvrescue.io.atomic import prepare_output_folder
    from hvrescue.vdisk.disk import Disk

    try:
        prepare_output_folder(to_dir)
        on_interrupt("ui.interrupted.extract", to=to_dir)
        with Disk.open(disk, list(search)) as d:
            extractors: dict[int, Extractor] = {}
            met: list[Any] = []
            for spec in paths:
                try:
                    volume, inner = open_path(d, spec)
                except HvrescueError as exc:
                    _fail_with_met(c, exc, as_json, d)
                    return
                ex = extractors.get(volume.partition.index)
                if ex is None:
                    ex = Extractor(volume, to_dir, f"p{volume.partition.index}", streams)
                    extractors[volume.partition.index] = ex
                ex.extract(inner)
            # Undefined ranges met while reading the filesystem's own structures (folders,
            # file records): what they hide cannot be listed, so they are said.
            met = merge_gaps(d.touched)
            for ex in extractors.values():
                ex.undefined_met = met
            manifests = [ex.write_manifest(sys.argv) for ex in extractors.values()]
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    files = [f for ex in extractors.values() for f in ex.result.files]
    skipped = [s for ex in extractors.values() for s in ex.result.skipped]
    incomplete = [s for ex in extractors.values() for s in ex.result.incomplete]
    code = EXIT_FINDINGS if skipped or incomplete or met else EXIT_OK
    if as_json:
        emit_json(
            {
                "to": to_dir,
                "manifests": manifests,
                "files": files,
                "skipped": skipped,
                "incomplete": incomplete,
                "undefined_met": [g.as_dict() for g in met[:1000]],
            }
        )
        sys.exit(code)
    con = console()
    con.print(Text(c.msg("ui.extract.done", count=len(files), to=to_dir), style="bold"))
    for s in skipped:
        reason = s["reason"]
        if c.msg.has(reason):
            reason = c.msg(reason, path=s["source"], offset=s.get("offset", ""))
        con.print(Text(c.msg("ui.extract.skipped", source=s["source"], reason=reason), style="red"))
    if met:
        _say_met(c, met, con)
    for s in incomplete:
        con.print(
            Text(
                c.msg("ui.extract.incomplete", source=s["source"], path=s["path"]),
                style="red",
            )
        )
    for m in manifests:
        con.print(Text(c.msg("ui.extract.manifest", path=m)))
    sys.exit(code)


def _fail_with_met(c: Ctx, exc: HvrescueError, as_json: bool, disk: Any) -> None:
    """A filesystem that cannot be opened or walked: say so, with the undefined ranges of
    the disk met on the way (a boot sector or folder in a damaged block is the usual cause)."""
    met = merge_gaps(disk.touched)
    if met:
        exc.params["undefined_met"] = [g.as_dict() for g in met[:100]]
        if not as_json:
            _say_met(c, met, console(stderr=True))
    fail(c, exc, as_json)


def _say_met(c: Ctx, met: list[Any], out: Any) -> None:
    """The undefined ranges met reading a filesystem's own records, for a person."""
    out.print(Text(c.msg("ui.fs.undefined-met", count=len(met)), style="red"))
    out.print(gaps_table(met, c.msg))


# ---------------------------------------------------------------- mount
@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("mountpoint", type=click.Path(file_okay=False))
@search_option
@pass_ctx
@audited("disk")
def mount(c: Ctx, disk: str, mountpoint: str, search: tuple[str, ...]) -> None:
    """A read-only FUSE view of the flattened disk (MOUNTPOINT/disk.raw) and of its partitions
    (p1.raw, p2.raw, ...) for your own tools. Runs until Ctrl-C, which unmounts it."""
    from hvrescue.fs.mount import build_view
    from hvrescue.fs.mount import mount as run
    from hvrescue.vdisk.disk import Disk

    try:
        with Disk.open(disk, list(search)) as d:
            names = ", ".join(build_view(d))
            console(stderr=True).print(
                Text(c.msg("ui.mount.ready", mountpoint=mountpoint, files=names))
            )
            run(d, mountpoint, debug=c.debug)
    except HvrescueError as exc:
        fail(c, exc, False)
        return
    except RuntimeError as exc:  # libfuse refused to mount (permissions, busy mountpoint)
        fail(c, InputError("error.mount.failed", path=mountpoint, reason=str(exc)), False)
        return
    console(stderr=True).print(Text(c.msg("ui.mount.unmounted", mountpoint=mountpoint)))
    sys.exit(EXIT_OK)
