"""The facts of one item of a walk, with an on-disk EVTX log read without the text readers.

``collect.facts_from_item`` reads every kind of item (its text readers are imported only for
text, ``logs/collect_text.py``). :func:`read_item` gives exactly what ``facts_from_item`` gives;
for an EVTX file on disk outside a collector's bundle it takes the same steps
(``collect._evtx``) itself, and only another item imports ``collect`` (a worker process then
imports no more than the EVTX reader).
tests/test_facts_jsonl_fast.py holds the two equal.
"""

from __future__ import annotations

from hvrescue.evidence import Budget, Item, ItemError, LimitExceeded, Skipped
from hvrescue.evidence import classify as cls
from hvrescue.facts.model import FactSet
from hvrescue.logs.events import EventFilter


def plain_evtx(item: Item) -> bool:
    """An EVTX file on disk, outside a collector's bundle (which may say it is no evidence)."""
    return (
        item.content == cls.C_EVTX
        and not item.member
        and item.route is None
        and item.kind not in (cls.ARCHIVE, cls.BUNDLE)
    )


def read_item(item: Item, budget: Budget, keep: EventFilter | None = None) -> FactSet:
    """:func:`hvrescue.logs.collect.facts_from_item` (``keep``: the events kept in full)."""
    if not plain_evtx(item):
        from hvrescue.logs.collect import facts_from_item

        return facts_from_item(item, budget, keep)
    from hvrescue.logs.evtx_reader import read_evtx

    out = FactSet()
    try:
        with item.open() as fh:
            facts, problems = read_evtx(fh, item.path, keep)  # type: ignore[arg-type]
    except (ItemError, LimitExceeded) as exc:
        from hvrescue.logs.collect import add_skipped

        add_skipped(out, Skipped(item.path, exc.reason, exc.detail))
        return out
    out.facts.extend(facts)
    out.problems.extend(problems)
    return out
