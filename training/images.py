"""Image-folder datasets (horses-vs-humans, cats-vs-dogs, rock-paper-scissors style).

A folder has one sub-folder per class, or ``train/`` and ``validation/`` (or ``test/``) folders that
each have one sub-folder per class. Loading goes through ``keras.utils.image_dataset_from_directory``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
#: tfds names for the course's image datasets (online users only).
TFDS_NAMES = {"horses_or_humans": ("train", "test"), "rock_paper_scissors": ("train", "test"),
              "cats_vs_dogs": ("train[:80%]", "train[80%:]")}


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

    Labels are int class indices (binary 0/1 for two classes)."""
    import keras

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


def load_tfds_images(name: str, *, image_size: tuple[int, int] = (150, 150), data_dir: str | None = None):
    """A course image dataset from tfds (needs the network or a prepared tfds data_dir)."""
    if name not in TFDS_NAMES:
        raise DataError(f"unknown tfds image dataset {name!r}; known: {', '.join(TFDS_NAMES)}")
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds

        (train, test), info = tfds.load(name, split=list(TFDS_NAMES[name]), as_supervised=True,
                                        with_info=True, data_dir=data_dir)
    except Exception as exc:  # noqa: BLE001 - offline, or not prepared
        raise DataError(f"tfds dataset {name!r} unavailable ({type(exc).__name__}: {str(exc)[:120]}); "
                        "download it while online, or use an image folder with --data-dir") from None
    resize = lambda x, y: (tf.image.resize(x, image_size), y)  # noqa: E731
    return train.map(resize), test.map(resize), info.features["label"].names
