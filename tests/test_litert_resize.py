"""LiteRT: every interpreter is resized to its data's shape before it is allocated. A model with
free dimensions that the engine cannot prepare at its declared placeholder shape (openWakeWord's
melspectrogram .tflite: input [-1, -1] stored as [1, 1], 'XNNPack delegate failed to reshape') runs at
its data's shape, said; one without free dimensions that cannot be allocated is refused at load."""
from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import EngineError, LoadError
from edgeport.runtimes import litert

XNN = "XNNPack delegate failed to reshape runtimeNode number 27 (TfLiteXNNPackDelegate) failed to prepare."


class FakeInterpreter:
    """An engine that cannot prepare inputs narrower than 4 samples (as XNNPACK cannot prepare the
    melspectrogram model at [1, 1]); its output is each row's sum. ``signature``: the declared shape."""

    signature = (-1, -1)
    allocations: list[list[int]] = []

    def __init__(self, model_path: str, **_):
        self.shape = [1 if d < 0 else d for d in self.signature]
        self.allocated = False

    def _io(self, name, index, shape, signature):
        return {"name": name, "index": index, "shape": np.array(shape, np.int32),
                "shape_signature": np.array(signature, np.int32), "dtype": np.float32, "quantization": (0.0, 0)}

    def get_input_details(self):
        return [self._io("audio", 0, self.shape, self.signature)]

    def get_output_details(self):
        return [self._io("sum", 1, [self.shape[0], 1], [self.signature[0], 1])]

    def get_tensor_details(self):
        return self.get_input_details() + self.get_output_details()

    def get_signature_list(self):
        return {}

    def resize_tensor_input(self, index, shape):
        self.shape, self.allocated = list(shape), False

    def allocate_tensors(self):
        FakeInterpreter.allocations.append(list(self.shape))
        if self.shape[1] < 4:
            raise RuntimeError(XNN)
        self.allocated = True

    def set_tensor(self, index, x):
        assert self.allocated and list(x.shape) == self.shape, "set_tensor before allocation at this shape"
        self.x = x

    def invoke(self):
        self.y = self.x.sum(axis=1, keepdims=True)

    def get_tensor(self, index):
        return self.y


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr(litert, "import_engine", lambda name=None: (FakeInterpreter, None, "fake 1.0", []))
    FakeInterpreter.allocations = []
    path = tmp_path / "mel.tflite"
    path.write_bytes(b"\0" * 64)
    return path


def test_a_declared_shape_the_engine_cannot_prepare_runs_at_the_data_shape(fake):
    session = litert.LiteRTSession(fake, threads=1)
    assert any("cannot prepare the declared input shape ([-1, -1] stored as [1, 1]" in n and
               "allocates at the shape of its data" in n for n in session.notes), session.notes
    x = np.arange(3 * 16, dtype=np.float32).reshape(3, 16)
    y = session.predict(x)
    np.testing.assert_allclose(y, x.sum(axis=1, keepdims=True))
    assert [3, 16] in FakeInterpreter.allocations  # resized first, then allocated
    np.testing.assert_allclose(session.predict(x[:1]), x[:1].sum(axis=1, keepdims=True))  # batch 1 too


def test_a_data_shape_the_engine_cannot_prepare_either_is_one_engine_error(fake):
    session = litert.LiteRTSession(fake, threads=1)
    with pytest.raises(EngineError, match=r"cannot prepare it at the input shape \[1, 2\] either: XNNPack"):
        session.predict(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(session.predict(np.ones((2, 8), np.float32)), [[8.0], [8.0]])  # still resizable


def test_a_fixed_shape_that_cannot_be_allocated_is_refused_at_load(fake, monkeypatch):
    monkeypatch.setattr(FakeInterpreter, "signature", (1, 2))
    with pytest.raises(LoadError, match="mel.tflite: fake 1.0 could not load it: XNNPack"):
        litert.LiteRTSession(fake, threads=1)
