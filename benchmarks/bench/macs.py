"""Multiply-accumulates per image, counted from the Keras model's layers.

Dense: (positions) x in x out. ConvND: output positions x kernel volume x (c_in / groups) x c_out.
Depthwise: output positions x kernel volume x c_in x depth multiplier. Separable: depthwise plus a
1x1 pointwise conv. ConvNDTranspose: input positions x kernel volume x c_in x c_out. Pooling,
normalisation and activations are not MACs and count 0. Nested models are counted layer by layer.
"""
from __future__ import annotations

from math import prod
from typing import Any


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = tuple(tensor.shape)
    return tuple(int(d) if d is not None else 1 for d in shape[1:])  # drop the batch axis


def _io(layer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    inp = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
    return _shape(inp), _shape(layer.output)


def layer_macs(layer) -> int:
    """MACs one image costs in ``layer`` (0 for layers that do no multiply-accumulate)."""
    kind = type(layer).__name__
    if kind == "Dense":
        in_shape, out_shape = _io(layer)
        return prod(out_shape[:-1]) * in_shape[-1] * out_shape[-1]
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        in_shape, out_shape = _io(layer)
        groups = getattr(layer, "groups", 1) or 1
        return prod(out_shape[:-1]) * prod(layer.kernel_size) * (in_shape[-1] // groups) * out_shape[-1]
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        in_shape, out_shape = _io(layer)
        return prod(out_shape[:-1]) * prod(layer.kernel_size) * in_shape[-1] * layer.depth_multiplier
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        in_shape, out_shape = _io(layer)
        mid = in_shape[-1] * layer.depth_multiplier
        positions = prod(out_shape[:-1])
        return positions * prod(layer.kernel_size) * mid + positions * mid * out_shape[-1]
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        in_shape, out_shape = _io(layer)
        return prod(in_shape[:-1]) * prod(layer.kernel_size) * in_shape[-1] * out_shape[-1]
    return 0


def count_macs(model) -> dict[str, Any]:
    """``{"total": MACs per image, "layers": [{"name", "type", "macs"}...]}`` for a Keras model."""
    rows: list[dict[str, Any]] = []

    def walk(m, prefix: str = "") -> None:
        for layer in m.layers:
            if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential", "Model"):
                walk(layer, prefix + layer.name + "/")
                continue
            macs = layer_macs(layer)
            if macs:
                rows.append({"name": prefix + layer.name, "type": type(layer).__name__, "macs": int(macs)})

    walk(model)
    return {"total": int(sum(r["macs"] for r in rows)), "layers": rows}


def count_macs_file(keras_path: str) -> dict[str, Any]:
    """Load a .keras file (imports Keras) and count its MACs."""
    import keras

    return count_macs(keras.models.load_model(keras_path, compile=False))
