"""Each output of a verify run: its kind (detected, given or kept in the manifest), its figures
against the reference and the tight bound, and the reference's own figures."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgeport.benchmarks.verify import kinds as kinds_mod
from edgeport.benchmarks.verify import plan as plans
from edgeport.benchmarks.verify.figures import compare
from edgeport.benchmarks.verify.gates import FLOAT32_ULP, FLOOR_ULPS
from edgeport.benchmarks.verify.reference import Reference
from edgeport.errors import EdgeportError
from edgeport.export.registry import Precision

FALLBACK_RELATIVE = 1e-4
#: The basis of the bound for an artifact against a reference of its own precision on the same engine.
SAME_ENGINE = "same engine and precision as the reference"
MANIFEST_KEY = "output_kinds"


class OutputMismatchError(EdgeportError):
    """An artifact's outputs do not match the reference's (names or shapes)."""


def resolve_kinds(plan: plans.Plan, reference: Reference, given: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """{output: kind} for every reference output, and notes saying where overrides came from.

    ``given`` (``--output-kind``) wins over the manifest's ``output_kinds``; given ones are kept in a
    model directory's manifest (written atomically) for later runs. A name that is no output fails.
    """
    from edgeport.manifest import load_manifest, save_manifest

    notes: list[str] = []
    stored = dict(plan.manifest.get(MANIFEST_KEY) or {})  # a model directory's, or a bundle's copy
    if stored:
        kinds_mod.parse_overrides(stored)
        notes.append("output kinds from the manifest: " + ", ".join(f"{k}={v}" for k, v in stored.items())
                     + (" (--output-kind given for " + ", ".join(given) + ")" if given else ""))
    overrides = {**stored, **given}
    where = str(plan.model_dir or plan.reference_source)
    found = kinds_mod.resolve(reference.outputs, plan.test.task, overrides, where=where, labels=plan.test.labels)
    if given and plan.model_dir is not None and {**stored, **given} != stored:
        from edgeport.export.commit import model_lock

        with model_lock(plan.model_dir, "verify --output-kind"):  # an export may be rewriting the manifest
            manifest = load_manifest(plan.model_dir)
            manifest[MANIFEST_KEY] = {**dict(manifest.get(MANIFEST_KEY) or {}), **given}
            save_manifest(plan.model_dir, manifest)
        notes.append(f"output kinds {', '.join(f'{k}={v}' for k, v in given.items())} kept in "
                     f"{plan.model_dir}/manifest.json for later runs")
    elif given:
        notes.append("output kinds given: " + ", ".join(f"{k}={v}" for k, v in given.items())
                     + ("" if plan.model_dir is not None else " (a bare artifact has no manifest to keep them)"))
    detected = [n for n in found if n not in overrides]
    if detected:
        notes.append("output kinds detected from the reference: "
                     + ", ".join(f"{n}={found[n]}" for n in detected))
    return found, notes


def reference_figures(reference: Reference, plan: plans.Plan, kinds: Mapping[str, str]) -> dict[str, Any]:
    """The reference's own figures: per output its kind and shape; accuracy of the first classifier."""
    first = next(iter(reference.outputs))
    ref = reference.outputs[first]
    out: dict[str, Any] = {"n": len(ref), "output": first, "kind": kinds[first],
                           "outputs": {n: {"kind": kinds[n], "shape": list(v.shape)}
                                       for n, v in reference.outputs.items()}}
    if plan.test.y is not None:
        accuracy = kinds_mod.reference_accuracy(kinds[first], ref, plan.test.y)
        if accuracy is not None:
            out["accuracy"] = accuracy
    return out


def constant_reference(reference: Reference) -> str:
    """Why nothing can be measured against ``reference``: every output constant on the data ("" if not)."""
    values = [v for v in reference.outputs.values() if v.size]
    if not values or any(np.ptp(v.astype(np.float64)) > 0 or not np.isfinite(v).all() for v in values):
        return ""
    shown = sorted({float(v.flat[0]) for v in values})
    return (f"every reference output is {shown[0]:g} on these inputs" if len(shown) == 1
            else f"every reference output is constant on these inputs ({', '.join(f'{s:g}' for s in shown)})")


def match(reference: Reference, outputs: dict[str, np.ndarray], where: str) -> dict[str, str]:
    """Reference output name -> artifact output name; every reference output must have one."""
    ref, art = list(reference.outputs), list(outputs)
    if set(ref) <= set(art):
        return {n: n for n in ref}
    if len(ref) == len(art) == 1:
        return {ref[0]: art[0]}
    raise OutputMismatchError(f"{where}: outputs {art} do not include the reference's {ref} (compared by name)")


def figures(name: str, out: np.ndarray, reference: Reference, precision: Precision, plan: plans.Plan,
            gate, labelled_output: bool, kind: str, *, same_engine: bool = False) -> dict[str, Any]:
    """One output's figures against the reference (of ``kind``), with the tight bound when gated.

    Without a float noise figure the bound is relative, 1e-4 x max(1, |ref|); but an artifact against
    a reference of its own precision on the same engine (``same_engine``) runs the same arithmetic in
    the same order, so nothing but a changed weight can move it: the bound is FLOOR_ULPS float32 ulps
    of the output's own scale (an identical copy differs by 0, a 1% weight edit behind a saturated
    softmax or sigmoid by far more)."""
    ref = reference.outputs[name]
    y = plan.test.y if labelled_output else None
    f = compare(ref, out, kind=kind, y=y, settings=gate.settings())
    f["output"] = name
    if not gate.tight:
        return f
    tight = reference.fp16 if precision is Precision.FP16 else reference.outputs
    f["tolerance_reference"] = "fp16-weights reference" if precision is Precision.FP16 else "float32 reference"
    if tight is None or name not in tight:
        f["tolerance_basis"] = f"no {f['tolerance_reference']} ({reference.fp16_basis or 'not computed'})"
        return f
    diff = np.abs(out.astype(np.float64) - tight[name].astype(np.float64))
    f["tolerance_diff"] = float(diff.max(initial=0.0)) if f["finite"] else float("inf")
    noise = reference.noise.get(name)
    scale = float(np.abs(ref).max(initial=0.0))
    if noise is None and gate.max_abs_diff is None and same_engine:
        f["tolerance"] = FLOOR_ULPS * FLOAT32_ULP * scale
        f["tolerance_basis"] = (f"{FLOOR_ULPS} float32 ulps of |ref| {scale:.3g}: {SAME_ENGINE}, so the outputs "
                                f"must be bit-identical but for rounding ({reference.noise_basis})")
    elif noise is None and gate.max_abs_diff is None:
        bound = FALLBACK_RELATIVE * max(1.0, scale)
        f["tolerance"], f["tolerance_basis"] = bound, (f"fixed relative bound {FALLBACK_RELATIVE:g} x max(1, |ref|) "
                                                       f"({reference.noise_basis})")
    else:
        f["tolerance"], f["tolerance_basis"] = gate.tolerance(noise, scale)
    f["noise"] = noise
    return f
