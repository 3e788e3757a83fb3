"""Real inputs for the zoo: the sample photos and the page of text in the scikit-image wheel (read
as a zip, not installed), bytes of real files, audio synthesised here (tones and noise), and the
vocabulary and sample surnames a text model ships with. Every maker is seeded: the same recipe makes
the same inputs."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from edgeport.benchmarks.zoo.recipes import Feed, Recipe

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
PAGES = ("page.png", "text.png")
FILES = ("README.txt", "astronaut.png", "hubble_deep_field.jpg", "lfw_subset.npy", "motorcycle_disp.npz")
MAGIKA_PAD = 256  # Magika's padding token: byte ids are 0..255


def _skimage_member(name: str) -> bytes:
    from edgeport.training.faces import download_wheel

    with zipfile.ZipFile(download_wheel()) as zf:
        return zf.read(f"skimage/data/{name}")


def _image(data: bytes, channels: int):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB")


def _to_layout(img, feed: Feed) -> np.ndarray:
    channels = feed.shape[0] if feed.layout == "nchw" else feed.shape[-1]
    h, w = (feed.shape[1:] if feed.layout == "nchw" else feed.shape[:2])
    px = np.asarray(img.resize((w, h)), np.float32).reshape(h, w, channels)
    px = (px - feed.mean) / feed.std
    return px.transpose(2, 0, 1) if feed.layout == "nchw" else px


def _channels(feed: Feed) -> int:
    return feed.shape[0] if feed.layout == "nchw" else feed.shape[-1]


def photo_images(feed: Feed, rows: int) -> list:
    """``rows`` real colour photos (as PIL images), in the feed's colour mode."""
    return [_image(_skimage_member(PHOTOS[i % len(PHOTOS)]), _channels(feed)) for i in range(rows)]


def page_images(feed: Feed, rows: int) -> list:
    """``rows`` windows of a real printed page, with the feed's aspect ratio."""
    h, w = (feed.shape[1:] if feed.layout == "nchw" else feed.shape[:2])
    out = []
    for i in range(rows):
        page = _image(_skimage_member(PAGES[i % len(PAGES)]), _channels(feed))
        crop_h = min(page.height, max(8, round(page.width * h / w)))
        top = min(page.height - crop_h, (i // len(PAGES)) * crop_h // 2)
        out.append(page.crop((0, top, page.width, top + crop_h)))
    return out


def audio(feed: Feed, rows: int, rate: int = 16000) -> np.ndarray:
    """Tones with overtones and noise, one pitch per row, amplitude ``feed.value`` (default 0.5)."""
    rng = np.random.default_rng(0)
    length = int(np.prod(feed.shape))
    t = np.arange(length) / rate
    amp = feed.value or 0.5
    x = [amp * (0.5 * np.sin(2 * np.pi * 220.0 * (i + 1) * t) + 0.3 * np.sin(2 * np.pi * 550.0 * (i + 1) * t)
                + 0.05 * rng.standard_normal(length)) for i in range(rows)]
    return np.stack(x).reshape((rows, *feed.shape)).astype(feed.dtype)


def features(feed: Feed, rows: int, quantization: tuple[float, int, float, float] | None = None) -> np.ndarray:
    """Smooth seeded feature maps (spectrogram-like). A quantized input (``quantization``: scale, zero
    point and the real range it stands for) gets real values in that range, as edgeport takes them (it
    quantizes them itself): a quiet background level ``feed.value`` (default 2.0) plus smooth variation
    along the feature axis (microWakeWord: log filterbank energies of background sound are low; the rows
    are consecutive time steps of one stream). Without one, int8 features span most of its range."""
    rng = np.random.default_rng(1)
    if quantization is not None:
        scale, _, low, high = quantization
        real = (feed.value or 2.0) + np.abs(rng.standard_normal((rows, *feed.shape)).cumsum(axis=-1)
                                            / np.sqrt(feed.shape[-1]))
        return np.clip(np.round(real / scale) * scale, low, high).astype(feed.dtype)
    x = rng.standard_normal((rows, *feed.shape)).cumsum(axis=1) / np.sqrt(feed.shape[0])
    if np.dtype(feed.dtype).kind == "i":
        info = np.iinfo(feed.dtype)
        return np.clip(np.round(x * 40 - 20), info.min, info.max).astype(feed.dtype)
    return (x + 1.0).astype(feed.dtype)


def file_bytes(feed: Feed, rows: int) -> np.ndarray:
    """Magika's features of real files: the first and last half-window of bytes, stripped, padded."""
    half = feed.shape[0] // 2
    out = np.full((rows, feed.shape[0]), MAGIKA_PAD, dtype=feed.dtype)
    for i in range(rows):
        data = _skimage_member(FILES[i % len(FILES)])
        beg, end = data.lstrip()[:half], data.rstrip()[-half:]
        out[i, :len(beg)] = np.frombuffer(beg, np.uint8)
        out[i, feed.shape[0] - len(end):] = np.frombuffer(end, np.uint8)
    return out


def _csv_column(path: Path, column: str) -> list[str]:
    """One column of a csv, cells kept as they are (the vocabulary has bigrams such as ``"r "``)."""
    with path.open(newline="") as f:
        return [row[column] for row in csv.DictReader(f)]


def ngram_ids(vocab: list[str], surname: str, maxlen: int, n: int = 2) -> list[int]:
    """A surname coded as ethnicolr 0.9.6 codes it (ethnicolr/ethnicolr_class.py, ``transform_and_pred``
    and ``find_ngrams``; ethnicolr/pred_census_ln.py: ``NGRAMS = 2``, ``FEATURE_LEN = 20``): stripped and
    title-cased (``str.strip().str.title()``), its character n-grams (``zip(*[text[i:] for i in
    range(n)])``), each the index of its first place in the vocabulary or 0 (``vocab.index(w)``, 0 on a
    miss: UNK, the vocabulary's first entry), then Keras ``pad_sequences(X, maxlen)`` with its defaults:
    the last ``maxlen`` kept (truncating "pre"), 0s before them (padding "pre", value 0)."""
    text = surname.strip().title()
    index: dict[str, int] = {}
    for i, tok in enumerate(vocab):
        index.setdefault(tok, i)
    ids = [index.get(text[i:i + n], 0) for i in range(len(text) - n + 1)][-maxlen:]
    return [0] * (maxlen - len(ids)) + ids


def names(feed: Feed, rows: int, vocab_file: Path, names_file: Path) -> np.ndarray:
    """The first ``rows`` surnames of ethnicolr's own sample input (``last_name``) as its census model
    codes them (:func:`ngram_ids` on the vocabulary the model ships with)."""
    vocab = _csv_column(vocab_file, "vocab")  # pd.read_csv(VOCAB).vocab.tolist(): no cell here reads as NaN
    surnames = _csv_column(names_file, "last_name")
    return np.array([ngram_ids(vocab, surnames[r % len(surnames)], feed.shape[0]) for r in range(rows)],
                    feed.dtype)


def image_rows(feed: Feed, rows: int) -> list:
    return (photo_images if feed.maker == "photo" else page_images)(feed, rows)


def make(recipe: Recipe, extra: dict[str, Path],
         quantization: dict[str, tuple[float, int, float, float]] | None = None) -> dict[str, np.ndarray]:
    """The recipe's inputs by name: ``rows`` rows each (a ``whole`` feed: its one array);
    ``quantization``: {input name: (scale, zero point, real range)} of the model's quantized inputs."""
    arrays = {}
    for name, feed in recipe.feeds.items():
        n = 1 if feed.whole else recipe.rows
        if feed.maker in ("photo", "page"):
            x = np.stack([_to_layout(img, feed) for img in image_rows(feed, n)])
        elif feed.maker == "audio":
            x = audio(feed, n)
        elif feed.maker == "features":
            x = features(feed, n, (quantization or {}).get(name))
        elif feed.maker == "file_bytes":
            x = file_bytes(feed, n)
        elif feed.maker == "names":
            x = names(feed, n, *extra.values())  # the vocabulary, the surnames
        else:
            x = np.full((n, *feed.shape), feed.value, feed.dtype)
        arrays[name] = np.asarray(x[0], feed.dtype) if feed.whole else x.astype(feed.dtype)
    return arrays


def photo_file(recipe: Recipe, folder: Path) -> Path | None:
    """One real image file for `edgeport run` on an image model (its own preprocessing), else None."""
    feed = next((f for f in recipe.feeds.values() if f.maker in ("photo", "page")), None)
    if feed is None:
        return None
    img = image_rows(feed, 1)[0]
    path = folder / ("photo.png" if feed.maker == "photo" else "page.png")
    img.convert("RGB").save(path)
    return path
