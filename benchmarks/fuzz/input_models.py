"""Two small ONNX models with the inputs real models bring, built with ``onnx.helper`` (no download):

- ``stateful``: a streaming voice-activity model: float audio ``(1, 512)``, a recurrent state
  ``(2, 1, H)`` whose first axis is not a batch, an int64 scalar sample rate ``sr ()``; its outputs
  ``sr_is_big`` (``sr == 16777217``, a value float32 cannot hold) and ``sr_mod`` (``sr % 1000``)
  prove the integer reaches the graph exactly;
- ``symbolic``: a detector-like graph on ``images (1, 3, height, width)``: a stride-2 Conv, a 2x
  Resize and a Concat with its input, so a wrong height/width (1, or odd) breaks it.

The fuzz corpus and ``tests/test_inputs.py`` use them, with their seed feeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: The sample rate the stateful model's seed feed carries (2**24 + 1: float32 rounds it to 2**24).
BIG_SR = 16777217


def stateful(path: Path, hidden: int = 16) -> Path:
    from onnx import TensorProto as T, helper as h, numpy_helper as nh

    w = nh.from_array(np.linspace(-1, 1, 512 * hidden, dtype=np.float32).reshape(512, hidden), "W")
    consts = [w, nh.from_array(np.array(BIG_SR, np.int64), "big"), nh.from_array(np.array(1000, np.int64), "k")]
    nodes = [h.make_node("MatMul", ["audio", "W"], ["hid"]),
             h.make_node("Add", ["state", "hid"], ["new_state"]),
             h.make_node("ReduceMean", ["new_state"], ["prob"], keepdims=0),
             h.make_node("Equal", ["sr", "big"], ["sr_is_big"]),
             h.make_node("Mod", ["sr", "k"], ["sr_mod"])]
    graph = h.make_graph(nodes, "stateful", [h.make_tensor_value_info("audio", T.FLOAT, [1, 512]),
                                             h.make_tensor_value_info("state", T.FLOAT, [2, 1, hidden]),
                                             h.make_tensor_value_info("sr", T.INT64, [])],
                         [h.make_tensor_value_info("prob", T.FLOAT, []),
                          h.make_tensor_value_info("new_state", T.FLOAT, [2, 1, hidden]),
                          h.make_tensor_value_info("sr_is_big", T.BOOL, []),
                          h.make_tensor_value_info("sr_mod", T.INT64, [])], initializer=consts)
    return _save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)


def stateful_feed(hidden: int = 16, sr: int = BIG_SR) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"audio": rng.uniform(-1, 1, (1, 512)).astype(np.float32),
            "state": rng.normal(size=(2, 1, hidden)).astype(np.float32), "sr": np.array(sr, np.int64)}


def symbolic(path: Path) -> Path:
    from onnx import TensorProto as T, helper as h, numpy_helper as nh

    consts = [nh.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "Wc"),
              nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [h.make_node("Conv", ["images", "Wc"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             h.make_node("Resize", ["c", "", "scales"], ["up"], mode="nearest"),
             h.make_node("Concat", ["images", "up"], ["cat"], axis=1),
             h.make_node("ReduceMean", ["cat"], ["out"], axes=[2, 3], keepdims=0)]
    graph = h.make_graph(nodes, "symbolic", [h.make_tensor_value_info("images", T.FLOAT, [1, 3, "height", "width"])],
                         [h.make_tensor_value_info("out", T.FLOAT, [1, 7])], initializer=consts)
    return _save(h.make_model(graph, opset_imports=[h.make_opsetid("", 13)]), path)


def _save(model, path: Path) -> Path:
    import onnx

    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build(folder: Path) -> dict[str, Path]:
    """The two models and the fuzz seeds of the input kinds in ``folder`` (made when missing)."""
    folder = Path(folder)
    out = {"stateful": folder / "stateful.onnx", "symbolic": folder / "symbolic.onnx",
           "inputs.npz": folder / "inputs.npz", "input_shape": folder / "input_shape.txt"}
    if not all(p.is_file() for p in out.values()):
        stateful(out["stateful"])
        symbolic(out["symbolic"])
        np.savez(out["inputs.npz"], **stateful_feed())
        out["input_shape"].write_text("images=1x3x64x64")
    return out
