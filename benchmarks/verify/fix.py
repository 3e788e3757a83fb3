"""`edgeport fix MODEL`: when a quantized artifact fails its gate, find the cheapest one that passes.

For each fixable format (its registry row names a fixer) the search (:mod:`fix_search`, in a child process)
scores candidates on the verification inputs against the reference with the format's own gate:
more calibration samples, ONNX Runtime's calibration methods, then selective quantization (the
worst layers kept in float, grown until the gate passes, then pruned). The cheapest passing
candidate is exported through `edgeport export` with the same settings (so it is reproducible:
``--keep-float``, ``--onnx-keep-float``, ``--onnx-calibration``, ``--calibration-samples``), its
manifest entry records the whole trade table, and it is verified again like every artifact.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.children import raise_for, run_job
from edgeport.benchmarks.device_info import usable_cores
from edgeport.tables import fit, fmt_num, fmt_pct, fmt_points, fmt_size, fmt_us, text_table
from edgeport.benchmarks.verify import outputs as outs
from edgeport.benchmarks.verify import plan as plans
from edgeport.benchmarks.verify.command import run_plan
from edgeport.benchmarks.verify.gates import load_gates
from edgeport.benchmarks.verify.jobs import save_inputs
from edgeport.benchmarks.verify.reference import reference_for
from edgeport.benchmarks.verify.result import task_text
from edgeport.errors import EdgeportError
from edgeport.export import registry, tflite_batch1



@dataclass
class FixReport:
    model: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> search result
    notes: list[str] = field(default_factory=list)
    verified: Any = None
    ok: bool = True

    def render(self, wide: bool = False) -> str:
        """Each format's candidates (80 columns: candidate, size, p50, the kind's figures, the verdict;
        ``wide``: all) and what was chosen."""
        out = []
        for fmt, result in self.tables.items():
            rows, styles = [], []
            chosen = (result.get("chosen") or {}).get("label")
            for i, c in enumerate(result["candidates"]):
                f = c["figures"]
                label = c["label"] if len(c["label"]) <= 76 else c["label"][:75] + "…"  # whole in the manifest
                rows.append([("-> " if i == result.get("chosen_index") else "   ") + label, str(len(c["kept_float"])),
                             fmt_size(c["size_bytes"]), fmt_us(c["p50_us"]), fmt_pct(f.get("accuracy")),
                             fmt_points(f.get("accuracy_delta_points")), fmt_pct(f.get("agreement")),
                             fmt_pct(f.get("confident_agreement")), fmt_num(f.get("kl_divergence"), ".3g"),
                             task_text(f) or "-", "PASS" if c["passes"] else ("ERROR" if c["error"] else "fail")])
                styles.append(None if c["passes"] else "red")
            out.append(text_table(f"fix {self.model} {fmt}: candidates, cheapest first ({result['seconds']:.0f} s)",
                                  ["candidate", "float layers", "size", "p50 b1", "accuracy", "Δ pts", "agree",
                                   "confident", "KL", "task figures", "gate"], rows, styles, drop_empty=True,
                                  wide=wide, narrow=FIX_NARROW))
            out.append(f"{fmt}: " + (f"chose {chosen!r}" if chosen else "no candidate passes its gate"))
        out += fit([f"note: {n}" for n in self.notes], wide)
        if self.verified is not None:
            out.append(self.verified.render(wide=wide))
        out.append(f"{self.model}: {'fixed artifacts pass their gates' if self.ok else 'FIX FAILED'}")
        return "\n".join(out)


#: The columns of fix's 80-column candidate table; ``--wide`` shows every column.
FIX_NARROW = ("candidate", "float layers", "size", "agree", "task figures", "gate")


def _failing(model_dir: Path, fixable: list[str], report: FixReport) -> list[str]:
    """The fixable formats that failed the last `edgeport verify` (all of them when it has not run)."""
    import json

    try:
        last = json.loads((model_dir / plans.VERIFY_FILE).read_text())
    except (OSError, ValueError):
        return fixable
    failing = [f for f in fixable if any(r.get("format") == f and r.get("status") == "fail"
                                         for r in last.get("results", []))]
    if not failing:
        report.notes.append(f"nothing to fix: {', '.join(fixable) or 'no fixable format'} passed the last verify "
                            f"({model_dir / plans.VERIFY_FILE}); name --formats to search anyway")
    return failing


def _export_settings(manifest: dict[str, Any], fmt: str, settings: dict[str, Any]) -> dict[str, Any]:
    """export_model keyword arguments that rebuild the chosen candidate from the recorded calibration;
    what the format is built from the fixer says, and the formats that follow it are re-exported too
    (a C array embeds the model it was made from)."""
    from edgeport.benchmarks.verify.fix_alternatives import calibration_settings
    from edgeport.lazy import resolve

    entry = manifest["artifacts"][fmt]
    followers = [f for f in registry.followers(fmt) if f in manifest["artifacts"]]
    kwargs: dict[str, Any] = {**calibration_settings(manifest, fmt), "formats": [fmt, *followers],
                              "calibration_samples": int(settings["calibration_samples"])}
    return {**kwargs, **resolve(registry.info(fmt).fixer).export_settings(entry, settings)}


def _alternatives(model_dir: Path, fmt: str, manifest: dict[str, Any], data_dir: str | None, data_npz: str | None,
                  table, kinds: dict[str, str], timeout: float) -> dict[str, Any]:
    """{"alternatives": rows} measured now, or {"alternatives_error": why} (printed, never skipped)."""
    from edgeport.benchmarks.verify import fix_alternatives

    print(f"fix {model_dir.name}: {fmt} does not fit; measuring the alternatives "
          f"({', '.join(fix_alternatives.formats_for(fmt))}) ...", flush=True)
    try:
        return {"alternatives": fix_alternatives.measure(model_dir, fmt, manifest, data_dir=data_dir, data_npz=data_npz,
                                                         table=table, kinds=kinds, timeout=timeout)}
    except EdgeportError as exc:
        return {"alternatives": [], "alternatives_error": str(exc)}


def fix_model(model: str, *, out: Path = Path("artifacts"), formats: list[str] | None = None,
              data_npz: str | None = None, data_dir: str | None = None, gates: str | None = None,
              max_float: int = 64, timeout: float = 3600.0, max_seconds: float = 180.0,
              max_candidates: int = 24, max_float_fraction: float | None = None) -> FixReport:
    """Find the cheapest quantized artifact that passes its gate, export it, and prove it.

    model: model name or directory (its manifest lists the artifacts)
    out: artifacts directory the model name is looked up in
    formats: quantized formats to fix (default: the fixable formats that failed the last verify)
    data_npz: a .npz with x_test (and y_test) to score candidates on instead of the model's test set
    data_dir: data directory of the model's dataset
    gates: gate overrides, as for `edgeport verify`
    max_float: the most layers the search may keep in float
    timeout: seconds the search of one format may take
    max_seconds: seconds the whole search may take (shared by the formats); when it runs out the best candidate so far is kept and what was not tried is printed
    max_candidates: candidates one format's search may score
    max_float_fraction: the largest estimated fraction of the weights kept in float you accept (default 0.25: above it fix says int8 does not fit and leaves the artifact failing)
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    import time

    from edgeport.benchmarks.verify import fix_budget
    from edgeport.export.pipeline import export_model
    from edgeport.export.commit import model_lock
    from edgeport.manifest import load_manifest, save_manifest

    model_dir = plans.model_dir_of(model, Path(out))
    table = load_gates(gates)
    listed = load_manifest(model_dir)["artifacts"]
    report = FixReport(model_dir.name)
    fixable = registry.fixable()
    wanted = formats or _failing(model_dir, [f for f in fixable if f in listed], report)
    if not wanted:
        return report
    if unfixable := [f for f in wanted if f not in fixable]:
        raise EdgeportError(f"edgeport fix searches {', '.join(fixable)} only, not {', '.join(unfixable)} "
                            "(no fixer for them in the format registry)")
    for f in wanted:
        needs = registry.info(f).needs.value
        if needs not in listed:
            raise EdgeportError(f"{model_dir}: fixing {f} starts from the {needs} artifact; export it first "
                                f"(edgeport export {model_dir} --formats {needs})")
    plan = plans.from_model_dir(model_dir, data_dir=data_dir, data_npz=data_npz, limit=None, formats=wanted)
    if plan.saved_model is None:
        raise EdgeportError(f"{model_dir}: fix needs an intact SavedModel artifact (its reference); export it first")
    with tempfile.TemporaryDirectory(prefix="edgeport-fix-") as tmp:
        inputs = save_inputs(plan.test.x, Path(tmp) / "inputs.npz")
        reference = reference_for(plan.reference_source, plan.reference_runtime, inputs, key=plan.reference_key,
                                  cache=plan.cache, fp16=False, saved_model=plan.saved_model, threads=None,
                                  timeout=timeout)
        np.savez(Path(tmp) / "reference.npz", **reference.outputs)
        kinds, kind_notes = outs.resolve_kinds(plan, reference, {})  # each candidate is scored on its kind's gate
        report.notes += kind_notes
        labels = None
        if plan.test.y is not None:
            labels = Path(tmp) / "labels.npy"
            np.save(labels, plan.test.y)
        manifest = load_manifest(model_dir)
        deadline = time.perf_counter() + max_seconds
        limit = fix_budget.DEFAULT_MAX_FLOAT_FRACTION if max_float_fraction is None else max_float_fraction
        for n, fmt in enumerate(wanted):
            entry = manifest["artifacts"][fmt]
            job = {"kind": "fix_search", "format": fmt, "inputs": str(inputs), "task": plan.test.task,
                   "reference": str(Path(tmp) / "reference.npz"), "labels": str(labels) if labels else None,
                   "gate": table.for_format(fmt).to_dict(), "max_float": max_float, "kinds": kinds,
                   "calibration": entry.get("calibration") or manifest.get("calibration"),
                   "io_type": entry.get("io_type", "uint8"),
                   "source": str(model_dir / listed[registry.info(fmt).needs.value]["file"]),
                   **tflite_batch1.fix_job(model_dir, manifest, entry),  # an RNN exported at batch 1
                   "max_seconds": max(1.0, (deadline - time.perf_counter()) / (len(wanted) - n)),
                   "max_candidates": max_candidates}
            print(f"fix {report.model}: searching {fmt} candidates ...", flush=True)
            result = run_job(job, timeout=timeout)
            raise_for(result, f"{model_dir} ({fmt} search)")
            report.tables[fmt] = result
            if result.get("stopped"):
                report.notes.append(f"{fmt}: search stopped: {result['stopped']}; best so far: "
                                    f"{(result.get('chosen') or {}).get('label', 'none passing')}; not tried: "
                                    + "; ".join(result.get("not_tried", [])))
            rows = [r for r in result.get("ranking", []) if isinstance(r.get("rmse_per_scale"), float)]
            if len(rows) > 1 and rows[0].get("op"):
                report.notes.append(f"{fmt}: op {rows[0]['op']} at layer {rows[0]['tensor']}: error jumps from "
                                    f"{rows[1]['rmse_per_scale']:.3g} to {rows[0]['rmse_per_scale']:.3g} "
                                    "quantization steps (ranked first)")
            if result.get("cause"):
                report.notes.append(f"{fmt}: cause: {result['cause']}")
            chosen = result.get("chosen")
            if (v := fix_budget.verdict(report.model, fmt, result, limit)) is not None:
                report.ok = False
                if not v.get("undecided"):
                    v.update(_alternatives(model_dir, fmt, manifest, data_dir, data_npz, table, kinds, timeout))
                report.notes += fix_budget.render(v)
                result["verdict"] = v
                with model_lock(model_dir, "fix"):
                    manifest = load_manifest(model_dir)
                    manifest["artifacts"][fmt]["fix"] = {"verdict": v, "candidates": result["candidates"],
                                                         "seconds": result["seconds"], "gate": job["gate"],
                                                         **{k: result[k] for k in ("stopped", "not_tried", "cause")
                                                            if k in result}}
                    save_manifest(model_dir, manifest)
                result["chosen"] = None
                continue
            if result.get("chosen_index") == 0:
                report.notes.append(f"{fmt}: already passes its gate as exported; nothing to change")
                continue
            exported = export_model(str(model_dir), out=model_dir.parent, **_export_settings(manifest, fmt,
                                                                                              chosen["settings"]))
            if not exported.ok:
                raise EdgeportError(f"re-exporting {fmt} with the chosen settings failed: {exported.render()}")
            with model_lock(model_dir, "fix"):
                manifest = load_manifest(model_dir)
                manifest["artifacts"][fmt]["fix"] = {
                    "chosen": chosen["label"], "settings": chosen["settings"], "candidates": result["candidates"],
                    "scored_on": plan.test.describe(), "gate": job["gate"], "seconds": result["seconds"],
                    "float_fraction": chosen.get("float_fraction", 0.0), "max_float_fraction": limit,
                    **{k: result[k] for k in ("stopped", "not_tried", "cause") if k in result}}
                save_manifest(model_dir, manifest)
    fixed = [f for f, r in report.tables.items() if r.get("chosen")]
    fixed += [g for f in fixed for g in registry.followers(f) if g in listed]
    if fixed:  # proved again beside their float siblings: verify then says what runs on a slow path
        siblings = [s for f in fixed if (s := registry.float_sibling(f)) and s in listed and s not in fixed]
        final = plans.from_model_dir(model_dir, data_dir=data_dir, data_npz=data_npz, limit=None,
                                     formats=[*fixed, *dict.fromkeys(siblings)])
        report.verified = _verify_merged(model_dir, final, table, timeout)
        report.ok = report.ok and report.verified.ok
    return report


def _verify_merged(model_dir: Path, plan: plans.Plan, table, timeout: float):
    """Verify the re-exported formats (and their siblings) and merge their rows into the model's
    verify.json under its lock: the formats fix did not touch keep the rows the last verify gave them
    (a bundle then still ships a tflite_fp32 that passed), and ``ok`` is recomputed over all rows."""
    verified = run_plan(plan, table, runtimes=None, threads=usable_cores(), timeout=timeout,
                        debug=(False, False), merge=True)
    return verified
