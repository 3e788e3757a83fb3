"""Small formatting helpers shared by verify, bench and report: numbers, sizes, text tables."""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

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


def text_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
               styles: Sequence[str | None] | None = None, *, left: int = 2, drop_empty: bool = False) -> str:
    """A table as text: rich box drawing when rich is installed, plain columns otherwise.

    ``styles``: per-row rich style (e.g. "red" for a failing row); ignored without rich.
    ``left``: how many leading (text) columns are left-aligned; the rest are numbers.
    ``drop_empty``: leave out the columns that are "-" on every row (figures no output has).
    """
    if drop_empty and rows:
        keep = [i for i in range(len(header)) if any(str(r[i]) != "-" for r in rows)]
        left = sum(1 for i in keep if i < left)
        header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - plain fallback for a Pi without rich
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < left else "right", no_wrap=True)
    for i, row in enumerate(rows):
        table.add_row(*map(str, row), style=(styles[i] if styles else None))
    buf = io.StringIO()
    Console(file=buf, width=240, force_terminal=False,
            color_system=None).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip().splitlines())


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 2) -> str:
    """A GitHub-flavoured markdown table; the first ``left`` columns are text, the rest numbers."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)
