"""What `edgeport verify` found: one :class:`Result` per artifact x runtime, and the report."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks.verify import kinds
from edgeport.tables import fmt_num, fmt_pct, fmt_points, fmt_size, text_table
from edgeport.errors import EdgeportError

#: How a summary over several outputs picks its figure: the worst one (each kind adds its own figures).
_WORST_IS_MAX = ("max_abs_diff", "mean_abs_diff", "max_scaled_diff", "tolerance_diff", "nonfinite_values")
NO_LABELS = "no labels: accuracy not gated"
task_text = kinds.text  # the kind's own figures in a few words


def summarize(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One figure set for a row: the output's own for one output, the worst per figure for several."""
    if len(outputs) == 1:
        return dict(next(iter(outputs.values())))
    out: dict[str, Any] = {}
    worst_max, worst_min = (*_WORST_IS_MAX, *kinds.worst_is_max()), kinds.worst_is_min()
    for figures in outputs.values():
        for key, value in figures.items():
            if key not in out or value is None:
                out.setdefault(key, value)
            elif out[key] is None:
                out[key] = value
            elif key in worst_max:
                out[key] = max(out[key], value)
            elif key in worst_min:
                out[key] = min(out[key], value)
            elif key == "finite":
                out[key] = out[key] and value
    return out


@dataclass
class Result:
    """One artifact on one runtime: its figures per output, its gate, and what failed."""

    format: str
    runtime: str
    file: str
    precision: str
    status: str = "pass"  # pass | fail | refused | error
    size_bytes: int | None = None
    engine: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    failures: list[EdgeportError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    quant_debug: dict[str, Any] | None = None

    def fail(self, error: EdgeportError, status: str = "fail") -> None:
        self.failures.append(error)
        self.status = status if self.status == "pass" else self.status

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "runtime": self.runtime, "engine": self.engine, "file": self.file,
                "precision": self.precision, "status": self.status, "size_bytes": self.size_bytes,
                "figures": self.figures, "outputs": self.outputs, "gate": self.gate, "timing": self.timing,
                "notes": self.notes, "seconds": round(self.seconds, 3),
                "failures": [_error_dict(e) for e in self.failures], "quant_debug": self.quant_debug}


def _error_dict(e: EdgeportError) -> dict[str, Any]:
    to_dict = getattr(e, "to_dict", None)
    return to_dict() if callable(to_dict) else {"type": type(e).__name__, "message": str(e)}


@dataclass
class VerifyReport:
    model: str
    model_dir: Path
    data: dict[str, Any]
    reference: dict[str, Any]
    gates: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dest: Path | None = None
    slow_paths: list[dict[str, Any]] = field(default_factory=list)  # formats far below their float sibling

    @property
    def keras(self) -> dict[str, Any]:
        """The reference's own figures (accuracy on the labelled data)."""
        return self.reference.get("figures", {})

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == "pass" for r in self.results)

    @property
    def failures(self) -> list[EdgeportError]:
        return [e for r in self.results for e in r.failures]

    def raise_for_failures(self) -> None:
        """Raise the first typed failure (GateError, IntegrityError, LoadError ...), if any."""
        if self.failures:
            raise self.failures[0]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": 2, "model": self.model, "ok": self.ok, "data": self.data, "reference": self.reference,
                "keras": self.keras, "gates": self.gates, "results": [r.to_dict() for r in self.results], "slow_paths": self.slow_paths,
                "notes": self.notes}

    def _row(self, r: Result, name: str, f: dict[str, Any]) -> list[str]:
        tol = f.get("tolerance")
        return [r.format, r.runtime, r.engine or "-", fmt_size(r.size_bytes),
                f"{name or '-'}: {f.get('kind', '?')}", fmt_pct(f.get("accuracy")),
                fmt_points(f.get("accuracy_delta_points")), fmt_pct(f.get("agreement")),
                fmt_pct(f.get("confident_agreement")), fmt_num(f.get("kl_divergence"), ".2g"), task_text(f) or "-",
                fmt_num(f.get("max_abs_diff"), ".2e"),
                (fmt_num(f.get("tolerance_diff"), ".2e") + " <= " + fmt_num(tol, ".2e")) if tol is not None else "-",
                fmt_num(r.timing.get("images_per_s"), ",.0f"), r.status.upper()]

    def render(self) -> str:
        from edgeport.benchmarks.verify.quant_debug import render_table

        rows, styles = [], []
        for r in self.results:
            for name, f in (r.outputs.items() if r.outputs else [("", r.figures)]):
                rows.append(self._row(r, name, f))
                styles.append(None if r.status == "pass" else "bold red")
        acc = self.keras.get("accuracy")
        title = (f"verify {self.model}: {self.data.get('n')} inputs from {self.data.get('source')} against "
                 f"{self.reference.get('runtime', '?')} {Path(str(self.reference.get('source', '?'))).name}"
                 + (f" (accuracy {acc:.2%})" if acc is not None else ""))
        header = ["format", "runtime", "engine", "size", "output: kind", "accuracy", "Δ pts", "agree", "confident",
                  "KL", "task figures", "max|diff|", "tight diff <= tolerance", "img/s", "gate"]
        out = [text_table(title, header, rows, styles, left=5, drop_empty=True)]
        out += [f"FAILED {type(e).__name__}: {e}" for e in self.failures]
        out += [render_table(r.quant_debug) for r in self.results if r.quant_debug]
        out += [f"note: {n}" for n in dict.fromkeys(self.notes + [n for r in self.results for n in r.notes])]
        out.append(f"{self.model}: {'all artifacts pass their gates' if self.ok else 'VERIFY FAILED'}"
                   + (f" -> {self.dest}" if self.dest else ""))
        return "\n".join(out)
