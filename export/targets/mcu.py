"""Microcontroller bundle (TensorFlow Lite Micro): a fixed batch-1, full-integer int8 model, its C
array, an op resolver with exactly its ops, the tensor arena it needs, and a proof.

The model is the format the target carries (the registry's full-integer TFLite row) made again by
its own converter from the source model (``model.keras``, ``model.h5`` or the source SavedModel)
with a batch-1 input signature (:mod:`edgeport.export.fixed_batch`), so that no SHAPE /
STRIDED_SLICE / PACK ops (the dynamic batch's bookkeeping) reach the firmware, calibrated on the
very samples the verified artifact was calibrated on (the manifest's record, rebuilt exactly). int8
inputs and outputs (``IO_TYPE``).

The proof, at bundle time, is two verify rows (`edgeport verify`'s compare and gates) on real test
inputs: TFLite Micro (its Python interpreter, the same C++ kernels and memory planner firmware
links, in a child process, with exactly the arena measured) against LiteRT without default
delegates, every output at most one quantization step apart; and the model in LiteRT against the
source model under the gate verify holds the format to. A failing row fails the bundle. Only a
model whose artifact of that format passed `edgeport verify` is bundled.

This module checks the inputs and runs the steps (:func:`build`); the parts are
:mod:`~edgeport.export.targets.mcu_model` (the batch-1 model), :mod:`~edgeport.export.targets.mcu_proof`
(the proof) and :mod:`~edgeport.export.targets.mcu_files` (the bundle's files).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError
from edgeport.benchmarks.verify.proof import table, verified_gates
from edgeport.export.targets.bundle import VERIFY_FILE, BundleBuilder, require_verified
from edgeport.export.targets.common import check_artifacts, seeded_indices, take_rows, verified_testset
from edgeport.export.targets.mcu_files import MODEL_FILE, summary_table, write
from edgeport.export.targets.mcu_model import FORMAT, IO_TYPE, batch1_model
from edgeport.export.targets.mcu_proof import proof_error, prove
from edgeport.files import sha256_file
from edgeport.manifest import effective_entries, load_manifest

MIN_SAMPLES = 200


# -- inputs: the source, the verified artifact, the test set ------------------------------------------

def _source(model_dir: Path, manifest: dict[str, Any]):
    from edgeport.export.source import installed

    src = installed(model_dir)
    recorded = manifest.get("source") or {}
    if src is None:
        raise EdgeportError(f"{model_dir.name}: no source model (model.keras, model.h5 or source_saved_model/) in "
                            f"{model_dir}: the microcontroller model is converted from it")
    if recorded.get("sha256") and sha256_file(src.path) != recorded["sha256"]:
        raise EdgeportError(f"{src.path}: changed since export; re-export and verify: "
                            f"`edgeport export {model_dir}` then `edgeport verify {model_dir}`")
    return src


def _checked(model_dir: Path, samples: int) -> dict[str, Any]:
    """Everything the bundle is made from, checked before any work: a verified FORMAT artifact from
    the source beside it now, its calibration record, TFLite Micro installed."""
    from edgeport.runtimes import tflm

    name = model_dir.name
    if samples < MIN_SAMPLES:
        raise EdgeportError(f"a microcontroller bundle is proved on at least {MIN_SAMPLES} real test inputs; "
                            f"--samples {samples} is too few")
    try:
        tflm.import_engine()
    except ImportError as exc:
        raise EdgeportError(f"{name}: the microcontroller proof runs TFLite Micro: {exc}") from None
    manifest = load_manifest(model_dir)
    entries = effective_entries(model_dir, manifest)
    if FORMAT not in entries:
        raise EdgeportError(f"{name}: a microcontroller bundle needs the verified {FORMAT} artifact; "
                            f"export it first: `edgeport export {model_dir} --formats {FORMAT}`")
    verify = require_verified(model_dir, [FORMAT])
    src = _source(model_dir, manifest)
    source_sha = (manifest.get("source") or {}).get("sha256", "")
    check_artifacts(model_dir, manifest, entries, [FORMAT], source_sha)
    return {"manifest": manifest, "verify": verify, "entry": entries[FORMAT], "source": src,
            "source_sha256": source_sha}


def _testset(model_dir: Path, manifest: dict[str, Any], verify: dict[str, Any], data_dir: str | None):
    test = verified_testset(model_dir, manifest, verify, data_dir)
    data = verify.get("data") or {}
    if data.get("sha256") and test.fingerprint() != data["sha256"]:
        raise EdgeportError(f"{model_dir.name}: the test data changed since the last verify "
                            f"({model_dir / VERIFY_FILE}); verify again")
    return test


# -- the target --------------------------------------------------------------------------------

def _record(name: str, model: bytes, ops: list[str], use: dict[str, int], proof: dict[str, Any],
            inputs: dict[str, Any], idx: np.ndarray, seed: int) -> dict[str, Any]:
    """What ``tflm_proof.json`` holds."""
    return {"model": name, "file": MODEL_FILE, "flash_bytes": len(model), "arena_bytes": use["arena"],
            "arena_recorded_total": use["total"], "arena_head": use["head"], "arena_tail": use["tail"],
            "arena_measured": "TFLite Micro's recording allocator after one inference, then run with exactly "
                              "that arena (64-bit host, reference kernels)",
            "ops": ops, "model_sha256": hashlib.sha256(model).hexdigest(),
            "io": {"type": IO_TYPE, **proof.pop("io")}, "calibration": inputs["entry"].get("calibration"),
            "source_sha256": inputs["source_sha256"],
            "data": {**(inputs["verify"].get("data") or {}), "n": int(len(idx)), "seed": seed,
                     "indices_of": "the verify test set"},
            "indices": idx.tolist(), "proof": proof}


def build(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    from edgeport.runtimes import tflm

    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 2)

    name = model_dir.name
    inputs = _checked(model_dir, samples)
    model, ops = batch1_model(model_dir, inputs["manifest"], inputs["source"], inputs["entry"],
                              inputs["source_sha256"])
    model_path = builder.add_bytes(MODEL_FILE, model)
    seconds = {"convert": lap()}
    use = tflm.arena_use(model, where=f"{name}/{MODEL_FILE}")
    seconds["arena"] = lap()
    test = _testset(model_dir, inputs["manifest"], inputs["verify"], data_dir)
    idx = seeded_indices(len(test), samples, seed)
    if len(idx) < MIN_SAMPLES:
        builder.notes.append(f"the test set has {len(test)} inputs: the proof ran on all of them "
                             f"(fewer than the {MIN_SAMPLES} a proof should have)")
    proof = prove(FORMAT, model_path, inputs["source"].path, take_rows(test.x, idx),
                  test.y[idx] if test.y is not None else None, arena_size=use["arena"],
                  gates=verified_gates(inputs["verify"]), task=test.task)
    seconds.update(proof=lap(), tflm_run=proof.pop("tflm_seconds"))
    if not proof["ok"]:
        raise proof_error(name, MODEL_FILE, proof)
    rows = proof.pop("rows")
    record = _record(name, model, ops, use, proof, inputs, idx, seed)
    write(model_dir, builder, model, record, inputs["manifest"].get("input_contract"))
    seconds["total"] = round(time.perf_counter() - clock[0], 2)
    builder.meta.update(mcu={k: v for k, v in record.items() if k not in ("indices", "calibration")} | {
        "seconds": seconds}, source_sha256=inputs["source_sha256"])
    builder.tables.append(summary_table(name, record, proof))
    builder.tables.append(table(f"{name}: {MODEL_FILE}, verify's gates", rows))
