"""What one fuzz case does with its mutated file: the same front door a user goes through.

- a model file kind (named by the artifact file it mutates, e.g. ``model_int8.tflite``: one per
  registry format proved by running, one file, with runtimes; a new format joins by itself):
  ``edgeport.runtimes.load`` on each of the format's runtimes, then a prediction (``edgeport run``);
- ``keras``, ``h5``: the keras runtime's load and a prediction (``edgeport run model.keras``; export
  loads it the same way);
- ``manifest``: a model directory with the mutated manifest.json planned for verification
  (``edgeport verify``: strict parsing, integrity of every file, freshness);
- ``bundle``: ``edgeport verify --bundle`` up to the engines (safe unpacking, every sha256);
- ``inputs.npz``: a mutated .npz keyed by input name fed to a 3-input stateful ONNX model (float
  audio, a state without a batch axis, an int64 scalar) through ``edgeport run`` and what
  ``edgeport bench --data-npz`` checks before its rows;
- ``input_shape``: a mutated ``--input-shape`` string for a model with symbolic height/width, parsed,
  filled and run as ``edgeport bench``/``run`` do.

``guarded=False`` runs without the child-process probe (fast, in this worker: a crash kills the
worker and the supervisor replays the case guarded); ``guarded=True`` is exactly the product path.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgeport.export import registry

#: The kinds that are not export formats: their case file's suffix and their share of a run.
OTHER_SUFFIX = {"keras": ".keras", "h5": ".h5", "manifest": ".json", "bundle": ".tar.gz", "inputs.npz": ".npz",
                "input_shape": ".txt"}
OTHER_SHARES = {"keras": 0.11, "h5": 0.11, "manifest": 0.12, "bundle": 0.12, "inputs.npz": 0.05, "input_shape": 0.05}
#: The share of a run that the model-file kinds split evenly.
MODEL_FILE_SHARE = 0.44


def format_kinds() -> dict[str, registry.FormatInfo]:
    """Fuzz kind (the artifact's file name) -> its registry row: every format proved by running,
    made of one file (not a directory), that some runtime loads."""
    return {i.file: i for i in registry.INFO.values()
            if i.proof is registry.Proof.RUN and not i.directory and i.runtimes}


def shares() -> dict[str, float]:
    """Every fuzz kind and its share of a run's cases."""
    files = format_kinds()
    return {**{k: MODEL_FILE_SHARE / len(files) for k in files}, **OTHER_SHARES}


def suffix(kind: str) -> str:
    """The suffix a case file of ``kind`` is written with (what the front door recognises it by)."""
    return Path(kind).suffix if kind in format_kinds() else OTHER_SUFFIX[kind]


def _predict(session) -> None:
    feeds = [np.zeros((1, *(d or 1 for d in s.shape[1:])), np.float32) for s in session.inputs]
    session.predict(feeds if len(feeds) > 1 else feeds[0])


def run_case(kind: str, path: Path, corpus: dict[str, Path], work: Path, *, guarded: bool) -> str:
    """Run one case; returns "ran" or raises (EdgeportError: a clean refusal)."""
    formats = format_kinds()
    if kind in formats:
        from edgeport.runtimes import load

        for runtime in formats[kind].runtimes:
            _predict(load(path, runtime=runtime, probe=guarded))
    elif kind in ("keras", "h5"):
        from edgeport.runtimes import load

        _predict(load(path, probe=guarded))  # the runtime its kind runs on
    elif kind == "manifest":
        from edgeport.benchmarks.verify.plan import from_model_dir

        model_dir = work / "model"
        if not model_dir.exists():
            shutil.copytree(corpus["manifest"].parent, model_dir)
        shutil.copyfile(path, model_dir / "manifest.json")
        plan = from_model_dir(model_dir, data_dir=None, data_npz=str(corpus["manifest"].parents[2] / "test.npz"),
                              limit=8)
        errors = [i.error for i in plan.artifacts if i.error is not None]
        if errors:
            raise errors[0]
    elif kind == "bundle":
        from edgeport.benchmarks.verify.bundle import plan_bundle
        from edgeport.bundle import open_bundle

        with open_bundle(path) as bundle:
            plan, _ = plan_bundle(bundle, work / "bundle.verify.json")
            errors = [i.error for i in plan.artifacts if i.error is not None]
            if errors:
                raise errors[0]
    elif kind == "inputs.npz":
        _inputs_npz(path, corpus, work, guarded)
    elif kind == "input_shape":
        _input_shape(path, corpus, guarded)
    else:  # pragma: no cover
        raise ValueError(f"unknown fuzz kind {kind!r}")
    return "ran"


def _inputs_npz(path: Path, corpus: dict[str, Path], work: Path, guarded: bool) -> None:
    """``edgeport run stateful.onnx case.npz``, then the check ``edgeport bench --data-npz`` makes."""
    import contextlib
    import io

    from edgeport.benchmarks.bench import inputs as bench_inputs
    from edgeport.runtimes.cli import run_artifact

    model = corpus["stateful"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_artifact(str(model), [str(path)])
    bench_inputs.bare(model, work / "feed.npz", str(path), None, 32)


def _input_shape(path: Path, corpus: dict[str, Path], guarded: bool) -> None:
    """``--input-shape TEXT`` for the symbolic model: parsed, its dimensions filled, one feed run."""
    from edgeport.runtimes import load
    from edgeport.runtimes.feeds import parse_input_shapes, random_feed, resolve_shapes

    text = path.read_bytes().decode("utf-8", "surrogateescape")  # what argv gives for any bytes
    session = load(corpus["symbolic"], probe=guarded)
    shapes, _ = resolve_shapes(session, None, parse_input_shapes([text], session))
    session.predict(random_feed(session, shapes, float_range=(0.0, 255.0)))
