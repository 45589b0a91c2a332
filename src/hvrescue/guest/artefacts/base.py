"""An artefact reader, and running one: timed, and failing alone (whatever it raises becomes an
entry for that artefact and a ``guest.artefact-failed`` problem; the other readers still run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hvrescue.deps import MissingDependencyError, available
from hvrescue.errors import HvrescueError
from hvrescue.guest.context import GuestContext
from hvrescue.guest.result import ArtefactRun


@dataclass(frozen=True)
class Artefact:
    """One kind of evidence inside a guest and the function that turns it into facts.

    ``roles``: the volumes it applies to (what the detectors said a volume is: ``windows``,
    ``boot``; a Linux reader would take ``linux``). ``reads``: the guest paths it looks at, for a
    person. ``needs``: optional Python modules it cannot work without."""

    name: str
    reads: tuple[str, ...]
    run: Callable[[GuestContext], None]
    roles: frozenset[str] = frozenset({"windows"})
    needs: tuple[str, ...] = ()


def _interrupted(exc: BaseException) -> bool:
    """True when a KeyboardInterrupt hides behind ``exc`` (pytsk3 turns one into RuntimeError)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def run_artefact(artefact: Artefact, ctx: GuestContext) -> ArtefactRun:
    """Run one reader on one volume and record how it went in ``ctx.result``."""
    result = ctx.result
    run = ArtefactRun(artefact.name, ctx.partition)
    facts, problems = len(result.facts), len(result.problems)
    start = time.perf_counter()
    missing = [m for m in artefact.needs if not available(m)]
    try:
        if missing:
            raise MissingDependencyError(missing[0], artefact.name)
        artefact.run(ctx)
    except MissingDependencyError as exc:
        run.status = "missing-dependency"
        run.error = {"key": exc.key, "params": dict(exc.params)}
        ctx.problem("/", "guest.artefact-needs-package", exc.params["package"], **_who(artefact))
    except Exception as exc:  # one reader's failure must not end the others
        if _interrupted(exc):
            raise KeyboardInterrupt from exc
        run.status = "failed"
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, HvrescueError):
            run.error = {"key": exc.key, "params": dict(exc.params), "detail": detail[:300]}
        else:
            run.error = {"key": "guest.artefact-failed", "params": {}, "detail": detail[:300]}
        ctx.problem("/", "guest.artefact-failed", detail, **_who(artefact))
    run.seconds = time.perf_counter() - start
    run.facts = len(result.facts) - facts
    run.problems = len(result.problems) - problems
    result.artefacts.append(run)
    result.timings[artefact.name] = result.timings.get(artefact.name, 0.0) + run.seconds
    return run


def _who(artefact: Artefact) -> dict[str, str]:
    return {"artefact": artefact.name}
