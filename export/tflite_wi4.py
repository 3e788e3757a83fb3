"""TFLite int4 weights, float activations and I/O: the float32 .tflite quantized with Google's
ai-edge-quantizer (``ai_edge_quantizer``, PyPI ``ai-edge-quantizer``), no calibration needed.

The recipe is the quantizer's public ``dynamic_wi4_afp32``: channelwise int4 weights, activations
quantized on the fly by the kernel. It is the int4 recipe LiteRT 2.3's XNNPACK runs: blockwise
int4 needs every quantized dimension divisible by the block, and 2-bit recipes either give garbage
(channelwise) or are refused by XNNPACK (blockwise). A model LiteRT will not load fails the format.
"""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeport.errors import ExportError
from edgeport.export.context import ExportContext, cause_line
from edgeport.export.registry import INFO, Format
from edgeport.export.tflite_flatbuffer import add_metadata, interpreter

FORMAT = Format.TFLITE_WI4
RECIPE = "dynamic_wi4_afp32"
CONVERTER = "ai_edge_quantizer.Quantizer"
PACKAGE = "ai-edge-quantizer"


class _Collect(logging.Handler):
    """Keeps the quantizer's WARNING+ records (said once through ``warn``), out of the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        if text:
            self.lines.append(text.splitlines()[0])


@contextlib.contextmanager
def _quiet_logging(warn: Callable[[str], None]) -> Iterator[None]:
    """The quantizer logs through Python ``logging`` and absl: its info records are dropped, its
    warnings are passed to ``warn`` as one line each, and none reaches the terminal by itself. Its
    tqdm progress bar goes too: 0.10.0 draws it for models of 100+ tensors even when told not to
    (``quantize`` does not pass ``enable_progress_bar`` on to the model modifier)."""
    root, collect = logging.getLogger(), _Collect()
    saved = root.level, root.handlers[:]
    root.handlers[:] = [collect]
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        for line in dict.fromkeys(collect.lines):
            warn(f"note: {FORMAT}: ai_edge_quantizer: {line}")


def quantize(float_model: bytes, recipe_name: str = RECIPE, *, source: str = "the float32 model",
             warn: Callable[[str], None] = print) -> bytes:
    """``float_model`` (float32 .tflite bytes) quantized with the ai-edge-quantizer recipe
    ``recipe_name`` (a function of ``ai_edge_quantizer.recipe``)."""
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise ExportError(f"needs the {PACKAGE} package (pip install 'edgeport[workstation]'): "
                          f"{cause_line(exc)}") from exc
    make: Callable[[], Any] | None = getattr(recipe, recipe_name, None)
    if make is None:
        raise ExportError(f"ai_edge_quantizer.recipe has no recipe {recipe_name!r}")
    try:
        with _quiet_logging(warn):
            q = quantizer.Quantizer(bytearray(float_model), make())
            if q.need_calibration:
                raise ExportError(f"recipe {recipe_name} needs calibration, which this format does not run")
            result = q.quantize(enable_progress_report=False, enable_progress_bar=False)
    except ExportError:
        raise
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError/KeyError on what it cannot do
        raise ExportError(f"{CONVERTER} ({recipe_name}) cannot quantize {source}: "
                          f"{cause_line(exc)}") from exc
    if not result.quantized_model:
        raise ExportError(f"{CONVERTER} ({recipe_name}) returned no model for {source}")
    return bytes(result.quantized_model)


def quantizer_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        return "unknown"


def export(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    """Quantize this run's float32 .tflite to int4 weights; the result must load in LiteRT."""
    needs = INFO[FORMAT.value].needs
    source = ctx.dependency(needs)
    model = quantize(source.read_bytes(), RECIPE, source=f"{needs} ({source.name})", warn=ctx.warn)
    model = add_metadata(model, ctx.metadata(FORMAT))
    try:
        interpreter(model, ctx.warn)
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f"LiteRT refuses the {RECIPE} model: {cause_line(exc)}") from exc
    dest.write_bytes(model)
    return {"converter": f"{CONVERTER} {quantizer_version()}", "recipe": RECIPE, "metadata_key": "edgeport",
            "arithmetic": "int4 weights, float32 activations", "io_type": "float32"}
