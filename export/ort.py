"""ONNX Runtime Mobile (ORT format): ``model.ort`` from the float ONNX, ``model_int8.ort`` from the int8 one.

Each is written by ONNX Runtime's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``,
called in-process, or ``python -m`` it when its function is not there), with the
``required_operators.config`` beside it: the operator list a reduced-operator mobile build of ONNX
Runtime is made with (``build.sh --minimal_build --include_ops_by_config FILE``).

Shipped: the plain ``.ort`` (optimization style *Fixed*), not ``.with_runtime_opt.ort``. A Fixed
model has every graph optimization applied at conversion time, so it runs as it is with the CPU
execution provider on any device (Android, iOS, x86) and needs no session option; the
runtime-optimization style only pays with a compiling EP (NNAPI, CoreML) and its saved
optimizations are replayed only when ``session.enable_saved_runtime_optimizations`` is set
(ONNX Runtime says: for trusted models only). The NCHWc transformer is left out (the converter
does so for any target but amd64), so nothing x86-only is baked in.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeport.errors import ExportError
from edgeport.export.context import ExportContext
from edgeport.export.registry import INFO, Format
from edgeport.types import TensorSpec

#: The optimization style shipped, and the converter's suffix for the other one (never shipped).
STYLE = "Fixed"
WHY = ("plain .ort (optimization style Fixed): optimized at conversion, runs as it is on the CPU EP of any "
       "device; .with_runtime_opt.ort is for NNAPI/CoreML and needs session.enable_saved_runtime_optimizations")
_CONFIG = re.compile(r"^(?P<domain>[^;#\s]*);(?P<opset>\d+);(?P<ops>.+)$")


def export_fp32(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    return _export(ctx, Format.ORT, dest)


def export_int8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    return _export(ctx, Format.ORT_INT8, dest)


def _export(ctx: ExportContext, fmt: Format, dest: Path) -> dict[str, Any]:
    import onnxruntime

    info = INFO[fmt.value]
    source = ctx.dependency(info.needs)
    config = dest.parent / info.extra_files[0]
    with tempfile.TemporaryDirectory(prefix=f"edgeport-{fmt.value}-") as tmp:
        work = Path(tmp)
        onnx_in = work / (Path(info.file).stem + ".onnx")  # the converter names its outputs after its input
        shutil.copyfile(source, onnx_in)
        how = _convert(onnx_in, work / "out")
        made, made_config = work / "out" / (onnx_in.stem + ".ort"), work / "out" / info.extra_files[0]
        for path in (made, made_config):
            if not path.is_file():
                raise ExportError(f"{source}: ONNX Runtime's ORT converter wrote no {path.name}")
        shutil.move(str(made), dest)
        config.write_text(_shipped_config(made_config.read_text(), dest.name))
    ops = required_operators(config)
    return {"converter": f"onnxruntime {onnxruntime.__version__} convert_onnx_models_to_ort ({how}, from "
                         f"{INFO[info.needs.value].file})",
            "optimization_style": f"{STYLE}, level all", "shipped": WHY, "required_operators": ops}


def _convert(onnx_in: Path, out: Path) -> str:
    """Run ONNX Runtime's converter on ``onnx_in`` into ``out``; how it ran (in-process | subprocess)."""
    try:
        from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort
    except ImportError:
        convert_onnx_models_to_ort = None
    if convert_onnx_models_to_ort is not None:
        said, log = io.StringIO(), logging.getLogger("ort_format_model.utils")
        level, log.level = log.level, logging.WARNING  # it logs "Created config in <temp path>"
        try:
            with contextlib.redirect_stdout(said):  # it prints a line per step
                convert_onnx_models_to_ort(onnx_in, output_dir=out, optimization_styles=[OptimizationStyle[STYLE]])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors: one line naming the file
            raise ExportError(f"{onnx_in.name}: ONNX Runtime's ORT converter failed: {type(exc).__name__}: "
                              f"{_first(str(exc))}") from None
        finally:
            log.setLevel(level)
        return "in-process"
    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", "--optimization_style", STYLE,
           "--output_dir", str(out), str(onnx_in)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        lines = [ln for ln in (run.stderr + run.stdout).splitlines() if "rror" in ln]
        raise ExportError(f"{onnx_in.name}: `python -m onnxruntime.tools.convert_onnx_models_to_ort` exited "
                          f"{run.returncode}: {(lines or ['(no message)'])[-1].strip()}")
    return "subprocess"


def _shipped_config(text: str, model_file: str) -> str:
    """The converter's config with its comment naming the shipped file, not the temporary path it converted."""
    lines = [f"# - {model_file}" if ln.startswith("# - ") else ln for ln in text.splitlines()]
    return "\n".join(lines) + "\n"


def _first(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "(no message)")


def required_operators(config: Path) -> dict[str, list[str]]:
    """``{"ai.onnx;17": ["Gemm", ...], ...}`` from a required_operators.config (``domain;opset;Op,Op``)."""
    ops: dict[str, list[str]] = {}
    for line in Path(config).read_text().splitlines():
        m = _CONFIG.match(line.strip())
        if m:
            key = f"{m['domain'] or 'ai.onnx'};{m['opset']}"
            ops.setdefault(key, []).extend(sorted(o.strip() for o in m["ops"].split(",") if o.strip()))
    if not ops:
        raise ExportError(f"{config}: no operators listed "
                          "(a required_operators.config has `domain;opset;Op,...` lines)")
    return ops


def describe(ctx: ExportContext, path: Path) -> dict[str, list[dict]]:
    """``{"inputs": [...], "outputs": [...]}`` read back from the .ort by an ONNX Runtime session."""
    import onnxruntime

    from edgeport.runtimes.onnxruntime_runtime import _DTYPES

    try:
        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors
        raise ExportError(f"{path}: onnxruntime cannot load it: {type(exc).__name__}: {_first(str(exc))}") from None

    def spec(t) -> dict:
        shape = tuple(d if isinstance(d, int) else None for d in t.shape)
        return TensorSpec(t.name, shape, _DTYPES.get(t.type, t.type)).to_dict()

    return {"inputs": [spec(t) for t in sess.get_inputs()], "outputs": [spec(t) for t in sess.get_outputs()]}
