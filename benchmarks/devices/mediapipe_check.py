"""`make mobile-check`: prove the android bundle inside a real app engine, MediaPipe Tasks.

For each model:

1. its android bundle (``dist/MODEL-android/``) is used when it was made from the model as it is
   now, else built (``edgeport bundle MODEL --target android``, which proves it through LiteRT);
2. N seeded real test images (drawn as the bundle proof draws them: the same images for the same
   ``--samples`` and ``--seed``) are written as RGB PNG files (a grayscale image's value in R, G
   and B), as a phone's gallery or camera would hand them over;
3. MediaPipe's ``vision.ImageClassifier`` (``mediapipe==1.2.2``, from its own virtualenv
   ``.venv-mediapipe``: it pulls OpenCV and matplotlib, ~170 MB of wheels, ~540 MB installed, and
   never touches edgeport's environment) classifies every PNG with each bundle model, one child
   process per model, killed after ``timeout`` seconds; the child imports mediapipe and numpy only;
4. ``edgeport run``'s own code (:func:`edgeport.runtimes.cli.run_artifact`: Pillow reads the PNG,
   LiteRT runs the model) classifies the same PNGs with the same bundle file, and with the verified
   artifact it was made from (``model_fp32.tflite`` / ``model_int8.tflite``, which read the PNG as
   Pillow's "L" for a grayscale model).

Gates, per model and variant, through `edgeport verify`'s compare and gates (two verify rows, the
same-model gate): MediaPipe's top-1 category equals edgeport's on every image, for the bundle file
and for the original artifact; and MediaPipe names it with the label file's label. A check that
cannot run (no virtualenv, a crash, a timeout, a bundle that cannot be built) is a failure.
Writes ``OUT/MODEL/mediapipe_check.json``; exit status 1 unless every model passes.

This module compares, gates and reports; running the two engines is
:mod:`edgeport.benchmarks.devices.mediapipe_run`.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.devices.mediapipe_run import (MEDIAPIPE, VENV, ensure_venv, run_edgeport, run_mediapipe,
                                                      write_pngs)
from edgeport.errors import EdgeportError
from edgeport.names import BUNDLE_FILE

RESULT_FILE = "mediapipe_check.json"
TARGET = "android"


# -- the gate ----------------------------------------------------------------------------------------

def _probabilities(doc: dict[str, Any], classes: int) -> np.ndarray:
    """Per image, `edgeport run`'s answer as one value per class: the top-k probabilities, or an
    artifact's raw values when its output is not a probability distribution (logits)."""
    out = np.full((len(doc["results"]), classes), np.nan)
    for i, r in enumerate(doc["results"]):
        if "top_k" in r:
            for t in r["top_k"]:
                out[i, t["index"]] = t["probability"]
        else:
            out[i] = [np.nan if v is None else v for v in r["outputs"][0]["values"]][:classes]
    return out


def compare(mp_out: dict[str, Any], bundle_doc: dict[str, Any], original_doc: dict[str, Any],
            labels: list[str], y: np.ndarray | None, *, fmt: str, file: str, original: str) -> dict[str, Any]:
    """MediaPipe's scores against `edgeport run`'s answers on the same files, for the bundle file and
    the verified artifact (``fmt``, file ``original``) it was made from: two verify rows under the
    same-model gate (the same top-1 on every image), and MediaPipe's own labels checked."""
    from edgeport.benchmarks.verify.figures import output_kind
    from edgeport.benchmarks.verify.proof import SAME_MODEL, prove
    from edgeport.export.registry import precision_of

    rows = mp_out["rows"]
    n, classes = len(rows), len(labels)
    scores = np.array([r["scores"] for r in rows], np.float64).reshape(n, classes)
    bundle = _probabilities(bundle_doc, classes)
    common = {"gate": SAME_MODEL, "precision": precision_of(fmt).value, "engine": f"mediapipe {mp_out['mediapipe']}",
              "y": y, "kinds": {"output": output_kind(np.nan_to_num(bundle), "classification")}}
    results = [prove(fmt, "mediapipe", file, bundle, scores,
                     against=f"edgeport run {file}", **common),
               prove(fmt, "mediapipe", file, _probabilities(original_doc, classes), scores,
                     against=f"edgeport run {original}", **common)]
    mislabelled = sum(labels[r["index"]] != r["name"] for r in rows)
    categories = sorted({r["categories"] for r in rows})
    problems = [f"MediaPipe names {mislabelled} top-1 categories other than the label file does"] if mislabelled else []
    problems += [] if categories == [classes] else [f"MediaPipe gave {categories} categories, not {classes}"]
    ms = np.asarray(mp_out["classify_s"]) * 1e3
    mine, orig = (r.figures for r in results)
    return {
        "n": n, "results": [r.to_dict() for r in results], "problems": problems, "mediapipe_categories": categories,
        "agreement_bundle": mine.get("agreement"), "agreement_original": orig.get("agreement"),
        "disagreements_original": orig.get("disagreements"), "labels_equal": not mislabelled,
        "max_abs_score_diff": mine.get("max_abs_diff"), "mediapipe_accuracy": mine.get("accuracy"),
        "time": {"mediapipe_create_s": round(mp_out["create_s"], 3),
                 "mediapipe_classify_ms_p50": round(float(np.median(ms)), 4) if n else None,
                 "mediapipe_process_s": round(mp_out["process_s"], 2),
                 "edgeport_run_bundle_s": round(bundle_doc["seconds"], 2),
                 "edgeport_run_original_s": round(original_doc["seconds"], 2)},
        "engines": {"mediapipe": mp_out["mediapipe"], "edgeport_bundle": bundle_doc.get("engine"),
                    "edgeport_original": original_doc.get("engine")},
        "image_formats": mp_out.get("image_formats"),
        "status": "pass" if n and not problems and all(r.status == "pass" for r in results) else "fail"}


# -- one model ---------------------------------------------------------------------------------------

def _bundle(model: str, model_dir: Path, out: Path, dist: Path, samples: int, seed: int, rebuild: bool,
            data_dir: str | None) -> tuple[Path, dict[str, Any], bool]:
    """(bundle folder, its bundle.json, whether it was built now): reused when it is this model's."""
    from edgeport.bundle import BundleError, open_bundle
    from edgeport.export.targets import bundle_model
    from edgeport.manifest import load_manifest

    sha = (load_manifest(model_dir).get("source") or {}).get("sha256")
    folder = dist / f"{model_dir.name}-{TARGET}"
    if not rebuild and folder.is_dir():
        try:
            with open_bundle(folder) as bundle:
                meta = bundle.meta
            proof = (meta.get("proof") or {}).get("data") or {}
            if meta.get("source_sha256") == sha and proof.get("n", 0) >= samples and proof.get("seed") == seed:
                return folder, meta, False
        except BundleError:
            pass  # changed or unreadable: build it again
    result = bundle_model(model, target=TARGET, out=out, dist=dist, samples=max(samples, 200), seed=seed,
                          data_dir=data_dir)
    return result.folder, json.loads((result.folder / BUNDLE_FILE).read_text()), True


def _check_variant(python: Path, fmt: str, bundle_file: Path, original: Path, pngs: list[Path], labels: list[str],
                   y: np.ndarray | None, work: Path, timeout: float) -> dict[str, Any]:
    """One bundle file in MediaPipe against edgeport run on it and on its original artifact (``fmt``)."""
    try:
        work.mkdir()
        mp_out = run_mediapipe(python, bundle_file, pngs, len(labels), work, timeout)
        return compare(mp_out, run_edgeport(bundle_file, pngs, len(labels)),
                       run_edgeport(original, pngs, len(labels)), labels, y, fmt=fmt, file=bundle_file.name,
                       original=original.name)
    except EdgeportError as exc:
        return {"status": "fail", "error": str(exc)}


def check_model(model: str, python: Path, *, out: Path, dist: Path, samples: int, seed: int, timeout: float,
                rebuild: bool, data_dir: str | None, work: Path) -> dict[str, Any]:
    from edgeport.export.targets.bundle import require_verified
    from edgeport.export.targets.mobile import REQUIRED
    from edgeport.export.targets.mobile_model import VARIANTS
    from edgeport.export.targets.mobile_proof import proof_images
    from edgeport.manifest import find_model_dir, load_manifest

    start = time.perf_counter()
    model_dir = find_model_dir(model, out)
    folder, meta, built = _bundle(model, model_dir, out, dist, samples, seed, rebuild, data_dir)
    manifest = load_manifest(model_dir)
    labels = list(meta["mobile"]["labels"])
    x, y, data = proof_images(model_dir, manifest, require_verified(model_dir, list(REQUIRED)), samples, seed,
                              data_dir)
    pngs = write_pngs(x, work / "images")
    results = []
    for v in VARIANTS:
        info = meta["mobile"]["variants"][v.name]
        original = model_dir / manifest["artifacts"][v.artifact]["file"]
        print(f"mediapipe-check: {model} {info['file']} ({len(pngs)} images)", flush=True)
        results.append({"variant": v.name, "file": info["file"], "original": original.name,
                        **_check_variant(python, v.artifact, folder / info["file"], original, pngs, labels, y,
                                         work / v.name, timeout)})
    return {"schema": 1, "model": model_dir.name, "generated": _now(), "bundle": str(folder), "bundle_built": built,
            "images": {**data, "format": "PNG, RGB 8-bit"}, "labels": labels, "results": results,
            "seconds": round(time.perf_counter() - start, 1), "ok": all(r["status"] == "pass" for r in results)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- the command -------------------------------------------------------------------------------------

@dataclass
class MediaPipeReport:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.models) and all(m["ok"] for m in self.models.values())

    def render(self) -> str:
        from edgeport.tables import fmt_num, fmt_pct, text_table

        rows, errors = [], list(self.errors)
        for name, sec in self.models.items():
            for r in sec.get("results", []):
                t = r.get("time", {})
                rows.append([name, r["file"], str(r.get("n", "-")), fmt_pct(r.get("agreement_bundle")),
                             fmt_pct(r.get("agreement_original")) + f" ({r['original']})",
                             "-" if "labels_equal" not in r else ("yes" if r["labels_equal"] else "NO"),
                             fmt_num(r.get("max_abs_score_diff"), ".1e"),
                             fmt_num(t.get("mediapipe_classify_ms_p50"), ".3f"),
                             fmt_num(t.get("mediapipe_process_s"), ".1f"),
                             fmt_num(t.get("edgeport_run_bundle_s"), ".1f"), r["status"].upper()])
                errors += [f"{name} {r['file']}: {r['error']}"] if r.get("error") else []
                errors += [f"{name} {r['file']}: {e['message']}" for x in r.get("results", []) for e in x["failures"]]
                errors += [f"{name} {r['file']}: {p}" for p in r.get("problems", [])]
            if sec.get("error"):
                rows.append([name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "FAIL"])
                errors.append(f"{name}: {sec['error']}")
        header = ["model", "bundle file", "images", "MediaPipe = edgeport run", "= edgeport run (original)",
                  "labels equal", "max |score diff|", "MP ms/img p50", "MP process s", "edgeport run s", "gate"]
        out = [text_table(f"MediaPipe Tasks {self.setup.get('mediapipe', MEDIAPIPE)} ImageClassifier vs edgeport run "
                          "(top-1 on the same PNG files)", header, rows, left=2)]
        if self.setup:
            how = "installed now" if self.setup.get("installed") else "reused"
            out.append(f"virtualenv {self.setup.get('venv')} ({how}, {self.setup.get('seconds', 0):.1f} s)")
        out += [f"error: {e}" for e in errors]
        return "\n".join(out + [f"wrote {p}" for p in self.files])


def run_mediapipe_check(models: list[str], *, out: Path = Path("artifacts"), dist: Path = Path("dist"),
                        samples: int = 200, seed: int = 0, venv: Path = VENV, timeout: float = 600.0,
                        rebuild: bool = False, data_dir: str | None = None) -> MediaPipeReport:
    """Run each model's android bundle in MediaPipe Tasks and in edgeport run on the same PNG files.

    models: model names or directories under --out (exported and verified)
    out: artifacts directory
    dist: where the android bundles are (built there when missing or made from another model)
    samples: real test images per model (at least 200)
    seed: seed that picks the images (the bundle proof's draw)
    venv: the virtualenv that holds mediapipe (created with pip install mediapipe==1.2.2 when missing)
    timeout: seconds one MediaPipe child process may take before it is killed
    rebuild: build the bundles again even when they are current
    data_dir: data directory of the models' dataset
    """
    from edgeport.files import write_json_atomic

    report = MediaPipeReport()
    if samples < 200 or timeout <= 0:
        raise EdgeportError(f"--samples must be at least 200 and --timeout positive (got {samples}, {timeout})")
    start = time.perf_counter()
    try:
        python, installed = ensure_venv(Path(venv))
    except EdgeportError as exc:
        report.errors.append(f"MediaPipe cannot run: {exc}")
        return report
    report.setup = {"venv": str(venv), "python": str(python), "mediapipe": MEDIAPIPE, "installed": installed,
                    "seconds": time.perf_counter() - start}
    for model in dict.fromkeys(models):
        with tempfile.TemporaryDirectory(prefix="edgeport-mediapipe-") as tmp:
            try:
                sec = check_model(model, python, out=Path(out), dist=Path(dist), samples=samples, seed=seed,
                                  timeout=timeout, rebuild=rebuild, data_dir=data_dir, work=Path(tmp))
            except EdgeportError as exc:
                report.models[model] = {"model": model, "ok": False, "error": str(exc), "results": []}
                continue
        sec["setup"] = report.setup
        report.models[model] = sec
        report.files.append(write_json_atomic(Path(out) / sec["model"] / RESULT_FILE, sec))
    return report


def main(argv: list[str] | None = None) -> int:
    from edgeport.cli import build_parser

    args = build_parser(run_mediapipe_check, "python -m edgeport.benchmarks.devices.mediapipe_check").parse_args(
        sys.argv[1:] if argv is None else argv)
    try:
        report = run_mediapipe_check(**vars(args))
    except EdgeportError as exc:
        print(f"mediapipe-check: error: {exc}", file=sys.stderr)
        return 1
    print(report.render())
    if not report.ok:
        print("mediapipe-check: FAIL" + ("" if report.models or report.errors else ": no model checked"),
              file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    from edgeport.native_log import native_to_log

    with native_to_log("mobile-check"):  # TensorFlow's, absl's and oneDNN's lines: to the log, as in every command
        code = main()
    sys.exit(code)
