"""Image-folder datasets (horses-vs-humans, cats-vs-dogs, rock-paper-scissors style).

A folder has one sub-folder per class, or ``train/`` and ``validation/`` (or ``test/``) folders that
each have one sub-folder per class. Loading goes through ``keras.utils.image_dataset_from_directory``
in RGB: a grayscale image (the faces folder) is read as three equal channels.

``tfds:NAME`` in place of a folder (``tfds:horses_or_humans``, ``tfds:rock_paper_scissors``,
``tfds:cats_vs_dogs``) loads the course dataset with tensorflow-datasets: from its data directory
($TFDS_DATA_DIR, default ~/tensorflow_datasets) when prepared there, else downloaded (online users).
Offline (EDGEPORT_OFFLINE=1, or the download host unreachable) it fails at once with one line.
"""
from __future__ import annotations

from pathlib import Path

import os
import socket
import sys
from urllib.parse import urlsplit

import numpy as np

from edgeport.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
#: tfds names for the course's image datasets (online users only).
TFDS_NAMES = {"horses_or_humans": ("train", "test"), "rock_paper_scissors": ("train", "test"),
              "cats_vs_dogs": ("train[:80%]", "train[80%:]")}
TFDS_PREFIX = "tfds:"


class TfdsUnavailable(DataError):
    """A tfds course dataset that is neither prepared here nor downloadable now."""


def tfds_name(source: str | Path | None) -> str | None:
    """``NAME`` for a ``tfds:NAME`` source, else None."""
    text = str(source) if source is not None else ""
    return text[len(TFDS_PREFIX):] if text.startswith(TFDS_PREFIX) else None


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def validate_image_folder(root: str | Path, *, check_images: bool = True) -> tuple[list[str], int]:
    """Check a class-per-folder tree; return (class names, image count) or raise DataError."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    classes = _class_dirs(root)
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s) "
                        f"({', '.join(c.name for c in classes) or 'none'}); need at least two, "
                        "one sub-folder of images per class")
    from PIL import Image, UnidentifiedImageError

    count, bad = 0, []
    for cls in classes:
        files = [f for f in sorted(cls.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataError(f"{cls}: class folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        count += len(files)
        if check_images:
            for f in files:
                try:
                    with Image.open(f) as im:
                        im.verify()
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                    bad.append(f)
    if bad:
        shown = ", ".join(str(b) for b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DataError(f"{root}: {len(bad)} unreadable image(s): {shown}; remove or replace them")
    return [c.name for c in classes], count


def _splits(root: Path) -> tuple[Path, Path | None]:
    for val in ("validation", "test"):
        if (root / "train").is_dir() and (root / val).is_dir():
            return root / "train", root / val
    return root, None


def image_datasets(root: str | Path, *, image_size: tuple[int, int] = (150, 150), batch_size: int = 32,
                   seed: int = 0, validation_split: float = 0.2, color_mode: str = "rgb"):
    """Return (train_ds, val_ds, class_names) as batched tf.data datasets of raw 0-255 float pixels.

    Labels are int class indices (binary 0/1 for two classes). ``root`` may be ``tfds:NAME``."""
    import keras

    if (name := tfds_name(root)) is not None:
        return tfds_datasets(name, image_size=image_size, batch_size=batch_size, seed=seed)
    root = Path(root)
    train_dir, val_dir = _splits(root)
    classes, _ = validate_image_folder(train_dir)
    if val_dir is not None:
        val_classes, _ = validate_image_folder(val_dir)
        if val_classes != classes:
            raise DataError(f"{val_dir}: classes {val_classes} differ from {train_dir}'s {classes}")
    common = dict(image_size=image_size, batch_size=batch_size, seed=seed, label_mode="int",
                  color_mode=color_mode, verbose=False)
    if val_dir is not None:
        train = keras.utils.image_dataset_from_directory(train_dir, shuffle=True, **common)
        val = keras.utils.image_dataset_from_directory(val_dir, shuffle=False, **common)
    else:
        train, val = keras.utils.image_dataset_from_directory(
            train_dir, validation_split=validation_split, subset="both", shuffle=True, **common)
    return train, val, classes


def load_image_folder(root: str | Path, *, image_size: tuple[int, int] = (150, 150), seed: int = 0,
                      validation_split: float = 0.2, color_mode: str = "rgb"):
    """The folder as a numpy Dataset (uint8 NHWC); the validation split serves as the test set."""
    from edgeport.training.data import Dataset

    train, val, classes = image_datasets(root, image_size=image_size, seed=seed,
                                         validation_split=validation_split, color_mode=color_mode)

    def to_numpy(ds):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds]) if ds.cardinality() else ((), ())
        return (np.concatenate(xs).round().clip(0, 255).astype(np.uint8), np.concatenate(ys).astype(np.int64))

    x_train, y_train = to_numpy(train)
    x_test, y_test = to_numpy(val)
    return Dataset("image_folder", x_train, y_train, x_test, y_test, labels=tuple(classes), source=str(root))


def _tfds_home(data_dir: str | None) -> str:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or str(Path.home() / "tensorflow_datasets")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


def _unreachable_host(tfds, name: str, timeout: float = 5.0) -> str | None:
    """The first download host of ``name`` that cannot be reached (None when all can, or unknown)."""
    try:
        urls = list(tfds.builder_cls(name).url_infos or {})
    except Exception:  # noqa: BLE001 - no checksums known: let the download itself decide
        return None
    for host in sorted({urlsplit(u).hostname for u in urls if urlsplit(u).hostname}):
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError:
            return host
    return None


def _tfds_load(name: str, data_dir: str | None):
    """((train, test), info) from tfds: prepared data first, else a download (online only)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise TfdsUnavailable(f"tfds:{name} needs tensorflow-datasets ({_one_line(exc)}); "
                              "pip install tensorflow-datasets, or pass --data-dir DIR with an image folder") from None
    home = _tfds_home(data_dir)
    kwargs = dict(split=list(TFDS_NAMES[name]), as_supervised=True, with_info=True, data_dir=data_dir)
    fix = "download it once while online, or pass --data-dir DIR with an image folder"
    try:
        return tfds.load(name, download=False, **kwargs)
    except ModuleNotFoundError as exc:
        raise TfdsUnavailable(f"tfds:{name}: tensorflow-datasets cannot run here: missing Python module "
                              f"{exc.name!r} (pip install {exc.name})") from None
    except Exception:  # noqa: BLE001 - not prepared in the tfds data directory: try a download
        pass
    if os.environ.get("EDGEPORT_OFFLINE", "") not in ("", "0"):
        raise TfdsUnavailable(f"tfds:{name} is not prepared in {home} and EDGEPORT_OFFLINE is set; {fix}")
    host = _unreachable_host(tfds, name)
    if host is not None:
        raise TfdsUnavailable(f"tfds:{name} is not prepared in {home} and its download host {host} cannot be "
                              f"reached (offline?); {fix}")
    print(f"tfds:{name}: not prepared in {home}: downloading it (first use)", file=sys.stderr)
    try:
        return tfds.load(name, download=True, **kwargs)
    except ModuleNotFoundError as exc:
        raise TfdsUnavailable(f"tfds:{name}: tensorflow-datasets cannot run here: missing Python module "
                              f"{exc.name!r} (pip install {exc.name})") from None
    except Exception as exc:  # noqa: BLE001 - network or preparation failure
        raise TfdsUnavailable(f"tfds:{name} could not be downloaded into {home} ({_one_line(exc)}); {fix}") from None


def load_tfds_images(name: str, *, image_size: tuple[int, int] = (150, 150), data_dir: str | None = None):
    """A course image dataset from tfds as (train, test, class names): unbatched (image, label) pairs,
    images resized to ``image_size``, raw 0-255 float32 pixels, RGB."""
    if name not in TFDS_NAMES:
        raise DataError(f"unknown tfds image dataset {name!r}; known: {', '.join(TFDS_NAMES)}")
    import tensorflow as tf

    (train, test), info = _tfds_load(name, data_dir)

    def prepare(x, y):
        x = tf.image.resize(tf.cast(x, tf.float32), image_size)
        if x.shape[-1] == 1:
            x = tf.image.grayscale_to_rgb(x)
        return x, tf.cast(y, tf.int32)

    return train.map(prepare), test.map(prepare), list(info.features["label"].names)


def tfds_datasets(name: str, *, image_size: tuple[int, int] = (150, 150), batch_size: int = 32, seed: int = 0,
                  data_dir: str | None = None):
    """(train_ds, val_ds, class names) batched like ``image_datasets``; the tfds test split validates."""
    import tensorflow as tf

    train, test, classes = load_tfds_images(name, image_size=image_size, data_dir=data_dir)
    train = train.shuffle(1000, seed=seed, reshuffle_each_iteration=True)
    return (train.batch(batch_size).prefetch(tf.data.AUTOTUNE),
            test.batch(batch_size).prefetch(tf.data.AUTOTUNE), classes)
