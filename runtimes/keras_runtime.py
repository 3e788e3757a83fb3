"""The reference: a .keras model called through one compiled ``tf.function`` (never ``predict``).

``model.predict`` costs ~100 ms of per-call overhead; a traced function with a free batch
dimension is traced once and then runs at graph speed.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import DeviceUnavailable, LoadError
from edgeport.runtimes import keras_legacy
from edgeport.runtimes.base import Session, spec_shape
from edgeport.types import TensorSpec


def tf_device(tf: Any, device: str, path: Path) -> str:
    """"/CPU:0" or "/GPU:0"; DeviceUnavailable when TensorFlow sees no GPU."""
    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise DeviceUnavailable(
            f"{path}: device='gpu' but TensorFlow sees no GPU (tensorflow-cpu, or no CUDA "
            "driver); devices here: "
            + ", ".join(d.name for d in tf.config.list_physical_devices()) + "; use device='cpu'")
    return "/GPU:0"


def set_tf_threads(tf: Any, threads: int | None) -> None:
    """Best effort: TensorFlow fixes its thread pools when its runtime first starts."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() != int(threads):
            warnings.warn(f"threads={threads} ignored: TensorFlow was already initialised in this "
                          "process with another setting", RuntimeWarning, stacklevel=3)


def output_tensors(model: Any) -> tuple[list[str], list[Any]]:
    """(names, symbolic tensors) of the outputs as Keras ``model.export`` names them in the serving
    signature, which every artifact keeps: the keys of a dict output (sorted), else ``output_0``,
    ``output_1``, ... (a Sequential model that was never called has no ``model.output``)."""
    try:
        out = model.output
    except (AttributeError, ValueError):
        out = None
    if isinstance(out, dict):
        return sorted(out), [out[k] for k in sorted(out)]
    tensors = list(model.outputs)
    return [f"output_{i}" for i in range(len(tensors))], tensors


def output_names(model: Any) -> list[str]:
    return output_tensors(model)[0]


class KerasSession(Session):
    """A Keras 3 model file loaded in safe mode, called through a tf.function traced once."""

    runtime = "keras"
    probe_by_default = True  # a crash inside TensorFlow while loading must not take the caller down

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 allow_nonfinite: bool = False, safe_mode: bool = True):
        super().__init__(path, threads=threads, device=device, allow_nonfinite=allow_nonfinite)
        try:
            import keras
            import tensorflow as tf
        except ImportError as exc:
            raise LoadError(f"{self.path}: the keras runtime needs TensorFlow and Keras "
                            f"(pip install tensorflow): {exc}") from None
        self.engine = f"keras {keras.__version__} (tensorflow {tf.__version__})"
        set_tf_threads(tf, threads)
        self._device = tf_device(tf, device, self.path)
        try:
            with tf.device(self._device):
                model, legacy = keras_legacy.load_model(self.path, safe_mode=safe_mode)
        except Exception as exc:  # noqa: BLE001 - keras raises ValueError, TypeError, OSError, ...
            raise LoadError(f"{self.path}: keras could not load it: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        try:
            model_inputs, model_outputs = list(model.inputs), list(model.outputs)
        except (AttributeError, ValueError):
            raise LoadError(f"{self.path}: the model does not declare its inputs (a subclassed "
                            "model that was never built?); save a functional or Sequential model") from None
        self.model = model
        self.notes += [legacy] if legacy else []
        self.inputs = [TensorSpec(t.name, spec_shape([-1 if d is None else d for d in t.shape]),
                                  np.dtype(t.dtype).name) for t in model_inputs]
        names, model_outputs = output_tensors(model)
        self.outputs = [TensorSpec(name, spec_shape([-1 if d is None else d for d in t.shape]),
                                   np.dtype(t.dtype).name) for name, t in zip(names, model_outputs)]
        signature = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name) for t in model_inputs]
        single = len(model_inputs) == 1

        def call(*xs):
            y = model(xs[0] if single else list(xs), training=False)
            return tuple(y) if isinstance(y, (list, tuple)) else (
                tuple(y[k] for k in sorted(y)) if isinstance(y, dict) else (y,))

        self._fn = tf.function(call, input_signature=signature, autograph=False)
        self._tf = tf
        self._finish_setup()

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        with self._tf.device(self._device):
            return [y.numpy() for y in self._fn(*feeds)]
