"""How a batch of rows becomes one engine call, or one call per row (numpy only).

A batch is one engine call only where that gives the answers of its rows run one by one. A model
whose batch is fixed (declared 1) is run row by row, never resized: a graph that reshapes to
``[1, -1, 16]`` would fold a resized batch into its anchors. A model with a free batch is checked
once, on its first batch of several rows: the first ``CHECK_ROWS`` rows together against the same
rows one at a time (shapes, and values within ``CHECK_TOLERANCE`` x the output's scale); one that
differs runs row by row from then on, and says why. Rows run one by one are put back together along
the batch axis when each row's output has one (axis 0 of size 1), else stacked as returned (an
output whose batch is not axis 0, a CTC recogniser's ``[T, 1, C]``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeport.runtimes.dims import fmt_dims, matches_exactly
from edgeport.types import TensorSpec

CHECK_ROWS = 4
#: Batched and single-row arithmetic differ by float rounding only: this bound is far above that
#: and far below what a batch folded into another axis or a batch statistic does.
CHECK_TOLERANCE = 1e-3


def combine(rows: Sequence[Sequence[np.ndarray]]) -> tuple[list[np.ndarray], list[bool]]:
    """Per-row raw outputs -> (one array per output, whether each was stacked): concatenated along
    the batch axis each row's output has (axis 0 of size 1), stacked as returned otherwise."""
    out, stacked = [], []
    for j in range(len(rows[0])):
        parts = [np.asarray(r[j]) for r in rows]
        batch_axis = all(p.ndim and p.shape[0] == 1 for p in parts)
        out.append(np.concatenate(parts) if batch_axis else np.stack(parts))
        stacked.append(not batch_axis)
    return out, stacked


Run = Callable[[list[np.ndarray]], list[np.ndarray]]


def by_rows(run: Run, feeds: list[np.ndarray], n: int) -> tuple[list[np.ndarray], list[bool]]:
    """Every row of ``feeds`` in its own engine call (``run``), put back together (:func:`combine`)."""
    return combine([run([f[i:i + 1] for f in feeds]) for i in range(n)])


def check(run: Run, feeds: list[np.ndarray], names: Sequence[str]) -> tuple[str, list[bool]]:
    """Whether the first ``CHECK_ROWS`` rows together give their answers one at a time: (why not,
    empty when they do; whether each output's rows are stacked)."""
    from edgeport.errors import EdgeportError

    k = min(feeds[0].shape[0], CHECK_ROWS)
    alone, stacked = by_rows(run, feeds, k)  # one row runs, or the model does not run at all: raised
    try:
        together = run([f[:k] for f in feeds])
    except EdgeportError:
        raise
    except Exception as exc:  # noqa: BLE001 - an engine's own error for a batch its graph cannot take
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"a batch of {k} rows does not run ({type(exc).__name__}: {first})", stacked
    return difference(together, alone, names, k), stacked


def difference(together: Sequence[np.ndarray], alone: Sequence[np.ndarray], names: Sequence[str],
               k: int) -> str:
    """Why a batch of ``k`` rows does not give its rows' answers (empty when it does)."""
    for name, a, b in zip(names, together, alone):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return (f"output {name!r}: a batch of {k} gives shape {a.shape}, its {k} rows one at a time give "
                    f"{b.shape} together" + ("" if a.ndim and a.shape[0] == k else
                                            f" (its batch is not axis 0: {a.shape[0]} != {k})"))
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        finite = np.isfinite(a64) & np.isfinite(b64)
        if not np.array_equal(np.isfinite(a64), np.isfinite(b64)):
            return f"output {name!r}: a batch of {k} and its rows one at a time differ in where NaN/inf appear"
        scale = max(1.0, float(np.abs(b64[finite]).max(initial=0.0)))
        diff = float(np.abs(a64[finite] - b64[finite]).max(initial=0.0))
        if diff > CHECK_TOLERANCE * scale:
            return (f"output {name!r}: a batch of {k} differs from its rows run one at a time by up to {diff:.3g} "
                    f"(> {CHECK_TOLERANCE:g} x {scale:.3g}): its answers change with the batch")
    return ""


def shape_notes(specs: Sequence[TensorSpec], names: Sequence[str], raw: Sequence[np.ndarray], n: int,
                stacked: Sequence[bool]) -> list[str]:
    """A note for every output whose shape for one row, as the engine returns it, differs from its
    declared shape (a free or fixed-1 batch axis matches): it is read as returned."""
    notes = []
    for spec, name, y, whole in zip(specs, names, raw, stacked):
        shape = tuple(np.shape(y))
        row = shape[1:] if whole else ((1, *shape[1:]) if shape and shape[0] == n else shape)
        declared = tuple(spec.shape)
        if declared and declared[0] == 1:
            declared = (None, *declared[1:])
        if not matches_exactly(row, declared):
            notes.append(f"output {name!r}: declared shape {fmt_dims(spec.shape)}, the engine returns "
                         f"{fmt_dims(row)} for one row: read as returned")
    return notes


def batch_major(outputs: Sequence[np.ndarray], n: int, stacked: Sequence[bool], where: str) -> list[np.ndarray]:
    """A session's outputs for ``n`` rows with the rows on axis 0, each row as the engine returned it:
    an output of one row that has no batch axis 0 (``[T, 1, C]``) gets one."""
    out = []
    for y, whole in zip(outputs, stacked):
        y = np.asarray(y)
        if whole or (y.ndim and y.shape[0] == n):
            out.append(y)
        elif n == 1:
            out.append(y[None])
        else:
            raise ValueError(f"{where}: an output of shape {y.shape} for {n} rows has no row axis")
    return out
