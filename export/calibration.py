"""Calibration samples for quantization: drawn once per export, recorded, and rebuildable.

Sources, in order: a user's ``--calibration-data`` file (.npy for one input, .npz by input name),
the course model's dataset (seeded training samples), or, for a model edgeport knows nothing
about, seeded uniform values in each input's range (said loudly); an id input (it feeds an
``Embedding``: see id_inputs) is drawn as whole numbers in [0, vocabulary), never invented as values,
and ids from a file are kept as given. The manifest records which,
with everything needed to draw the very same samples again (:func:`rebuild`): the quantization
debugger and the quantization fix calibrate on what the artifact was calibrated on, or fail.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, ExportError
from edgeport.export.config import DEFAULT_CALIBRATION_SAMPLES
from edgeport.files import sha256_file

Inputs = list[tuple[str, tuple]]


def fit(x: np.ndarray, name: str, shape: tuple, dtype: str | None = None) -> np.ndarray:
    """``x`` in the input's sample shape (a flat layout of the same size is reshaped), as the input's
    ``dtype``: integer data for an integer input keeps its values exactly (ids, a sample rate: a
    float32 round trip could change them); everything else is float32 (raw uint8 pixels included)."""
    want = tuple(shape)  # None (a symbolic dimension) takes the data's size
    x = np.asarray(x)
    if dtype is not None and np.dtype(dtype).kind in "iub":
        if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
            raise ExportError(f"calibration samples for integer input {name!r} ({dtype}) are not whole numbers")
        x = x.astype(np.dtype(dtype))
    else:
        x = x.astype(np.float32)
    if x.ndim == 0:
        raise ExportError(f"calibration samples for input {name!r} are one scalar; give one value per sample")
    fits = x.ndim == len(want) + 1 and all(w is None or w == g for w, g in zip(want, x.shape[1:]))
    if not fits:
        if None in want or int(np.prod(x.shape[1:])) != int(np.prod(want)):
            shown = tuple("?" if w is None else w for w in want)
            raise ExportError(f"calibration samples for input {name!r} have shape {x.shape[1:]}, "
                              f"the model expects {shown}")
        x = x.reshape((len(x), *want))
    if not np.isfinite(x).all():
        raise ExportError(f"calibration samples for input {name!r} contain NaN or inf")
    return x


def from_file(path: Path, inputs: Inputs, n: int, seed: int) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ExportError(f"--calibration-data {path}: unreadable ({exc})") from None
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise ExportError(f"--calibration-data {path}: the model has {len(inputs)} inputs; "
                              f"pass a .npz with arrays named {[name for name, _ in inputs]}")
        arrays = {inputs[0][0]: loaded}
    elif len(inputs) == 1 and inputs[0][0] not in loaded.files and (
            single := next((k for k in ("x_calibration", "x_train", "x_test", "x") if k in loaded.files), None)):
        arrays = {inputs[0][0]: loaded[single]}  # a one-input model's data under a generic name
    else:
        missing = [name for name, _ in inputs if name not in loaded.files]
        if missing:
            raise ExportError(f"--calibration-data {path}: no array named {missing} (it has {loaded.files})")
        arrays = {name: loaded[name] for name, _ in inputs}
    if scalars := [k for k, a in arrays.items() if np.ndim(a) == 0]:
        raise ExportError(f"--calibration-data {path}: {scalars} hold one scalar; give one value per sample "
                          "(an array of length N)")
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ExportError(f"--calibration-data {path}: arrays must be non-empty and equally long")
    total = lengths.pop()
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    return {k: v[idx] for k, v in arrays.items()}


def _dataset(record: dict[str, Any], inputs: Inputs) -> dict[str, np.ndarray]:
    from edgeport.training.data import representative_samples

    kwargs = {"image_size": tuple(record["image_size"])} if record.get("image_size") else {}
    try:
        x = representative_samples(record["dataset"], record["requested"], record["seed"], record.get("data_dir"),
                                   **kwargs)
    except EdgeportError as exc:
        raise ExportError(f"calibration data for {record['dataset']}: {exc} "
                          "(or pass --calibration-data FILE.npy)") from None
    return {inputs[0][0]: x}


def _uniform(record: dict[str, Any], inputs: Inputs) -> dict[str, np.ndarray]:
    """Seeded uniform values in each input's range (whole numbers for an integer input)."""
    rng = np.random.default_rng(record["seed"])
    given = record.get("shapes") or {}
    inputs = [(name, tuple(given.get(name) or shape)) for name, shape in inputs]
    if free := [f"{name} axis {i + 1}" for name, shape in inputs for i, d in enumerate(shape) if d is None]:
        raise ExportError(f"symbolic dimension(s) {', '.join(free)} have no size to calibrate on: give "
                          "--input-shape NAME=1xHxWxC, or --calibration-data FILE.npz with samples of the size to use")
    dtypes, ids, out = record.get("dtypes") or {}, record.get("id_inputs") or {}, {}
    for name, shape in inputs:
        lo, hi = record["ranges"][name]
        size = (record["requested"], *shape)
        integer = np.dtype(dtypes.get(name, "float32")).kind in "iub"
        if name in ids:  # whole numbers in [0, vocabulary), in the input's own dtype (see fit)
            out[name] = rng.integers(0, int(ids[name]["vocabulary"]), size)
        else:
            out[name] = rng.integers(int(lo), int(hi) + 1, size) if integer else rng.uniform(lo, hi, size)
    return out


def rebuild(record: dict[str, Any], inputs: Inputs | None = None) -> dict[str, np.ndarray]:
    """The exact samples a recorded calibration used; ExportError when they cannot be had here."""
    if inputs is None:
        inputs = [(name, tuple(shape)) for name, shape in record.get("inputs", [])]
        if not inputs:
            raise ExportError("the manifest's calibration record names no inputs (exported by an older edgeport)")
    source = str(record.get("source", ""))
    if source.startswith("dataset:"):
        arrays = _dataset(record, inputs)
    elif source.startswith("file:"):
        path = Path(source[5:])
        if not path.is_file():
            raise ExportError(f"the calibration file {path} recorded in the manifest is gone")
        if record.get("file_sha256") and sha256_file(path) != record["file_sha256"]:
            raise ExportError(f"the calibration file {path} changed since export (sha256 differs)")
        arrays = from_file(path, inputs, record["requested"], record["seed"])
    elif source == "random-uniform":
        arrays = _uniform(record, inputs)
    else:
        raise ExportError(f"unknown calibration source {source!r} in the manifest")
    dtypes = record.get("dtypes") or {}
    return {name: fit(arrays[name], name, shape, dtypes.get(name)) for name, shape in inputs}


def draw(inputs: Inputs, *, n: int, seed: int, file: Path | None, dataset: str | None, data_dir: str | None,
         image_size: tuple[int, int] | None, ranges: dict[str, tuple[float, float]],
         dtypes: dict[str, str] | None = None, shapes: dict[str, tuple[int, ...]] | None = None,
         ids: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(samples by input name, the record that rebuilds them); ``dtypes``: each input's dtype;
    ``shapes`` (``--input-shape``, without the batch): the size random samples give symbolic dimensions;
    ``ids``: the id inputs' records (:attr:`IdInput.record`): drawn as whole numbers, or kept as given."""
    record: dict[str, Any] = {"requested": n, "seed": seed,
                              "inputs": [[name, list(shape)] for name, shape in inputs]}  # null: symbolic
    if dtypes:
        record["dtypes"] = dict(dtypes)
    if shapes:
        if unknown := sorted(set(shapes) - {name for name, _ in inputs}):
            raise ExportError(f"--input-shape {unknown[0]}: no such input; inputs: {', '.join(n for n, _ in inputs)}")
        for name, shape in inputs:
            given = shapes.get(name)
            if given is not None and (len(given) != len(shape) or any(d is not None and d != g
                                                                      for d, g in zip(shape, given))):
                shown = "x".join("?" if d is None else str(d) for d in ("N", *shape))
                raise ExportError(f"--input-shape {name}={'x'.join(map(str, (1, *given)))} contradicts the "
                                  f"input's shape {shown}")
        record["shapes"] = {k: list(v) for k, v in shapes.items()}
    if file is not None:
        record.update(source=f"file:{Path(file).resolve()}", file_sha256=sha256_file(file))
    elif dataset is not None:
        record.update(source=f"dataset:{dataset}", dataset=dataset, data_dir=data_dir,
                      image_size=list(image_size) if image_size else None)
    else:
        record.update(source="random-uniform", ranges={k: list(v) for k, v in ranges.items()})
    if ids:
        drawn = record["source"] == "random-uniform"
        record["id_inputs"] = {k: {**r, "drawn_as": r["drawn_as"] if drawn else "kept as given"}
                               for k, r in ids.items()}
    samples = rebuild(record, inputs)
    record["samples"] = len(next(iter(samples.values())))
    record["per_input"] = per_input(samples)
    return samples, record


def per_input(samples: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """What each input was calibrated on: dtype, sample shape and value range (recorded in the manifest)."""
    return {name: {"dtype": x.dtype.name, "shape": list(x.shape[1:]), "min": float(x.min()) if x.size else None,
                   "max": float(x.max()) if x.size else None} for name, x in samples.items()}


MORE_SAMPLES = 1000


def used_samples(record: dict[str, Any]) -> int:
    """The calibration samples an export used (fewer than requested when the source has fewer)."""
    return int(record.get("samples") or record.get("requested") or DEFAULT_CALIBRATION_SAMPLES)


def requested_samples(record: dict[str, Any]) -> int:
    return int(record.get("requested") or record.get("samples") or DEFAULT_CALIBRATION_SAMPLES)


def by_names(samples: dict[str, np.ndarray], names: list[str], where: str) -> dict[str, np.ndarray]:
    """``samples`` (by Keras input name) keyed by an engine's input ``names``: the same names, or the
    one input of a one-input model; anything else is an error naming both lists."""
    if set(samples) == set(names):
        return dict(samples)
    if len(samples) == len(names) == 1:
        return {names[0]: next(iter(samples.values()))}
    raise ExportError(f"{where}: inputs {sorted(names)} do not match the calibrated inputs {sorted(samples)}")


def samples_of(record: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """``n`` samples of a recorded calibration source (the same seed and order), by input name."""
    return rebuild({**record, "requested": n})


def more_samples(record: dict[str, Any], warn) -> tuple[int, str] | None:
    """How many samples a "more calibration" candidate uses (MORE_SAMPLES, or every sample the
    source has when it has fewer) and its label; None, said, when that adds nothing."""
    used = used_samples(record)
    try:
        available = len(next(iter(samples_of(record, MORE_SAMPLES).values())))
    except EdgeportError as exc:  # the "as exported" candidate fails on the same source and says so too
        warn(f"note: more calibration samples not tried: {exc}")
        return None
    if available <= used:
        warn(f"note: more calibration samples not tried: the source has {available}, the export used {used}")
        return None
    return available, (f"{available} calibration samples" if available >= MORE_SAMPLES
                       else f"{available} calibration samples (all the source has)")
