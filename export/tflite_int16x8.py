"""int16x8 TFLite (int16 activations, int8 weights, float32 I/O) with some ops kept in float, through
Google's public ai-edge-quantizer (PyPI ``ai-edge-quantizer``, recipe ``static_wi8_ai16``).

This is the path after the converter's own: an op the converter refuses at 16x8 ("Quantization to
16x8-bit not yet supported for op: 'NEG'") is first kept in float by the converter's public float
fallback (tflite_fallback); only when LiteRT refuses that model too does it come here. A model
whose calibrated activation range collapsed (an untrained, frozen MobileNetV2 base shrinks its
activations layer by layer) converts but LiteRT refuses to prepare it (``kernel_util.cc:
no_integer_overflow_from_quantization``). Here the float32 .tflite of the same SavedModel is
quantized by the quantizer's ``static_wi8_ai16`` recipe with a ``no_quantize`` rule for each op to
keep in float (its output tensor name as an exact regex), ``no_quantize`` rules for INPUT and OUTPUT
(float32 I/O), calibrated on the samples given. Ops the quantizer cannot quantize stay float by
themselves. An op LiteRT still refuses ("Node number N (OP) failed to prepare") is kept in float
too, op by op; a model that still does not load is an ExportError.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata

import numpy as np
from edgeport.export.tflite_flatbuffer import float_ops as flatbuffer_float_ops
from edgeport.export.tflite_flatbuffer import interpreter

from edgeport.errors import ExportError

RECIPE = "static_wi8_ai16"
PACKAGE = "ai-edge-quantizer"
MAX_ROUNDS = 64  # ops kept in float, one per LiteRT refusal, before giving up

Warn = Callable[[str], None]


def quantizer_label() -> str:
    """What the manifest's ``quantizer`` field says: package, version, recipe."""
    return f"ai_edge_quantizer {metadata.version(PACKAGE)} {RECIPE}"


def ops(model: bytes, *, scopes: bool = False) -> list[tuple[str, str, int]]:
    """(op type, first output tensor name, its TFLite tensor type) of the main subgraph's ops; with
    ``scopes``, the quantizer's op scope (every output name, each followed by ';') instead of the type."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = fu.read_model_from_bytearray(bytearray(model))
    graph, out = m.subgraphs[0], []
    for op in graph.operators:
        if op.outputs is None or not len(op.outputs):
            continue
        code = m.operatorCodes[op.opcodeIndex]
        outs = [graph.tensors[i] for i in op.outputs if i != -1]
        text = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in outs]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        out.append(("".join(f"{n};" for n in text) if scopes else kind, text[0], outs[0].type))
    return out


def resolve(float_model: bytes, keep: Iterable[str]) -> list[str]:
    """Op output tensor names for ``keep`` (tensor names, or op types meaning every op of that type);
    a name that is neither is an ExportError (it would be ignored and everything quantized)."""
    found = ops(float_model)
    tensors, out = {t for _, t, _ in found}, []
    for item in keep:
        hits = [item] if item in tensors else [t for kind, t, _ in found if kind == item.upper()]
        if not hits:
            raise ExportError(f"int16x8 keep-float: no op output tensor or op type named {item!r} in the float model")
        out += [t for t in hits if t not in out]
    return out


def float_ops(model: bytes) -> list[str]:
    """'OP tensor' for each op of a quantized model that computes in float (not the I/O casts)."""
    return flatbuffer_float_ops(model)


def _map_inputs(signature: dict[str, tuple], samples: dict[str, np.ndarray], warn: Warn) -> dict[str, str]:
    """Float-model signature input name -> samples key: by name, else by shape, else by order (said)."""
    if set(signature) == set(samples):
        return {name: name for name in signature}
    if len(signature) != len(samples):
        raise ExportError(f"int16x8: the float model has inputs {sorted(signature)}, the samples {sorted(samples)}")
    shapes = {key: tuple(v.shape[1:]) for key, v in samples.items()}
    by_shape = {name: [k for k, s in shapes.items() if s == tuple(shape[1:])] for name, shape in signature.items()}
    if all(len(v) == 1 for v in by_shape.values()) and len({v[0] for v in by_shape.values()}) == len(samples):
        mapping, how = {name: v[0] for name, v in by_shape.items()}, "by shape"
    else:
        mapping, how = dict(zip(signature, samples)), "by order"
    warn(f"note: int16x8: the float model's inputs are named differently from the samples; matched {how}: "
         + ", ".join(f"{k} <- {v}" for k, v in mapping.items()))
    return mapping


def _calibration(float_model: bytes, samples: dict[str, np.ndarray], warn: Warn) -> dict[str, list[dict]]:
    """{signature key: [{input name: one sample with a batch of 1}, ...]} as the quantizer wants it."""
    it = interpreter(float_model, warn)
    key, = it.get_signature_list()
    runner = it.get_signature_runner(key)
    signature = {name: tuple(d["shape"]) for name, d in runner.get_input_details().items()}
    mapping = _map_inputs(signature, samples, warn)
    count = len(next(iter(samples.values())))
    return {key: [{name: np.asarray(samples[src][i:i + 1], np.float32) for name, src in mapping.items()}
                  for i in range(count)]}


@contextlib.contextmanager
def _quiet(warn: Warn) -> Iterator[None]:
    """The quantizer's logging, warnings and progress bars stay off the terminal; its logged
    warnings pass through ``warn``."""
    lines: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING and record.getMessage().strip():
                lines.append(record.getMessage().strip().splitlines()[0])

    root = logging.getLogger()
    saved = root.level, root.handlers[:]
    root.handlers[:] = [_Keep()]
    root.setLevel(logging.WARNING)
    try:
        # its calibrator's preserve-all-tensors debugging notice; its progress bars (tqdm, stderr)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        for line in dict.fromkeys(lines):
            warn(f"note: int16x8: ai_edge_quantizer: {line}")


class _Quantizer:
    """The float model calibrated once (activation min/max per tensor), quantized with any ops kept
    in float: static_wi8_ai16, float I/O, a rule per kept op matching its whole scope exactly
    (fused tensor names hold ';' and share prefixes)."""

    def __init__(self, float_model: bytes, data: dict[str, list[dict]], warn: Warn):
        self.float_model, self.warn = float_model, warn
        self.scope = {t: sc for sc, t, _ in ops(float_model, scopes=True)}
        with _quiet(warn):
            self.ranges = self._quantizer([]).calibrate(data, num_threads=2)

    def recipe_quantizer(self, keep: list[str]):
        """An ai-edge-quantizer Quantizer with the recipe and a no_quantize rule per kept op."""
        return self._quantizer(keep)

    def _quantizer(self, keep: list[str]):
        try:
            from ai_edge_quantizer import quantizer, recipe
        except ImportError as exc:
            raise ExportError(f"int16x8 needs {PACKAGE} ({exc}); pip install 'edgeport[workstation]'") from None
        q = quantizer.Quantizer(bytearray(self.float_model), getattr(recipe, RECIPE)())
        for kind in ("INPUT", "OUTPUT"):
            q.update_quantization_recipe(regex=".*", operation_name=kind, algorithm_key="no_quantize")
        for tensor in keep:
            q.update_quantization_recipe(regex=f"^{re.escape(self.scope[tensor])}$", operation_name="*",
                                         algorithm_key="no_quantize")
        return q

    def model(self, keep: list[str]) -> bytes:
        with _quiet(self.warn):
            result = self._quantizer(keep).quantize(self.ranges, enable_progress_bar=False,
                                                    enable_progress_report=False)
        return bytes(result.quantized_model)


def int16x8_keep_float(float_model: bytes, keep: list[str], samples: dict[str, np.ndarray], *,
                       warn: Warn = print) -> bytes:
    """int16x8 (int16 activations, int8 weights, float32 I/O) of ``float_model`` with ``keep`` in float.

    ``float_model``: float32 .tflite bytes with one signature. ``keep``: op output tensor names
    (``edgeport fix``/``--keep-float`` names) or op types ('NEG': every op of the type); an unknown
    one is an ExportError. ``samples``: calibration inputs, ``{input name: array (N, *shape)}``,
    keyed by the float model's signature input names (or SavedModel/Keras names: matched by shape,
    else order, and said through ``warn``). The result loads in LiteRT: an op LiteRT refuses to
    prepare is kept in float too (said through ``warn``; ``float_ops(model)`` lists every op left
    in float), or this raises an ExportError. ``keep_float_loading`` also returns the names kept."""
    return keep_float_loading(float_model, keep, samples, warn=warn)[0]


def keep_float_loading(float_model: bytes, keep: list[str], samples: dict[str, np.ndarray], *,
                       warn: Warn = print) -> tuple[bytes, list[str]]:
    """``int16x8_keep_float`` and the op output tensor names it kept in float (``keep`` resolved,
    then each op LiteRT refused, one at a time)."""
    from edgeport.export.tflite_selective import failing_node

    kept = resolve(float_model, keep)
    quantizer = _Quantizer(float_model, _calibration(float_model, samples, warn), warn)
    known, refused = {t for _, t, _ in ops(float_model)}, []
    for _ in range(MAX_ROUNDS):
        model = quantizer.model(kept)
        try:
            interpreter(model, warn)
            break
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            node = failing_node(model, str(exc))
            if node is None or node in kept or node not in known:
                raise ExportError(f"int16x8 through {quantizer_label()}: LiteRT refuses the model ({first})") from None
            refused.append(first)
            kept.append(node)
    else:
        raise ExportError(f"int16x8 through {quantizer_label()}: LiteRT still refuses the model with "
                          f"{len(kept)} op(s) kept in float")
    if refused:
        warn(f"warning: int16x8: LiteRT refused {len(refused)} op(s) of the quantizer's model, kept in float "
             f"one at a time (first: {refused[0]})")
    return model, kept


def tensor_snr(float_model: bytes, samples: dict[str, np.ndarray], *, warn: Warn = print) -> dict[str, float]:
    """{tensor name: signal-to-noise ratio in dB} of every tensor of the all-int16x8 model against
    the float one, on ``samples``: the quantizer's public ``Quantizer.validate`` (lower is worse)."""
    from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric

    data = _calibration(float_model, samples, warn)
    calibrated = _Quantizer(float_model, data, warn)
    with _quiet(warn):
        quantizer = calibrated.recipe_quantizer([])
        quantizer.quantize(calibrated.ranges, enable_progress_bar=False, enable_progress_report=False)
        result = quantizer.validate(data, error_metrics=[ValidationErrorMetric.SNR], num_threads=2)
    return {t: float(v.get("snr", np.inf)) for t, v in result.get_all_tensor_results().items()}
