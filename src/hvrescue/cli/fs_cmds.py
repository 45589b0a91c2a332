"""`ls`, `extract`, `mount`: partitions and files inside a disk or chain, read-only.

Each command parses its arguments, calls one function of :mod:`hvrescue.fs.listing` and renders
its result."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from hvrescue.cli.main import (
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
from hvrescue.cli.output import console, emit_json, gaps_table
from hvrescue.cli.unlock import secret_options
from hvrescue.errors import HvrescueError

if TYPE_CHECKING:  # imported by the commands that use it: --help stays fast
    from hvrescue.fs.listing import FilesystemError

PARTITION_COLUMNS = ("index", "scheme", "offset", "size", "type", "filesystem", "name")


def _say_met(c: Ctx, met: list[Any], out: Any) -> None:
    """The undefined ranges met reading a filesystem's own records, for a person."""
    out.print(Text(c.msg("ui.fs.undefined-met", count=len(met)), style="red"))
    out.print(gaps_table(met, c.msg))


def _fail_with_met(c: Ctx, exc: FilesystemError, as_json: bool) -> None:
    """A filesystem that cannot be opened or walked: say so, with the undefined ranges of the
    disk met on the way (the error's ``undefined_met`` in JSON)."""
    if exc.met and not as_json:
        _say_met(c, exc.met, console(stderr=True))
    fail(c, exc, as_json)


# ---------------------------------------------------------------- ls
@cli.command("ls")
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("path", required=False)
@search_option
@json_option
@pass_ctx
@audited("disk")
@secret_options
def ls_(c: Ctx, disk: str, path: str | None, search: tuple[str, ...], as_json: bool) -> None:
    """Partitions and volumes of a disk or chain, or the files under PATH ('2:/Windows',
    '3/vg0/root:/etc', or '/Windows' when one volume holds a filesystem). Read-only: an ext3/4
    journal is replayed in memory only, nothing is repaired."""
    from hvrescue.fs.listing import FilesystemError, list_folder, list_partitions

    try:
        if path is None:
            _show_partitions(c, list_partitions(disk, list(search)), as_json)
        else:
            _show_folder(c, list_folder(disk, path, list(search)), as_json)
    except FilesystemError as exc:
        _fail_with_met(c, exc, as_json)
    except HvrescueError as exc:
        fail(c, exc, as_json)


def _show_partitions(c: Ctx, listing: Any, as_json: bool) -> None:
    code = EXIT_OK if listing.ok else EXIT_FINDINGS
    if as_json:
        emit_json(listing.as_dict())
        sys.exit(code)
    table = Table(show_header=True)
    for col in PARTITION_COLUMNS:  # folded, never cut: an id or a name may be typed next
        table.add_column(c.msg(f"ui.col.part-{col}"), overflow="fold")
    for r in listing.partitions:
        cells = {**r, "scheme": c.msg("ui.ls.no-table") if r["scheme"] == "none" else r["scheme"]}
        if r["type"] == "whole-disk":
            cells["type"] = c.msg("ui.ls.whole-disk")
        table.add_row(*(Text("" if cells[k] is None else str(cells[k])) for k in PARTITION_COLUMNS))
    console().print(table)
    _show_volumes(c, listing.volumes)
    if listing.undefined_met:
        _say_met(c, listing.undefined_met, console(stderr=True))
    sys.exit(code)


def _show_volumes(c: Ctx, volumes: list[dict[str, Any]]) -> None:
    """Every volume with its address; one that cannot be read says why."""
    out = console()
    out.print(Text(c.msg("ui.ls.volumes"), style="bold"))
    table = Table(show_header=True)
    for col in ("id", "kind", "filesystem", "size", "state"):  # folded, never cut: the id
        table.add_column(c.msg(f"ui.col.vol-{col}"), overflow="fold")  # is typed as ID:/path
    for v in volumes:
        problem = v.get("problem")
        if problem:
            state, style = c.msg(problem["key"], **problem["params"]), "yellow"
        elif v["readable"]:
            state, style = c.msg("ui.vol.readable"), ""
        elif v["filesystem"] == "lvm2":
            state, style = c.msg("ui.vol.container"), ""
        else:
            state, style = c.msg("ui.vol.unknown"), "yellow"
        kind = c.msg("ui.vol.lvm") if v["kind"] == "lvm" else c.msg("ui.vol.partition")
        if v["kind"] == "shadow":  # fs.shadow: oldest is vss1
            kind = f"{c.msg('ui.vol.shadow')} {v.get('created') or ''}".rstrip()
        if v.get("locked") is False and not problem:
            state = c.msg("ui.vol.bitlocker-unlocked")
        cells = (v["id"], kind, v["filesystem"] or "", str(v["size"]))
        table.add_row(*(Text(x) for x in cells), Text(state, style=style))
    out.print(table)


def _shown_target(target: str) -> str:
    """A link's target as printable text, its ``/`` kept (each part as a name is shown)."""
    from hvrescue.fs.names import display_name

    return "/".join(display_name(part) for part in target.split("/"))


def _show_folder(c: Ctx, listing: Any, as_json: bool) -> None:
    code = EXIT_OK if listing.ok else EXIT_FINDINGS
    if as_json:
        emit_json(listing.as_dict())
        sys.exit(code)
    table = Table(show_header=True)
    for col in ("type", "bytes", "mtime", "name"):  # a name is typed into `extract`
        table.add_column(
            c.msg(f"ui.col.{col}" if col != "type" else "ui.col.kind"), overflow="fold"
        )
    for e in listing.entries:
        kind = c.msg("ui.ls.dir") if e.is_dir else ""
        size = str(e.size)
        names = e.name + "".join(f"  [:{s.name}]" for s in e.streams if s.name)
        if e.kind in ("symlink", "special"):  # no data of its own to copy
            kind, size = c.msg(f"ui.ls.{e.kind}"), ""
            if e.link is not None:
                names += f" -> {_shown_target(e.link)}"
        style = ""
        if e.path in listing.incomplete:
            names += "  " + c.msg("ui.ls.incomplete")
            style = "red"
        table.add_row(Text(kind), Text(size), Text(e.modified or ""), Text(names, style=style))
    console().print(table)
    for note in listing.notes:
        console(stderr=True).print(Text(c.msg(note["key"], **note["params"]), style="yellow"))
    if listing.undefined_met:
        _say_met(c, listing.undefined_met, console(stderr=True))
    undefined = listing.disk_undefined
    if undefined:
        line = c.msg(
            "ui.ls.disk-undefined", count=len(undefined), bytes=sum(g.length for g in undefined)
        )
        console(stderr=True).print(Text(line, style="yellow"))
    sys.exit(code)


# ---------------------------------------------------------------- extract
@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1, required=True)
@click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False))
@click.option("--streams", is_flag=True, help="Also write NTFS alternate data streams.")
@search_option
@json_option
@pass_ctx
@audited("disk")
@secret_options
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
    from hvrescue.fs.listing import FilesystemError, extract_files

    def started() -> None:
        on_interrupt("ui.interrupted.extract", to=to_dir)

    try:
        result = extract_files(
            disk, list(paths), to_dir, streams, list(search), sys.argv, on_start=started
        )
    except FilesystemError as exc:
        _fail_with_met(c, exc, as_json)
        return
    except HvrescueError as exc:
        fail(c, exc, as_json)
        return
    code = EXIT_OK if result.ok else EXIT_FINDINGS
    if as_json:
        emit_json(result.as_dict())
        sys.exit(code)
    con = console()
    con.print(Text(c.msg("ui.extract.done", count=len(result.files), to=to_dir), style="bold"))
    for s in result.skipped:
        reason = s["reason"]
        if c.msg.has(reason):
            reason = c.msg(reason, path=s["source"], offset=s.get("offset", ""))
        con.print(Text(c.msg("ui.extract.skipped", source=s["source"], reason=reason), style="red"))
    if result.undefined_met:
        _say_met(c, result.undefined_met, con)
    for s in result.incomplete:
        line = c.msg("ui.extract.incomplete", source=s["source"], path=s["path"])
        con.print(Text(line, style="red"))
    if result.links:
        con.print(Text(c.msg("ui.extract.links", count=len(result.links))))
    for note in result.notes:
        con.print(Text(c.msg(note["key"], **note["params"]), style="yellow"))
    for m in result.manifests:
        con.print(Text(c.msg("ui.extract.manifest", path=m)))
    sys.exit(code)


# ---------------------------------------------------------------- mount
@cli.command()
@click.argument("disk", type=click.Path(dir_okay=False))
@click.argument("mountpoint", type=click.Path(file_okay=False))
@search_option
@pass_ctx
@audited("disk")
@secret_options
def mount(c: Ctx, disk: str, mountpoint: str, search: tuple[str, ...]) -> None:
    """A read-only FUSE view of the flattened disk (MOUNTPOINT/disk.raw) and of its partitions
    (p1.raw, p2.raw, ...) for your own tools. Runs until Ctrl-C, which unmounts it."""
    from hvrescue.fs.listing import mount_disk

    def ready(names: list[str]) -> None:
        line = c.msg("ui.mount.ready", mountpoint=mountpoint, files=", ".join(names))
        console(stderr=True).print(Text(line))

    try:
        mount_disk(disk, mountpoint, list(search), debug=c.debug, on_ready=ready)
    except HvrescueError as exc:
        fail(c, exc, False)
        return
    console(stderr=True).print(Text(c.msg("ui.mount.unmounted", mountpoint=mountpoint)))
    sys.exit(EXIT_OK)
