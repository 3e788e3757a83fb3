"""A bare .onnx into TFLite: onnx2tf (the maintained ONNX to LiteRT converter), run as a worker job.

The inputs keep their ONNX layout and names (``keep_shape_absolutely_input_names``; onnx2tf would
otherwise turn NCHW into NHWC and the artifact would no longer take the original's inputs) and their
sizes are made static (``overwrite_input_shape``: symbolic batch 1, the rest from ``--input-shape``).
The float32 .tflite is kept; onnx2tf's SavedModel and float16 copy are not. An op onnx2tf has no
converter for, or fails on, is one line naming it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeport.errors import ExportError
from edgeport.export.cross_job import converted, logged

CONVERTER = "onnx2tf"


def _op_types(src: Path) -> dict[str, str]:
    """{node name: op type} of the ONNX graph, subgraphs included."""
    import onnx

    found: dict[str, str] = {}

    def walk(graph) -> None:
        for node in graph.node:
            found.setdefault(node.name, node.op_type)
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    walk(sub)

    walk(onnx.load(str(src), load_external_data=False).graph)
    return found


def failed_op(exc: BaseException, src: Path) -> str | None:
    """The op onnx2tf failed on: an op it has no module for, or the node it tags the error with."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("onnx2tf.ops."):
        return exc.name.rsplit(".", 1)[-1]
    node = getattr(exc, "onnx_op_name", None)
    if not node:
        return None
    types = _op_types(src)
    kind = types.get(node) or types.get(node.replace("_", "/")) or types.get("/" + node)
    return f"{kind} (node {node})" if kind else f"at node {node}"


def convert_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker job: ``src`` (.onnx) -> ``dest`` (.tflite, float32) with ``shapes`` {input: [1, ...]}."""
    src, dest = Path(job["src"]), Path(job["dest"])
    shapes = {name: [int(d) for d in shape] for name, (shape, _) in job["shapes"].items()}
    work = Path(tempfile.mkdtemp(prefix="onnx2tf-", dir=dest.parent))
    try:
        copy = work / "source.onnx"  # onnx2tf rewrites its input file in place (names the unnamed nodes)
        shutil.copyfile(src, copy)
        with logged(Path(job["log"]), f"{CONVERTER} {src}"):
            import onnx2tf

            try:
                onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(work / "out"), non_verbose=True,
                                keep_shape_absolutely_input_names=list(shapes), output_signaturedefs=True,
                                overwrite_input_shape=[f"{n}:{','.join(map(str, s))}" for n, s in shapes.items()],
                                not_use_onnxsim=True)
            except Exception as exc:  # noqa: BLE001 - any converter failure becomes one line naming the op
                op = failed_op(exc, copy)
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
                why = (f"{CONVERTER} {onnx2tf.__version__} has no converter for it" if isinstance(
                    exc, ModuleNotFoundError) and op else f"{type(exc).__name__}: {text}")
                raise ExportError(f"{src}: {CONVERTER} cannot convert " + (f"op {op}" if op else "this model")
                                  + f" ({why})") from None
        found = sorted((work / "out").glob("*_float32.tflite"))
        if not found:
            raise ExportError(f"{src}: {CONVERTER} wrote no float32 .tflite (see the converter log)")
        shutil.move(str(found[0]), dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return converted(dest, f"{CONVERTER} {onnx2tf.__version__}", {CONVERTER: onnx2tf.__version__})
