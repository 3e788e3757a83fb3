"""Android and iOS bundles: an image classifier that takes what a phone camera gives it.

Every image model gets a *mobile variant*, built from its source Keras model and wrapped so that a
phone app's engine (MediaPipe Tasks' ImageClassifier, the TFLite Task Library) runs it with no code
of its own::

    uint8 RGB [1, H, W, 3] -> float32 -> (grayscale models: luma as PIL's "L") -> the model
                           -> probabilities float32 [1, N]   (a sigmoid model: [1 - p, p])

It is exported as a batch-1 SavedModel and converted twice: ``model.tflite`` (float32) and
``model_int8.tflite`` (int8, calibrated on the manifest's recorded calibration samples in the RGB
camera form). Both carry standard TFLite Metadata: name, description, version, the input's
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
``samples`` (at least 200) seeded real test images each variant's top-1 through
``edgeport.runtimes`` must equal the Keras model's and the verified artifact's on the same pixels.
The figures go to bundle.json (``proof``); `python -m edgeport.benchmarks.devices.mediapipe_check`
proves the same files again inside MediaPipe itself.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, ExportError
from edgeport.export.targets.bundle import BundleBuilder
from edgeport.export.targets.bundle import require_verified
from edgeport.files import sha256_file
from edgeport.manifest import check_fresh, check_integrity, effective_entries, load_manifest
from edgeport.types import InputContract

REQUIRED = ("tflite_fp32", "tflite_int8")
MIN_SAMPLES = 200
LABELS_FILE = "labels.txt"
#: PIL's RGB -> "L" (libImaging/Convert.c): BT.601 luma weights in 16-bit fixed point, rounded.
LUMA_WEIGHTS = (19595.0, 38470.0, 7471.0)
LUMA_ROUND, LUMA_SHIFT = 32768.0, 65536.0
#: Names of the wrapper's layers; those in FLOAT_LAYERS stay float32 in the int8 model.
PIXELS, GRAY = "edgeport_pixels", "edgeport_rgb_to_gray"
TWO_CLASSES, SOFTMAX = "edgeport_two_classes", "edgeport_softmax"
FLOAT_LAYERS = (GRAY, TWO_CLASSES, SOFTMAX)
HEADS = {"softmax": "the model's softmax", "sigmoid": "[1 - p, p] from the model's sigmoid (2 labels)",
         "logits": "softmax added on the model's logits"}


@dataclass(frozen=True)
class Variant:
    name: str  # float32 | int8
    file: str  # its name in the bundle
    artifact: str  # the verified artifact it must agree with


VARIANTS = (Variant("float32", "model.tflite", "tflite_fp32"), Variant("int8", "model_int8.tflite", "tflite_int8"))


@dataclass(frozen=True)
class Layout:
    folder: str  # where models and labels go inside the bundle
    usage: str  # USAGE.md


ANDROID_USAGE = """# {model} on Android

Copy `assets/` into your app's `src/main/assets/`. Both models take the camera frame as it comes
(RGB, uint8; MediaPipe resizes it to {h}x{w}){gray}, and return {n} probabilities, one per line of
`labels.txt`; the labels are also packed inside each model (standard TFLite Metadata), so MediaPipe
Tasks and the TFLite Task Library name the categories themselves.

| file | weights | size |
| --- | --- | --- |
{files}

```kotlin
// build.gradle.kts: implementation("com.google.mediapipe:tasks-vision:latest.release")
// and keep the models uncompressed: android {{ androidResources {{ noCompress += "tflite" }} }}
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier

val options = ImageClassifier.ImageClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("model_int8.tflite").build())
    .setMaxResults(3)
    .build()
val classifier = ImageClassifier.createFromOptions(context, options)
val result = classifier.classify(BitmapImageBuilder(bitmap).build())
val top = result.classificationResult().classifications()[0].categories()[0]
Log.i("{model}", "${{top.categoryName()}} ${{top.score()}}")
classifier.close()
```

The TFLite Task Library (`org.tensorflow:tensorflow-lite-task-vision`) reads the same metadata:
`ImageClassifier.createFromFile(context, "model_int8.tflite").classify(TensorImage.fromBitmap(bitmap))`.

{proof}
"""

IOS_USAGE = """# {model} on iOS

Add `model.tflite`, `model_int8.tflite` and `labels.txt` to your Xcode target (Copy Bundle
Resources). Both models take the camera frame as it comes (RGB, uint8; MediaPipe resizes it to
{h}x{w}){gray}, and return {n} probabilities, one per line of `labels.txt`; the labels are also
packed inside each model (standard TFLite Metadata), so MediaPipe names the categories itself.

| file | weights | size |
| --- | --- | --- |
{files}

```swift
// Podfile: pod 'MediaPipeTasksVision'
import MediaPipeTasksVision

let options = ImageClassifierOptions()
options.baseOptions.modelAssetPath = Bundle.main.path(forResource: "model_int8", ofType: "tflite")!
options.maxResults = 3
let classifier = try ImageClassifier(options: options)
let result = try classifier.classify(image: try MPImage(uiImage: photo))
if let top = result.classificationResult.classifications.first?.categories.first {{
    print(top.categoryName ?? "\\(top.index)", top.score)
}}
```

{proof}
"""

ANDROID = Layout("assets/", ANDROID_USAGE)
IOS = Layout("", IOS_USAGE)


def build_android(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    """``assets/`` (model.tflite, model_int8.tflite, labels.txt) for an app's src/main/assets, and USAGE.md."""
    _build(Path(model_dir), builder, ANDROID, samples=samples, seed=seed, data_dir=data_dir)


def build_ios(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    """model.tflite, model_int8.tflite, labels.txt for an Xcode target, and USAGE.md."""
    _build(Path(model_dir), builder, IOS, samples=samples, seed=seed, data_dir=data_dir)


# -- what can go to a phone --------------------------------------------------------------------------

def image_contract(model: str, manifest: dict[str, Any]) -> InputContract:
    """The model's input contract if a phone's image classifier can feed it; EdgeportError otherwise."""
    raw = manifest.get("input_contract") or {}
    try:
        contract = InputContract.from_dict(raw)
    except (TypeError, ValueError, KeyError):
        raise EdgeportError(f"{model}: the manifest has no readable input contract; re-export it") from None
    names = manifest.get("input_names") or []
    if contract.kind != "image":
        raise EdgeportError(f"{model}: the android and ios targets are for image classifiers (a camera frame in, "
                            f"labels out); this model takes {contract.kind} of shape {list(contract.shape)}"
                            f"{' (' + manifest['dataset'] + ')' if manifest.get('dataset') else ''}. "
                            "Ship it with --target rpi, or call the .tflite artifacts from app code")
    if len(names) > 1 or (contract.extra or {}).get("inputs"):
        raise EdgeportError(f"{model}: a mobile image classifier has one image input; this model takes {names}")
    if contract.channels not in (1, 3) or contract.layout.upper() != "NHWC" or \
            tuple(contract.pixel_range) != (0.0, 255.0):
        raise EdgeportError(f"{model}: a mobile image classifier takes NHWC 0-255 pixels with 1 or 3 channels; "
                            f"this model takes {contract.layout} {contract.channels} channels in "
                            f"{list(contract.pixel_range)}")
    if manifest.get("task") == "regression":
        raise EdgeportError(f"{model}: the android and ios targets are for image classifiers; this model is a "
                            "regression")
    return contract


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


def output_head(y: np.ndarray, labels: list[str], model: str) -> str:
    """How the model's output becomes N probabilities: softmax (as is), sigmoid or logits."""
    if y.ndim != 2:
        raise EdgeportError(f"{model}: a mobile image classifier has one [1, N] output; this one is {list(y.shape)}")
    n = y.shape[1]
    if n == 1:
        if len(labels) == 2 and float(y.min()) >= 0.0 and float(y.max()) <= 1.0:
            return "sigmoid"
        raise EdgeportError(f"{model}: one output value and {len(labels)} labels: not a classifier an app's "
                            "ImageClassifier can present (it needs one probability per label)")
    if n != len(labels):
        raise EdgeportError(f"{model}: {n} output classes but {len(labels)} labels; MediaPipe refuses a model "
                            "whose label file does not match its classes")
    sums = y.sum(axis=1, dtype=np.float64)
    if float(y.min()) >= 0.0 and np.allclose(sums, 1.0, atol=1e-3):
        return "softmax"
    return "logits"


def probabilities(y: np.ndarray, head: str) -> np.ndarray:
    """What the mobile variant returns, computed from the model's own output (float64)."""
    y = np.asarray(y, np.float64)
    if head == "sigmoid":
        return np.concatenate([1.0 - y, y], axis=1)
    if head == "logits":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return y


# -- the wrapper and its conversion ------------------------------------------------------------------

def wrap(model, contract: InputContract, head: str):
    """uint8 RGB [1, H, W, 3] -> float -> (luma) -> model -> probabilities [1, N]."""
    import keras

    class Pixels(keras.layers.Layer):
        def call(self, x):
            return keras.ops.cast(x, "float32")

    class RgbToGray(keras.layers.Layer):
        def call(self, x):  # Pillow's "L", exactly: every value below is an integer < 2**24
            weighted = keras.ops.sum(x * np.asarray(LUMA_WEIGHTS, np.float32), axis=-1, keepdims=True)
            return keras.ops.floor((weighted + LUMA_ROUND) / LUMA_SHIFT)

    class TwoClasses(keras.layers.Layer):
        def call(self, p):
            return keras.ops.concatenate([1.0 - p, p], axis=-1)

    image = keras.Input((contract.height, contract.width, 3), batch_size=1, dtype="uint8", name="image")
    x = Pixels(name=PIXELS)(image)
    if contract.channels == 1:
        x = RgbToGray(name=GRAY)(x)
    y = model(x, training=False)
    if head == "sigmoid":
        y = TwoClasses(name=TWO_CLASSES)(y)
    elif head == "logits":
        y = keras.layers.Softmax(name=SOFTMAX)(y)
    return keras.Model(image, y, name="edgeport_mobile")


def convert(wrapper, contract: InputContract, calibration: np.ndarray, work: Path) -> tuple[bytes, bytes, list[str]]:
    """(float32 model, int8 model, tensors kept float in the int8 model) of the wrapper."""
    import tensorflow as tf

    from edgeport.export.tflite_selective import SelectiveQuantizer

    saved = work / "saved_model"
    signature = [tf.TensorSpec((1, contract.height, contract.width, 3), tf.uint8, name="image")]
    wrapper.export(str(saved), format="tf_saved_model", verbose=False, input_signature=signature)

    def feed():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1]]

    with warnings.catch_warnings():  # TF's calibrator builds deprecated tf.lite.Interpreters itself
        warnings.simplefilter("ignore")
        fp32 = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = feed
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        quantizer = SelectiveQuantizer(converter)
        int8 = quantizer.model(keep := _float_tensors(wrapper, quantizer.debugger.calibrated_model))
    return bytes(fp32), int8, keep


def _float_tensors(wrapper, calibrated: bytes) -> list[str]:
    """The calibrated model's tensors that the wrapper's own steps make. The last op's output is named
    after the signature, not the layer: it is kept too when the wrapper ends with a step of its own."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    graph = fu.read_model_from_bytearray(bytearray(calibrated)).subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    post = any(layer.name in (TWO_CLASSES, SOFTMAX) for layer in wrapper.layers)
    outputs = {names[i] for i in graph.outputs} if post else set()
    return sorted(n for n in names if n in outputs or any(f"/{layer}" in n for layer in FLOAT_LAYERS))


def camera_form(x: np.ndarray) -> np.ndarray:
    """Pixels as a camera frame gives them: uint8 RGB (a grayscale image's value in R, G and B,
    as Pillow converts "L" to "RGB")."""
    x = np.clip(np.rint(np.asarray(x, np.float64)), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def describe(model: bytes) -> dict[str, Any]:
    """Input, output and the ops of a .tflite (what runs in float32 in a quantized model)."""
    from edgeport.runtimes.litert import import_engine

    Interpreter, resolvers, _, _ = import_engine()
    interp = Interpreter(model_content=model,
                         experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # the op list; LiteRT has no public accessor for it

    def io(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero = d["quantization"]
        return {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                **({"scale": float(scale), "zero_point": int(zero)} if scale else {})}

    float_ops = [op["op_name"] for op in ops if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
                 and any(np.dtype(tensors[int(o)]["dtype"]) == np.float32 for o in op["outputs"] if int(o) >= 0)]
    return {"input": io(interp.get_input_details()[0]), "output": io(interp.get_output_details()[0]),
            "ops": len(ops), "float_ops": float_ops}


def _check_io(desc: dict[str, Any], contract: InputContract, n: int, name: str) -> None:
    want_in, want_out = [1, contract.height, contract.width, 3], [1, n]
    if desc["input"]["shape"] != want_in or desc["input"]["dtype"] != "uint8" or "scale" in desc["input"]:
        raise ExportError(f"{name}: the converter made input {desc['input']}, not uint8 {want_in} raw pixels")
    if desc["output"]["shape"] != want_out or desc["output"]["dtype"] != "float32":
        raise ExportError(f"{name}: the converter made output {desc['output']}, not float32 {want_out}")


# -- the proof ---------------------------------------------------------------------------------------

def proof_images(model_dir: Path, manifest: dict[str, Any], verify: dict[str, Any], samples: int, seed: int,
                 data_dir: str | None) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """A seeded sample of the real test images verify used, as uint8 in the model's own form."""
    from edgeport.training.testset import load_testset, npz_testset

    data = verify.get("data") or {}
    if data.get("dataset") == "npz":
        test = npz_testset(data["source"], labels=tuple(manifest.get("labels") or ()), task=manifest.get("task"))
    else:
        test = load_testset(model_dir, manifest, data_dir=data_dir)
    if not isinstance(test.x, np.ndarray):
        raise EdgeportError(f"{model_dir.name}: the test set has several inputs; a mobile classifier has one")
    n = len(test)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))
    x = np.asarray(test.x[idx])
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x[..., None]
    x8 = np.clip(np.rint(x.astype(np.float64)), 0, 255).astype(np.uint8)
    y = test.y.reshape(-1)[idx].astype(np.int64) if test.y is not None else None
    info = {"dataset": test.dataset, "source": test.source, "n": int(len(idx)), "seed": seed,
            "test_set_size": n, "indices_of": "the verify test set",
            "rounded_to_uint8": bool(not np.array_equal(x8.astype(x.dtype), x))}
    return x8, y, info


def _compare(p: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    a, b = p.argmax(axis=1), ref.argmax(axis=1)
    return {"agreement": float((a == b).mean()), "disagreements": int((a != b).sum()),
            "max_abs_diff": float(np.abs(p - ref).max()), "identical": bool(np.array_equal(p, ref))}


def prove(files: dict[str, Path], model, model_dir: Path, entries: dict[str, dict[str, Any]], head: str,
          x: np.ndarray, y: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Each variant on the camera form of ``x`` against the Keras model and the verified artifact on ``x``."""
    from edgeport.runtimes import load

    # probe=False: the verified artifacts ran in verify's child processes, and this process has just
    # run the variants (calibration, describe); a crash would already have happened
    own = x.astype(np.float32)
    rgb = camera_form(x).astype(np.float32)
    keras_p = probabilities(model.predict(own, batch_size=64, verbose=0), head)
    out: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        artifact = entries[v.artifact]["file"]
        art_p = probabilities(_first(load(model_dir / artifact, runtime="litert", probe=False).predict(own)), head)
        session = load(files[v.name], runtime="litert", probe=False)
        p = np.asarray(_first(session.predict(rgb)), np.float64)
        vs_keras, vs_artifact = _compare(p, keras_p), _compare(p, art_p)
        row: dict[str, Any] = {
            "file": files[v.name].name, "artifact": v.artifact, "artifact_file": artifact, "engine": session.engine,
            "n": int(len(x)), "agreement_keras": vs_keras["agreement"],
            "disagreements_keras": vs_keras["disagreements"],
            "max_abs_diff_keras": vs_keras["max_abs_diff"], "agreement_artifact": vs_artifact["agreement"],
            "disagreements_artifact": vs_artifact["disagreements"],
            "max_abs_diff_artifact": vs_artifact["max_abs_diff"], "identical_to_artifact": vs_artifact["identical"]}
        if y is not None:
            row.update(accuracy=float((p.argmax(1) == y).mean()), keras_accuracy=float((keras_p.argmax(1) == y).mean()),
                       artifact_accuracy=float((art_p.argmax(1) == y).mean()))
        # the float model must pick what Keras picks; the int8 one what the verified int8 artifact picks
        gated = ["artifact"] + (["keras"] if v.name == "float32" else [])
        row["gate"] = " and ".join(f"top-1 == {'Keras' if g == 'keras' else v.artifact} on every image" for g in gated)
        row["status"] = "pass" if all(row[f"disagreements_{g}"] == 0 for g in gated) else "fail"
        out[v.name] = row
    return out


def _first(y: Any) -> np.ndarray:
    return np.asarray(y[0] if isinstance(y, (list, tuple)) else y)


def proof_table(model: str, proof: dict[str, dict[str, Any]]) -> str:
    from edgeport.benchmarks.tables import fmt_num, fmt_pct, text_table

    rows = [[r["file"], r["artifact_file"], str(r["n"]), fmt_pct(r["agreement_keras"]),
             fmt_pct(r["agreement_artifact"]), fmt_num(r["max_abs_diff_keras"], ".2e"),
             fmt_num(r["max_abs_diff_artifact"], ".2e"), fmt_pct(r.get("accuracy")), r["status"].upper()]
            for r in proof.values()]
    header = ["mobile model", "verified artifact", "images", "top-1 = Keras", "top-1 = artifact",
              "max |p - Keras|", "max |p - artifact|", "accuracy", "gate"]
    return text_table(f"{model}: mobile variants (RGB uint8 in) vs Keras and the verified artifacts, litert",
                      header, rows, left=2)


# -- the bundle --------------------------------------------------------------------------------------

@dataclass
class Source:
    """A verified image model, checked and ready to wrap."""

    dir: Path
    manifest: dict[str, Any]
    contract: InputContract
    entries: dict[str, dict[str, Any]]
    verify: dict[str, Any]
    labels: list[str]
    calibration: dict[str, Any]  # the recorded calibration of tflite_int8

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def sha256(self) -> str:
        return (self.manifest.get("source") or {}).get("sha256", "")


def checked_source(model_dir: Path, samples: int) -> Source:
    """The model if it may go to a phone: an image classifier, verified, its artifacts intact and fresh."""
    name, manifest = model_dir.name, load_manifest(model_dir)
    contract = image_contract(name, manifest)
    entries = effective_entries(model_dir, manifest)
    if missing := [f for f in REQUIRED if f not in entries]:
        raise EdgeportError(f"{name}: a mobile bundle is proved against {', '.join(REQUIRED)}; export "
                            f"{', '.join(missing)} first (edgeport export {model_dir} --formats {' '.join(missing)})")
    if samples < MIN_SAMPLES:
        raise EdgeportError(f"--samples {samples}: a mobile bundle is proved on at least {MIN_SAMPLES} real test "
                            "images")
    verify = require_verified(model_dir, list(REQUIRED))
    source = Source(model_dir, manifest, contract, entries, verify, [str(s) for s in manifest.get("labels") or []],
                    manifest.get("calibration") or entries["tflite_int8"].get("calibration") or {})
    for fmt in REQUIRED:
        check_integrity(model_dir, entries[fmt])
        check_fresh(manifest, fmt, entries[fmt], source.sha256, f"edgeport export {model_dir} --formats {fmt}")
    if not source.labels:
        raise EdgeportError(f"{name}: no labels in the manifest; an app's ImageClassifier needs them")
    if not source.calibration:
        raise EdgeportError(f"{name}: the manifest records no calibration; re-export tflite_int8")
    return source


def mobile_variants(src: Source) -> tuple[Any, str, bytes, bytes, list[str]]:
    """(the Keras model, its head, float32 model, int8 model, tensors kept float in the int8 one)."""
    from edgeport.export.calibration import rebuild
    from edgeport.export.native_log import NativeLog

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
            fp32, int8, kept = convert(wrapper, src.contract, camera_form(calibration), Path(tmp))
    except EdgeportError:
        raise
    except Exception as exc:  # the converters raise anything; say what failed, keep the log's tail
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
    from edgeport.export.targets.tflite_metadata import write_image_classifier

    c, n, sha12 = src.contract, len(src.labels), src.sha256[:12]
    task = (f"{n}-class image classifier {src.name} (edgeport {__version__}, from {src.manifest['source']['file']} "
            f"sha256 {sha12}). Input: RGB uint8 {c.height}x{c.width}"
            + (", converted to luma inside (ITU-R BT.601, as Pillow's 'L')" if c.channels == 1 else "")
            + f". Output: {n} probabilities.")
    files, variants = {}, {}
    for v, raw in zip(VARIANTS, models):
        desc = describe(raw)
        _check_io(desc, c, n, f"{src.name} {v.file}")
        weights = "float32" if v.name == "float32" else "int8 (calibrated)"
        data = write_image_classifier(raw, src.labels, name=f"{src.name} ({v.name})",
                                      description=f"{task} Weights: {weights}.", version=f"{__version__}+{sha12}",
                                      labels_file=LABELS_FILE)
        files[v.name] = builder.add_bytes(layout.folder + v.file, data)
        variants[v.name] = {"file": layout.folder + v.file, "bytes": len(data), "weights": weights,
                            "verified_artifact": v.artifact, **desc}
    builder.add_text(layout.folder + LABELS_FILE, "\n".join(src.labels) + "\n")
    return files, variants


def usage(layout: Layout, src: Source, variants: dict[str, dict[str, Any]], proof: dict[str, dict[str, Any]],
          data: dict[str, Any]) -> str:
    from edgeport.files import human_size

    summary = "\n".join(f"- `{variants[k]['file']}`: top-1 equals Keras on {_share(r['agreement_keras'])} and "
                        f"`{r['artifact_file']}` on {_share(r['agreement_artifact'])} of {r['n']} real test images"
                        + (f" (accuracy {r['accuracy']:.4f})" if r.get("accuracy") is not None else "")
                        for k, r in proof.items())
    rows = "\n".join(f"| `{v['file']}` | {v['weights']} | {human_size(v['bytes'])} |" for v in variants.values())
    return layout.usage.format(
        model=src.name, h=src.contract.height, w=src.contract.width, n=len(src.labels), files=rows,
        gray=", convert it to gray inside exactly as Pillow's \"L\" does" if src.contract.channels == 1 else "",
        proof=f"Proved at bundle time through edgeport's LiteRT runtime ({data['dataset']} test set, seed "
              f"{data['seed']}):\n{summary}\n\n`python -m edgeport.benchmarks.devices.mediapipe_check {src.name}` "
              "proves the android files again inside MediaPipe Tasks.")


def _share(value: float) -> str:
    return f"{100 * value:.2f}%"


def _build(model_dir: Path, builder: BundleBuilder, layout: Layout, *, samples: int, seed: int,
           data_dir: str | None) -> None:
    src = checked_source(model_dir, samples)
    model, head, fp32, int8, kept = mobile_variants(src)
    files, variants = write_models(builder, layout, src, (fp32, int8))
    variants["int8"].update(calibration={k: src.calibration.get(k) for k in ("source", "requested", "seed", "samples")},
                            kept_float=kept)
    x, y, data = proof_images(model_dir, src.manifest, src.verify, samples, seed, data_dir)
    proof = prove(files, model, model_dir, src.entries, head, x, y)
    table = proof_table(src.name, proof)
    if failed := [r for r in proof.values() if r["status"] != "pass"]:
        raise EdgeportError(f"{src.name}: the mobile variants do not agree with what they were made from; nothing "
                            f"shipped:\n{table}\n" + "\n".join(
                                f"{r['file']}: {r['disagreements_keras']} images differ from Keras, "
                                f"{r['disagreements_artifact']} from {r['artifact_file']}" for r in failed))
    builder.tables.append(table)
    gray = src.contract.channels == 1
    if gray:
        builder.notes.append("grayscale model: the mobile variants take RGB and compute luma inside as Pillow's "
                             "'L' (exact), so a camera frame and `edgeport run` on the same PNG see the same pixels")
    if kept:
        builder.notes.append(f"model_int8.tflite: the wrapper's own steps ({' '.join(variants['int8']['float_ops'])}) "
                             "run in float32; the network itself is int8, as in the verified artifact")
    if data["rounded_to_uint8"]:
        builder.notes.append("the test images had non-integer pixels (resized); the proof rounds them to uint8, "
                             "as a camera frame is, for every model it compares")
    builder.add_text("USAGE.md", usage(layout, src, variants, proof, data))
    c = src.contract
    builder.meta.update(
        source_sha256=src.sha256, verified=src.verify.get("reference", {}).get("runtime"),
        mobile={"input": {"shape": [1, c.height, c.width, 3], "dtype": "uint8", "color_space": "RGB",
                          "to_gray": "PIL 'L': (19595 R + 38470 G + 7471 B + 32768) >> 16, float32" if gray else None},
                "output": {"shape": [1, len(src.labels)], "dtype": "float32", "kind": "probabilities",
                           "head": head, "how": HEADS[head]},
                "labels": src.labels, "labels_file": layout.folder + LABELS_FILE,
                "metadata": "TFLITE_METADATA (ImageProperties RGB, TENSOR_AXIS_LABELS packed)",
                "variants": variants},
        proof={"data": data, "reference": "Keras (the source model) and the verified artifacts, same pixels",
               "runtime": "litert", "variants": proof, "ok": True})
