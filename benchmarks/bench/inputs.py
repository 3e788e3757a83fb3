"""What `edgeport bench` feeds every row, written once to a .npz the child processes read.

A model's own test set (or ``--data-npz``) for an artifact with a manifest; for a bare artifact,
the user's ``--data-npz`` checked against the model's inputs by name (several inputs, integer,
scalar and state inputs), else seeded random inputs in its contract. Symbolic dimensions take
their sizes from the data, else from ``--input-shape NAME=1x3x320x320``, else the command stops
with one line naming them. Every filled size is printed and recorded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, InputError
from edgeport.training.testset import load_testset


def save(dest: Path, x: np.ndarray | dict[str, np.ndarray]) -> None:
    """``x`` (one input) or ``x/NAME`` (one array per input name) into ``dest``."""
    np.savez(dest, **({"x": x} if isinstance(x, np.ndarray) else {f"x/{k}": v for k, v in x.items()}))


def managed(model_dir: Path, manifest: dict[str, Any], dest: Path, data_dir: str | None, data_npz: str | None,
            n: int) -> str:
    """Write ``n`` real test inputs to ``dest`` (random ones in the contract when no data is here)."""
    try:
        test = load_testset(model_dir, manifest, data_dir=data_dir, data_npz=data_npz, limit=n)
        x, where = test.x, f"{len(test)} test inputs from {test.source}"
    except EdgeportError as exc:
        contract = manifest.get("input_contract") or {}
        rng = np.random.default_rng(0)
        lo, hi = contract.get("pixel_range", (0.0, 255.0))
        several = (contract.get("extra") or {}).get("inputs")
        if several:  # a multi-input model: one array per input name, in each input's range
            x = {i["name"]: rng.uniform(*(i.get("range") or (lo, hi)), (n, *[d or 1 for d in i["shape"]]))
                 .astype(np.float32) for i in several}
        else:
            shape = ([contract["height"], contract["width"], contract["channels"]]
                     if contract.get("kind") == "image" else list(contract.get("shape") or [1]))
            x = rng.uniform(lo, hi, (n, *shape)).astype(np.float32)
        where = f"random inputs in the contract ({exc})"
    save(dest, x)
    return where


def bare(artifact: Path, dest: Path, data_npz: str | None, input_shape: list[str] | None, n: int
         ) -> tuple[str, dict[str, list[int]], list[str]]:
    """Check a bare artifact's inputs against the data or ``--input-shape`` in this process (the engine
    is probed in a child first) and write what every row feeds to ``dest``: (the inputs line, the
    shape of one feed per input, notes). Wrong names, shapes or dtypes stop here, in one line."""
    from edgeport.runtimes import load
    from edgeport.runtimes.artifact_info import artifact_info
    from edgeport.runtimes.feeds import batch_of, by_input, parse_input_shapes, random_feed, resolve_shapes

    session = load(artifact)
    given = parse_input_shapes(input_shape, session)
    notes = [] if session.batched else [f"{artifact.name}: {session.unbatched_reason()}; batch sizes other than 1 "
                                        "are not measured"]
    if data_npz:
        test = load_testset(artifact.parent, {}, data_npz=data_npz, limit=n)
        data = by_input(session, test.x, data_npz)
        try:
            session.prepare(data)
        except InputError as exc:
            raise InputError(f"{data_npz}: {exc}") from None
        shapes, said = resolve_shapes(session, data, given)
        where = f"{len(test)} {'feed given whole' if test.whole else 'test inputs'} from {data_npz}"
    else:
        shapes, said = resolve_shapes(session, None, given)
        contract = artifact_info(artifact).contract
        rank4 = any(len(s) == 4 for s in shapes.values())
        lo_hi = contract.pixel_range if contract is not None else ((0.0, 255.0) if rank4 else (-1.0, 1.0))
        data = random_feed(session, shapes, float_range=tuple(lo_hi))
        data = batch_of(session, data, n) or data
        where = (f"{n if session.batched else 1} seeded random input(s) in the artifact's contract "
                 "(no --data-npz given)")
    save(dest, next(iter(data.values())) if len(data) == 1 and session.batched else data)
    where += "; shapes " + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
    return where, {k: list(v) for k, v in shapes.items()}, [*notes, *said]


def preprocess(dest: Path, normalize: str | None, manifest: dict[str, Any], where: str) -> dict[str, Any]:
    """What the inputs in ``dest`` are fed as (``--normalize SCALE,MEAN,STD`` applied to them first, when
    given): the record ``runtimes.preprocess`` makes, its ``text`` one line."""
    from edgeport.runtimes import preprocess as pre
    from edgeport.types import InputContract

    if normalize:
        with np.load(dest, allow_pickle=False) as z:
            x = z["x"] if "x" in z.files else {k.split("/", 1)[1]: z[k] for k in z.files}
        fed, record = pre.normalize_feed(x, normalize, where)
        save(dest, fed)
        return record
    contract = manifest.get("input_contract") or {}
    if contract.get("kind") == "image":
        return pre.stated(InputContract.from_dict(contract), "the model's input contract")
    return {"from": where, "text": f"inputs fed as given ({where})"}
