"""The seed corpus: one small real model exported to every kind the fuzzer mutates.

A tiny convolutional classifier (trained for a moment on generated bands, so its outputs are
confident), exported to every model-file format the fuzzer mutates (``cases.format_kinds``: what
the format registry says), .keras and .h5, its model directory (manifest.json) and a Raspberry Pi
bundle (.tar.gz). Built once per corpus folder; ``corpus.json``
lists the files with their sha256 so a replay starts from the same bytes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgeport.benchmarks.fuzz.cases import format_kinds
from edgeport.files import sha256_file

NAME = "fuzzseed"


def seeds() -> dict[str, str]:
    """Kind -> the seed file (relative to the corpus folder) of the kinds built from the Keras model."""
    return {**{kind: f"out/{NAME}/{kind}" for kind in format_kinds()}, "keras": f"{NAME}.keras",
            "h5": f"{NAME}.h5", "manifest": f"out/{NAME}/manifest.json", "bundle": f"dist/{NAME}-rpi.tar.gz"}


def with_inputs(folder: Path, found: dict[str, Path]) -> dict[str, Path]:
    """``found`` plus the input kinds' seeds and models (``input_models``: small ONNX graphs, made when missing)."""
    from edgeport.benchmarks.fuzz import input_models

    return {**found, **input_models.build(Path(folder) / "inputs")}


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 40, (n, 12, 12, 1))
    for i, k in enumerate(y):
        x[i, 3 * k:3 * k + 3] += 200
    return x.astype(np.uint8), y


def build(folder: Path) -> dict[str, Path]:
    """Build (or reuse) the corpus in ``folder``; returns {kind: seed file}."""
    folder, wanted = Path(folder), seeds()
    index = folder / "corpus.json"
    if index.is_file():  # reused only when it holds every seed (a new format rebuilds it) intact
        listed = json.loads(index.read_text())
        if set(listed) >= set(wanted.values()) and all(
                (folder / rel).is_file() and sha256_file(folder / rel) == sha for rel, sha in listed.items()):
            return with_inputs(folder, {kind: folder / rel for kind, rel in wanted.items()})
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    import keras

    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.export.pipeline import export_model
    from edgeport.export.targets import bundle_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(600, 0)
    model.fit(x, y, epochs=3, verbose=0)
    model.save(folder / f"{NAME}.keras")
    model.save(folder / f"{NAME}.h5")
    np.save(folder / "cal.npy", x[:64].astype(np.float32))
    xt, yt = _data(120, 1)
    np.savez(folder / "test.npz", x_test=xt, y_test=yt)
    report = export_model(str(folder / f"{NAME}.keras"), out=folder / "out", calibration_data=str(folder / "cal.npy"),
                          formats=[i.name.value for i in format_kinds().values()], isolate=False)
    if not report.ok:
        raise RuntimeError(f"the fuzz corpus did not export: {report.render()}")
    verified = verify_model(NAME, out=folder / "out", data_npz=str(folder / "test.npz"))
    if not verified.ok:
        raise RuntimeError(f"the fuzz corpus does not verify: {verified.render()}")
    bundle_model(NAME, target="rpi", out=folder / "out", dist=folder / "dist", samples=40)
    index.write_text(json.dumps({rel: sha256_file(folder / rel) for rel in wanted.values()}, indent=2))
    return with_inputs(folder, {kind: folder / rel for kind, rel in wanted.items()})
