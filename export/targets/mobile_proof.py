"""The mobile variants' proof, through `edgeport verify`'s compare and gates
(:mod:`edgeport.benchmarks.verify.proof`): on a seeded sample of the real test images verify used,
each variant (camera form in, through ``edgeport.runtimes``) against the Keras model with the gate
of the format it is a variant of (what verify holds that artifact to), and against the verified
artifact it was made from (same pixels) with the same-model gate: the same top-1 on every image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.verify.gates import GateTable
from edgeport.benchmarks.verify.result import Result
from edgeport.errors import EdgeportError
from edgeport.export.registry import precision_of
from edgeport.export.targets.common import seeded_indices, verified_testset
from edgeport.export.targets.mobile_model import VARIANTS, camera_form, probabilities, to_uint8


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


def keras_reference(model, head: str, x: np.ndarray) -> tuple[np.ndarray, float]:
    """(Keras probabilities on ``x``, their float32 noise: max |Keras float32 - its float64 twin|),
    as verify's reference gives them."""
    from edgeport.benchmarks.verify.reference import float64_twin

    ref = probabilities(model.predict(x.astype(np.float32), batch_size=64, verbose=0), head)
    ref64 = probabilities(float64_twin(model).predict(x.astype(np.float64), batch_size=64, verbose=0), head)
    return ref.astype(np.float32).astype(np.float64), float(np.abs(ref - ref64).max(initial=0.0))


def _first(y: Any) -> np.ndarray:
    return np.asarray(y[0] if isinstance(y, (list, tuple)) else y, np.float64)


def prove(files: dict[str, Path], model, model_dir: Path, entries: dict[str, dict[str, Any]], head: str,
          x: np.ndarray, y: np.ndarray | None, gates: GateTable) -> list[Result]:
    """Verify rows of each variant on the camera form of ``x``: against the Keras model on ``x``
    (the gate of its format in ``gates``) and against the verified artifact on ``x`` (same model)."""
    from edgeport.benchmarks.verify.figures import output_kind
    from edgeport.benchmarks.verify.proof import SAME_MODEL
    from edgeport.benchmarks.verify.proof import prove as proved
    from edgeport.runtimes import load

    # probe=False: the verified artifacts ran in verify's child processes, and this process has just
    # run the variants (calibration, describe); a crash would already have happened
    own, rgb = x.astype(np.float32), camera_form(x).astype(np.float32)
    keras_p, noise = keras_reference(model, head, x)
    kinds = {"output": output_kind(keras_p, "classification")}  # a quantized artifact's sums are not exactly 1
    rows = []
    for v in VARIANTS:
        artifact = entries[v.artifact]["file"]
        art_p = probabilities(_first(load(model_dir / artifact, probe=False).predict(own)), head)
        session = load(files[v.name], probe=False)
        p = _first(session.predict(rgb))
        common = {"engine": session.engine, "precision": precision_of(v.artifact).value, "kinds": kinds}
        rows.append(proved(v.artifact, session.runtime, files[v.name].name, keras_p, p,
                           gate=gates.for_format(v.artifact),
                           against="Keras", y=y, noise=noise, **common))
        rows.append(proved(v.artifact, session.runtime, files[v.name].name, art_p, p, gate=SAME_MODEL, against=artifact,
                           y=y, **common))
    return rows
