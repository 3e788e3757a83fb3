"""The mobile variants' proof: on a seeded sample of the real test images `edgeport verify` used,
each variant's top-1 through ``edgeport.runtimes`` must equal the Keras model's (float32) and the
verified artifact's (both variants) on the same pixels; and the table `edgeport bundle` prints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError
from edgeport.export.targets.common import seeded_indices, verified_testset
from edgeport.tables import fmt_num, fmt_pct, text_table
from edgeport.export.targets.mobile_model import VARIANTS, Variant, camera_form, probabilities, to_uint8


def proof_images(model_dir: Path, manifest: dict[str, Any], verify: dict[str, Any], samples: int, seed: int,
                 data_dir: str | None) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """A seeded sample of the real test images verify used, as uint8 in the model's own form."""
    test = verified_testset(model_dir, manifest, verify, data_dir)
    if not isinstance(test.x, np.ndarray):
        raise EdgeportError(f"{model_dir.name}: the test set has several inputs; a mobile classifier has one")
    n = len(test)
    idx = seeded_indices(n, samples, seed)
    x = np.asarray(test.x[idx])
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x[..., None]
    x8 = to_uint8(x)
    y = test.y.reshape(-1)[idx].astype(np.int64) if test.y is not None else None
    info = {"dataset": test.dataset, "source": test.source, "n": int(len(idx)), "seed": seed,
            "test_set_size": n, "indices_of": "the verify test set",
            "rounded_to_uint8": bool(not np.array_equal(x8.astype(x.dtype), x))}
    return x8, y, info


def _first(y: Any) -> np.ndarray:
    return np.asarray(y[0] if isinstance(y, (list, tuple)) else y)


def _compare(p: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    a, b = p.argmax(axis=1), ref.argmax(axis=1)
    return {"agreement": float((a == b).mean()), "disagreements": int((a != b).sum()),
            "max_abs_diff": float(np.abs(p - ref).max()), "identical": bool(np.array_equal(p, ref))}


def _row(v: Variant, path: Path, artifact: str, engine: str, p: np.ndarray, keras_p: np.ndarray,
         art_p: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
    """One variant's figures and gate: the float model must pick what Keras picks; both what the
    verified artifact they were made from picks."""
    vs_keras, vs_artifact = _compare(p, keras_p), _compare(p, art_p)
    row: dict[str, Any] = {
        "file": path.name, "artifact": v.artifact, "artifact_file": artifact, "engine": engine,
        "n": int(len(p)), "agreement_keras": vs_keras["agreement"],
        "disagreements_keras": vs_keras["disagreements"],
        "max_abs_diff_keras": vs_keras["max_abs_diff"], "agreement_artifact": vs_artifact["agreement"],
        "disagreements_artifact": vs_artifact["disagreements"],
        "max_abs_diff_artifact": vs_artifact["max_abs_diff"], "identical_to_artifact": vs_artifact["identical"]}
    if y is not None:
        row.update(accuracy=float((p.argmax(1) == y).mean()), keras_accuracy=float((keras_p.argmax(1) == y).mean()),
                   artifact_accuracy=float((art_p.argmax(1) == y).mean()))
    gated = ["artifact"] + (["keras"] if v.name == "float32" else [])
    row["gate"] = " and ".join(f"top-1 == {'Keras' if g == 'keras' else v.artifact} on every image" for g in gated)
    row["status"] = "pass" if all(row[f"disagreements_{g}"] == 0 for g in gated) else "fail"
    return row


def prove(files: dict[str, Path], model, model_dir: Path, entries: dict[str, dict[str, Any]], head: str,
          x: np.ndarray, y: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Each variant on the camera form of ``x`` against the Keras model and the verified artifact on ``x``."""
    from edgeport.runtimes import load

    # probe=False: the verified artifacts ran in verify's child processes, and this process has just
    # run the variants (calibration, describe); a crash would already have happened
    own = x.astype(np.float32)
    rgb = camera_form(x).astype(np.float32)
    keras_p = probabilities(model.predict(own, batch_size=64, verbose=0), head)
    out: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        artifact = entries[v.artifact]["file"]
        art_p = probabilities(_first(load(model_dir / artifact, runtime="litert", probe=False).predict(own)), head)
        session = load(files[v.name], runtime="litert", probe=False)
        p = np.asarray(_first(session.predict(rgb)), np.float64)
        out[v.name] = _row(v, files[v.name], artifact, session.engine, p, keras_p, art_p, y)
    return out


def proof_table(model: str, proof: dict[str, dict[str, Any]]) -> str:
    rows = [[r["file"], r["artifact_file"], str(r["n"]), fmt_pct(r["agreement_keras"]),
             fmt_pct(r["agreement_artifact"]), fmt_num(r["max_abs_diff_keras"], ".2e"),
             fmt_num(r["max_abs_diff_artifact"], ".2e"), fmt_pct(r.get("accuracy")), r["status"].upper()]
            for r in proof.values()]
    header = ["mobile model", "verified artifact", "images", "top-1 = Keras", "top-1 = artifact",
              "max |p - Keras|", "max |p - artifact|", "accuracy", "gate"]
    return text_table(f"{model}: mobile variants (RGB uint8 in) vs Keras and the verified artifacts, litert",
                      header, rows, left=2)
