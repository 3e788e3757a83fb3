"""The zoo drives edgeport as a user does: each command is `python -m edgeport ...` in a child
process (a crash or a traceback is seen, never hidden), each recorded for the no-traceback check.
The engines are also called directly, once per model, for what they really return."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRACEBACK = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"^edgeport: error: ", re.M)


@dataclass
class Cmd:
    argv: list[str]
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def line(self) -> str:
        return "edgeport " + " ".join(self.argv)

    def problem(self) -> str | None:
        """Why this command did not end in a result or one `edgeport: error:` line (None: it did)."""
        if self.rc == 124:
            return f"`{self.line}` timed out"
        if self.rc < 0 or self.rc > 2:
            return f"`{self.line}` died (exit {self.rc}): {self.tail()}"
        if TRACEBACK in self.err or TRACEBACK in self.out:
            last = [ln for ln in self.err.splitlines() if ln.strip()][-1:] or ["?"]
            return f"`{self.line}` printed a traceback: {last[0].strip()[:200]}"
        if self.rc == 2 and len(ERROR_LINE.findall(self.err)) != 1:
            return f"`{self.line}` exit 2 with {len(ERROR_LINE.findall(self.err))} `edgeport: error:` lines"
        return None

    def tail(self) -> str:
        """The line that says most: an error, a FAILED line, else the last line printed."""
        lines = [ln.strip() for ln in (self.err + "\n" + self.out).splitlines() if ln.strip()]
        for key in ("edgeport: error:", "FAILED", "Error", "error"):
            hit = [ln for ln in lines if key in ln]
            if hit:
                return hit[0][:300]
        return (lines[-1] if lines else "no output")[:300]

    def json(self) -> dict | None:
        try:
            return json.loads(self.out)
        except ValueError:
            return None


@dataclass
class Log:
    """Every command one model's checks ran, in order."""

    cwd: Path
    timeout: float = 300.0
    cmds: list[Cmd] = field(default_factory=list)

    def edgeport(self, *argv: str | Path) -> Cmd:
        args = [str(a.relative_to(self.cwd)) if isinstance(a, Path) and a.is_relative_to(self.cwd) else str(a)
                for a in argv]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        start = time.perf_counter()
        try:
            run = subprocess.run([sys.executable, "-m", "edgeport", *args], cwd=self.cwd, env=env,
                                 capture_output=True, text=True, timeout=self.timeout)
            cmd = Cmd(args, run.returncode, run.stdout, run.stderr, time.perf_counter() - start)
        except subprocess.TimeoutExpired as exc:
            cmd = Cmd(args, 124, str(exc.stdout or ""), str(exc.stderr or ""), time.perf_counter() - start)
        self.cmds.append(cmd)
        return cmd


def engine_outputs(path: Path, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """What the engine itself returns for ``feed`` (by engine input name) and what it declares:
    ({output name: array}, {output name: declared shape}); integer outputs dequantized."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        ys = sess.run(names, {i.name: feed[i.name] for i in sess.get_inputs()})
        return dict(zip(names, ys)), {o.name: list(o.shape) for o in sess.get_outputs()}
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    for d in interp.get_input_details():
        if list(d["shape"]) != list(feed[d["name"]].shape):
            interp.resize_tensor_input(d["index"], list(feed[d["name"]].shape))
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], _quantized(feed[d["name"]], d))
    interp.invoke()
    outs = interp.get_output_details()
    return ({d["name"]: _dequantized(np.array(interp.get_tensor(d["index"])), d["quantization"]) for d in outs},
            {d["name"]: [int(s) for s in d["shape_signature"]] for d in outs})


def _dequantized(y: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    """An integer output as the real values it stands for (scale * (q - zero point))."""
    scale, zero = quantization
    return (scale * (y.astype(np.float64) - zero)).astype(np.float32) if scale and y.dtype.kind in "iu" else y


def engine_inputs(path: Path) -> list[str]:
    """The engine's input names, in order."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        return [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]
    from ai_edge_litert.interpreter import Interpreter

    return [d["name"] for d in Interpreter(model_path=str(path)).get_input_details()]


def engine_quantization(path: Path) -> dict[str, tuple[float, int, float, float]]:
    """{input name: (scale, zero point, lowest, highest real value)} of a .tflite's quantized inputs:
    the real range an integer input stands for ({} for any other file)."""
    if path.suffix != ".tflite":
        return {}
    from ai_edge_litert.interpreter import Interpreter

    out = {}
    for d in Interpreter(model_path=str(path)).get_input_details():
        (scale, zero), info = d["quantization"], np.iinfo(d["dtype"]) if np.dtype(d["dtype"]).kind in "iu" else None
        if scale and info is not None:
            out[d["name"]] = (float(scale), int(zero), (info.min - zero) * scale, (info.max - zero) * scale)
    return out


def _quantized(x: np.ndarray, detail: dict) -> np.ndarray:
    """Real values for a quantized integer input as edgeport feeds them: clip(round(x / scale) + zero point)."""
    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if not scale or dtype.kind not in "iu" or x.dtype.kind != "f":
        return x
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(dtype)
