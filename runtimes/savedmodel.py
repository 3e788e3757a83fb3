"""A SavedModel through its ``serving_default`` signature (the output dict becomes arrays)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import LoadError
from edgeport.runtimes.base import Session, order_inputs, spec_shape
from edgeport.runtimes.keras_runtime import set_tf_threads, tf_device
from edgeport.types import TensorSpec

SIGNATURE = "serving_default"


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class SavedModelSession(Session):
    """``tf.saved_model.load`` + the serving signature; inputs in the exported model's order."""

    runtime = "savedmodel"
    probe_by_default = True  # a crash inside TensorFlow while loading must not take the caller down

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
                 signature: str = SIGNATURE, allow_nonfinite: bool = False):
        super().__init__(path, threads=threads, device=device, allow_nonfinite=allow_nonfinite)
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise LoadError(f"{self.path}: the savedmodel runtime needs TensorFlow "
                            f"(pip install tensorflow): {exc}") from None
        self.engine = f"tensorflow {tf.__version__}"
        set_tf_threads(tf, threads)
        self._device = tf_device(tf, device, self.path)
        try:
            with tf.device(self._device):
                loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many types for a broken SavedModel
            raise LoadError(f"{self.path}: TensorFlow could not load the SavedModel: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                            ) from None
        if signature not in loaded.signatures:
            raise LoadError(f"{self.path}: no {signature!r} signature; it has "
                            f"{sorted(loaded.signatures) or 'none'}")
        self._loaded = loaded
        self._sig = loaded.signatures[signature]
        _, kwargs = self._sig.structured_input_signature
        specs = [TensorSpec(name, spec_shape([-1 if d is None else d for d in s.shape]),
                            s.dtype.name) for name, s in kwargs.items()]
        self.inputs = order_inputs(specs, _positional_names(loaded))
        outs = self._sig.structured_outputs
        self._out_keys = sorted(outs, key=_natural)
        self.outputs = [TensorSpec(k, spec_shape([-1 if d is None else d for d in outs[k].shape]),
                                   outs[k].dtype.name) for k in self._out_keys]
        self._in_names = [s.name for s in self.inputs]
        self._tf = tf
        self._finish_setup()

    def _run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        tf = self._tf
        with tf.device(self._device):
            out = self._sig(**{n: tf.constant(f) for n, f in zip(self._in_names, feeds)})
        return [out[k].numpy() for k in self._out_keys]


def _positional_names(loaded: Any) -> list[str] | None:
    """Input names in the exporting model's positional order (Keras' ``serve`` endpoint)."""
    serve = getattr(loaded, "serve", None)
    try:
        fns = serve.concrete_functions if serve is not None else []
        if len(fns) != 1:
            return None
        import tensorflow as tf
        return [s.name for s in tf.nest.flatten(fns[0].structured_input_signature)]
    except Exception:  # noqa: BLE001 - no Keras serve endpoint to read: the signature's own order
        return None
