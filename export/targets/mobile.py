"""Android and iOS bundles: an image classifier that takes what a phone camera gives it.

Every image model gets a *mobile variant*, built from its source Keras model and wrapped so that a
phone app's engine (MediaPipe Tasks' ImageClassifier, the TFLite Task Library) runs it with no code
of its own::

    uint8 RGB [1, H, W, 3] -> float32 -> (grayscale models: luma as PIL's "L") -> the model
                           -> probabilities float32 [1, N]   (a sigmoid model: [1 - p, p])

It is exported as a batch-1 SavedModel and converted twice by the export registry's own converters
(:mod:`~edgeport.export.fixed_batch`): ``model.tflite`` (float32) and ``model_int8.tflite`` (int8,
calibrated on the manifest's recorded calibration samples in the RGB camera form). Both carry
standard TFLite Metadata: name, description, version, the input's
ImageProperties (RGB) and the labels packed as a ``TENSOR_AXIS_LABELS`` file.

- Grayscale models (Fashion-MNIST, MNIST) compute luma inside, as Pillow converts RGB to "L"
  (``edgeport run`` reads images with Pillow): the ITU-R BT.601 weights in 16-bit fixed point,
  ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``. In float32 every intermediate of that is an
  integer below 2**24, so the model's luma equals Pillow's exactly (0.299 R + 0.587 G + 0.114 B
  rounded differs from it on about one pixel in 2,000).
- The wrapper's own steps (luma, the two-class step, a softmax on logits) stay float32 inside the
  int8 model (TFLite's public QuantizationDebugger, ``denylisted_nodes``), so the quantized network
  is the one `edgeport export` made for ``model_int8.tflite``: same graph, same calibration, same
  scales. On the real test images its outputs equal that verified artifact's.

Nothing ships unproved: the model must have passed `edgeport verify` as it is now, and on
``samples`` (at least 200) seeded real test images each variant, through ``edgeport.runtimes``,
passes verify's gate of its format against the Keras model and picks the verified artifact's top-1
on every image (same pixels). The rows (verify.json's) go to bundle.json (``proof``);
`python -m edgeport.benchmarks.devices.mediapipe_check` proves the same files again inside MediaPipe.

This module checks the model and assembles the bundle (:func:`build_android`, :func:`build_ios`);
the parts are :mod:`~edgeport.export.targets.mobile_model` (the wrapper and its conversion),
:mod:`~edgeport.export.targets.mobile_proof` (the proof) and
:mod:`~edgeport.export.targets.mobile_usage` (the layouts and USAGE.md).
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.verify import proof
from edgeport.errors import EdgeportError, ExportError
from edgeport.export.registry import for_bundle
from edgeport.export.targets.bundle import BundleBuilder, require_verified
from edgeport.export.targets.common import check_artifacts
from edgeport.export.targets.mobile_model import (HEADS, VARIANTS, camera_form, check_io, convert, describe,
                                                  output_head, wrap)
from edgeport.export.targets.mobile_proof import proof_images, prove
from edgeport.export.targets.mobile_usage import ANDROID, IOS, Layout, usage
from edgeport.files import sha256_file
from edgeport.manifest import effective_entries, load_manifest
from edgeport.types import InputContract

REQUIRED = tuple(v.artifact for v in VARIANTS)  # the verified TFLite float32 and full-integer formats
MIN_SAMPLES = 200
LABELS_FILE = "labels.txt"


def build_android(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    """``assets/`` (model.tflite, model_int8.tflite, labels.txt) for an app's src/main/assets, and USAGE.md."""
    _build(Path(model_dir), builder, ANDROID, samples=samples, seed=seed, data_dir=data_dir)


def build_ios(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    """model.tflite, model_int8.tflite, labels.txt for an Xcode target, and USAGE.md."""
    _build(Path(model_dir), builder, IOS, samples=samples, seed=seed, data_dir=data_dir)


# -- what can go to a phone --------------------------------------------------------------------------

def image_contract(model: str, manifest: dict[str, Any], target: str = "android") -> InputContract:
    """The model's input contract if a phone's (or a page's) image classifier can feed it; EdgeportError
    naming ``target`` otherwise."""
    raw = manifest.get("input_contract") or {}
    try:
        contract = InputContract.from_dict(raw)
    except (TypeError, ValueError, KeyError):
        raise EdgeportError(f"{model}: the manifest has no readable input contract; re-export it") from None
    names = manifest.get("input_names") or []
    if contract.kind != "image":
        raise EdgeportError(f"{model}: the {target} target is for image classifiers (a camera frame in, "
                            f"labels out); this model takes {contract.kind} of shape {list(contract.shape)}"
                            f"{' (' + manifest['dataset'] + ')' if manifest.get('dataset') else ''}. "
                            "Ship it with --target rpi, or call its artifacts from your own app code")
    if len(names) > 1 or (contract.extra or {}).get("inputs"):
        raise EdgeportError(f"{model}: a mobile image classifier has one image input; this model takes {names}")
    if contract.channels not in (1, 3) or contract.layout.upper() != "NHWC" or \
            tuple(contract.pixel_range) != (0.0, 255.0):
        raise EdgeportError(f"{model}: a mobile image classifier takes NHWC 0-255 pixels with 1 or 3 channels; "
                            f"this model takes {contract.layout} {contract.channels} channels in "
                            f"{list(contract.pixel_range)}")
    if manifest.get("task") == "regression":
        raise EdgeportError(f"{model}: the {target} target is for image classifiers; this model is a "
                            "regression")
    return contract


@dataclass
class Source:
    """A verified image model, checked and ready to wrap."""

    dir: Path
    manifest: dict[str, Any]
    contract: InputContract
    entries: dict[str, dict[str, Any]]
    verify: dict[str, Any]
    labels: list[str]
    calibration: dict[str, Any]  # the recorded calibration of the verified int8 TFLite artifact
    as_is: tuple[str, ...] = ()  # formats the target carries as they are (registry ``bundles``), verified

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def sha256(self) -> str:
        return (self.manifest.get("source") or {}).get("sha256", "")


def checked_source(model_dir: Path, samples: int, target: str) -> Source:
    """The model if it may go to a phone: an image classifier, verified, its artifacts intact and fresh
    (those the ``target`` carries as they are too, when exported)."""
    name, manifest = model_dir.name, load_manifest(model_dir)
    contract = image_contract(name, manifest, target)
    entries = effective_entries(model_dir, manifest)
    if missing := [f for f in REQUIRED if f not in entries]:
        raise EdgeportError(f"{name}: a mobile bundle is proved against {', '.join(REQUIRED)}; export "
                            f"{', '.join(missing)} first (edgeport export {model_dir} --formats {' '.join(missing)})")
    if samples < MIN_SAMPLES:
        raise EdgeportError(f"--samples {samples}: a mobile bundle is proved on at least {MIN_SAMPLES} real test "
                            "images")
    as_is = tuple(f for f in for_bundle(target) if f not in REQUIRED and f in entries)
    verify = require_verified(model_dir, [*REQUIRED, *as_is])
    source = Source(model_dir, manifest, contract, entries, verify, [str(s) for s in manifest.get("labels") or []],
                    manifest.get("calibration") or entries[VARIANTS[-1].artifact].get("calibration") or {}, as_is)
    check_artifacts(model_dir, manifest, entries, [*REQUIRED, *as_is], source.sha256)
    if not source.labels:
        raise EdgeportError(f"{name}: no labels in the manifest; an app's ImageClassifier needs them")
    if not source.calibration:
        raise EdgeportError(f"{name}: the manifest records no calibration; re-export {VARIANTS[-1].artifact}")
    return source


# -- the bundle --------------------------------------------------------------------------------------

def _source_model(model_dir: Path, manifest: dict[str, Any]):
    """The Keras model the artifacts were exported from (checked against the manifest's sha256)."""
    from edgeport.export.source import load_keras

    source = manifest.get("source") or {}
    if source.get("kind") not in ("keras", "h5"):
        raise EdgeportError(f"{model_dir.name}: a mobile variant is built from the Keras model; this model was "
                            f"exported from a {source.get('kind') or 'unknown'} source")
    path = model_dir / source["file"]
    if not path.is_file():
        raise EdgeportError(f"{path}: the source model the manifest names is missing")
    if sha256_file(path) != source.get("sha256"):
        raise EdgeportError(f"{path}: changed since export (sha256 differs from the manifest's); run "
                            f"`edgeport export {model_dir}` and `edgeport verify {model_dir}` again")
    return load_keras(path, kind=source["kind"])


def _meta(src: Source) -> dict[str, Any]:
    """The edgeport metadata of the variants (their own input contract is added where they are made)."""
    from edgeport import __version__

    return {"model": src.name, "labels": src.labels, "source_sha256": src.sha256, "edgeport": __version__}


def mobile_variants(src: Source) -> tuple[Any, str, bytes, bytes, list[str]]:
    """(the Keras model, its head, float32 model, int8 model, tensors kept float in the int8 one)."""
    from edgeport.export.calibration import rebuild
    from edgeport.native_log import NativeLog

    log = NativeLog()
    try:
        with log.capture(f"load {src.name}"):
            model = _source_model(src.dir, src.manifest)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise EdgeportError(f"{src.name}: a mobile image classifier has one input and one output; this model has "
                                f"{len(model.inputs)} and {len(model.outputs)}")
        calibration = next(iter(rebuild(src.calibration).values()))
        head = output_head(np.asarray(model.predict(calibration[:32], verbose=0)), src.labels, src.name)
        with tempfile.TemporaryDirectory(prefix="edgeport-mobile-") as tmp, log.capture(f"convert {src.name}"):
            wrapper = wrap(model, src.contract, head)
            fp32, int8, kept = convert(wrapper, src.contract, camera_form(calibration), Path(tmp), _meta(src))
    except EdgeportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the converters raise anything; say what failed, keep the log's tail
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        tail = [ln for ln in log.path.read_text(errors="replace").splitlines() if ln.strip()][-5:]
        raise ExportError(f"{src.name}: building the mobile variant failed ({type(exc).__name__}: {first})\n"
                          + "\n".join(tail)) from None
    finally:
        log.close()
    return model, head, fp32, int8, kept


def write_models(builder: BundleBuilder, layout: Layout, src: Source, models: tuple[bytes, bytes]
                 ) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Both variants with standard metadata, and labels.txt: (paths by variant, their descriptions)."""
    from edgeport import __version__
    from edgeport.export.targets.metadata_writer import write_image_classifier

    c, n, sha12 = src.contract, len(src.labels), src.sha256[:12]
    task = (f"{n}-class image classifier {src.name} (edgeport {__version__}, from {src.manifest['source']['file']} "
            f"sha256 {sha12}). Input: RGB uint8 {c.height}x{c.width}"
            + (", converted to luma inside (ITU-R BT.601, as Pillow's 'L')" if c.channels == 1 else "")
            + f". Output: {n} probabilities.")
    files, variants = {}, {}
    for v, raw in zip(VARIANTS, models):
        desc = describe(raw)
        check_io(desc, c, n, f"{src.name} {v.file}")
        weights = "float32" if v.name == "float32" else "int8 (calibrated)"
        data = write_image_classifier(raw, src.labels, name=f"{src.name} ({v.name})",
                                      description=f"{task} Weights: {weights}.", version=f"{__version__}+{sha12}",
                                      labels_file=LABELS_FILE)
        files[v.name] = builder.add_bytes(layout.folder + v.file, data)
        variants[v.name] = {"file": layout.folder + v.file, "bytes": len(data), "weights": weights,
                            "verified_artifact": v.artifact, **desc}
    builder.add_text(layout.folder + LABELS_FILE, "\n".join(src.labels) + "\n")
    return files, variants


def ship_as_is(builder: BundleBuilder, layout: Layout, src: Source) -> dict[str, dict[str, Any]]:
    """The verified artifacts the target carries as they are (e.g. the ONNX Runtime Mobile files), each with
    the files exported beside it; those not exported are said on screen and in bundle.json's notes."""
    if missing := [f for f in for_bundle(builder.target) if f not in REQUIRED and f not in src.entries]:
        note = (f"not shipped, not exported: {', '.join(missing)} (`edgeport export {src.dir} --formats "
                f"{' '.join(missing)}`, then verify and bundle again)")
        print(f"warning: {src.name}: {note}", file=sys.stderr)
        builder.notes.append(note)
    shipped = {}
    for fmt in src.as_is:
        entry = src.entries[fmt]
        names = list(entry["files"])  # the artifact and its extra files, each hashed in the manifest
        for name in names:
            builder.add_file(layout.folder + name, src.dir / name)
        shipped[fmt] = {"file": layout.folder + entry["file"], "files": [layout.folder + n for n in names],
                        "bytes": entry["bytes"], "precision": entry["precision"], "converter": entry.get("converter"),
                        "inputs": entry["inputs"], "outputs": entry["outputs"],
                        "required_operators": entry.get("required_operators"), "verified": True}
    return shipped


def _notes(builder: BundleBuilder, src: Source, variants: dict[str, dict[str, Any]], kept: list[str],
           data: dict[str, Any]) -> None:
    if src.contract.channels == 1:
        builder.notes.append("grayscale model: the mobile variants take RGB and compute luma inside as Pillow's "
                             "'L' (exact), so a camera frame and `edgeport run` on the same PNG see the same pixels")
    if kept:
        builder.notes.append(f"model_int8.tflite: the wrapper's own steps ({' '.join(variants['int8']['float_ops'])}) "
                             "run in float32; the network itself is int8, as in the verified artifact")
    if data["rounded_to_uint8"]:
        builder.notes.append("the test images had non-integer pixels (resized); the proof rounds them to uint8, "
                             "as a camera frame is, for every model it compares")


def _mobile_meta(layout: Layout, src: Source, head: str, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """bundle.json's ``mobile``: what goes in and out of the variants, and their files."""
    c = src.contract
    to_gray = "PIL 'L': (19595 R + 38470 G + 7471 B + 32768) >> 16, float32" if c.channels == 1 else None
    return {"input": {"shape": [1, c.height, c.width, 3], "dtype": "uint8", "color_space": "RGB", "to_gray": to_gray},
            "output": {"shape": [1, len(src.labels)], "dtype": "float32", "kind": "probabilities",
                       "head": head, "how": HEADS[head]},
            "labels": src.labels, "labels_file": layout.folder + LABELS_FILE,
            "metadata": "TFLITE_METADATA (ImageProperties RGB, TENSOR_AXIS_LABELS packed)",
            "variants": variants}


def _build(model_dir: Path, builder: BundleBuilder, layout: Layout, *, samples: int, seed: int,
           data_dir: str | None) -> None:
    src = checked_source(model_dir, samples, builder.target)
    model, head, fp32, int8, kept = mobile_variants(src)
    files, variants = write_models(builder, layout, src, (fp32, int8))
    variants["int8"].update(calibration={k: src.calibration.get(k) for k in ("source", "requested", "seed", "samples")},
                            kept_float=kept)
    x, y, data = proof_images(model_dir, src.manifest, src.verify, samples, seed, data_dir)
    rows = prove(files, model, model_dir, src.entries, head, x, y, proof.verified_gates(src.verify))
    table = proof.table(f"{src.name}: mobile variants (RGB uint8 in) vs Keras and the verified artifacts, "
                        "verify's gates", rows)
    if any(r.status != "pass" for r in rows):
        raise EdgeportError(f"{src.name}: the mobile variants do not agree with what they were made from; nothing "
                            f"shipped:\n{table}\n" + "\n".join(proof.failure_lines(rows)))
    builder.tables.append(table)
    _notes(builder, src, variants, kept, data)
    as_is = ship_as_is(builder, layout, src)
    builder.add_text("USAGE.md", usage(layout, src, variants, rows, data, as_is))
    builder.meta.update(
        source_sha256=src.sha256, verified=src.verify.get("reference", {}).get("runtime"),
        mobile=_mobile_meta(layout, src, head, variants), as_is=as_is,
        proof={"data": data, "reference": "Keras (the source model) and the verified artifacts, same pixels",
               "runtime": rows[0].runtime, "gates": "verify's, as the model was verified",
               "results": [r.to_dict() for r in rows], "ok": True})
