"""One proof path for what a deploy target ships: a batch-1 variant, or another engine's answers
(TFLite Micro, MediaPipe, a browser), held to `edgeport verify`'s figures (``figures.compare``) and
gates (``gates.Gate``) against a reference, as a verify row (:class:`~.result.Result`, the rows of
verify.json). A target picks the reference and the gate; nothing here knows a target.

Two kinds of gate are used: a format's own (``GateTable.for_format``: what verify holds the
verified artifact to against Keras), and :data:`SAME_MODEL` for a file against the one it was made
from or the same file in another engine: the same top-1 on every input.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeport.benchmarks.verify.figures import compare, output_kind
from edgeport.benchmarks.verify.gates import Gate, GateTable, load_gates
from edgeport.benchmarks.verify.result import Result, summarize
from edgeport.errors import EdgeportError
from edgeport.tables import fmt_num, fmt_pct, text_table

#: A file against the one it was made from, or one file in two engines: the same top-1 on every input.
SAME_MODEL = Gate(min_agreement=1.0)


class ProofMismatchError(EdgeportError):
    """A proved output whose shape differs from its reference's."""


def _named(x: Any) -> dict[str, np.ndarray]:
    return {str(k): np.asarray(v) for k, v in x.items()} if isinstance(x, Mapping) else {"output": np.asarray(x)}


def verified_gates(verify: Mapping[str, Any]) -> GateTable:
    """The gates the model was verified under (verify.json's ``gates``), the defaults when it has none."""
    try:
        return load_gates(dict(verify.get("gates") or {}) or None)
    except EdgeportError as exc:  # written by another edgeport: its gate fields are not this one's
        raise EdgeportError(f"the gates in verify.json cannot be read ({exc}); run `edgeport verify` again") from None


def prove(fmt: str, runtime: str, file: str, ref: Any, out: Any, *, gate: Gate | Mapping[str, Gate],
          against: str, precision: str, engine: str = "", y: np.ndarray | None = None,
          noise: float | Mapping[str, float] | None = None, task: str | None = None,
          kinds: Mapping[str, str] | None = None) -> Result:
    """``out`` (one array or arrays by output name) against ``ref`` held to ``gate`` (one for every
    output, or one per output name), figured as verify figures an artifact: one verify row.

    against: what the reference is (shown in the row's notes and the proof table);
    noise: the reference's float32 noise (per output or one figure), for a tight gate's bound;
    y: labels (the first output's accuracy); kinds: output kinds by name (default: detected).
    """
    refs, outs = _named(ref), _named(out)
    if len(refs) == 1 and len(outs) == 1:
        outs = {next(iter(refs)): next(iter(outs.values()))}
    result = Result(fmt, runtime, file, precision, engine=engine, notes=[f"against {against}"])
    first = next(iter(refs))
    for name, r in refs.items():
        g = gate[name] if isinstance(gate, Mapping) else gate
        o = outs.get(name)
        if o is None or o.shape != r.shape:
            result.fail(ProofMismatchError(f"{file} on {runtime}: output {name!r} is "
                                           f"{None if o is None else list(o.shape)}, {against}'s {list(r.shape)}"))
            continue
        kind = (kinds or {}).get(name) or output_kind(r, task or "classification")
        f = compare(r, o, kind=kind, y=y if name == first else None, margin=g.confidence_margin,
                    settings=g.settings())
        f["output"] = name
        if g.tight:
            n = noise.get(name) if isinstance(noise, Mapping) else noise
            f["tolerance_diff"] = f["max_abs_diff"]
            f["tolerance"], f["tolerance_basis"] = g.tolerance(n, float(np.abs(r).max(initial=0.0)))
            f["noise"] = n
        result.outputs[name] = f
        result.gate = g.to_dict() if not isinstance(gate, Mapping) else {k: v.to_dict() for k, v in gate.items()}
        for failure in g.failures(f, artifact=file, runtime=runtime, output=name if len(refs) > 1 else "",
                                  labelled=y is not None):
            result.fail(failure)
    result.figures = summarize(result.outputs) if result.outputs else {}
    return result


def against(row: Result | Mapping[str, Any]) -> str:
    """What a proof row was proved against (its first note)."""
    notes = row.notes if isinstance(row, Result) else row.get("notes") or []
    return next((n.removeprefix("against ") for n in notes if n.startswith("against ")), "-")


def table(title: str, rows: list[Result]) -> str:
    """The proof rows as `edgeport bundle` prints them: one line per row, verify's figures."""
    body = []
    for r in rows:
        f = r.figures
        tol = f.get("tolerance")
        body.append([r.file, r.runtime, against(r), str(f.get("n", "-")), fmt_pct(f.get("agreement")),
                     fmt_num(f.get("max_abs_diff"), ".2e"),
                     (fmt_num(f.get("tolerance_diff"), ".2e") + " <= " + fmt_num(tol, ".2e"))
                     if tol is not None else "-",
                     fmt_pct(f.get("accuracy")), r.status.upper()])
    header = ["file", "runtime", "against", "inputs", "top-1 agreement", "max |diff|", "tolerance", "accuracy",
              "gate"]
    return text_table(title, header, body, left=2)


def failure_lines(rows: list[Result]) -> list[str]:
    """Every failure of the rows, one line each (the gate's own words)."""
    return [str(e) for r in rows for e in r.failures]
