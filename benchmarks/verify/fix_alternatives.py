"""The alternatives `edgeport fix` measures when a full-integer format does not fit a model: every format
that keeps the activations out of int8 (int8 or int4 weights with float or int16 activations, fp16
weights), exported from the same source model with the same calibration into a scratch copy of the
model directory (the user's artifacts and verify.json stay as they are) and verified there on the
same data with the same gates."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeport import names
from edgeport.export import registry


def calibration_settings(manifest: dict[str, Any], fmt: str) -> dict[str, Any]:
    """export_model keyword arguments that draw the calibration ``fmt`` was made with again."""
    entry = manifest["artifacts"].get(fmt) or {}
    record = entry.get("calibration") or manifest.get("calibration") or {}
    source = str(record.get("source", ""))
    kwargs: dict[str, Any] = {"seed": int(record.get("seed", 0))}
    if record.get("requested"):
        kwargs["calibration_samples"] = int(record["requested"])
    if source.startswith("file:"):
        kwargs["calibration_data"] = source[5:]
    elif source.startswith("dataset:") and record.get("data_dir"):
        kwargs["data_dir"] = record["data_dir"]
    if record.get("shapes"):  # --input-shape of a model with symbolic dimensions
        kwargs["input_shape"] = [f"{k}={'x'.join(map(str, (1, *v)))}" for k, v in record["shapes"].items()]
    return kwargs


def formats_for(fmt: str) -> list[str]:
    """The formats that answer "what if not full int8": quantized weights without int8 activations."""
    out = []
    for f in registry.Format:
        i = registry.info(f.value)
        if f.value != fmt and i.proof is registry.Proof.RUN and i.weights not in ("float32", None) \
                and i.activations != "int8":
            out.append(f.value)
    return out


def measure(model_dir: Path, fmt: str, manifest: dict[str, Any], *, data_dir: str | None, data_npz: str | None,
            table, kinds: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """Export and verify each alternative in a scratch copy; one row per format (size, figures, verdict)."""
    from edgeport.benchmarks.device_info import usable_cores
    from edgeport.benchmarks.verify import kinds as output_kinds
    from edgeport.benchmarks.verify import plan as plans
    from edgeport.benchmarks.verify.command import run_plan
    from edgeport.export.pipeline import export_model

    wanted = formats_for(fmt)
    source = model_dir / manifest["source"]["file"]
    with tempfile.TemporaryDirectory(prefix="edgeport-alternatives-") as tmp:
        scratch = Path(tmp) / model_dir.name
        scratch.mkdir()
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, scratch / source.name)
        for name in (names.TRAINING_FILE, names.LABELS_FILE):
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, scratch / name)
        floats = list(registry.of_family("savedmodel"))  # the fp16 reference is lowered from it
        exported = export_model(str(scratch), formats=[*floats, *wanted], out=Path(tmp),
                                **calibration_settings(manifest, fmt))
        rows = [{"format": a.format, "status": "export failed", "error": a.error}
                for a in exported.results if a.format in wanted and a.status != "ok"]
        made = [f for f in wanted if f not in {r["format"] for r in rows}]
        if not made:
            return rows
        plan = plans.from_model_dir(scratch, data_dir=data_dir, data_npz=data_npz, limit=None, formats=made)
        report = run_plan(plan, table, runtimes=None, threads=usable_cores(), timeout=timeout, debug=(False, False),
                          kinds=kinds)
    seen = set()
    for r in report.results:
        if r.format in seen:
            continue
        seen.add(r.format)
        i = registry.info(r.format)
        f = r.figures
        rows.append({"format": r.format, "weights": i.weights, "activations": i.activations,
                     "size_bytes": r.size_bytes, "status": r.status, "runtime": r.runtime,
                     "figures": {k: f[k] for k in output_kinds.alternative_figures() if f.get(k) is not None}})
    return rows
