"""The mobile variant of an image classifier: the source Keras model wrapped to take what a phone
camera gives (uint8 RGB [1, H, W, 3]; luma inside for a grayscale model, exactly as Pillow's "L")
and to return N probabilities (a sigmoid model: [1 - p, p]; logits: softmax added), converted to
float32 and int8 TFLite with the wrapper's own steps kept float32; how a .tflite looks from outside.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, ExportError
from edgeport.types import InputContract

#: PIL's RGB -> "L" (libImaging/Convert.c): BT.601 luma weights in 16-bit fixed point, rounded.
LUMA_WEIGHTS = (19595.0, 38470.0, 7471.0)
LUMA_ROUND, LUMA_SHIFT = 32768.0, 65536.0
#: Names of the wrapper's layers; those in FLOAT_LAYERS stay float32 in the int8 model.
PIXELS, GRAY = "edgeport_pixels", "edgeport_rgb_to_gray"
IMAGE = "image"  # the variant's one input
TWO_CLASSES, SOFTMAX = "edgeport_two_classes", "edgeport_softmax"
FLOAT_LAYERS = (GRAY, TWO_CLASSES, SOFTMAX)
HEADS = {"softmax": "the model's softmax", "sigmoid": "[1 - p, p] from the model's sigmoid (2 labels)",
         "logits": "softmax added on the model's logits"}


@dataclass(frozen=True)
class Variant:
    name: str  # float32 | int8
    file: str  # its name in the bundle
    artifact: str  # the verified artifact it must agree with


def _tflite(full_integer: bool) -> str:
    """The verified TFLite format a variant is proved against: the family's float32 one, or its full-integer one."""
    from edgeport.export.registry import INFO, Precision, of_family

    return next(f for f in of_family("tflite") if (INFO[f].full_integer if full_integer
                                                   else INFO[f].precision is Precision.FLOAT32))


VARIANTS = (Variant("float32", "model.tflite", _tflite(False)), Variant("int8", "model_int8.tflite", _tflite(True)))


# -- the output ------------------------------------------------------------------------------------

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

    image = keras.Input((contract.height, contract.width, 3), batch_size=1, dtype="uint8", name=IMAGE)
    x = Pixels(name=PIXELS)(image)
    if contract.channels == 1:
        x = RgbToGray(name=GRAY)(x)
    y = model(x, training=False)
    if head == "sigmoid":
        y = TwoClasses(name=TWO_CLASSES)(y)
    elif head == "logits":
        y = keras.layers.Softmax(name=SOFTMAX)(y)
    return keras.Model(image, y, name="edgeport_mobile")


def convert(wrapper, contract: InputContract, calibration: np.ndarray, work: Path,
            meta: dict[str, Any] | None = None) -> tuple[bytes, bytes, list[str]]:
    """(float32 model, int8 model, tensors kept float in the int8 model) of the wrapper, made by the
    registry's converters of the formats the variants are proved against, at a fixed batch of 1
    (:mod:`edgeport.export.fixed_batch`); ``meta``: the edgeport metadata they carry."""
    from edgeport.export import fixed_batch

    rgb = InputContract("image", height=contract.height, width=contract.width, channels=3)
    meta = {"input_contract": rgb.to_dict(), "input_names": [IMAGE], **(meta or {})}
    saved = fixed_batch.keras_saved_model(wrapper, [(IMAGE, (contract.height, contract.width, 3))],
                                          work / "wrapper", dtype="uint8")
    samples = {IMAGE: calibration}
    fp32, _ = fixed_batch.convert(VARIANTS[0].artifact, saved, samples, meta)
    keep = _float_tensors(wrapper, fp32)
    int8, _ = fixed_batch.convert(VARIANTS[1].artifact, saved, samples, meta, keep_float=keep)
    return fp32, int8, keep


def _float_tensors(wrapper, model: bytes) -> list[str]:
    """The converted model's tensors that the wrapper's own steps make (the int8 converter names its
    tensors alike). The last op's output is named after the signature, not the layer: it is kept too
    when the wrapper ends with a step of its own."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    graph = fu.read_model_from_bytearray(bytearray(model)).subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    post = any(layer.name in (TWO_CLASSES, SOFTMAX) for layer in wrapper.layers)
    outputs = {names[i] for i in graph.outputs} if post else set()
    return sorted(n for n in names if n in outputs or any(f"/{layer}" in n for layer in FLOAT_LAYERS))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Pixels rounded and clipped to uint8."""
    return np.clip(np.rint(np.asarray(x, np.float64)), 0, 255).astype(np.uint8)


def camera_form(x: np.ndarray) -> np.ndarray:
    """Pixels as a camera frame gives them: uint8 RGB (a grayscale image's value in R, G and B,
    as Pillow converts "L" to "RGB")."""
    x = to_uint8(x)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


# -- how a .tflite looks from outside ------------------------------------------------------------------

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


def check_io(desc: dict[str, Any], contract: InputContract, n: int, name: str) -> None:
    """ExportError unless the converter made uint8 [1, H, W, 3] raw pixels in, float32 [1, n] out."""
    want_in, want_out = [1, contract.height, contract.width, 3], [1, n]
    if desc["input"]["shape"] != want_in or desc["input"]["dtype"] != "uint8" or "scale" in desc["input"]:
        raise ExportError(f"{name}: the converter made input {desc['input']}, not uint8 {want_in} raw pixels")
    if desc["output"]["shape"] != want_out or desc["output"]["dtype"] != "float32":
        raise ExportError(f"{name}: the converter made output {desc['output']}, not float32 {want_out}")
