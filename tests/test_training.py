"""Course models train end to end; the CLI stays light and its errors are one line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeport.cli import COMMANDS, main
from edgeport.registry import resolve
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
    two = make_images(tmp_path / "two", classes=("horse", "human"), per_class=6, size=40)
    rec = train("mobilenet_v2_transfer", epochs=1, batch_size=4, input_size=32, weights="none",
                fine_tune_at=100, fine_tune_epochs=1, data_dir=str(two), out=tmp_path)
    assert rec["weights_source"] == "none" and rec["epochs_run"] == 2
    assert "MobileNetV2 base weights: none" in capsys.readouterr().out


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
