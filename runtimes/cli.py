"""``edgeport run ARTIFACT INPUT...``: images, .npy batches, numbers or a .npz by input name in, labels or
values out."""
from __future__ import annotations

import json as _json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import InputError
from edgeport.runtimes import preprocess
from edgeport.runtimes.base import Session
from edgeport.runtimes.artifact_info import ArtifactInfo, artifact_info
from edgeport.runtimes.feeds import by_input, parse_input_shapes, read_npz, resolve_shapes, split_arrays
from edgeport.runtimes.registry import load
from edgeport.types import InputContract

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def run_artifact(artifact: str, inputs: list[str], *, runtime: str | None = None, top_k: int = 3,
                 json: bool = False, threads: int | None = None, device: str = "cpu",
                 ignore_metadata: bool = False, input_shape: list[str] | None = None,
                 normalize: str | None = None) -> int:
    """Run an artifact on images, .npy batches, numbers or a .npz by input name and print what it predicts.

    artifact: a .tflite, .onnx or .keras file, or a SavedModel directory
    inputs: image files (PNG/JPEG; resized to the model's input), .npy batches, numbers, or .npz files with one array per input name (several inputs, integer, scalar and state inputs)
    runtime: run it with this runtime instead of the default for its format
    top_k: how many labels to print per input for a classifier
    json: print one JSON document instead of text
    threads: engine threads
    device: cpu or gpu
    ignore_metadata: run a model whose standard TFLite Metadata cannot be read here on raw inputs anyway
    input_shape: NAME=1x3x320x320 for an input with symbolic dimensions (images are resized to it; data must agree); several allowed
    normalize: SCALE,MEAN,STD: feed images as (pixel x SCALE - MEAN) / STD of 0-255 pixels, e.g. 1/255,0.5,0.5 (MEAN, STD per channel joined by ':'); instead of the file's metadata
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    path = Path(artifact)
    session = load(path, runtime=runtime, threads=threads, device=device)
    shapes = parse_input_shapes(input_shape, session)
    keys = session.input_keys
    if len(keys) != 1 and not all(Path(a).suffix.lower() == ".npz" for a in inputs):
        raise InputError(f"{path.name}: a model of {len(keys)} inputs {keys} takes .npz files with one array per "
                         f"input name (edgeport run {path.name} inputs.npz)")
    info = artifact_info(path)
    if info.unreadable and not ignore_metadata:
        raise InputError(f"{info.unreadable}; its normalization and labels would be lost (pass "
                         "--ignore-metadata to feed it raw inputs anyway)")
    filled: dict[str, tuple[int, ...]] = {}
    if len(keys) == 1 and not all(Path(a).suffix.lower() in (".npz", ".npy") for a in inputs):
        filled, said = resolve_shapes(session, None, shapes, data_flag="a .npy/.npz input")
        session.notes.extend(said)
    contract = info.contract or _contract_from_spec(session, filled.get(keys[0]) if filled else None)
    contract, fed = _preprocessing(contract, info, normalize)
    items = _read_inputs(inputs, contract, session, shapes)
    said = [*session.notes, *info.notes, *([fed["text"]] if _images(inputs) else [])]
    if normalize and not _images(inputs):
        said.append(f"{preprocess.FLAG} normalises images; .npy, .npz and numbers are fed as given")
    for note in said:
        print(f"note: {note}", file=sys.stderr)
    names = session.output_keys
    results = []
    for name, batch in items:
        try:
            ys = session.predict(batch)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
        ys = ys if isinstance(ys, list) else [ys]
        if not session.batched:  # fed as given: one result with every output whole
            results.append(_describe(name, [np.asarray(y) for y in ys], names, contract, info, top_k, None))
            continue
        rows = len(batch) if isinstance(batch, np.ndarray) else len(next(iter(batch.values())))
        ys = session.batch_major(ys, rows)  # each row's outputs with the shape the engine returns
        for row_index in range(rows):
            label = name if rows == 1 else f"{name}[{row_index}]"
            results.append(_describe(label, [np.asarray(y)[row_index] for y in ys], names, contract, info, top_k,
                                     batch[row_index] if contract.kind == "values" and isinstance(batch, np.ndarray)
                                     else None))
    for note in [n for n in session.notes if n not in said]:  # found while running (batching, output shapes)
        print(f"note: {note}", file=sys.stderr)
    if json:
        doc = {"artifact": str(path), "runtime": session.runtime, "engine": session.engine, "notes": session.notes,
               "model": info.model, "labels_from": info.labels_from, "normalization": info.normalization,
               "input_shapes": {k: list(v) for k, v in filled.items()},
               "preprocessing": fed if _images(inputs) else None, "results": results}
        print(_json.dumps(doc, indent=2))
    else:
        print(f"# {path.name} · {session.runtime} [{session.engine}]"
              + (f" · labels from {info.labels_from}" if info.labels
                 else " · no labels found (manifest, labels.txt, metadata)"))
        for r in results:
            print(_text(r))
    return 0


def _images(inputs: list[str]) -> bool:
    return any(Path(a).suffix.lower() in IMAGE_SUFFIXES for a in inputs)


def _preprocessing(contract: InputContract, info: ArtifactInfo, normalize: str | None
                   ) -> tuple[InputContract, dict[str, Any]]:
    """The contract images are read with and what they become (``preprocess.stated``): ``--normalize``
    when given, else the file's normalisation metadata, else the model's own contract, else raw pixels."""
    if contract.kind != "image":
        if normalize:
            raise InputError(f"{preprocess.FLAG} is for images; this model takes {contract.kind} "
                             f"{list(contract.shape)}")
        return contract, preprocess.stated(contract, "")
    if normalize:
        over = (f"; the file's metadata says mean {list(info.normalization[0])} std {list(info.normalization[1])}"
                if info.normalization else "")
        contract = preprocess.Normalize.parse(normalize).contract(contract)
        return contract, preprocess.stated(contract, f"{preprocess.FLAG} {normalize}{over}")
    if info.normalization:
        mean, std = info.normalization
        contract = replace(contract, mean=tuple(mean), std=tuple(std))
        return contract, preprocess.stated(contract, "the file's TFLite Metadata NormalizationOptions")
    if info.contract is not None:
        return contract, preprocess.stated(contract, "the model's input contract")
    return contract, preprocess.stated(contract, "no normalisation metadata in the file; if the model expects "
                                                 f"other, give {preprocess.FLAG} SCALE,MEAN,STD")


def _contract_from_spec(session: Session, filled: tuple[int, ...] | None = None) -> InputContract:
    """The contract of a bare artifact's first input (its symbolic dimensions ``filled`` when given): an
    image for a 4-D input (NCHW when axis 1 holds 1 or 3 channels and the last does not), values otherwise."""
    shape = filled or session.inputs[0].shape
    if len(shape) == 4 and all(shape[1:]):
        if shape[1] in (1, 3) and shape[3] not in (1, 3):
            return InputContract("image", height=shape[2], width=shape[3], channels=shape[1], layout="NCHW")
        return InputContract("image", height=shape[1], width=shape[2], channels=shape[3])
    if not session.batched:
        return InputContract("values", shape=tuple(d or 1 for d in shape))
    return InputContract("values", shape=tuple(d or 1 for d in shape[1:]))


def _read_inputs(inputs: list[str], contract: InputContract, session: Session,
                 shapes: dict[str, tuple[int, ...]] | None = None) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    numbers: list[float] = []
    rank = len(session.inputs[0].shape)
    for arg in inputs:
        p = Path(arg)
        if p.suffix.lower() == ".npz":
            data = by_input(session, split_arrays(read_npz(p), arg)[0], arg)
            session.notes.extend(n for n in resolve_shapes(session, data, shapes or {})[1] if n not in session.notes)
            items.append((p.name, data))
        elif p.suffix.lower() == ".npy":
            if not p.is_file():
                raise InputError(f"{arg}: no such .npy file")
            try:
                arr = np.load(p, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise InputError(f"{arg}: not a readable .npy array ({exc})") from None
            if arr.ndim == rank - 1:  # one sample without its batch axis
                arr = arr[None]
            items.append((p.name, arr))
        elif p.suffix.lower() in IMAGE_SUFFIXES or (p.is_file() and not _is_number(arg)):
            if contract.kind != "image":
                raise InputError(f"{arg}: this model takes {contract.kind} {list(contract.shape)}, "
                                 "not images; give numbers or a .npy batch")
            items.append((p.name, load_image(p, contract)))
        elif _is_number(arg):
            numbers.append(float(arg))
        else:
            raise InputError(f"{arg}: not an image file, a .npy file or a number")
    if numbers:
        if contract.kind == "image":
            raise InputError(f"numbers {numbers[:3]}...: this model takes images "
                             f"({contract.height}x{contract.width}x{contract.channels})")
        per = int(np.prod(contract.shape)) if contract.shape else 1
        if len(numbers) % per:
            raise InputError(f"{len(numbers)} numbers do not make whole samples of {per} values "
                             f"(shape {list(contract.shape)})")
        batch = np.asarray(numbers, np.float32).reshape(-1, *(contract.shape or (1,)))
        items.append(("values", batch))
    return items


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_image(path: Path, contract: InputContract) -> np.ndarray:
    """An image file as a (1, H, W, C) float32 batch of raw 0-255 pixels (NCHW if the contract
    says so), converted to L or RGB and resized to the contract's size."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise InputError(f"{path}: reading images needs Pillow (pip install pillow)") from None
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = img.convert("L" if contract.channels == 1 else "RGB")
            if img.size != (contract.width, contract.height):
                img = img.resize((contract.width, contract.height), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    arr = arr.reshape(contract.height, contract.width, -1).astype(np.float32)
    if contract.channels not in (1, 3):
        raise InputError(f"{path}: images can feed 1 or 3 channels; the model takes {contract.channels}")
    lo, hi = contract.pixel_range
    if (lo, hi) != (0.0, 255.0):
        arr = lo + arr * ((hi - lo) / 255.0)
    if contract.mean:  # the model's own NormalizationOptions (standard TFLite Metadata)
        arr = (arr - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    if contract.layout.upper() == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return arr[None]


def is_distribution(row: np.ndarray) -> bool:
    """Whether a row is a probability distribution (softmax: non-negative, sums to 1)."""
    # 2%: a uint8 output of N classes rounds each probability by up to half a step of 1/256
    return (row.size > 1 and bool(np.isfinite(row).all()) and row.min() >= -1e-6 and row.max() <= 1 + 1e-6
            and abs(row.sum() - 1.0) <= 0.02)


def _describe(name: str, rows: list[np.ndarray], names: list[str], contract: InputContract, info: ArtifactInfo,
              top_k: int, given: np.ndarray | None) -> dict[str, Any]:
    """A classifier's top-k labels when its one output is a probability distribution (or one sigmoid
    of a two-label model); every output's values with their shape otherwise."""
    labels = info.labels
    out: dict[str, Any] = {"input": name}
    if given is not None:
        out["given"] = [_num(v) for v in np.asarray(given).ravel()]
    row = rows[0].astype(np.float64).ravel() if len(rows) == 1 else None
    if row is not None and (contract.kind == "image" or labels):
        sigmoid = row.size == 1 and labels is not None and len(labels) == 2 and 0.0 <= row[0] <= 1.0
        if is_distribution(row) or sigmoid:
            probs = np.array([1.0 - row[0], row[0]]) if sigmoid else row
            order = np.argsort(-probs, kind="stable")[:max(1, top_k)]
            out["top_k"] = [{"index": int(i), "label": labels[i] if labels and i < len(labels) else str(int(i)),
                             "probability": _num(probs[i])} for i in order]
            return out
    out["outputs"] = [{"name": n, "shape": list(r.shape), "values": [_num(v) for v in np.asarray(r).ravel()]}
                      for n, r in zip(names, rows)]
    return out


def _num(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _text(r: dict[str, Any], shown: int = 8) -> str:
    if "top_k" in r:
        return f"{r['input']}: " + ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"])
    g = r.get("given") or []  # a short label: the first values and how many (--json has them all)
    given = (f" {', '.join('nan' if v is None else f'{v:g}' for v in g[:shown // 2])}"
             + (f", ... ({len(g)} values)" if len(g) > shown // 2 else "") + " ->") if g else ""
    parts = []
    for o in r["outputs"]:
        values = ", ".join("nan" if v is None else f"{v:.6g}" for v in o["values"][:shown])
        more = f", ... ({len(o['values'])} values; --json for all)" if len(o["values"]) > shown else ""
        shape = "" if o["shape"] in ([1], []) and len(r["outputs"]) == 1 else f"{o['name']} shape {tuple(o['shape'])}: "
        parts.append(f"{shape}{values}{more}")
    return f"{r['input']}:{given} " + "; ".join(parts)


if __name__ == "__main__":  # pragma: no cover
    from edgeport.cli import main
    sys.exit(main(["run", *sys.argv[1:]]))
