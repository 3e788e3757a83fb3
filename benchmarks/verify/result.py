"""What `edgeport verify` found: one :class:`Result` per artifact x runtime, and the report."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeport.benchmarks.verify import kinds

from edgeport.errors import EdgeportError
from edgeport.tables import fit, fmt_num, fmt_pct, fmt_points, fmt_size, text_table

#: How a summary over several outputs picks its figure: the worst one (each kind adds its own figures).
_WORST_IS_MAX = ("max_abs_diff", "mean_abs_diff", "max_scaled_diff", "tolerance_diff", "nonfinite_values")
NO_LABELS = "no labels: accuracy not gated"
task_text = kinds.text  # the kind's own figures in a few words


def now() -> str:
    """When a row was verified (UTC, to the second)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    sha256: str | None = None  # the artifact's (its manifest entry's), to tell a later verify whether it changed
    verified_at: str = field(default_factory=now)

    def fail(self, error: EdgeportError, status: str = "fail") -> None:
        self.failures.append(error)
        self.status = status if self.status == "pass" else self.status

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "runtime": self.runtime, "engine": self.engine, "file": self.file,
                "precision": self.precision, "status": self.status, "size_bytes": self.size_bytes,
                "figures": self.figures, "outputs": self.outputs, "gate": self.gate, "timing": self.timing,
                "notes": self.notes, "seconds": round(self.seconds, 3),
                "failures": [_error_dict(e) for e in self.failures], "quant_debug": self.quant_debug,
                "sha256": self.sha256, "verified_at": self.verified_at}


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
                "keras": self.keras, "gates": self.gates, "results": [r.to_dict() for r in self.results],
                "slow_paths": self.slow_paths,
                "notes": self.notes}

    def _row(self, r: Result, name: str, f: dict[str, Any], named: bool) -> list[str]:
        tol = f.get("tolerance")
        return [r.format, r.runtime, r.engine or "-", fmt_size(r.size_bytes),
                f"{name or '-'}: {f.get('kind', '-')}" if named else str(f.get("kind", "-")),
                deciding_figure(r, name, f), fmt_pct(f.get("accuracy")),
                fmt_points(f.get("accuracy_delta_points")), fmt_pct(f.get("agreement")),
                fmt_pct(f.get("confident_agreement")), fmt_num(f.get("kl_divergence"), ".2g"), task_text(f) or "-",
                fmt_num(f.get("max_abs_diff"), ".2e"),
                (fmt_num(f.get("tolerance_diff"), ".2e") + " <= " + fmt_num(tol, ".2e")) if tol is not None else "-",
                fmt_num(r.timing.get("images_per_s"), ",.0f"), r.status.upper()]

    def render(self, wide: bool = False) -> str:
        """The table (80 columns: format, runtime, kind, the deciding figure, the verdict; ``wide``: all)."""
        from edgeport.benchmarks.verify.quant_debug import render_table

        rows, styles = [], []
        named = any(len(r.outputs) > 1 for r in self.results)
        for r in self.results:
            for name, f in (r.outputs.items() if r.outputs else [("", r.figures)]):
                rows.append(self._row(r, name, f, named))
                styles.append(None if r.status == "pass" else "bold red")
        acc = self.keras.get("accuracy")
        title = (f"verify {self.model}: {self.data.get('n')} inputs from {self.data.get('source')} against "
                 f"{self.reference.get('runtime', '?')} {Path(str(self.reference.get('source', '?'))).name}"
                 + (f" (accuracy {acc:.2%})" if acc is not None else ""))
        header = ["format", "runtime", "engine", "size", "output: kind" if named else "kind", "deciding figure (gate)",
                  "accuracy", "Δ pts", "agree", "confident", "KL", "task figures", "max|diff|",
                  "tight diff <= tolerance", "img/s", "gate"]
        out = [text_table(title, header, rows, styles, left=6, drop_empty=True, wide=wide, narrow=NARROW,
                          whole=["deciding figure (gate)", "output: kind", "kind"])]
        out += fit([f"FAILED {type(e).__name__}: {e}" for e in self.failures], wide)
        out += fit([line for r in self.results if r.quant_debug
                    for line in render_table(r.quant_debug, wide=wide).splitlines()], wide)
        out += fit([f"note: {n}" for n in dict.fromkeys(self.notes + [n for r in self.results for n in r.notes])],
                   wide)
        out += fit([f"{self.model}: {'all artifacts pass their gates' if self.ok else 'VERIFY FAILED'}"
                    + (f" -> {self.dest}" if self.dest else "")], wide)
        return "\n".join(out)


#: The columns of the 80-column table; ``--wide`` shows every column.
NARROW = ("format", "runtime", "kind", "output: kind", "deciding figure (gate)", "gate")
#: Short names in the deciding-figure column (a figure not here is shown by its own name).
SHORT = {"agreement": "agree", "confident_agreement": "confident", "kl_divergence": "KL",
         "accuracy_delta_points": "Δ pts", "tolerance_diff": "diff", "max_abs_diff": "max|diff|"}


def deciding_figure(r: Result, name: str, f: dict[str, Any]) -> str:
    """The figure that decides an output's verdict, with its gate: the first that fails, else the first
    the gate bounds (after finiteness); a refused or broken artifact: the error's type."""
    from edgeport.benchmarks.verify.gates import Gate

    mine = [e for e in r.failures if getattr(e, "figure", None) and getattr(e, "output", "") in ("", name)]
    if mine:
        return figure_text(mine[0].figure, mine[0].value, mine[0].gate)
    if r.failures:
        return type(r.failures[0]).__name__
    try:
        checks = [c for c in Gate(**r.gate).checks(f, labelled=f.get("accuracy") is not None) if c[0] != "finite"]
    except (TypeError, ValueError):  # no gate recorded (an artifact that never ran)
        return "-"
    return figure_text(checks[0][0], checks[0][2], checks[0][1]) if checks else "-"  # (figure, gate, value, ok)


def figure_text(figure: str, value: Any, gate: str) -> str:
    """``agree 97.80% (>= 99.00%)``: the figure's short name, its value (a percentage when the gate
    is one), and the gate without its explanation."""
    bound = str(gate).split(" (")[0]
    if value is None:
        shown = "not measured"
    elif isinstance(value, float) and "%" in bound:
        shown = f"{value:.2%}"
    else:
        shown = fmt_num(value, ".3g")
    return f"{SHORT.get(figure, figure)} {shown} ({bound})"


#: How long merging rows into verify.json waits for another command's hold on the model (a merge, a
#: fix's short write); an export holding it longer is one line saying to wait, as before.
MERGE_WAIT_S = 60.0


def merged(previous: dict[str, Any] | None, new: dict[str, Any],
           current: dict[str, str] | None = None) -> dict[str, Any]:
    """verify.json after a verify of some formats only (``edgeport verify --formats``, ``edgeport fix``):
    ``new``'s rows replace every row of the formats it re-verified (their artifact changed, so an older
    row of theirs on any runtime is stale); the other formats' rows are kept, each with the time it was
    verified (``verified_at``), and ``ok`` is recomputed over all of them. Rows from other data or
    another reference are not kept (they prove nothing beside these); a note says so. ``current``
    ({format: sha256} of the manifest now): a kept row whose artifact is no longer listed or whose
    sha256 has changed since it was verified is dropped (it proved other bytes), said in a note."""
    if not previous or not isinstance(previous.get("results"), list):
        return new
    redone = {r.get("format") for r in new.get("results", [])}
    same = all((previous.get(k) or {}).get(field_) == (new.get(k) or {}).get(field_)
               for k, field_ in (("data", "sha256"), ("reference", "source")))
    kept = [r for r in previous["results"] if r.get("format") not in redone] if same else []
    notes = list(new.get("notes", []))
    changed = [r for r in kept if current is not None and r.get("sha256") is not None
               and current.get(r.get("format")) != r.get("sha256")]
    if changed:
        kept = [r for r in kept if r not in changed]
        notes.append(f"rows of {', '.join(dict.fromkeys(r.get('format', '?') for r in changed))} dropped: the "
                     "artifact changed (or is gone) since they were verified; run `edgeport verify` on it again")
    if kept:
        when = {r.get("format", "?"): r.get("verified_at") for r in kept}
        notes.append(f"rows of {', '.join(sorted(redone))} verified again; those of "
                     + ", ".join(f + (f" (verified {t})" if t else "") for f, t in when.items())
                     + " kept from the last verify")
    elif not same and previous["results"]:
        notes.append("the last verify's other rows were on other data or another reference and are not kept: "
                     "run `edgeport verify MODEL` to prove every format together")
    results = kept + list(new.get("results", []))
    slow = [s for s in previous.get("slow_paths", []) if same and s.get("format") not in redone]
    return {**new, "ok": bool(results) and all(r.get("status") == "pass" for r in results), "results": results,
            "slow_paths": slow + list(new.get("slow_paths", [])), "notes": notes}


def write_merged(model_dir: Path, dest: Path, report: VerifyReport) -> None:
    """``report``'s rows merged into ``dest`` (``result.merged``) under the model's lock: the formats
    not verified now keep their rows, unless their artifact changed since (said in the report's notes)."""
    import json

    from edgeport.export.commit import model_lock
    from edgeport.files import write_json_atomic
    from edgeport.manifest import load_manifest

    with model_lock(model_dir, "verify", wait_s=MERGE_WAIT_S):
        try:
            previous = json.loads(dest.read_text())
        except (OSError, ValueError):
            previous = None
        artifacts = load_manifest(model_dir, missing_ok=True).get("artifacts") or {}
        current = {fmt: entry.get("sha256") for fmt, entry in artifacts.items() if isinstance(entry, dict)}
        doc = merged(previous, report.to_dict(), current)
        write_json_atomic(dest, doc)
    report.notes += [n for n in doc.get("notes", []) if n not in report.notes]
