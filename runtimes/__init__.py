"""Run every artifact through one small interface, with or without TensorFlow.

    from edgeport.runtimes import load
    session = load("artifacts/fashion_mlp/model_int8.tflite", threads=1)
    probabilities = session.predict(raw_pixels)   # (N, 28, 28, 1) 0-255 -> (N, 10) floats

Importing this package imports numpy only; each runtime imports its engine when a session of it
is created (``keras`` and ``savedmodel`` need TensorFlow; ``litert`` needs ai-edge-litert,
tflite-runtime or TensorFlow; ``onnxruntime`` needs onnxruntime).
"""
from edgeport.runtimes.base import Session
from edgeport.runtimes.registry import DEFAULTS, RUNTIMES, capabilities, list_runtimes, load, runtimes_for

__all__ = ["DEFAULTS", "RUNTIMES", "Session", "capabilities", "list_runtimes", "load", "runtimes_for"]
