"""A Keras RNN with a free batch exports to TFLite: the converter refuses its TensorList ("requires
element_shape to be static"), so every TFLite format converts again from a batch-1 SavedModel (one
note each, ``fallback: batch 1`` in the manifest), and verify proves it row by row. Random weights,
calibration on seeded random samples: no training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeport.export.pipeline import export_model
from edgeport.export.tflite_batch1 import CANNOT_LOWER, FALLBACK, FIELD
from edgeport.manifest import load_manifest

NAME = "tiny_lstm"
FP32, INT8 = "tflite_fp32", "tflite_int8"
STEPS, FEATURES = 10, 4


def tiny_lstm():
    """Sequence (10 steps x 4 features, free batch) -> LSTM(8) -> softmax over 3 classes, its random
    head wide enough that most rows are confident (the int8 gate measures agreement on those)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((STEPS, FEATURES), name="seq")
    head = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=8.0))
    return keras.Model(inp, head(keras.layers.LSTM(8)(inp)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rnn")
    src = tmp / "src" / f"{NAME}.keras"
    src.parent.mkdir()
    tiny_lstm().save(src)
    x = np.random.default_rng(1).uniform(-1, 1, (24, STEPS, FEATURES)).astype(np.float32)
    np.savez(tmp / "test.npz", x_test=x)
    report = export_model(str(src), formats=[FP32, INT8], out=tmp / "out", calibration_samples=32,
                          isolate=False)
    assert report.ok, report.render()
    return tmp, report


def test_the_free_batch_refusal_is_the_converters_and_batch_1_is_recorded(exported):
    tmp, report = exported
    artifacts = load_manifest(tmp / "out" / NAME)["artifacts"]
    for fmt in (FP32, INT8):
        entry, fallback = artifacts[fmt], artifacts[fmt][FIELD]
        assert fallback["fallback"] == FALLBACK and fallback["batch"] == 1 and fallback["unrolled"], entry
        assert CANNOT_LOWER in fallback["reason"] and "loc(" not in fallback["reason"], fallback
        assert entry["inputs"][0]["shape"][0] == 1, entry["inputs"]
        notes = [w for w in report.warnings if w.startswith(f"note: {fmt}: the converter cannot lower the RNN")]
        assert len(notes) == 1 and "converted at batch 1 (runs row by row)" in notes[0], report.warnings


@pytest.mark.parametrize("fmt,agreement", [(FP32, 1.0), (INT8, 0.75)])
def test_the_batch_1_model_verifies_row_by_row(exported, fmt, agreement):
    from edgeport.benchmarks.verify.command import verify_model

    tmp, _ = exported
    checked = verify_model(NAME, out=tmp / "out", data_npz=str(tmp / "test.npz"), formats=[fmt])
    assert checked.ok, checked.render()
    figures = checked.results[0].figures
    print(fmt, {k: figures.get(k) for k in ("agreement", "max_abs_diff")})
    assert figures["agreement"] >= agreement


def test_another_converter_error_is_not_taken_for_the_rnn_refusal():
    from edgeport.export.tflite_batch1 import cannot_lower, reason

    assert not cannot_lower(RuntimeError("'tf.Erf' op is neither a custom op nor a flex op"))
    exc = RuntimeError("<unknown>:0: error: loc(callsite(fused[\"TensorListReserve\"])): 'tf.TensorListReserve' "
                       "op requires element_shape to be static during TF Lite transformation pass\n<unknown>:0: note")
    assert cannot_lower(exc)
    assert reason(exc) == ("RuntimeError: 'tf.TensorListReserve' op requires element_shape to be static during "
                           "TF Lite transformation pass")


def test_a_savedmodel_source_says_in_one_line_that_it_needs_the_keras_source(tmp_path):
    from edgeport.errors import ExportError
    from edgeport.export import tflite_batch1

    class NoKeras:
        model, tflite_batch1 = None, None

    with pytest.raises(ExportError) as err:
        tflite_batch1._fallback(NoKeras(), FP32, RuntimeError(f"x {CANNOT_LOWER} y"))
    assert "\n" not in str(err.value) and "needs the Keras source" in str(err.value)



def test_free_time_steps_keep_a_while_loop_and_a_calibrated_format_says_so_in_one_line(tmp_path):
    import keras

    from edgeport.errors import ExportError
    from edgeport.export.tflite_batch1 import Batch1, unrolled

    inp = keras.Input((None, FEATURES), name="seq")
    assert unrolled(keras.Model(inp, keras.layers.GRU(4)(inp))) is None
    with pytest.raises(ExportError) as err:
        Batch1(tmp_path, "ConverterError: x", unrolled=False).calibrates(INT8)
    assert "\n" not in str(err.value) and "75140" in str(err.value)


def test_fix_converts_an_entry_exported_at_batch_1_from_the_same_batch_1_model(exported):
    """`edgeport fix` jobs of a batch-1 entry trace the Keras source again at batch 1, as the export did."""
    import tensorflow as tf

    from edgeport.export.tflite_batch1 import fix_job, job_saved_model

    tmp, _ = exported
    model_dir = tmp / "out" / NAME
    manifest = load_manifest(model_dir)
    job = {"source": str(model_dir / "saved_model"), **fix_job(model_dir, manifest, manifest["artifacts"][INT8])}
    assert Path(job["keras_source"]).is_file()
    spec = tf.saved_model.load(str(job_saved_model(job))).signatures["serving_default"].structured_input_signature[1]
    assert {k: v.shape.as_list() for k, v in spec.items()} == {"seq": [1, STEPS, FEATURES]}
    assert fix_job(model_dir, manifest, {"format": INT8}) == {}  # an entry exported at a free batch: as before
