"""What every format module shares in one export run: the model, its contract, labels, samples."""
from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeport import __version__
from edgeport.errors import EdgeportError, ExportError
from edgeport.export.config import ExportConfig, sample_shapes
from edgeport.export.registry import INFO, Format, of_family
from edgeport.export.source import ModelSource, load_source
from edgeport.lazy import resolve
from edgeport.training_record import load_training_record
from edgeport.types import InputContract
from edgeport.names import LABELS_FILE

#: Range assumed for plain-value inputs of a model edgeport knows nothing about.
VALUES_RANGE = (-1.0, 1.0)
PIXEL_RANGE = (0.0, 255.0)


def cause_line(exc: BaseException) -> str:
    """The root cause's first line: what a user needs, never a traceback."""
    seen = [exc]
    while (nxt := seen[-1].__cause__ or seen[-1].__context__) is not None and nxt not in seen:
        seen.append(nxt)
    # our own errors already say what to do; otherwise the deepest error is the real cause
    root = next((e for e in seen if isinstance(e, EdgeportError)), seen[-1])
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if isinstance(root, EdgeportError):
        return text or type(root).__name__
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def _is_image(shape: tuple) -> bool:
    return len(shape) == 3 and shape[-1] in (1, 3) and all(isinstance(d, int) for d in shape)


class ExportContext:
    """Loaded once per run; formats ask it for the SavedModel, samples, labels and metadata."""

    def __init__(self, source: ModelSource, config: ExportConfig, *,
                 warn: Callable[[str], None] = print, model: Any = None):
        self.source, self.config = source, config
        said: set[str] = set()

        def warn_once(text: str) -> None:  # a fallback is said once per run, not once per use
            if text not in said:
                said.add(text)
                warn(text)

        self.warn = warn_once
        self.name, self.model_dir = source.name, source.model_dir
        self.model = model if model is not None or source.kind == "savedmodel" else load_source(
            source, allow_unsafe=config.allow_unsafe)
        if self.model is not None and not getattr(self.model, "inputs", None):
            raise ExportError(f"{source.path}: the model has no defined inputs (build it first)")
        self.produced: dict[Format, Path] = {}  # this run's artifacts (final or temporary)
        self.failed: dict[Format, str] = {}
        self.source_sha256: str | None = None
        self.source_info: dict[str, Any] = {}  # the manifest's ``source`` block
        self.source_installed = False  # whether MODEL_DIR holds the source (else it lands with an artifact)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"edgeport-export-{self.name}-")
        self.calibration: dict[str, Any] | None = None
        self._signature: tuple[dict, dict] | None = None
        self.tflite_batch1: Any = None  # the TFLite converters' batch-1 SavedModel once one needs it (tflite_batch1)

    def close(self) -> None:
        self._tmp.cleanup()

    def scratch(self, name: str) -> Path:
        """A path in this run's temporary folder (removed by :meth:`close`)."""
        return Path(self._tmp.name) / name

    # -- the model's interface -------------------------------------------------------------
    @cached_property
    def inputs(self) -> list[tuple[str, tuple]]:
        """Model inputs as (name, shape without the batch dimension): the Keras inputs, or the
        serving signature's of a SavedModel source."""
        if self.model is None:
            sig = self.load_signature(self.source.path)[0]
            return [(name, tuple(spec.shape.as_list()[1:])) for name, spec in sig.items()]
        return [(t.name, tuple(t.shape[1:])) for t in self.model.inputs]

    @cached_property
    def input_dtypes(self) -> dict[str, str]:
        """Model input name -> dtype name (float32 for image models; int64 for ids, say)."""
        if self.model is None:
            sig = self.load_signature(self.source.path)[0]
            return {name: spec.dtype.name for name, spec in sig.items()}
        return {t.name: np.dtype(str(t.dtype)).name for t in self.model.inputs}

    @cached_property
    def id_inputs(self) -> dict[str, Any]:
        """{input name: IdInput} of the inputs that carry ids (they feed an Embedding): never quantized."""
        from edgeport.export import id_inputs

        if self.model is not None:
            return id_inputs.find(self.model)
        from edgeport.export.tflite import float32_model  # a SavedModel source: read its float32 .tflite

        try:
            return id_inputs.from_tflite(float32_model(self.saved_model_dir))
        except Exception as exc:  # noqa: BLE001 - the converter raises many types; the export goes on, said
            self.warn(f"warning: {self.name}: could not look for id inputs in the float32 .tflite "
                      f"({cause_line(exc)}); every input is treated as values")
            return {}

    @cached_property
    def output_shapes(self) -> dict[str, tuple]:
        """Output name (as every artifact names it) -> shape without the batch dimension."""
        if self.model is None:
            sig = self.load_signature(self.source.path)[1]
            return {name: tuple(spec.shape.as_list()[1:]) for name, spec in sorted(sig.items())}
        from edgeport.runtimes.keras_runtime import output_tensors

        names, tensors = output_tensors(self.model)
        return {name: tuple(t.shape[1:]) for name, t in zip(names, tensors)}

    @cached_property
    def spec(self):
        """The course ModelSpec when this is a course model whose input fits it, else None."""
        try:
            from edgeport.training.models import MODELS
        except ImportError:  # pragma: no cover - training stage not installed
            return None
        names = [self.name]
        if self.training.get("model"):
            names.insert(0, str(self.training["model"]))
        spec = next((MODELS[n] for n in names if n in MODELS), None)
        if spec is None or len(self.inputs) != 1:
            return None
        shape = self.inputs[0][1]
        fits = {"fashion_mnist": shape in ((28, 28, 1), (28, 28)), "mnist": shape in ((28, 28, 1), (28, 28)),
                "celsius": shape == (1,),
                "image_folder": _is_image(shape) and shape[-1] == 3 and shape[0] == shape[1]}
        return spec if fits.get(spec.dataset, False) else None

    @cached_property
    def contract(self) -> InputContract:
        if self.spec is not None:
            shape = self.inputs[0][1]
            return self.spec.input_contract(input_size=shape[0] if self.spec.dataset == "image_folder" else None)
        name, shape = self.inputs[0]
        extra: dict[str, Any] = {"inferred": True}
        if len(self.inputs) > 1:
            extra["inputs"] = [{"name": n, "shape": list(s), "kind": "image" if _is_image(s) else "values",
                                "range": list(self._range(s))} for n, s in self.inputs]
        if _is_image(shape):
            return InputContract(kind="image", height=shape[0], width=shape[1], channels=shape[2],
                                 shape=tuple(shape), extra=extra)
        return InputContract(kind="values", shape=tuple(d or 1 for d in shape), pixel_range=VALUES_RANGE,
                             extra={**extra, "range_assumed": True})

    def _range(self, shape: tuple) -> tuple[float, float]:
        if _is_image(shape):
            return PIXEL_RANGE
        if self.spec is not None and self.contract.kind == "values":
            return tuple(self.contract.pixel_range)
        return VALUES_RANGE

    @cached_property
    def labels(self) -> list[str]:
        path = self.model_dir / LABELS_FILE
        if path.is_file():
            return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        if self.spec is not None and self.spec.labels:
            return list(self.spec.labels)
        shapes = list(self.output_shapes.values())
        last = shapes[0][-1] if len(shapes) == 1 and shapes[0] else None
        return [str(i) for i in range(last)] if isinstance(last, int) and last > 1 else []

    def metadata(self, fmt: Format | str) -> dict[str, Any]:
        """The JSON object embedded in every artifact (TFLite metadata, ONNX metadata_props)."""
        return {"model": self.name, "labels": self.labels, "input_contract": self.contract.to_dict(),
                "input_names": [name for name, _ in self.inputs], "format": str(fmt),
                "source_sha256": self.source_sha256, "edgeport": __version__}

    # -- artifacts this run depends on ---------------------------------------------------------
    def dependency(self, fmt: Format) -> Path:
        """The path of ``fmt`` produced in this run; built in a temporary place if not requested."""
        if fmt in self.produced:
            return self.produced[fmt]
        if fmt in self.failed:
            raise ExportError(f"needs {fmt} first, which failed: {self.failed[fmt]}")
        dest = Path(self._tmp.name) / fmt.value / INFO[fmt.value].file
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            resolve(INFO[fmt.value].export)(self, dest)
        except Exception as exc:
            self.failed[fmt] = cause_line(exc)
            raise ExportError(f"needs {fmt} first, which failed: {self.failed[fmt]}") from exc
        self.produced[fmt] = dest
        return dest

    @property
    def saved_model_dir(self) -> Path:
        """The SavedModel every TensorFlow converter starts from (the registry's savedmodel family)."""
        return self.dependency(Format(of_family("savedmodel")[0]))

    @property
    def signature(self) -> tuple[dict, dict]:
        """(inputs, outputs) of the SavedModel's serving signature: name -> tf.TensorSpec."""
        return self._signature or self.load_signature(self.saved_model_dir)

    def load_signature(self, saved_model: Path) -> tuple[dict, dict]:
        import tensorflow as tf

        fn = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
        self._signature = dict(fn.structured_input_signature[1]), dict(fn.structured_outputs)
        return self._signature

    def signature_name(self, keras_name: str) -> str:
        names = list(self.signature[0])
        if keras_name in names:
            return keras_name
        if len(names) == 1 and len(self.inputs) == 1:
            return names[0]
        raise ExportError(f"Keras input {keras_name!r} is not in the SavedModel signature {names}")

    # -- calibration -------------------------------------------------------------------------
    @cached_property
    def samples(self) -> dict[str, np.ndarray]:
        """Representative raw inputs (float32, keyed by Keras input name), drawn once per run."""
        from edgeport.export import calibration

        shape = self.inputs[0][1]
        dataset = self.spec.dataset if self.spec is not None and self.config.calibration_data is None else None
        image, ids = dataset == "image_folder", self.id_inputs
        samples, self.calibration = calibration.draw(
            self.inputs, n=self.config.calibration_samples, seed=self.config.seed, file=self.config.calibration_data,
            dataset=dataset, data_dir=(self.config.data_dir or self._training_data_dir()) if dataset else None,
            image_size=(shape[0], shape[1]) if image else None,
            ranges={name: (0, ids[name].vocabulary - 1) if name in ids else self._range(s) for name, s in self.inputs},
            dtypes=self.input_dtypes, shapes=sample_shapes(self.config.input_shape),
            ids={k: v.record for k, v in ids.items()})
        if self.calibration["source"] == "random-uniform":
            what, ids = "random-uniform inputs", self.calibration.get("id_inputs") or {}
            if ids:
                values = [name for name, _ in self.inputs if name not in ids]
                what = "samples (" + "; ".join(
                    [f"input {k}: ids, whole numbers in [0, {r['vocabulary']}) ({r['read_from']})"
                     for k, r in ids.items()]
                    + [f"input {n}: random-uniform values" for n in values]) + ")"
            self.warn(f"warning: {self.name} is not a known course model and no --calibration-data was given: "
                      f"calibrating on {self.calibration['samples']} seeded {what}; quantized accuracy may suffer")
        return samples

    @cached_property
    def training(self) -> dict[str, Any]:
        """training.json of this model directory (``{}`` for a model edgeport did not train)."""
        return load_training_record(self.model_dir)

    def _training_data_dir(self) -> str | None:
        src = self.training.get("data_source")
        return src if isinstance(src, str) and Path(src).is_dir() else None

    def representative_feed(self) -> list[dict[str, np.ndarray]]:
        """One dict per sample, keyed by SavedModel signature name, batch of 1 (TFLite converter)."""
        samples = self.samples
        keys = {name: self.signature_name(name) for name, _ in self.inputs}
        count = len(next(iter(samples.values())))
        return [{keys[k]: v[i:i + 1] for k, v in samples.items()} for i in range(count)]
