"""Real face / non-face images for the image models, taken out of the scikit-image wheel.

scikit-image ships ``skimage/data/lfw_subset.npy``: 200 real 25x25 grayscale images in [0, 1],
rows 0-99 faces (from Labeled Faces in the Wild), rows 100-199 non-faces. ``materialize_faces``
reads that file from an installed ``skimage`` package, or straight out of a scikit-image wheel
downloaded once (``pip download``, no install) into ``$EDGEPORT_DATA_HOME/wheels/``, and writes an
image folder the image models train on::

    DEST/train/face/face_007.png       (160 training images: 80 per class)
    DEST/train/non_face/non_face_104.png
    DEST/validation/face/...           (40 held-out images: 20 per class)

The split is fixed: one ``numpy.random.default_rng(seed)`` (seed 0 by default) draws a permutation
of the 100 faces, then one of the 100 non-faces; the first 80 of each go to ``train/``, the last 20
to ``validation/``. A file is named after its row in ``lfw_subset.npy``. Pixels are
``rint(value * 255)`` as 8-bit grayscale PNGs. The folder is built in a temporary directory and
renamed into place; a stamp (``.edgeport-faces.json``) lists every file with its sha256, so a
second run is a no-op and a partial or edited folder is rebuilt.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from edgeport.errors import DataError
from edgeport.files import atomic_path
from edgeport.training.data import data_home

MEMBER = "skimage/data/lfw_subset.npy"
SKIMAGE = "scikit-image==0.26.*"
WHEEL_GLOB = "scikit_image-0.26.*.whl"
CLASSES = ("face", "non_face")  # rows 0-99, rows 100-199
PER_CLASS, TRAIN_PER_CLASS = 100, 80
SHAPE = (2 * PER_CLASS, 25, 25)
STAMP = ".edgeport-faces.json"
FORMAT = 1  # bump when the folder layout changes: older folders are rebuilt


class FacesSourceError(DataError):
    """lfw_subset.npy could not be had: no skimage installed and the wheel download failed."""


class FacesFileError(DataError):
    """lfw_subset.npy (or the wheel holding it) is unreadable or not the expected 200 images."""


class FacesFolderMissing(DataError):
    """The default faces folder has not been written (or is incomplete)."""


def default_dest() -> Path:
    """The default faces folder: ``$EDGEPORT_DATA_HOME/faces``."""
    return data_home() / "faces"


def wheel_dir() -> Path:
    return data_home() / "wheels"


# -- finding and reading lfw_subset.npy ------------------------------------------------------------
def installed_file() -> Path | None:
    """``lfw_subset.npy`` inside an installed skimage package (found without importing skimage)."""
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "lfw_subset.npy"
    return path if path.is_file() else None


def _run_pip(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def download_wheel(directory: Path | None = None) -> Path:
    """The scikit-image wheel in ``directory`` (default $EDGEPORT_DATA_HOME/wheels), downloaded once."""
    directory = Path(directory or wheel_dir())
    found = sorted(directory.glob(WHEEL_GLOB))
    if found:
        return found[-1]
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "-d", str(directory), SKIMAGE]
    print(f"downloading the {SKIMAGE} wheel (for lfw_subset.npy) into {directory}", file=sys.stderr)
    run = _run_pip(cmd)
    found = sorted(directory.glob(WHEEL_GLOB))
    if run.returncode != 0 or not found:
        last = ((run.stderr or run.stdout).strip().splitlines() or ["no output"])[-1]
        raise FacesSourceError(f"could not download the {SKIMAGE} wheel into {directory} ({last.strip()}); "
                               f"put a scikit-image 0.26 wheel there, or pip install '{SKIMAGE}'")
    return found[-1]


def _load_npy(data: bytes, where: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FacesFileError(f"{where}: not a readable .npy ({type(exc).__name__}: {exc}); "
                             "delete it so that it is fetched again") from None


def read_wheel(wheel: Path) -> np.ndarray:
    """``lfw_subset.npy`` read straight out of a scikit-image wheel (a zip)."""
    where = f"{wheel}!{MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MEMBER)
    except KeyError:
        raise FacesFileError(f"{wheel}: the wheel has no {MEMBER}; use a scikit-image 0.26 wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FacesFileError(f"{wheel}: not a readable wheel ({type(exc).__name__}: {exc}); "
                             "delete it so that it is downloaded again") from None
    return validate(_load_npy(data, where), where)


def validate(images: np.ndarray, where: str) -> np.ndarray:
    """The 200 images as float64, or FacesFileError naming ``where``."""
    if images.shape != SHAPE:
        raise FacesFileError(f"{where}: shape {images.shape}, expected {SHAPE} (100 faces, 100 non-faces)")
    if images.dtype.kind not in "fiu":
        raise FacesFileError(f"{where}: dtype {images.dtype} is not numeric")
    images = images.astype(np.float64)
    if not np.isfinite(images).all():
        raise FacesFileError(f"{where}: {int((~np.isfinite(images)).sum())} non-finite pixel values")
    if images.min() < 0 or images.max() > 1:
        raise FacesFileError(f"{where}: pixel values span [{images.min():.3g}, {images.max():.3g}], "
                             "expected [0, 1]")
    return images


def load_lfw_subset(wheel_directory: Path | None = None) -> tuple[np.ndarray, str]:
    """(images, source): from an installed skimage, else from the (downloaded) scikit-image wheel."""
    path = installed_file()
    if path is not None:
        return validate(_load_npy(path.read_bytes(), str(path)), str(path)), str(path)
    wheel = download_wheel(wheel_directory)
    return read_wheel(wheel), f"{wheel}!{MEMBER}"


# -- the split and the folder ----------------------------------------------------------------------
def split(seed: int = 0) -> dict[str, dict[str, list[int]]]:
    """Row indices per split and class: {"train": {"face": [...], ...}, "validation": {...}}."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[int]]] = {"train": {}, "validation": {}}
    for k, cls in enumerate(CLASSES):
        rows = k * PER_CLASS + rng.permutation(PER_CLASS)
        out["train"][cls] = sorted(int(r) for r in rows[:TRAIN_PER_CLASS])
        out["validation"][cls] = sorted(int(r) for r in rows[TRAIN_PER_CLASS:])
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_complete(dest: Path, seed: int | None = None) -> bool:
    """True when ``dest`` holds exactly the files its stamp lists, each with its recorded sha256
    (and, given ``seed``, the split of that seed)."""
    try:
        stamp = json.loads((dest / STAMP).read_text())
        files = stamp["files"]
        if stamp.get("format") != FORMAT or (seed is not None and stamp.get("seed") != seed):
            return False
        present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.name != STAMP}
        folders = {f"{part}/{cls}" for part in ("train", "validation") for cls in CLASSES}
        if present != set(files) | folders | {"train", "validation"}:
            return False
        return all(_sha256(dest / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_folder(root: Path, images: np.ndarray, seed: int, source: str) -> None:
    from PIL import Image

    pixels = np.rint(images * 255).astype(np.uint8)
    files: dict[str, str] = {}
    for part, classes in split(seed).items():
        for cls, rows in classes.items():
            (root / part / cls).mkdir(parents=True)
            for row in rows:
                name = f"{part}/{cls}/{cls}_{row:03d}.png"
                Image.fromarray(pixels[row]).save(root / name)  # 2-D uint8: 8-bit grayscale
                files[name] = _sha256(root / name)
    stamp = {"format": FORMAT, "source": source, "seed": seed, "classes": list(CLASSES),
             "rule": f"per class, numpy default_rng({seed}) permutation (faces, then non-faces); "
                     f"first {TRAIN_PER_CLASS} of {PER_CLASS} -> train, the rest -> validation",
             "counts": {part: {cls: len(rows) for cls, rows in c.items()} for part, c in split(seed).items()},
             "files": files}
    (root / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")


def materialize_faces(dest: Path | None = None, *, seed: int = 0) -> Path:
    """Write the faces image folder (train/ and validation/, face and non_face) and return it.

    A complete folder (its stamp and every file intact) is left as it is; anything else is rebuilt
    in a temporary directory that replaces ``dest`` only once it is whole."""
    dest = Path(dest or default_dest())
    if is_complete(dest, seed):
        return dest
    if dest.exists():
        print(f"{dest}: incomplete or changed faces folder: rebuilding it", file=sys.stderr)
    images, source = load_lfw_subset()
    with atomic_path(dest, directory=True) as tmp:
        _write_folder(tmp, images, seed, source)
    return dest


def default_folder() -> Path:
    """The default faces folder when it is complete; FacesFolderMissing saying how to make it."""
    dest = default_dest()
    if not dest.exists():
        raise FacesFolderMissing(f"no --data-dir given and the default image folder {dest} does not exist: "
                                 "run `make data` (or python -m edgeport.training.faces), or pass --data-dir DIR")
    if not is_complete(dest):
        raise FacesFolderMissing(f"no --data-dir given and the default image folder {dest} is incomplete or "
                                 "changed: run `make data` (or python -m edgeport.training.faces) to rebuild it, "
                                 "or pass --data-dir DIR")
    return dest


def describe(dest: Path) -> str:
    """One line naming the folder, its source and split (for training logs)."""
    try:
        stamp = json.loads((Path(dest) / STAMP).read_text())
    except (OSError, ValueError):
        return f"{dest} (faces folder, no stamp)"
    counts = stamp.get("counts", {})
    n = {part: sum(c.values()) for part, c in counts.items()}
    return (f"{dest}: real LFW faces vs non-faces from scikit-image lfw_subset.npy, "
            f"{n.get('train', '?')} train / {n.get('validation', '?')} validation (split seed {stamp.get('seed')})")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edgeport.training.faces",
                                     description="write the real faces / non-faces image folder")
    parser.add_argument("--dest", type=Path, default=None, help=f"folder (default: {default_dest()})")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        print(materialize_faces(args.dest, seed=args.seed))
    except DataError as exc:
        print(f"edgeport: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - `make data-py`
    sys.exit(main())
