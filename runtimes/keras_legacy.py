"""Keras 2 ``.h5`` files that Keras 3 refuses over an argument it dropped, read without it, said.

Keras 2 recurrent layers (SimpleRNN, GRU, LSTM) saved ``time_major`` in their config; Keras 3 has no
such argument and refuses the whole file ("Unrecognized keyword arguments passed to LSTM"). Saved as
``False``, its default, it changes nothing: the model is read from a copy of the file whose config
leaves it out, and the caller states it (a note, the manifest). ``time_major=True`` has no Keras 3
equivalent and is refused. tf_keras reads these files too, but the rest of edgeport (the SavedModel
export, the float64 twin of the reference) works on Keras 3 models.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edgeport.errors import LoadError

#: Keras 2 arguments of recurrent layers that Keras 3 dropped, with the value that is their default.
DROPPED = {"time_major": False}
RECURRENT = ("SimpleRNN", "GRU", "LSTM", "CuDNNGRU", "CuDNNLSTM")


def _layers(node: Any):
    """Every {"class_name", "config"} layer entry of a Keras model config, nested ones too."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
            yield node
        for value in node.values():
            yield from _layers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layers(value)


def _config(path: Path) -> dict | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        return None
    if raw is None:
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def dropped_args(path: Path) -> list[str]:
    """``layer.arg=value`` for every Keras 2 argument of a recurrent layer in the ``.h5`` at ``path``
    that Keras 3 does not take ([] for a file without one, or not an .h5 model)."""
    config = _config(Path(path))
    if config is None:
        return []
    return [f"{layer['config'].get('name', layer['class_name'])}.{arg}={layer['config'][arg]}"
            for layer in _layers(config) if layer["class_name"] in RECURRENT
            for arg in DROPPED if arg in layer["config"]]


def without_dropped_args(path: Path, dest_dir: Path) -> tuple[Path, str]:
    """A copy of the ``.h5`` at ``path`` in ``dest_dir`` whose recurrent layers leave out the dropped
    arguments, and the one line that says so. An argument saved with another value than its default
    changes what the layer computes: refused (LoadError naming the file, the layer and the value)."""
    config = _config(Path(path))
    found = dropped_args(path)
    if config is None or not found:
        raise LoadError(f"{path}: no Keras 2 recurrent-layer argument to leave out")
    for layer in _layers(config):
        if layer["class_name"] not in RECURRENT:
            continue
        for arg, default in DROPPED.items():
            if arg in layer["config"] and layer["config"][arg] != default:
                raise LoadError(f"{path}: layer {layer['config'].get('name')!r} was saved with {arg}="
                                f"{layer['config'][arg]}, which Keras 3 cannot compute; load it with tf_keras")
            layer["config"].pop(arg, None)
    import h5py

    copy = Path(dest_dir) / Path(path).name
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    return copy, note(Path(path).name, found)


def note(name: str, found: list[str]) -> str:
    """The line that says a Keras 2 file was read without the arguments ``found``."""
    return (f"{name}: a Keras 2 .h5, read by Keras 3 without {', '.join(found)} (Keras 3 has no such argument; "
            "the value saved is its default and changes nothing)")


def load_model(path: str | Path, *, safe_mode: bool = True) -> tuple[Any, str]:
    """``keras.saving.load_model(path, compile=False)``, and "" ; a Keras 2 ``.h5`` refused only over
    a dropped recurrent argument is read without it: (model, the line that says so)."""
    import tempfile

    import keras

    try:
        return keras.saving.load_model(str(path), safe_mode=safe_mode, compile=False), ""
    except Exception as exc:  # keras raises ValueError, TypeError, ...
        if not any(arg in str(exc) for arg in DROPPED) or not dropped_args(Path(path)):
            raise
    with tempfile.TemporaryDirectory(prefix="edgeport-keras2-") as tmp:
        copy, note = without_dropped_args(Path(path), Path(tmp))
        return keras.saving.load_model(str(copy), safe_mode=safe_mode, compile=False), note
