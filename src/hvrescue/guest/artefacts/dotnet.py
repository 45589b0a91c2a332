""".NET folder counts: subfolders of each Windows\\Microsoft.NET\\Framework*\\<version> and of
its "Temporary ASP.NET Files" (thousands of them stop the VSS System Writer)."""

from __future__ import annotations

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext

DOTNET = "/Windows/Microsoft.NET"


def read_dotnet(ctx: GuestContext) -> None:
    for fw in ctx.listdir(DOTNET):
        if not fw.is_dir or not fw.name.lower().startswith("framework"):
            continue
        for version in ctx.listdir(fw.path):
            if not version.is_dir:
                continue
            temp = version.path + "/Temporary ASP.NET Files"
            entries = ctx.listdir(temp)
            if entries:
                count = sum(1 for e in entries if e.is_dir)
                ctx.fact("folder_count", {"path": temp.replace("/", "\\"), "count": count}, temp)
            subfolders = sum(1 for e in ctx.listdir(version.path) if e.is_dir)
            ctx.fact(
                "folder_count",
                {"path": version.path.replace("/", "\\"), "count": subfolders},
                version.path,
            )


READER = Artefact(
    name="dotnet-folders",
    reads=(DOTNET + "/Framework*/<version>/Temporary ASP.NET Files",),
    run=read_dotnet,
)
