"""The TFLite converter's batch-1 fallback for a recurrent model (Keras LSTM, GRU, SimpleRNN) with a
free batch: stated, recorded, proved.

A Keras RNN traced with a free batch keeps its time steps in a TensorList whose element shape holds
that batch (``[?, units]``). The converter lowers TensorLists to TFLite builtins only when that shape
is static, and otherwise refuses the model: "'tf.TensorListReserve' op requires element_shape to be
static during TF Lite transformation pass". Its own hint (``_experimental_lower_tensor_list_ops =
False`` with ``SELECT_TF_OPS``) leaves TensorList ops to the Flex delegate, which our runtimes lack;
``experimental_enable_resource_variables`` does not change the refusal. The documented remedy is a
concrete function with a fixed batch of 1: the Keras model is traced again at batch 1
(:func:`edgeport.export.fixed_batch.keras_saved_model`) and the runtimes run it row by row. A Keras 3
RNN then becomes a TFLite WHILE loop, which TF's int8 / int16x8 calibrator crashes on (a segfault
reading a tensor the WHILE kernel freed: tensorflow/tensorflow#75140, TF 2.14 and later); so each
RNN layer whose time steps are fixed is unrolled too (``unroll=True``, a clone with the same weights:
the same arithmetic, no WHILE), and a model whose time steps are free converts to float formats only
(a calibrated format is a one-line ExportError, never a crash).

Only that refusal (matched on the converter's message, not on the model) falls back; once one format
needs it, every TFLite format of the run converts from the same batch-1 SavedModel. Each says one
line and records ``batch_fallback`` (``fallback: "batch 1"``, ``batch``, ``unrolled``, ``reason``) in
its manifest entry; `edgeport fix` and verify's int8 debugger start from the same batch-1 model
(:func:`fix_job`). A SavedModel source cannot be traced again (its graph keeps the free-batch
TensorList): a one-line ExportError.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeport.errors import ExportError
from edgeport.export.registry import info

#: The converter's words when it cannot lower a TensorList whose element shape holds the free batch.
CANNOT_LOWER = "requires element_shape to be static"
#: The manifest entry's field, and its ``fallback``.
FIELD, FALLBACK = "batch_fallback", "batch 1"
Export = Callable[[Any, Path], dict[str, Any]]


@dataclass(frozen=True)
class Batch1:
    """A run's batch-1 fallback: the SavedModel the TFLite converters take instead, and why."""

    saved_model: Path
    reason: str
    unrolled: bool  # every RNN layer unrolled (fixed time steps): no WHILE loop

    @property
    def fields(self) -> dict[str, Any]:
        """The manifest entry's field (beside an int8 entry's own ``fallback`` of ops kept in float)."""
        return {FIELD: {"fallback": FALLBACK, "batch": 1, "unrolled": self.unrolled, "reason": self.reason}}

    def line(self, label: str) -> str:
        how = "its RNN unrolled" if self.unrolled else "its RNN a WHILE loop (free time steps)"
        return (f"note: {label}: the converter cannot lower the RNN's TensorList with a free batch; "
                f"converted at batch 1 (runs row by row), {how}")

    def calibrates(self, label: str) -> None:
        """Raise (one line) where a calibration would crash TF's calibrator: a WHILE loop left."""
        if not self.unrolled:
            raise ExportError(f"{label}: the batch-1 RNN has free time steps, so it stays a WHILE loop, and TF's "
                              "calibrator crashes on WHILE (tensorflow/tensorflow#75140): give the model a fixed "
                              "sequence length for calibrated formats; the float formats convert")


def cannot_lower(exc: BaseException) -> bool:
    """Whether a converter error is the free-batch TensorList refusal."""
    return CANNOT_LOWER in str(exc)


def reason(exc: BaseException) -> str:
    """The refusal in one line: "ConverterError: 'tf.TensorListReserve' op requires element_shape ..."."""
    match = re.search(rf"('[\w.]+' op )?{CANNOT_LOWER}[^\n]*", str(exc))  # without its op location
    return f"{type(exc).__name__}: {match.group(0).strip() if match else CANNOT_LOWER}"


def saved_model(ctx) -> Path:
    """The SavedModel a TFLite converter of this run takes: the batch-1 one once the fallback is on."""
    return ctx.tflite_batch1.saved_model if ctx.tflite_batch1 is not None else ctx.saved_model_dir


def _fallback(ctx, label: str, exc: BaseException) -> Batch1:
    """The run's batch-1 SavedModel, traced again from the Keras model with the signature's names."""
    why = reason(exc)
    if ctx.model is None:
        raise ExportError(f"{label}: the converter cannot lower the RNN's TensorList with a free batch ({why}); "
                          "a batch-1 model needs the Keras source (.keras / .h5): a SavedModel's traced graph "
                          "keeps its free batch") from None
    names = {name: ctx.signature_name(name) for name, _ in ctx.inputs}  # the feed's keys stay the same
    return batch1_saved_model(ctx.model, ctx.scratch("saved_model_batch1"), why, names)


def batch1_saved_model(model, dest: Path, why: str, names: dict[str, str] | None = None) -> Batch1:
    """A Keras ``model`` as a batch-1 SavedModel at ``dest``, its RNNs unrolled where they can be; its
    inputs named ``names[keras input name]`` (default: the Keras names, as the SavedModel format has them)."""
    from edgeport.export.fixed_batch import keras_saved_model

    names = names or {t.name: t.name for t in model.inputs}
    inputs = [(names[t.name], tuple(t.shape[1:]), str(t.dtype)) for t in model.inputs]
    flat = unrolled(model)
    keras_saved_model(flat or model, [(n, shape) for n, shape, _ in inputs], dest,
                      dtype={n: d for n, _, d in inputs}, unroll=False)
    return Batch1(Path(dest), why, flat is not None)


def float32_lowered(saved_model: Path, model, work: Path) -> tuple[bytes, str]:
    """(the float32 .tflite of the SavedModel of Keras ``model``, "" or how it was made): the converter
    at a free batch, or at batch 1 when it cannot lower the RNN's TensorList (no Keras model: re-raised)."""
    from edgeport.export.tflite import float32_model

    try:
        return float32_model(saved_model), ""
    except Exception as exc:  # only the free-batch TensorList refusal falls back; the rest re-raises
        if not getattr(model, "inputs", None) or not cannot_lower(exc):  # no Keras model: nothing to trace again
            raise
        fallback = batch1_saved_model(model, work / "saved_model_batch1", reason(exc))
    how = "its RNN unrolled" if fallback.unrolled else "its RNN a WHILE loop"
    return float32_model(fallback.saved_model), f"at batch 1, {how} (the converter cannot lower it at a free batch)"


def unrolled(model) -> Any:
    """A clone of a Keras functional / sequential ``model`` with every RNN layer (and the RNNs inside a
    Bidirectional) unrolled, with the same weights; None when it cannot be (free time steps, a
    subclassed model): the batch-1 model then keeps its WHILE loop."""
    import keras

    def unroll(config: dict) -> dict:
        return {**config, "unroll": True}

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.RNN):
            config = unroll(config)
        elif isinstance(layer, keras.layers.Bidirectional):
            config = {**config, **{k: {**config[k], "config": unroll(config[k]["config"])}
                                   for k in ("layer", "backward_layer") if config.get(k)}}
        return layer.__class__.from_config(config)

    def rnns(of) -> list:  # every RNN, nested models' too (a Bidirectional's own pair counted with it)
        return [rnn for layer in getattr(of, "layers", [])
                for rnn in ([layer] if isinstance(layer, recurrent) else rnns(layer))]

    recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
    try:
        if not (found := rnns(model)) or any(la.input.shape[1] is None for la in found):  # unroll needs the steps
            return None
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except (AttributeError, ValueError, TypeError, NotImplementedError):  # a shared layer, a subclassed model
        return None
    done = [getattr(la, "forward_layer", la).unroll for la in rnns(copy)]  # a nested model's RNN is not cloned
    return copy if all(done) else None


def free_batch_or_1(label: str) -> Callable[[Export], Export]:
    """A TFLite export (``ctx, dest -> manifest fields``) run on the free-batch SavedModel, and again
    on the batch-1 one when the converter cannot lower the RNN's TensorList (said, recorded)."""

    def wrap(export: Export) -> Export:
        @functools.wraps(export)
        def run(ctx, dest: Path) -> dict[str, Any]:
            if ctx.tflite_batch1 is None:
                try:
                    return export(ctx, dest)
                except Exception as exc:  # only the free-batch TensorList refusal falls back; the rest re-raises
                    if not cannot_lower(exc):
                        raise
                    ctx.tflite_batch1 = _fallback(ctx, label, exc)
            if info(label).full_integer:  # calibrated: a WHILE loop left would crash TF's calibrator
                ctx.tflite_batch1.calibrates(label)
            ctx.warn(ctx.tflite_batch1.line(label))
            try:
                return {**export(ctx, dest), **ctx.tflite_batch1.fields}
            except ExportError:
                raise
            except Exception as exc:  # noqa: BLE001 - the converter raises several types; one line here
                from edgeport.export.tflite_fallback import converter_line

                raise ExportError(f"{label}: the converter cannot lower the RNN's TensorList with a free batch "
                                  f"({ctx.tflite_batch1.reason}), and at batch 1 it fails too: "
                                  f"{converter_line(exc)}") from None

        return run

    return wrap


#: A fix job's key: the Keras source its batch-1 SavedModel is traced from (the entry was exported at batch 1).
KERAS_SOURCE = "keras_source"


def fix_job(model_dir: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What a fix job of ``entry`` adds: its Keras source when the entry was converted at batch 1."""
    source = manifest.get("source") or {}
    if not entry.get(FIELD) or not source.get("file"):
        return {}
    return {KERAS_SOURCE: str(Path(model_dir) / source["file"])}


def job_saved_model(job: dict[str, Any]) -> Path:
    """The SavedModel a fix job's TFLite candidates convert from: the job's ``source``, or for an entry
    exported at batch 1 the batch-1 SavedModel traced again from its Keras source, as the export did
    (removed when the job's process ends)."""
    if not job.get(KERAS_SOURCE):
        return Path(job["source"])
    import atexit
    import shutil
    import tempfile

    from edgeport.export.source import load_keras

    model = load_keras(Path(job[KERAS_SOURCE]))
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-batch1-"))
    atexit.register(shutil.rmtree, tmp, True)
    return batch1_saved_model(model, tmp / "saved_model", "exported at batch 1 (manifest: batch_fallback)").saved_model
