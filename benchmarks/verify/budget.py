"""Where a failing int8 model loses its accuracy: its int8 weights or its int8 activations.

``tflite_int16x8`` keeps the very int8 weights of ``tflite_int8`` but carries activations in 16 bits.
When it loses about as much as int8, the 8-bit activations are not the problem: the int8 weights
are, and no activation width helps (the signature of a kernel whose output channel holds a few huge
values: per-channel int8 rounds the rest of that channel to zero). When int16x8 recovers most of it,
the 8-bit activation ranges are the limit. ``tflite_dynamic`` (int8 weights, activations quantized
on the fly, small kernels left float) is shown for context. Either way ``edgeport fix`` keeps the
worst layers in float.
"""
from __future__ import annotations

from typing import Any

SHARE = 0.5


def error_budget(results: list[Any]) -> str | None:
    """A one-line diagnosis for a failing tflite_int8 (None when it passes or the figures are missing)."""
    kl = {r.format: r.figures.get("kl_divergence") for r in results if r.runtime == "litert"}
    int8 = next((r for r in results if r.format == "tflite_int8" and r.runtime == "litert"), None)
    if int8 is None or int8.status == "pass" or not kl.get("tflite_int8"):
        return None
    full, weights, act16 = kl["tflite_int8"], kl.get("tflite_dynamic"), kl.get("tflite_int16x8")
    if weights is None or act16 is None:
        return ("int8 error budget: export tflite_dynamic and tflite_int16x8 too to tell whether the weights "
                "or the activations lose it")
    figures = (f"KL against the float model: full int8 {full:.3g}, int8 weights + int16 activations "
               f"(tflite_int16x8) {act16:.3g}, dynamic range {weights:.3g}")
    if act16 >= SHARE * full:
        return (f"int8 error budget: the int8 WEIGHTS lose it, not the activations ({figures}): 16-bit activations do "
                "not help, and int16x8 keeps the same int8 weights (dynamic range leaves kernels under 1,024 "
                "values in float, so it may pass); keep the worst layers in float: edgeport fix")
    return (f"int8 error budget: the 8-bit ACTIVATIONS lose it ({figures}): int16 activations recover it; "
            "calibrate better or keep the worst layers in float: edgeport fix")
