"""Small formatting helpers shared by verify, bench and report: numbers, sizes, text tables that fit
80 columns (``wide``: every column) and are plain text when piped."""
from __future__ import annotations

import io
import math
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from edgeport.files import human_size


def fmt_num(value: Any, spec: str = ".4g", missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def fmt_points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


fmt_size = human_size  # the export's units, so sizes read the same in every table


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.1f} µs"
    if us < 1e6:
        return f"{us / 1e3:.2f} ms"
    return f"{us / 1e6:.2f} s"


#: The width a table fits unless ``wide``: a plain 80-column terminal or CI log.
WIDTH = 80
WIDE = 240


def text_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
               styles: Sequence[str | None] | None = None, *, left: int = 2, drop_empty: bool = False,
               narrow: Sequence[str] | None = None, wide: bool = False, plain: bool | None = None,
               whole: Sequence[str] = ()) -> str:
    """A table as text that fits :data:`WIDTH` columns (``wide``: every column, up to :data:`WIDE`).

    ``styles``: per-row rich style (e.g. "red" for a failing row); ignored in plain text.
    ``left``: how many leading (text) columns are left-aligned; the rest are numbers.
    ``drop_empty``: leave out the columns that are "-" on every row (figures no output has).
    ``narrow``: the header names kept unless ``wide`` (the table's few deciding columns).
    ``plain``: plain text columns, no box drawing (default: when stdout is not a terminal, or without rich).
    ``whole``: the header names never shortened to fit (the figure that decides a verdict); others give way.
    """
    keep = list(range(len(header)))
    if drop_empty and rows:
        keep = [i for i in keep if any(str(r[i]) != "-" for r in rows)]
    if narrow is not None and not wide:
        keep = [i for i in keep if header[i] in narrow]
    left = sum(1 for i in keep if i < left)
    keep_whole = [header[i] in whole for i in keep]
    header, rows = [header[i] for i in keep], [[str(r[i]) for i in keep] for r in rows]
    width = WIDTH if narrow is not None and not wide else WIDE  # a table with no narrow form keeps every column
    plain = not _is_terminal() if plain is None else plain
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - a Pi without rich
        plain = True
    if plain:
        return _plain(title, header, rows, left, width, keep_whole)
    natural = [max(len(c) for c in col) for col in zip(header, *rows)] if header else []
    narrow_box = width == WIDTH
    fold = narrow_box and sum(natural) + 2 * (len(natural) - 1) > width  # wrap cells only when they must
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD if narrow_box else box.HEAVY_HEAD,
                  show_edge=not narrow_box, pad_edge=False, padding=(0, 1, 0, 0) if narrow_box else (0, 1))
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < left else "right", overflow="fold", no_wrap=not fold,
                         min_width=natural[i] if keep_whole[i] else None)
    for i, row in enumerate(rows):
        table.add_row(*row, style=(styles[i] if styles else None))
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip().splitlines())


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _plain(title: str, header: list[str], rows: list[list[str]], left: int, width: int,
           keep_whole: list[bool]) -> str:
    """Columns two spaces apart, ``-`` under the header; the widest column not kept whole shortened
    (``…``) to fit."""
    widths = [max(len(c) for c in col) for col in zip(header, *rows)] if header else []
    gap = 2 if sum(widths) + 2 * (len(widths) - 1) <= width else 1  # one space apart before anything shortens
    shrinkable = [k for k in range(len(widths)) if not keep_whole[k]]
    while shrinkable and sum(widths) + gap * (len(widths) - 1) > width:
        i = max(shrinkable, key=lambda k: widths[k])
        if widths[i] <= 8:
            break
        widths[i] -= 1

    def cell(text: str, i: int) -> str:
        text = text if len(text) <= widths[i] else text[:widths[i] - 1] + "…"
        return text.ljust(widths[i]) if i < left else text.rjust(widths[i])

    lines = textwrap.wrap(title, width, subsequent_indent="  ") if title else []
    sep = " " * gap
    lines += [sep.join(cell(h, i) for i, h in enumerate(header)).rstrip(), sep.join("-" * w for w in widths)]
    lines += [sep.join(cell(c, i) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def fit(lines: Sequence[str], wide: bool = False) -> list[str]:
    """Lines wrapped at :data:`WIDTH` (a long note or failure), continuation indented; as given when ``wide``."""
    if wide:
        return list(lines)
    out: list[str] = []
    for line in lines:
        for part in line.splitlines() or [""]:
            out += textwrap.wrap(part, WIDTH, subsequent_indent="    ", break_on_hyphens=False) or [""] \
                if len(part) > WIDTH else [part]
    return out


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 2) -> str:
    """A GitHub-flavoured markdown table; the first ``left`` columns are text, the rest numbers."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)
