"""The gates mean the same on a 150-layer network: a 160x160 MobileNetV2 (alpha 1.0, 2.3 M weights,
BatchNorm everywhere) passes its legitimate float32 and fp16 conversions, and one weight tensor 1%
off in its float32 artifact fails."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeport.benchmarks.verify.command import verify_model
from edgeport.export.pipeline import export_model

pytestmark = pytest.mark.slow
# untrained weights: top-1 flips between near-equal classes say nothing; the numbers are gated
TASK_FREE = "fp16.min_agreement=0,fp16.min_confident_agreement=0,float32.min_agreement=0"


def mobilenet_v2_160():
    """MobileNetV2 at 160x160 with the transfer head; random weights with spread BatchNorm statistics
    (a freshly initialised BN is the identity) so that activations look like a trained network's."""
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(160, 160, 3), alpha=1.0, include_top=False, weights=None)
    rng = np.random.default_rng(0)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            layer.set_weights([g * rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, mu.shape), var * rng.uniform(0.5, 2.0, var.shape)])
    inp = keras.Input((160, 160, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)))
    head = keras.layers.Dense(19, activation="softmax")
    model = keras.Model(inp, head(keras.layers.Dropout(0.2)(x)))
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 8, bias])
    return model


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deep")
    model = mobilenet_v2_160()
    assert len(model.layers[2].layers) > 150
    model.save(tmp / "mnv2_160.keras")
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 10, 10, 3)).astype(np.uint8)  # smooth, photo-like pixels
    x = np.stack([np.asarray(Image.fromarray(s).resize((160, 160), Image.Resampling.BICUBIC)) for s in small])
    np.savez(tmp / "test.npz", x_test=x)
    np.save(tmp / "cal.npy", x[:8].astype(np.float32))
    report = export_model(str(tmp / "mnv2_160.keras"), formats=["tflite_fp32", "tflite_fp16", "onnx"],
                          out=tmp / "out", calibration_data=str(tmp / "cal.npy"))
    assert report.ok, report.render()
    return tmp


def test_float32_and_fp16_of_a_deep_network_pass(deep):
    report = verify_model("mnv2_160", out=deep / "out", data_npz=str(deep / "test.npz"), gates=TASK_FREE)
    assert report.ok, report.render()
    for r in report.results:
        assert r.figures["tolerance_diff"] <= r.figures["tolerance"], r.format


def test_one_weight_tensor_one_percent_off_fails_on_the_deep_network(deep, tmp_path, edits):
    model_dir = tmp_path / "out" / "mnv2_160"
    shutil.copytree(deep / "out" / "mnv2_160", model_dir)
    edits.scale_weights(model_dir / "model_fp32.tflite", 1.01)
    edits.rehash(model_dir, "tflite_fp32")
    report = verify_model("mnv2_160", out=model_dir.parent, data_npz=str(deep / "test.npz"),
                          formats=["tflite_fp32"], gates=TASK_FREE)
    row = report.results[0]
    assert row.status == "fail" and [f.figure for f in row.failures] == ["tolerance_diff"], report.render()
