"""Course models train end to end; the CLI stays light and its errors are one line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeport.cli import COMMANDS, main
from edgeport.lazy import resolve
from edgeport.training.models import MODELS, get_spec
from edgeport.training.train import train


def test_help_and_models_do_not_import_tensorflow():
    code = ("import sys; from edgeport.cli import main; main(['--help']); main(['models']); "
            "bad = [m for m in ('tensorflow', 'keras', 'onnxruntime') if m in sys.modules]; "
            "print('LOADED', bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fashion_cnn" in proc.stdout and "mobilenet_v2_transfer" in proc.stdout


def test_every_command_resolves_to_a_function():
    for name, (target, _) in COMMANDS.items():
        assert callable(resolve(target)), name


def test_unknown_model_lists_valid_names(capsys):
    assert main(["train", "resnet9000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown model 'resnet9000'" in err and "fashion_cnn" in err


def test_every_spec_has_a_contract():
    for spec in MODELS.values():
        contract = spec.input_contract()
        assert contract.kind == ("values" if spec.dataset == "celsius" else "image")


def test_celsius_short_run_writes_artifacts(tmp_path):
    rec = train("celsius", epochs=30, out=tmp_path)
    d = tmp_path / "celsius"
    assert (d / "model.keras").stat().st_size > 0
    saved = json.loads((d / "training.json").read_text())
    assert saved["seed"] == 0 and len(saved["history"]["loss"]) == 30
    assert saved["history"]["loss"][-1] < saved["history"]["loss"][0]
    assert set(rec["test_metrics"]) >= {"weight", "bias", "fahrenheit_at_100c"}


def test_accuracy_callback_stops_training(tmp_path):
    r = np.random.default_rng(0)
    digits = tmp_path / "digits"
    digits.mkdir()
    for d in range(10):
        (digits / f"{d}.json").write_text(json.dumps({"data": np.round(r.random(20 * 784), 3).tolist()}))
    rec = train("mnist_mlp", epochs=10, target_accuracy=0.01, data_dir=str(digits), out=tmp_path)
    assert rec["epochs_run"] == 1


def test_image_cnn_trains_on_generated_folder(tmp_path, shape_folder):
    rec = train("image_cnn", epochs=1, batch_size=8, input_size=32, data_dir=str(shape_folder), out=tmp_path)
    assert rec["labels"] == ["circle", "square", "triangle"]
    assert (tmp_path / "image_cnn" / "labels.txt").read_text().split() == rec["labels"]
    import keras

    m = keras.saving.load_model(tmp_path / "image_cnn" / "model.keras")
    assert m.output_shape == (None, 3) and m.input_shape == (None, 32, 32, 3)


def test_mobilenet_transfer_trains_and_fine_tunes(tmp_path, make_images, capsys):
    """The transfer path (pretrained base: here a local weights file) stays frozen, then fine-tunes.
    Training from scratch (no weights) compiles the whole network's gradients (~30 s): the slow test
    in test_faces.py covers it end to end, the tests below its parts."""
    import keras

    two = make_images(tmp_path / "two", classes=("horse", "human"), per_class=6, size=40)
    weights = tmp_path / "base.weights.h5"
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None).save_weights(weights)
    rec = train("mobilenet_v2_transfer", epochs=1, batch_size=4, input_size=32, weights=str(weights),
                fine_tune_at=100, fine_tune_epochs=1, data_dir=str(two), out=tmp_path)
    assert rec["weights_source"] == f"local file {weights}: frozen base, new head trained"
    assert rec["epochs_run"] == 2 and rec["base_trainable"] is False and rec["batchnorm_recalibration"] is None
    assert f"MobileNetV2 base weights: local file {weights}: frozen base" in capsys.readouterr().out


def test_recalibration_callback_runs_before_each_validation_and_at_the_end():
    import keras
    import tensorflow as tf

    from edgeport.training.train import batchnorm_recalibration

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(64, 2)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 3).astype("float32"))).batch(16)
    net = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.999),
                            keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="adam", loss="binary_crossentropy")
    recal = batchnorm_recalibration(ds)
    net.fit(ds, epochs=3, validation_data=ds, callbacks=[recal], verbose=0)
    assert recal.runs == 3 and recal.images == 64  # one per validation; the end was already settled
    net.fit(ds, epochs=1, callbacks=[recal], verbose=0)  # no validation: recalibrated at the end
    assert recal.runs == 4
    assert np.allclose(net.layers[0].moving_mean.numpy(), x.mean(axis=0), atol=1e-5)


def test_image_folder_with_one_class_is_a_clear_error(tmp_path, make_images, capsys):
    one = make_images(tmp_path / "one", classes=("cat",), per_class=3)
    assert main(["train", "image_cnn", "--data-dir", str(one), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "need at least two" in err and str(one) in err


def test_bad_config_is_rejected(tmp_path, capsys):
    assert main(["train", "celsius", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_real_celsius_meets_course_targets(tmp_path):
    rec = train("celsius", out=tmp_path)["test_metrics"]
    assert abs(rec["fahrenheit_at_100c"] - 212) <= 1.0
    assert abs(rec["weight"] - 1.8) <= 0.05 and abs(rec["bias"] - 32) <= 1.0
    assert get_spec("fashion_mlp").labels[9] == "Ankle boot"  # fashion_mlp itself: test_pipeline.py


# -- MobileNetV2 without ImageNet weights trains from scratch ---------------------------------------
def test_mobilenet_without_weights_trains_the_whole_network():
    net = get_spec("mobilenet_v2_transfer").build(input_size=32, weights="none", alpha=0.35)
    base = next(layer for layer in net.layers if hasattr(layer, "layers"))
    assert net.base_trainable is True and base.trainable and all(layer.trainable for layer in base.layers)
    assert net.weights_source == "none: trained from scratch, whole network trainable"
    assert len(net.trainable_weights) > 100


def test_mobilenet_with_a_weights_file_keeps_the_frozen_transfer_base(tmp_path):
    import keras

    keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False,
                                   weights=None).save_weights(tmp_path / "base.weights.h5")
    net = get_spec("mobilenet_v2_transfer").build(input_size=32, weights=str(tmp_path / "base.weights.h5"),
                                                  alpha=0.35)
    base = next(layer for layer in net.layers if hasattr(layer, "layers"))
    assert net.base_trainable is False and not base.trainable
    assert net.weights_source.endswith(": frozen base, new head trained")
    assert [w.name for w in net.trainable_weights] == ["kernel", "bias"]  # the head only


def test_batchnorm_recalibration_sets_the_average_batch_statistics():
    import keras
    import tensorflow as tf

    from edgeport.training.train import recalibrate_batchnorm

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((3,)), keras.Sequential([keras.layers.BatchNormalization()])])
    bn = net.layers[0].layers[0]
    x = np.random.default_rng(0).normal([5.0, -2.0, 0.5], [2.0, 1.0, 0.1], size=(100, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(100))).batch(32)  # 32, 32, 32, 4
    assert recalibrate_batchnorm(net, ds) == 100
    assert np.allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=1e-5)
    batch_vars = [x[i:i + 32].var(axis=0) * len(x[i:i + 32]) for i in range(0, 100, 32)]
    assert np.allclose(bn.moving_variance.numpy(), np.sum(batch_vars, axis=0) / 100, rtol=1e-4)
    assert bn.momentum == 0.99  # restored


# -- tfds:NAME for online users (tfds.load monkeypatched: no network) ----------------------------------
def _fake_tfds(monkeypatch, names=("horses", "humans"), n=12, size=40, fail=None):
    import types

    import tensorflow as tf
    import tensorflow_datasets as tfds

    calls = []

    def load(name, *, split, as_supervised, with_info, data_dir=None, download=True):
        calls.append({"name": name, "split": split, "download": download})
        if fail is not None:
            raise fail
        r = np.random.default_rng(len(calls))

        def ds(count):
            x = r.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
            y = np.arange(count) % len(names)
            return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))

        info = types.SimpleNamespace(features={"label": types.SimpleNamespace(names=list(names))})
        return (ds(n), ds(n // 2)), info

    monkeypatch.setattr(tfds, "load", load)
    return calls


def test_tfds_source_trains_image_cnn(monkeypatch, tmp_path):
    calls = _fake_tfds(monkeypatch)
    rec = train("image_cnn", epochs=1, batch_size=4, input_size=32, data_dir="tfds:horses_or_humans",
                out=tmp_path, verbose=0)
    assert calls == [{"name": "horses_or_humans", "split": ["train", "test"], "download": False}]
    assert rec["labels"] == ["horses", "humans"] and rec["data_source"] == "tfds:horses_or_humans"
    assert rec["data_default"] is False


def test_tfds_source_as_a_numpy_dataset_for_verify(monkeypatch):
    from edgeport.training.data import load_dataset

    calls = _fake_tfds(monkeypatch, names=("rock", "paper", "scissors"), n=9)
    ds = load_dataset("image_folder", "tfds:rock_paper_scissors", image_size=(24, 24))
    assert ds.x_train.shape == (9, 24, 24, 3) and ds.x_train.dtype == np.uint8 and len(ds.x_test) == 4
    assert ds.labels == ("rock", "paper", "scissors") and calls[0]["split"] == ["train", "test"]
    _fake_tfds(monkeypatch, names=("cat", "dog"))
    assert load_dataset("image_folder", "tfds:cats_vs_dogs", image_size=(24, 24)).labels == ("cat", "dog")


def test_tfds_offline_is_one_clear_line(monkeypatch, tmp_path, capsys):
    calls = _fake_tfds(monkeypatch, fail=AssertionError("Dataset horses_or_humans: could not find data"))
    monkeypatch.setenv("EDGEPORT_OFFLINE", "1")
    assert main(["train", "image_cnn", "--data-dir", "tfds:horses_or_humans", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tfds:horses_or_humans is not prepared" in err and "EDGEPORT_OFFLINE" in err
    assert "--data-dir DIR" in err and [c["download"] for c in calls] == [False]


def test_tfds_unreachable_host_fails_at_once(monkeypatch):
    import socket
    import types

    import tensorflow_datasets as tfds

    from edgeport.errors import DataError
    from edgeport.training.images import image_datasets

    calls = _fake_tfds(monkeypatch, fail=AssertionError("not prepared"))
    monkeypatch.delenv("EDGEPORT_OFFLINE", raising=False)
    monkeypatch.setattr(tfds, "builder_cls", lambda name: types.SimpleNamespace(
        url_infos={"https://downloads.example.invalid/horse-or-human.zip": None}))

    def refuse(address, timeout=None):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError, match="its download host downloads.example.invalid cannot be reached"):
        image_datasets("tfds:horses_or_humans")
    assert [c["download"] for c in calls] == [False]  # no download attempted: no minutes of retries


def test_unknown_tfds_name_lists_the_known_ones(tmp_path, capsys):
    assert main(["train", "image_cnn", "--data-dir", "tfds:mnist_corrupted", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown tfds image dataset 'mnist_corrupted'" in err and "horses_or_humans" in err
