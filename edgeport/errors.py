"""Typed errors shared by every stage. The CLI prints them as one line and exits 2."""
from __future__ import annotations


class EdgeportError(Exception):
    """Base class: a message a user can act on (what is wrong, where, how to fix it), on one line:
    an engine's multi-line complaint is folded, and a message over MAX_CHARS is cut."""

    MAX_CHARS = 800

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            text = " ".join(args[0].split())
            args = (text if len(text) <= self.MAX_CHARS else text[:self.MAX_CHARS - 1] + "…",)
        super().__init__(*args)


class DataError(EdgeportError):
    """Missing, corrupt or malformed data (idx files, JSON digits, image folders)."""


class UnknownNameError(EdgeportError):
    """An unknown model, format, runtime or dataset name."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


class ModelFileError(EdgeportError):
    """A model file (.keras, .tflite, .onnx, SavedModel) that is missing, truncated or refused."""


class ExportError(EdgeportError):
    """One export format failed; the message names the format and the cause."""


class LoadError(ModelFileError):
    """A runtime could not load an artifact (names the file)."""


class EngineError(EdgeportError):
    """An inference engine failed while running a loaded model (names the file and the engine)."""


class InputError(EdgeportError):
    """Input that does not fit a model's contract (shape, dtype, channels, NaN, empty batch)."""


class IntegrityError(EdgeportError):
    """An artifact whose sha256 differs from its manifest entry."""


class GateError(EdgeportError):
    """A parity gate failed: names the artifact, the runtime, the figure and the gate."""


class DeviceUnavailable(EdgeportError):
    """A requested device (GPU) or execution provider is not present on this machine."""
