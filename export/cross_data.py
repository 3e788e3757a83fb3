"""The inputs a converted artifact is proved on: the user's ``--data-npz``, or seeded random inputs made
from the original's declared inputs (said in the report, kept beside the artifact, never silent).

Every symbolic dimension but the batch needs a size: ``--input-shape NAME=1xHxWxC`` or the data's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.errors import ExportError

PROOF_FILE = "proof_inputs.npz"
ROWS = 8  # random rows a proof runs on (a fixed-batch artifact runs them one at a time)
ID_HIGH = 16  # integer inputs (ids, indices) are drawn in [0, ID_HIGH): small enough for any table


def _io(path: Path) -> tuple[list, list]:
    """(inputs, outputs) of the artifact at ``path`` as its engine reports them."""
    from edgeport.native_log import quiet
    from edgeport.runtimes import load

    with quiet(f"load {path}"):  # the engine's own lines (XNNPACK's) go to the native log
        session = load(path)
    try:
        return list(session.inputs), list(session.outputs)
    finally:
        getattr(session, "close", lambda: None)()


Shapes = dict[str, tuple[tuple, str]]  # input name -> (static shape, dtype)


def static_shapes(path: Path, items: tuple[str, ...], data_npz: str | None) -> tuple[Shapes, list]:
    """({input name: (static shape, dtype)}, the outputs) of the artifact at ``path``: batch 1, symbolic
    dimensions sized by ``--input-shape`` (taken whole) or by the data, else an error naming the input."""
    given = {name: tuple(int(d) for d in dims.split("x")) for name, _, dims in (i.partition("=") for i in items)}
    data = _npz_shapes(data_npz) if data_npz else {}
    specs, outputs = _io(path)
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise ExportError(f"--input-shape {', '.join(unknown)}: {path} has no such input "
                          f"(inputs: {', '.join(s.name for s in specs)})")
    shapes = {}
    for s in specs:
        dims = data.get(s.name) or (data.get("") if len(specs) == 1 else None)
        if s.name not in given and dims is None:
            dims = tuple(d for d in s.shape[1:])
            if any(d is None or d < 0 for d in dims):
                shown = "x".join("?" if d is None or d < 0 else str(d) for d in s.shape)
                raise ExportError(f"{path}: input {s.name} has symbolic dimensions ({shown}); give its size with "
                                  f"--input-shape {s.name}=1x{'x'.join(str(d) if d and d > 0 else 'N' for d in dims)} "
                                  "(N: the size you run it at) or pass --data-npz")
        shapes[s.name] = (given.get(s.name) or (1, *[int(d) for d in dims]), str(s.dtype))
    return shapes, outputs


def layout_notes(before: list, after: list[dict]) -> list[str]:
    """Outputs whose converted shape differs from the original's where both are known (a converter that
    moved channels last, say): the verdict will say so too; this says why before it does."""
    notes = []
    for old, new in zip(before, after):
        a, b = tuple(old.shape), tuple(new["shape"])
        if len(a) != len(b) or any(x is not None and y is not None and x >= 0 and y >= 0 and x != y
                                   for x, y in zip(a, b)):
            notes.append(f"output {old.name}: the original declares {list(a)}, the converted artifact "
                         f"{list(b)} (a layout the converter chose): it does not take the original's place as it is")
    return notes


def _npz_shapes(data_npz: str) -> dict[str, tuple[int, ...]]:
    """Sample shapes (without the batch) per input name of a .npz (``""``: its one input)."""
    from edgeport.runtimes.feeds import read_npz, split_arrays

    x, _ = split_arrays(read_npz(Path(data_npz)), data_npz)
    if isinstance(x, dict):
        return {k: tuple(v.shape[1:]) for k, v in x.items()}
    return {"": tuple(x.shape[1:])}


def _draw(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, str]:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dt), "uniform [-1, 1]"
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt), "random booleans"
    if dt.itemsize <= 2:  # int8 / uint8 / int16: a quantized input's whole range
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dt), f"integers over [{info.min}, {info.max}]"
    return rng.integers(0, ID_HIGH, shape).astype(dt), f"integers in [0, {ID_HIGH}) (ids or indices)"


def proof_data(model_dir: Path, shapes: Shapes, data_npz: str | None,
               seed: int) -> tuple[Path, str]:
    """(the .npz the proof runs on, how it was made): the user's, or seeded random rows written to
    ``MODEL_DIR/proof_inputs.npz`` (MODEL_DIR: the directory they are written in; the caller's
    staging directory, so they land with the artifact and the manifest names them)."""
    from edgeport.files import atomic_path

    if data_npz:
        return Path(data_npz), f"{data_npz} (--data-npz)"
    rng = np.random.default_rng(seed)
    arrays, said = {}, []
    for name, (shape, dtype) in shapes.items():
        arrays[name], how = _draw(rng, (ROWS, *shape[1:]), dtype)
        said.append(f"{name} {dtype} {'x'.join(map(str, arrays[name].shape))}: {how}")
    dest = model_dir / PROOF_FILE
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **({"x_test": arrays[next(iter(arrays))]} if len(arrays) == 1 else arrays))
    return dest, (f"no --data-npz: {ROWS} seeded random rows (seed {seed}; {'; '.join(said)}), kept in {dest}; "
                  "they prove the two artifacts compute the same function, not that either is accurate")
