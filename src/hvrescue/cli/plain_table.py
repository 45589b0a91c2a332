"""A two-column table (`info`'s field / value list) drawn as rich draws it where no terminal is
there, without importing rich's console and table (a third of `info`'s start-up, and the
drawing about as much again).

What is repeated here is what rich.table.Table does for ``Table(show_header=True)`` with a
plain column and a ``overflow="fold"`` one: the columns' widths (each cell measured, the widest
wrappable column narrowed first when the table is wider than the console), each cell wrapped
as Text.wrap wraps it (words; the first column's longer words cut with an ellipsis, the
second's folded), the header row aligned to the bottom, the other rows to the top, and the
HEAVY_HEAD box. Anything else (a stream that cannot encode the box, a console too narrow, a
tab, a header that rich would read as markup) returns None, and rich draws the table.
tests/test_plain_output.py holds the two side by side on random tables.
"""

from __future__ import annotations

from hvrescue.cli.plain import divide_ascii, rstrip_end

_STRIP_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))  # rich.control.STRIP_CONTROL_CODES
# rich.box.HEAVY_HEAD: top, header row and the line under it, body rows, bottom.
_TOP = ("┏", "━", "┳", "┓")
_HEAD = ("┃", "┃", "┃")
_UNDER_HEAD = ("┡", "━", "╇", "┩")
_BODY = ("│", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")
_PAD = 1  # rich's default cell padding (0, 1): one space each side
_EXTRA = 3  # the two edges and the divider


def _ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _cells(text: str) -> int:
    if _ascii(text):
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _set_cells(text: str, total: int) -> str:
    """rich.cells.set_cell_size: cropped or padded with spaces to ``total`` cells."""
    if _ascii(text):
        return text[:total] + " " * (total - len(text))
    from rich.cells import set_cell_size

    return set_cell_size(text, total)


def _measure(text: str, max_width: int) -> tuple[int, int]:
    """Measurement.get of a cell (Padding of a Text) at ``max_width``."""
    if max_width < 1:
        return 0, 0
    if max_width - 2 * _PAD < 1:  # Padding.__rich_measure__
        low, high = max_width, max_width
    else:
        # Text.__rich_measure__, then Measurement.get's normalize / with_maximum
        lines = text.splitlines()
        high = max((_cells(line) for line in lines), default=0)
        words = text.split()
        low = max((_cells(word) for word in words), default=high)
        low = max(0, min(max(0, low), high))
        high = max(0, max(low, high))
        low, high = min(low, max_width), min(high, max_width)
        if high < 1:
            low, high = 0, 0
        else:
            low = max(0, min(low, high))
        low, high = min(low + 2 * _PAD, max_width), min(high + 2 * _PAD, max_width)
    # the outer Measurement.get
    low = max(0, min(max(0, low), high))
    high = max(0, max(low, high))
    low, high = min(low, max_width), min(high, max_width)
    if high < 1:
        return 0, 0
    return max(0, min(low, high)), high


def _column_width(texts: list[str], max_width: int) -> int:
    """Table._measure_column(...).maximum."""
    if max_width < 1:
        return 0
    sizes = [_measure(text, max_width) for text in texts]
    return min(max((high for _low, high in sizes), default=max_width), max_width)


def _ratio_reduce(
    total: int, ratios: list[int], maximums: list[int], values: list[int]
) -> list[int]:
    """rich._ratio.ratio_reduce."""
    ratios = [ratio if limit else 0 for ratio, limit in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining = total
    out: list[int] = []
    for ratio, limit, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            given = min(limit, round(ratio * remaining / total_ratio))
            out.append(value - given)
            remaining -= given
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _widths(columns: list[list[str]], max_width: int) -> list[int]:
    """Table._calculate_column_widths for columns that may all wrap."""
    widths = [_column_width(texts, max_width) or 1 for texts in columns]
    total = sum(widths)
    if total <= max_width:
        return widths
    excess = total - max_width
    while total and excess > 0:  # Table._collapse_widths
        widest = max(widths)
        second = max(width if width != widest else 0 for width in widths)
        difference = widest - second
        ratios = [1 if width == widest else 0 for width in widths]
        if not any(ratios) or not difference:
            break
        widths = _ratio_reduce(excess, ratios, [min(excess, difference)] * len(widths), widths)
        total = sum(widths)
        excess = total - max_width
    if total > max_width:
        widths = _ratio_reduce(total - max_width, [1] * len(widths), widths, widths)
    return [_column_width(texts, width) for texts, width in zip(columns, widths, strict=True)]


def _divide(text: str, width: int, fold: bool) -> list[int]:
    if _ascii(text):
        return divide_ascii(text, width, fold)
    from rich._wrap import divide_line

    return divide_line(text, width, fold=fold)


def _wrap(text: str, width: int, fold: bool) -> list[str]:
    """Text.wrap(width, justify="left", overflow="fold" or "ellipsis"), each line padded."""
    out: list[str] = []
    for piece in text.split("\n"):
        offsets = _divide(piece, width, fold)
        for start, end in zip([0, *offsets], [*offsets, len(piece)], strict=True):
            line = rstrip_end(piece[start:end], width)
            if _cells(line) > width and not fold:  # Text.truncate: cut, "…" (one cell) after
                out.append(_set_cells(line, width - 1) + "…")
                continue
            out.append(_set_cells(line, width))  # cut (overflow "fold") or padded
    return out


def draw_table(header: tuple[str, str], rows: list[tuple[str, str]], width: int) -> str | None:
    """The table rich prints at ``width`` columns without a terminal, or None where rich must
    draw it itself."""
    if any("[" in h or ":" in h for h in header):
        return None  # rich reads a header given as text as markup (and emoji codes)
    cells = [[text.translate(_STRIP_CONTROL) for text in row] for row in [header, *rows]]
    if any("\t" in text for row in cells for text in row) or width < 2 * _EXTRA + 8:
        return None
    columns = [[row[0] for row in cells], [row[1] for row in cells]]
    widths = _widths(columns, width - _EXTRA)
    if min(widths) < 2 * _PAD + 2 or sum(widths) + _EXTRA > width:
        return None
    out = [_TOP[0] + _TOP[2].join(_TOP[1] * w for w in widths) + _TOP[3]]
    for index, row in enumerate(cells):
        wrapped = [
            _wrap(text, w - 2 * _PAD, fold=column == 1)
            for column, (text, w) in enumerate(zip(row, widths, strict=True))
        ]
        height = max(len(lines) for lines in wrapped)
        for column, lines in enumerate(wrapped):
            blank = [" " * (widths[column] - 2 * _PAD)] * (height - len(lines))
            wrapped[column] = blank + lines if index == 0 else lines + blank
        left, divider, right = _HEAD if index == 0 else _BODY
        for line in range(height):
            inner = divider.join(f" {lines[line]} " for lines in wrapped)
            out.append(f"{left}{inner}{right}")
        if index == 0:
            out.append(
                _UNDER_HEAD[0]
                + _UNDER_HEAD[2].join(_UNDER_HEAD[1] * w for w in widths)
                + _UNDER_HEAD[3]
            )
    out.append(_BOTTOM[0] + _BOTTOM[2].join(_BOTTOM[1] * w for w in widths) + _BOTTOM[3])
    return "\n".join(out) + "\n"
