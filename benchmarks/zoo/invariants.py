"""The invariants every proof keeps, each checked on one zoo model through the real CLI.

identity: verify against a byte-identical copy passes; sensitivity: one weight x 1.01 fails;
batching: N rows == N single runs; outputs: read with the shape the engine returns; preprocessing:
what a photo became is stated and recorded; export: a Keras / SavedModel source exports and proves.
no_traceback is judged by the caller over every command these ran."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks.zoo.commands import Cmd, Log
from edgeport.benchmarks.zoo.edits import NoWeightToEdit, scale_one_weight
from edgeport.benchmarks.zoo.recipes import Recipe
from edgeport.runtimes.dims import tensor_keys

PASS, FAIL, NA = "PASS", "FAIL", "n.a."
INVARIANTS = ("identity", "sensitivity", "batching", "outputs", "no_traceback", "preprocessing", "export")
STATED = re.compile(r"preprocess|normali[sz]|0-255|0\.\.255|raw pixel", re.I)
PREP_FLAG = re.compile(r"--(mean|std|scale|normali[sz]e|preprocess)\b")


@dataclass(frozen=True)
class Check:
    status: str
    message: str = ""


def why(cmd: Cmd) -> str:
    return f"`{cmd.line}` exit {cmd.rc}: {cmd.tail()}"


def identity(log: Log, artifact: Path, copy: Path, npz: Path) -> Check:
    cmd = log.edgeport("verify", artifact, "--reference", copy, "--data-npz", npz)
    return Check(PASS, "verify against a byte-identical copy passed") if cmd.rc == 0 else Check(FAIL, why(cmd))


def sensitivity(log: Log, artifact: Path, reference: Path, npz: Path) -> Check:
    scaled = artifact.parent / "scaled" / artifact.name
    scaled.parent.mkdir(exist_ok=True)
    try:
        what = scale_one_weight(artifact, scaled)
    except NoWeightToEdit as exc:
        return Check(NA, str(exc))
    cmd = log.edgeport("verify", scaled, "--reference", reference, "--data-npz", npz)
    if cmd.rc == 1:
        return Check(PASS, f"{what}: verify failed as it must")
    if cmd.rc == 0:
        return Check(FAIL, f"{what}: verify PASSED the edited file (`{cmd.line}`)")
    return Check(FAIL, f"{what}: {why(cmd)}")


def _rows_of(doc: dict | None) -> list[dict]:
    return list((doc or {}).get("results") or [])


def _values(result: dict) -> dict[str, tuple[list, np.ndarray]]:
    """One result's outputs by position as {"I name": (shape, values)}; a classifier's top-k as {"top_k": ...}."""
    if "top_k" in result:
        top = result["top_k"]
        return {"top_k": ([len(top)], np.array([[t["index"], t["probability"]] for t in top], np.float64))}
    return {f"{i} {o['name']}": (o["shape"], np.array([np.nan if v is None else v for v in o["values"]], np.float64))
            for i, o in enumerate(result.get("outputs", []))}


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    if a.shape != b.shape:
        return False
    scale = float(np.nanmax(np.abs(b))) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-3), equal_nan=True))


def batching(log: Log, recipe: Recipe, artifact: Path, npz: Path, one: Cmd, n: int) -> Check:
    """``one``: `edgeport run` of the ``n`` one-row files (each its own run) that the batch is held to."""
    if not recipe.batched:
        return Check(NA, recipe.stateful or "inputs share no batch axis")
    whole = log.edgeport("run", artifact, npz, "--json")
    if whole.rc or one.rc:
        return Check(FAIL, why(whole if whole.rc else one))
    rows, each = _rows_of(whole.json()), _rows_of(one.json())
    if len(rows) != n or len(each) != n:
        return Check(FAIL, f"{n} rows gave {len(rows)} results batched, {len(each)} one by one")
    rtol = 1e-2 if recipe.precision == "fp16" else 1e-4
    for i, (a, b) in enumerate(zip(rows, each)):
        va, vb = _values(a), _values(b)
        for name in vb:
            if name not in va or not _close(va[name][1], vb[name][1], rtol):
                got = va.get(name, ([], np.zeros(0)))[1]
                diff = (float(np.nanmax(np.abs(got - vb[name][1]))) if got.shape == vb[name][1].shape
                        else f"shape {va.get(name, ([None],))[0]} vs {vb[name][0]}")
                return Check(FAIL, f"row {i}, output {name}: batched run differs from its single run ({diff})")
    notes = " ".join(n for n in (whole.json() or {}).get("notes", []) if "row" in n or "batch" in n)
    return Check(PASS, f"{n} rows batched == {n} single runs" + (f"; {notes}" if notes else ""))


def _declared_differs(declared: list, got: tuple[int, ...]) -> bool:
    if len(declared) != len(got):
        return True
    return any(isinstance(d, int) and d >= 0 and d != g for d, g in zip(declared, got))


def _shown(results: list[dict]) -> list[tuple[str, list, np.ndarray]]:
    """Each output as `run --json` showed it for one input: (name, shapes, every value), by position
    (several results for one input, as a batch split along a non-batch axis gives, are joined)."""
    shown: list[tuple[str, list, np.ndarray]] = []
    for r in results:
        for i, o in enumerate(r.get("outputs", [])):
            v = np.array([np.nan if x is None else x for x in o["values"]], np.float64)
            if i == len(shown):
                shown.append((o["name"], [o["shape"]], v))
            else:
                name, shapes, old = shown[i]
                shown[i] = (name, [*shapes, o["shape"]], np.concatenate([old, v]))
    return shown


def _top_k_problem(result: dict, name: str, y: np.ndarray) -> str | None:
    top = result["top_k"][0]
    if top["index"] != int(np.argmax(y)) or not np.isclose(top["probability"], float(np.max(y)), rtol=1e-4):
        return f"{name}: top-1 {top} is not the engine's ({int(np.argmax(y))}, {float(np.max(y)):.6g})"
    return None


def outputs(cmd: Cmd, single: str, engine: dict[str, np.ndarray], declared: dict[str, list]) -> Check:
    """``cmd``: `edgeport run ... SINGLE ... --json`; ``engine``/``declared``: what the engine itself
    returned for that one row and what it declares. Outputs are matched by their values (names may
    be a signature's or collide), then held to the shape the engine returned."""
    if cmd.rc:
        return Check(FAIL, why(cmd))
    results = [r for r in _rows_of(cmd.json()) if str(r.get("input", "")).startswith(single)]
    if not results:
        return Check(FAIL, f"`{cmd.line}`: no result")
    said = " ".join([*(cmd.json() or {}).get("notes", []), cmd.err])
    problems = [f"{name} declared {declared[name]}, returned {list(y.shape)}: not said"
                for name, y in engine.items() if _declared_differs(declared[name], y.shape) and "declared" not in said]
    if "top_k" in results[0]:
        problems += [p for p in (_top_k_problem(results[0], n, y) for n, y in engine.items()) if p]
        return Check(FAIL, "; ".join(problems)) if problems else Check(PASS, "top-k is the engine's")
    shown = _shown(results)
    names = [n for n, _, _ in shown]
    if len(set(names)) < len(names):
        problems.append(f"output names collide: {names} (engine: {list(engine)})")
    unused = list(range(len(shown)))
    keys = dict(zip(engine, tensor_keys(list(engine))))
    for name, y in engine.items():
        flat = y.astype(np.float64).ravel()
        hit = next((i for i in unused if shown[i][2].size == flat.size
                    and np.allclose(shown[i][2], flat, rtol=1e-5, atol=1e-6, equal_nan=True)), None)
        if hit is None:
            near = next((i for i in unused if shown[i][0] == keys[name]), unused[0] if unused else None)
            what = (f"edgeport read {' + '.join(map(str, shown[near][1]))} ({shown[near][2].size} values)"
                    if near is not None else "edgeport shows nothing for it")
            problems.append(f"{name}: engine returned {list(y.shape)} ({y.size} values), {what}")
            continue
        unused.remove(hit)
        shapes = shown[hit][1]
        if len(shapes) > 1 or list(shapes[0]) not in (list(y.shape), list(y.shape[1:])):
            problems.append(f"{name}: shown as {' + '.join(map(str, shapes))}, engine returned {list(y.shape)}")
    if problems:
        return Check(FAIL, "; ".join(problems))
    return Check(PASS, ", ".join(f"{k} {list(v.shape)}" for k, v in engine.items()))


_FLAGS: dict[str, bool] = {}


def _takes_preprocessing_flags() -> list[str]:
    """The commands among run, verify and bench whose options (the CLI's own parser) have no
    scale/mean/std flag."""
    from edgeport.cli import COMMANDS, build_parser
    from edgeport.lazy import resolve

    for command in ("run", "verify", "bench"):
        if command not in _FLAGS:
            parser = build_parser(resolve(COMMANDS[command][0]), f"edgeport {command}")
            _FLAGS[command] = bool(PREP_FLAG.search(parser.format_help()))
    return [c for c, ok in _FLAGS.items() if not ok]


def preprocessing(log: Log, recipe: Recipe, artifact: Path, photo: Path | None) -> Check:
    if photo is None:
        return Check(NA, "no image input")
    shape = [a for s in recipe.run_shape for a in ("--input-shape", s)]
    text = log.edgeport("run", artifact, photo, *shape)
    doc = log.edgeport("run", artifact, photo, *shape, "--json")
    if text.rc or doc.rc:
        return Check(FAIL, why(text if text.rc else doc))
    problems = []
    if not STATED.search(text.out + text.err):
        problems.append(f"`{text.line}` does not say what the image became")
    record = doc.json() or {}
    if record.get("preprocessing") is None and record.get("normalization") is None:
        problems.append("--json records no preprocessing (normalization: null)")
    missing = _takes_preprocessing_flags()
    if missing:
        problems.append(f"no scale/mean/std flag on {', '.join(missing)}")
    return Check(FAIL, "; ".join(problems)) if problems else Check(PASS, "stated and recorded")
